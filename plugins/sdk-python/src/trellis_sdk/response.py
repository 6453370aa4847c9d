"""The response a handler returns.

A handler may also return a plain value: a ``dict``, ``list`` or dataclass
is a 200 JSON response, a ``str`` a 200 ``text/plain`` one, ``bytes`` a 200
``application/octet-stream`` one and ``None`` a 204 (see
:meth:`Response.of`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from . import _json

__all__ = ["Response"]


class Response:
    """An HTTP response: ``status``, ``headers`` (ordered name/value pairs)
    and ``body`` (bytes)."""

    def __init__(self, status: int = 200, body: bytes | str = b"",
                 headers: Iterable[tuple[str, str]] = ()):
        self.status = status
        self.headers: list[tuple[str, str]] = list(headers)
        self.body = body.encode() if isinstance(body, str) else bytes(body)

    @classmethod
    def json(cls, value: Any, status: int = 200,
             headers: Iterable[tuple[str, str]] = ()) -> "Response":
        """``value`` as JSON (dataclasses become objects), with
        ``content-type: application/json``."""
        return cls(status, _json.dumps(value), [("content-type", "application/json"), *headers])

    @classmethod
    def text(cls, body: str, status: int = 200,
             headers: Iterable[tuple[str, str]] = ()) -> "Response":
        """``body`` as ``text/plain; charset=utf-8``."""
        return cls(status, body, [("content-type", "text/plain; charset=utf-8"), *headers])

    @classmethod
    def no_content(cls) -> "Response":
        """204 No Content."""
        return cls(204)

    @classmethod
    def created(cls, value: Any, location: str) -> "Response":
        """201 Created with ``value`` as JSON and a ``location`` header."""
        return cls.json(value, 201, [("location", location)])

    @classmethod
    def of(cls, value: Any) -> "Response":
        """What a handler's return value means as a response: a
        :class:`Response` as it is, ``None`` a 204, a ``str`` text, ``bytes``
        an octet stream, and anything else JSON."""
        if isinstance(value, Response):
            return value
        if value is None:
            return cls.no_content()
        if isinstance(value, str):
            return cls.text(value)
        if isinstance(value, (bytes, bytearray)):
            return cls(200, bytes(value), [("content-type", "application/octet-stream")])
        if isinstance(value, (dict, list, tuple, int, float, bool)) or (
                dataclasses.is_dataclass(value) and not isinstance(value, type)):
            return cls.json(value)
        raise TypeError(f"a handler returned a {type(value).__name__}; return a Response, "
                        "a dict, list or dataclass (JSON), a str, bytes or None")

    def with_status(self, status: int) -> "Response":
        """Replaces the status; returns the response."""
        self.status = status
        return self

    def with_header(self, name: str, value: str) -> "Response":
        """Adds a header; returns the response."""
        self.headers.append((name, value))
        return self

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def __repr__(self) -> str:
        return f"Response({self.status}, {len(self.body)} bytes, {self.headers!r})"
