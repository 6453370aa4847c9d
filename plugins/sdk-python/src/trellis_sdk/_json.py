"""JSON encoding shared by responses, cache values, job payloads and
cursors: compact (as serde_json writes it), UTF-8, and dataclasses encoded
as objects of their fields."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
from typing import Any


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} is not JSON-serializable")


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes; dataclasses become objects."""
    return json.dumps(value, default=_default, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode()


def to_plain(value: Any) -> Any:
    """``value`` with dataclasses (nested too) turned into dicts: what
    :func:`dumps` would write, as Python values."""
    return json.loads(dumps(value))
