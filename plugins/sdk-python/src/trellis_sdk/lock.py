"""Leases on names shared by every node: in Redis across nodes, in process
otherwise. Needs the ``lock`` capability (and ``import
trellis:plugin/lock@0.1.7`` in the world).

**A lease is not a mutex.** A holder that pauses can outlive its lease
while another caller takes the lock, so every write a lease guards must
carry the lease's :attr:`Lease.fencing_token`, and the store must refuse a
write with an older token; :func:`trellis_sdk.sql.fenced_write` does that
for a row::

    with lock.acquire("report", ttl=10, wait=2) as lease:
        total = compute_report()
        sql.fenced_write("reports", "name", "daily", {"total": total},
                         "fence", lease.fencing_token)
"""

from __future__ import annotations

import datetime
from typing import Any

from . import _host
from .errors import Conflict, HttpError, InternalError, ServiceUnavailable

__all__ = ["acquire", "Lease", "LockError", "LockTimeout", "LockLost", "LockUnavailable",
           "LockInvalid"]


class LockError(HttpError):
    """A lock call that failed."""


class LockTimeout(LockError, ServiceUnavailable):
    """Not free within the wait: 503 ``lock_timeout``, ``retry-after: 1``."""

    def __init__(self) -> None:
        HttpError.__init__(self, 503, "lock: not free within the wait time",
                           code="lock_timeout", headers=[("retry-after", "1")])


class LockLost(LockError, Conflict):
    """The lease ran out or was taken over: 409 ``lock_lost``."""

    def __init__(self) -> None:
        HttpError.__init__(self, 409, "lock: the lease ran out or was taken over",
                           code="lock_lost")


class LockUnavailable(LockError, ServiceUnavailable):
    """The lock store does not answer: 503 ``lock_unavailable``."""

    def __init__(self, message: str):
        HttpError.__init__(self, 503, f"lock: the lock store does not answer: {message}",
                           code="lock_unavailable", headers=[("retry-after", "1")])


class LockInvalid(LockError, InternalError):
    """An empty or over-long name, a ttl of 0 or above the maximum: 500."""

    def __init__(self, message: str):
        HttpError.__init__(self, 500, f"lock: invalid call: {message}", code="lock_invalid")


def _error(raw: Any) -> LockError:
    name = type(raw).__name__
    if name == "Error_Timeout":
        return LockTimeout()
    if name == "Error_Lost":
        return LockLost()
    if name == "Error_Unavailable":
        return LockUnavailable(raw.value)
    return LockInvalid(raw.value)


class Lease:
    """A held lock. As a context manager it is released when the block
    ends (a lease that already ran out is not an error there: that is what
    fencing is for); otherwise call :meth:`release`."""

    def __init__(self, raw: Any):
        self.raw = raw
        self.released = False

    @property
    def fencing_token(self) -> int:
        """Strictly increases per lock name and is never reused."""
        return self.raw.fencing_token()

    @property
    def valid_until(self) -> int:
        """Milliseconds since the Unix epoch until which the lease is safe."""
        return self.raw.valid_until()

    def extend(self, ttl: float | datetime.timedelta) -> None:
        """Pushes the expiry to ``ttl`` from now; :class:`LockLost` if the
        lease already ran out or was taken over."""
        _host.call(_error, self.raw.extend, _host.millis(ttl, "a lock ttl"))

    def is_held(self) -> bool:
        """Whether the lock store still records this lease as the holder."""
        return _host.call(_error, self.raw.is_held)

    def release(self) -> None:
        """Releases now; :class:`LockLost` if the lease had run out."""
        self.released = True
        _host.call(_error, self.raw.release)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.released:
            try:
                self.release()
            except LockLost:
                pass


def acquire(name: str, *, ttl: float | datetime.timedelta,
            wait: float | datetime.timedelta = 0) -> Lease:
    """Takes lock ``name`` for ``ttl``, waiting up to ``wait`` for it (both
    seconds or timedeltas, counted in whole milliseconds; ``wait=0`` tries
    once). Raises :class:`LockTimeout`, :class:`LockUnavailable` or
    :class:`LockInvalid`."""
    host = _host.load("lock")
    return Lease(_host.call(_error, host.acquire, name, _host.millis(ttl, "a lock ttl"),
                            _host.millis(wait, "a lock wait")))
