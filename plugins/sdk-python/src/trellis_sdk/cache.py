"""A cache of byte values shared by every instance of the plugin on every
node: an in-process tier in front of Redis when the operator configures
it. Needs the ``cache`` capability (and ``import
trellis:plugin/cache@0.1.7`` in the world).

A cache that cannot reach Redis does not fail: it degrades. The errors
left are plugin bugs (a value over the host's size limit, an empty or
over-long key or tag), so they are 500s.

:func:`get_or_load` is the usual entry point: a read-through where one
caller per node loads a missing value while the others wait for it::

    price = cache.get_or_load(f"price:{sku}", lambda: load_price(sku),
                              ttl=30, tags=["prices"])
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from . import _host, _json
from ._convert import DecodeError, decode
from .errors import HttpError

__all__ = ["get", "get_many", "set", "delete", "invalidate_tag", "get_json", "set_json",
           "get_or_load", "fetch", "Hit", "Absent", "Load", "Loader", "CacheError",
           "ValueTooLarge", "InvalidCall"]



class CacheError(HttpError):
    """A refused cache call: a 500 (a bug of the plugin)."""


class ValueTooLarge(CacheError):
    """The value is over ``cache.max_value`` (``limit``, in bytes)."""

    def __init__(self, limit: int):
        HttpError.__init__(
            self, 500, f"cache: the value is larger than the host's limit of {limit} bytes "
            "(cache.max_value, or the plugin's limits.max_cache_value)",
            code="cache_value_too_large")
        self.limit = limit


class InvalidCall(CacheError):
    """An empty or over-long key or tag, a ttl of 0, too many keys."""

    def __init__(self, message: str):
        HttpError.__init__(self, 500, f"cache: invalid call: {message}", code="cache_invalid")


def _error(raw: Any) -> CacheError:
    if type(raw).__name__ == "Error_TooLarge":
        return ValueTooLarge(raw.value)
    return InvalidCall(raw.value)


def _options(host: Any, ttl: float | datetime.timedelta, tags: Iterable[str]) -> Any:
    return host.EntryOptions(ttl_ms=max(1, _host.millis(ttl, "a cache ttl")), tags=list(tags))


def get(key: str) -> Optional[bytes]:
    """One key's value, or ``None`` on a miss."""
    host = _host.load("cache")
    return _host.call(_error, host.get, key)


def get_many(keys: Iterable[str]) -> list[Optional[bytes]]:
    """Many keys at once; the answers are in key order."""
    host = _host.load("cache")
    return _host.call(_error, host.get_many, list(keys))


def set(key: str, value: bytes, *, ttl: float | datetime.timedelta,
        tags: Iterable[str] = ()) -> None:
    """Stores ``value`` for ``ttl`` (seconds or a timedelta; at least 1 ms,
    capped by the host's ``cache.max_ttl``), tagged with ``tags``."""
    host = _host.load("cache")
    _host.call(_error, host.set, key, bytes(value), _options(host, ttl, tags))


def delete(key: str) -> None:
    """Removes a key on every node."""
    host = _host.load("cache")
    _host.call(_error, host.delete, key)


def invalidate_tag(tag: str) -> None:
    """Drops every entry tagged ``tag``, and every cached HTTP response whose
    route declares the tag (see :class:`~trellis_sdk.RouteCache`), on every
    node."""
    host = _host.load("cache")
    _host.call(_error, host.invalidate_tag, tag)


def get_json(key: str, kind: Any = None) -> Any:
    """A value stored with :func:`set_json`, or ``None`` on a miss. A value
    that does not decode (as ``kind``, when given) is a miss too."""
    raw = get(key)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
        return value if kind is None else decode(value, kind)
    except (ValueError, DecodeError):
        return None


def set_json(key: str, value: Any, *, ttl: float | datetime.timedelta,
             tags: Iterable[str] = ()) -> None:
    """Stores ``value`` (dataclasses too) as JSON."""
    set(key, _json.dumps(value), ttl=ttl, tags=tags)


@dataclass
class Hit:
    """:func:`fetch` found a fresh value."""

    value: bytes


@dataclass
class Absent:
    """:func:`fetch` found a negative entry: a loader found nothing."""


class Loader:
    """The duty to load a missing value: :meth:`fill` it or :meth:`fail`.
    Other callers of :func:`fetch` on the key on this node wait for it."""

    def __init__(self, raw: Any):
        self.raw = raw

    def fill(self, value: Optional[bytes], *, ttl: float | datetime.timedelta,
             tags: Iterable[str] = ()) -> None:
        """Stores the loaded value (``None``: a negative entry) and hands it
        to the waiting callers."""
        host = _host.load("cache")
        _host.call(_error, self.raw.fill, None if value is None else bytes(value),
                   _options(host, ttl, tags))

    def fail(self, message: str) -> None:
        """The load failed: waiting callers get the previous value if it
        expired less than ``cache.stale_for`` ago, else one of them loads."""
        self.raw.fail(message)


@dataclass
class Load:
    """:func:`fetch` found nothing usable: load it with ``loader``."""

    loader: Loader


def fetch(key: str) -> "Hit | Absent | Load":
    """The byte-level read-through behind :func:`get_or_load`."""
    host = _host.load("cache")
    found = _host.call(_error, host.fetch, key)
    name = type(found).__name__
    if name == "Lookup_Hit":
        return Hit(found.value)
    if name == "Lookup_Absent":
        return Absent()
    return Load(Loader(found.value))


def get_or_load(key: str, load: Callable[[], Any], *, ttl: float | datetime.timedelta,
                tags: Iterable[str] = (), kind: Any = None) -> Any:
    """Read-through with stampede protection. A hit is decoded from JSON (as
    ``kind`` when given); on a miss one caller per node runs ``load()``
    while the others on that node wait for its result:

    - a value is cached as JSON for ``ttl`` with ``tags`` and returned;
    - ``None`` is cached as a negative entry (later calls get ``None``
      without loading until it expires);
    - an exception is reported to the waiting callers and raised.

    A cached value that no longer decodes is loaded again and replaced.
    """
    tags = list(tags)
    found = fetch(key)
    if isinstance(found, Hit):
        try:
            value = json.loads(found.value)
            return value if kind is None else decode(value, kind)
        except (ValueError, DecodeError):
            value = load()
            if value is None:
                delete(key)
            else:
                set_json(key, value, ttl=ttl, tags=tags)
            return value
    if isinstance(found, Absent):
        return None
    try:
        value = load()
    except BaseException as err:
        found.loader.fail(str(err) or type(err).__name__)
        raise
    found.loader.fill(None if value is None else _json.dumps(value), ttl=ttl, tags=tags)
    return value
