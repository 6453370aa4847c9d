"""Outgoing HTTP requests to the hosts the operator allows the plugin
(``allowed_outbound_hosts``). Needs the ``outbound-http`` capability (and
``import trellis:plugin/outbound-http@0.1.7`` in the world)::

    rates = http.get("https://api.example.com/rates").raise_for_status().json()
    created = http.post_json("https://api.example.com/orders", {"item": 7})

A refused, failed or timed-out request raises an
:class:`~trellis_sdk.HttpError` that answers, uncaught: 502 ``bad_gateway``
(503 ``upstream_busy`` when the plugin's concurrency is used up, 504
``gateway_timeout`` on a timeout), naming what happened, as in the Rust
SDK.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from . import _host, _json
from ._convert import DecodeError, decode
from .errors import HttpError

__all__ = ["fetch", "get", "post", "post_json", "put", "delete", "HttpResponse",
           "OutboundError"]


class OutboundError(HttpError):
    """An outgoing request that got no usable answer; ``kind`` is the
    host's reason (``denied``, ``invalid``, ``connect``, ``timeout``,
    ``too_large``, ``limited``, ``failed``)."""

    def __init__(self, status: int, detail: str, code: str, kind: str):
        HttpError.__init__(self, status, detail, code=code)
        self.kind = kind


class HttpResponse:
    """A response, read whole: ``status``, ``headers`` (lower-case names)
    and ``body``."""

    def __init__(self, status: int, headers: Iterable[tuple[str, str]], body: bytes):
        self.status = status
        self.headers = list(headers)
        self.body = bytes(body)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self, kind: Any = None) -> Any:
        """The body as JSON (checked against ``kind`` when given); a 502
        naming the problem when it is not."""
        try:
            value = json.loads(self.body)
            return value if kind is None else decode(value, kind)
        except (ValueError, DecodeError) as err:
            raise HttpError(502, f"the upstream answered with JSON that does not fit: {err}",
                            code="bad_gateway") from None

    def raise_for_status(self) -> "HttpResponse":
        """Itself when its status is below 400; otherwise a 502 naming the
        upstream's status."""
        if self.status < 400:
            return self
        raise HttpError(502, f"the upstream answered {self.status}", code="bad_gateway")

    def __repr__(self) -> str:
        return f"HttpResponse({self.status}, {len(self.body)} bytes)"


def _error(url: str):
    def convert(raw: Any) -> OutboundError:
        name = type(raw).__name__.removeprefix("Error_")
        value = getattr(raw, "value", None)
        status, code, detail = {
            "Denied": (502, "bad_gateway", f"not allowed: {value}"),
            "Invalid": (500, "internal_error", f"invalid request: {value}"),
            "Connect": (502, "bad_gateway", f"cannot connect: {value}"),
            "Timeout": (504, "gateway_timeout", "no answer in time"),
            "TooLarge": (502, "bad_gateway", f"the response is larger than {value} bytes"),
            "Limited": (503, "upstream_busy", "too many outgoing requests in flight"),
        }.get(name, (502, "bad_gateway", str(value)))
        kind = {"TooLarge": "too_large"}.get(name, name.lower())
        return OutboundError(status, f"{url}: {detail}", code, kind)
    return convert


def fetch(method: str, url: str, *, headers: Iterable[tuple[str, str]] = (),
          body: bytes | str = b"", json: Any = None) -> HttpResponse:
    """Sends ``method`` ``url`` and waits for the whole response (redirects
    followed, each target checked against the allow-list). ``json``: a
    body sent as JSON with its content type."""
    headers = list(headers)
    if json is not None:
        headers.append(("content-type", "application/json"))
        body = _json.dumps(json)
    if isinstance(body, str):
        body = body.encode()
    host = _host.load("outbound_http")
    request = host.Request(method=method.upper(), url=url, headers=headers, body=bytes(body))
    raw = _host.call(_error(url), host.fetch, request)
    return HttpResponse(raw.status, raw.headers, raw.body)


def get(url: str, *, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    """A ``GET`` of ``url``."""
    return fetch("GET", url, headers=headers)


def post(url: str, body: bytes | str = b"", *,
         headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    """A ``POST`` of ``body`` to ``url``."""
    return fetch("POST", url, headers=headers, body=body)


def post_json(url: str, value: Any, *, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    """A ``POST`` of ``value`` as JSON to ``url``."""
    return fetch("POST", url, headers=headers, json=value)


def put(url: str, body: bytes | str = b"", *,
        headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    """A ``PUT`` of ``body`` to ``url``."""
    return fetch("PUT", url, headers=headers, body=body)


def delete(url: str, *, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    """A ``DELETE`` of ``url``."""
    return fetch("DELETE", url, headers=headers)
