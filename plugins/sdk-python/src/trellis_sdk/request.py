"""The request a handler receives, with typed access to its parts."""

from __future__ import annotations

import json
from typing import Any, Iterable, TypeVar

from ._convert import DecodeError, decode, parse_text
from .errors import BadRequest, InternalError

__all__ = ["Request"]

T = TypeVar("T")

_MISSING: Any = object()


class Request:
    """An HTTP request the host routed to this plugin.

    ``method`` (upper case), ``path`` (as sent, without the query),
    ``params`` (the route's ``{name}`` values, percent-decoded by the host),
    ``query_pairs`` (decoded query pairs, in order), ``headers`` (lower-case
    names), ``body`` (bytes), ``request_id`` and ``route`` (the index of the
    matched route).
    """

    def __init__(self, method: str, path: str, *, params: Iterable[tuple[str, str]] = (),
                 query: Iterable[tuple[str, str]] = (),
                 headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
                 request_id: str = "test-request", route: int = 0):
        self.method = method.upper()
        self.path = path
        self.params: list[tuple[str, str]] = list(params)
        self.query_pairs: list[tuple[str, str]] = list(query)
        self.headers: list[tuple[str, str]] = [(k.lower(), v) for k, v in headers]
        self.body = bytes(body)
        self.request_id = request_id
        self.route = route

    @classmethod
    def from_raw(cls, raw: Any) -> "Request":
        """The request of the host's ``types.Request`` record."""
        return cls(raw.method, raw.path, params=raw.params, query=raw.query,
                   headers=raw.headers, body=raw.body, request_id=raw.request_id,
                   route=raw.route)

    def param(self, name: str, kind: type[T] = str) -> T:  # type: ignore[assignment]
        """Path parameter ``name`` parsed as ``kind`` (``str``, ``int``,
        ``float``, ``bool``, an ``Enum``); a value that does not parse is a
        400 naming the parameter."""
        value = _lookup(self.params, name)
        if value is None:
            raise InternalError(f"the route has no path parameter `{name}`")
        return _parse(value, kind, f"path parameter `{name}`")

    def query(self, name: str, kind: type[T] = str, default: Any = None) -> T:  # type: ignore[assignment]
        """The first value of query parameter ``name`` parsed as ``kind``, or
        ``default`` when it is absent; a bad value is a 400 naming it."""
        value = _lookup(self.query_pairs, name)
        if value is None:
            return default
        return _parse(value, kind, f"query parameter `{name}`")

    def query_all(self, name: str, kind: type[T] = str) -> list[T]:  # type: ignore[assignment]
        """Every value of query parameter ``name`` (``?tag=a&tag=b``), parsed."""
        return [_parse(v, kind, f"query parameter `{name}`")
                for k, v in self.query_pairs if k == name]

    def header(self, name: str, kind: type[T] = str, default: Any = None) -> T:  # type: ignore[assignment]
        """The first value of header ``name`` (any case) parsed as ``kind``,
        or ``default`` when absent; a bad value is a 400 naming the header."""
        value = _lookup(self.headers, name.lower())
        if value is None:
            return default
        return _parse(value, kind, f"header `{name.lower()}`")

    def text(self) -> str:
        """The body as UTF-8 text; anything else is a 400."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise BadRequest(f"the body is not UTF-8: {err}") from None

    def json(self, kind: Any = None) -> Any:
        """The body parsed as JSON; with ``kind`` (a dataclass, ``list[X]``,
        ...) checked and converted into it. Invalid JSON, a missing,
        unknown or wrong-typed field is a 400 naming the field::

            invalid JSON at `title`: invalid type: integer `7`, expected a string
        """
        value = parse_json(self.body)
        if kind is None:
            return value
        return decode_json(value, kind)


def parse_json(body: bytes) -> Any:
    """``body`` parsed as strict JSON (no ``NaN``); a 400 saying where it
    breaks otherwise."""
    def no_constant(name: str) -> Any:
        raise ValueError(f"`{name}` is not JSON")

    try:
        return json.loads(body, parse_constant=no_constant)
    except json.JSONDecodeError as err:
        raise BadRequest(f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}") \
            from None
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"invalid JSON: {err}") from None


def decode_json(value: Any, kind: Any) -> Any:
    """Parsed JSON checked against ``kind`` (a dataclass, ``list[X]``, ...)
    and converted into it, as :meth:`Request.json` does; a 400 naming the
    field. Exported as ``trellis_sdk.decode``, for a body whose items are
    answered one by one."""
    try:
        return decode(value, kind)
    except DecodeError as err:
        if err.path:
            raise BadRequest(f"invalid JSON at `{err.path}`: {err.message}") from None
        raise BadRequest(f"invalid JSON: {err.message}") from None


def _lookup(pairs: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in pairs if k == name), None)


def _parse(value: str, kind: Any, what: str) -> Any:
    try:
        return parse_text(value, kind)
    except ValueError:
        raise BadRequest(f"invalid {what}: `{value}`") from None
