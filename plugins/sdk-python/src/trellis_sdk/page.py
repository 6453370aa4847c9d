"""Pagination, the convention every list endpoint follows (the runtime's
own too): ``?limit=`` (a default and a maximum) and ``?cursor=`` (opaque,
from the previous page), and a body ``{"items": [...], "next_cursor":
"..." | null}``. The host adds ``Link: <…>; rel="next"`` to a 2xx JSON
response whose ``next_cursor`` is set.

A cursor is keyset state of the plugin's choosing (say the last id),
as compact JSON followed by a 4-byte checksum, base64url-encoded without
padding: byte for byte the Rust SDK's ``page`` format, so a cursor made by
one reads in the other. A cursor a client edited or made up is a 400.
Cursors are opaque, not secret::

    from trellis_sdk import page, sql

    @app.get("/notes")
    def list_notes(req):
        wanted = page.from_request(req, default=20, maximum=100, cursor=int)
        notes = sql.query_replica_ok(
            "SELECT id, title FROM notes WHERE id > $1 ORDER BY id LIMIT $2",
            wanted.after or 0, wanted.limit).all(Note)
        return page.respond(notes, wanted.limit, lambda n: n.id)
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

from . import _json
from ._convert import DecodeError, decode
from .errors import BadRequest
from .request import Request
from .response import Response

__all__ = ["Page", "from_request", "respond", "encode", "decode_cursor"]

C = TypeVar("C")

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*\Z")


@dataclass
class Page(Generic[C]):
    """What a request asked for: ``limit`` (1..maximum) items, after
    ``after`` (the previous page's last state; ``None`` on the first)."""

    limit: int
    after: C | None = None


def from_request(req: Request, default: int = 20, maximum: int = 100,
                 cursor: Any = None) -> Page:
    """Reads ``?limit=`` (``default`` when absent, at most ``maximum``) and
    ``?cursor=`` (decoded, and checked against ``cursor`` when given); a
    bad limit or a cursor this plugin did not make is a 400."""
    text = req.query("limit")
    if text is None:
        limit = default
    else:
        limit = int(text) if re.fullmatch(r"\+?[0-9]+", text) else 0
        if not 1 <= limit <= maximum:
            raise BadRequest(f"limit must be a whole number from 1 to {maximum}")
    token = req.query("cursor")
    return Page(limit, None if token is None else decode_cursor(token, cursor))


def respond(items: Sequence[Any], limit: int, cursor_of: Callable[[Any], Any]) -> Response:
    """The page's 200 response: ``items`` and ``next_cursor``, made from
    the last item when the page is full (there may be more)."""
    next_cursor = encode(cursor_of(items[-1])) if items and len(items) >= limit else None
    return Response.json({"items": list(items), "next_cursor": next_cursor})


def encode(state: Any) -> str:
    """Keyset state as an opaque cursor."""
    payload = _json.dumps(state)
    data = payload + _checksum(payload).to_bytes(4, "big")
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(cursor: str, kind: Any = None) -> Any:
    """The state of a cursor made by :func:`encode` (checked against
    ``kind`` when given); anything else is a 400."""
    invalid = BadRequest("the cursor is not one this endpoint returned")
    if not _BASE64URL.match(cursor) or len(cursor) % 4 == 1:
        raise invalid
    try:
        data = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    if len(data) < 4 or base64.urlsafe_b64encode(data).decode().rstrip("=") != cursor:
        raise invalid
    payload, checksum = data[:-4], data[-4:]
    if checksum != _checksum(payload).to_bytes(4, "big"):
        raise invalid
    try:
        state = json.loads(payload)
        return state if kind is None else decode(state, kind)
    except (ValueError, DecodeError):
        raise invalid from None


def _checksum(data: bytes) -> int:
    """FNV-1a, 32 bits, salted with ``trellis-cursor``: catches edits, is
    not a secret."""
    value = 0x811C9DC5
    for byte in b"trellis-cursor" + data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value
