"""Handler errors and their problem+json form (RFC 9457).

Raise an :class:`HttpError` (or one of its subclasses) anywhere in a
handler; the app answers with an ``application/problem+json`` body, the
same shape and ``code`` strings as the Rust SDK's ``Error``::

    {"type": "about:blank", "title": "Not Found", "status": 404,
     "detail": "no note 7", "code": "not_found", "request_id": "..."}

Any other exception escaping a handler becomes a 500 problem with code
``unhandled_exception`` (its traceback goes to the plugin's stderr), not a
trap.
"""

from __future__ import annotations

from typing import Iterable

from . import _json

__all__ = [
    "HttpError", "BadRequest", "Unauthorized", "Forbidden", "NotFound",
    "MethodNotAllowed", "Conflict", "Gone", "ContentTooLarge",
    "UnsupportedMediaType", "Unprocessable", "TooManyRequests",
    "InternalError", "NotImplementedYet", "BadGateway", "ServiceUnavailable",
    "GatewayTimeout", "title",
]

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def title(status: int) -> str:
    """The problem title of ``status``, as the Rust SDK names it."""
    if status in _TITLES:
        return _TITLES[status]
    return "Client Error" if status < 500 else "Server Error"


class HttpError(Exception):
    """An error a handler raises; it becomes a problem+json response.

    ``HttpError(418, "short and stout")`` takes any status from 400 to 599
    (anything else is a 500). The subclasses fix the status:
    ``NotFound("no note 7")``. ``code`` replaces the default code (the
    title in snake case, e.g. ``not_found``); ``headers`` are added to the
    response (e.g. ``[("retry-after", "1")]``).
    """

    #: The status a subclass stands for.
    status: int = 500

    def __init__(self, status: int, detail: str = "", *, code: str | None = None,
                 headers: Iterable[tuple[str, str]] = ()):
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError(
                f"HttpError(status, detail): status must be an int, not {status!r}; "
                "the subclasses (NotFound, Conflict, ...) take the detail alone")
        super().__init__(detail)
        self.status = status if 400 <= status <= 599 else 500
        self.detail = str(detail)
        self.code = code
        self.headers: list[tuple[str, str]] = list(headers)

    def with_header(self, name: str, value: str) -> "HttpError":
        """Adds a header to the error response; returns the error."""
        self.headers.append((name, value))
        return self

    def with_code(self, code: str) -> "HttpError":
        """Sets the problem's machine-readable ``code``; returns the error."""
        self.code = code
        return self

    def with_fingerprint(self, fingerprint: str) -> "HttpError":
        """Groups this (5xx) error under ``fingerprint`` in the runtime's
        error aggregation; the runtime removes the header before the client
        sees it."""
        return self.with_header("x-trellis-fingerprint", fingerprint)

    @property
    def title(self) -> str:
        """The status title, e.g. ``Not Found``."""
        return title(self.status)

    def problem(self, request_id: str) -> dict:
        """The problem+json body of this error."""
        name = self.title
        return {
            "type": "about:blank",
            "title": name,
            "status": self.status,
            "detail": self.detail,
            "code": self.code or name.lower().replace(" ", "_"),
            "request_id": request_id,
        }

    def to_response(self, request_id: str):
        """The problem+json :class:`~trellis_sdk.Response` of this error."""
        from .response import Response

        return Response(self.status, _json.dumps(self.problem(request_id)),
                        [("content-type", "application/problem+json"), *self.headers])

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.detail!r}, code={self.code!r})"


class _FixedStatus(HttpError):
    """An HttpError whose subclass fixes the status: ``NotFound(detail)``."""

    def __init__(self, detail: str = "", *, code: str | None = None,
                 headers: Iterable[tuple[str, str]] = ()):
        HttpError.__init__(self, type(self).status, detail, code=code, headers=headers)


class BadRequest(_FixedStatus):
    """400 Bad Request: the client sent something invalid."""

    status = 400


class Unauthorized(_FixedStatus):
    """401 Unauthorized."""

    status = 401


class Forbidden(_FixedStatus):
    """403 Forbidden."""

    status = 403


class NotFound(_FixedStatus):
    """404 Not Found."""

    status = 404


class MethodNotAllowed(_FixedStatus):
    """405 Method Not Allowed."""

    status = 405


class Conflict(_FixedStatus):
    """409 Conflict, e.g. a unique title already taken."""

    status = 409


class Gone(_FixedStatus):
    """410 Gone."""

    status = 410


class ContentTooLarge(_FixedStatus):
    """413 Content Too Large."""

    status = 413


class UnsupportedMediaType(_FixedStatus):
    """415 Unsupported Media Type."""

    status = 415


class Unprocessable(_FixedStatus):
    """422 Unprocessable Content: well-formed but not acceptable."""

    status = 422


class TooManyRequests(_FixedStatus):
    """429 Too Many Requests."""

    status = 429


class InternalError(_FixedStatus):
    """500 Internal Server Error: a bug of the plugin."""

    status = 500


class NotImplementedYet(_FixedStatus):
    """501 Not Implemented."""

    status = 501


class BadGateway(_FixedStatus):
    """502 Bad Gateway: an upstream failed."""

    status = 502


class ServiceUnavailable(_FixedStatus):
    """503 Service Unavailable: try again later."""

    status = 503


class GatewayTimeout(_FixedStatus):
    """504 Gateway Timeout: an upstream was too slow."""

    status = 504
