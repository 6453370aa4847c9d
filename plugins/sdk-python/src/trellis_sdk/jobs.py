"""Background jobs: declare kinds with ``@app.job``, enqueue them from
routes (or other jobs) with :func:`enqueue`, optionally inside a
transaction so the job exists only if it commits. Enqueueing needs the
``jobs`` capability (and ``import trellis:plugin/jobs@0.1.7`` in the
world); running needs the ``job-handler`` export.

Jobs run **at least once**: a job whose worker dies runs again
(:attr:`Job.attempt` says which attempt), so a handler must be safe to
repeat, e.g. by writing with an upsert keyed by the job id::

    @app.job("index-note", max_attempts=5)
    def index_note(job: Job):
        note = job.json(IndexJob)          # a bad payload is Fatal
        ...
        return {"words": words}            # kept as the job's result

    jobs.enqueue("index-note", {"id": 7}, idempotency_key="index:7")

A handler ends an attempt by returning (success), or by raising
:class:`Retry` (retry no sooner than a delay), :class:`Snooze` (run again
later without spending an attempt), :class:`Fatal` (discard now) or
anything else (failed: retried with backoff until ``max_attempts``). An
:class:`~trellis_sdk.HttpError` with a 4xx status (bad input) is fatal,
any other failed.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
import traceback
from typing import TYPE_CHECKING, Any, Callable

from . import _host, _json
from ._convert import DecodeError, decode
from .errors import HttpError, ServiceUnavailable

if TYPE_CHECKING:
    from .sql import Transaction

__all__ = ["Job", "JobError", "Failed", "Retry", "Fatal", "Snooze", "enqueue",
           "EnqueueError", "UnknownKind", "PayloadTooLarge", "InvalidOptions",
           "QueueUnavailable"]

_U64 = 2**64 - 1


@dataclasses.dataclass
class Job:
    """One attempt at a job."""

    #: Stable across attempts: a good key for idempotent writes.
    id: str
    kind: str
    payload: bytes
    #: 1 on the first attempt.
    attempt: int = 1
    max_attempts: int = 1
    idempotency_key: str | None = None
    #: When it was enqueued, milliseconds since the Unix epoch.
    enqueued_at: int = 0

    @classmethod
    def from_raw(cls, raw: Any) -> "Job":
        """The job of the host's ``job-handler.job`` record."""
        return cls(raw.id, raw.kind, bytes(raw.payload), raw.attempt, raw.max_attempts,
                   raw.idempotency_key, raw.enqueued_at)

    def json(self, kind: Any = None) -> Any:
        """The payload as JSON, checked against ``kind`` (a dataclass, ...)
        when given; a payload that does not fit is :class:`Fatal` (retrying
        cannot fix it)."""
        try:
            value = json.loads(self.payload)
            return value if kind is None else decode(value, kind)
        except (ValueError, DecodeError) as err:
            raise Fatal(f"the payload is not the expected JSON: {err}") from None

    @property
    def is_last_attempt(self) -> bool:
        """Whether this is the last attempt allowed."""
        return self.attempt >= self.max_attempts


class JobError(Exception):
    """How an attempt ended other than in success."""

    def to_raw(self, types: Any) -> Any:
        """The generated ``job-error`` variant."""
        raise NotImplementedError


class Failed(JobError):
    """Failed: retried after exponential backoff with jitter, or discarded
    after the last attempt."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_raw(self, types: Any) -> Any:
        return types.JobError_Failed(self.message)


class Retry(JobError):
    """Failed: retried no sooner than ``delay`` (seconds or a timedelta);
    an attempt is spent."""

    def __init__(self, delay: float | datetime.timedelta, message: str = ""):
        super().__init__(message)
        self.delay_ms = _host.millis(delay, "a retry delay", _U64)
        self.message = message

    def to_raw(self, types: Any) -> Any:
        return types.JobError_RetryIn(types.Retry(delay_ms=self.delay_ms, message=self.message))


class Fatal(JobError):
    """Failed for good: discarded now, whatever attempts remain."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_raw(self, types: Any) -> Any:
        return types.JobError_Fatal(self.message)


class Snooze(JobError):
    """Not failed: run again after ``delay`` (seconds or a timedelta)
    without spending an attempt."""

    def __init__(self, delay: float | datetime.timedelta):
        super().__init__(f"snoozed for {delay}")
        self.delay_ms = _host.millis(delay, "a snooze delay", _U64)

    def to_raw(self, types: Any) -> Any:
        return types.JobError_Snooze(self.delay_ms)


def payload_bytes(payload: Any) -> bytes:
    """A job payload or result as bytes: bytes as they are, a ``str`` as
    UTF-8, ``None`` as nothing, anything else as JSON."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    if payload is None:
        return b""
    return _json.dumps(payload)


def run_result(handler: Callable[[Job], Any], job: Job) -> bytes:
    """Runs ``handler`` on ``job``: its result as bytes, or a
    :class:`JobError` (an HttpError 4xx is Fatal, any other exception
    Failed, with its traceback on stderr)."""
    try:
        return payload_bytes(handler(job))
    except JobError:
        raise
    except HttpError as err:
        if 400 <= err.status < 500:
            raise Fatal(err.detail) from None
        raise Failed(err.detail) from None
    except Exception as err:  # noqa: BLE001 - a failed attempt, not a trap
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
        raise Failed(f"{type(err).__name__}: {err}") from None


class EnqueueError(HttpError):
    """A job that was not enqueued. A plugin bug (500 ``job_invalid``)
    unless the queue is unavailable (503 ``job_queue_unavailable``)."""

    def __init__(self, detail: str):
        HttpError.__init__(self, 500, detail, code="job_invalid")


class UnknownKind(EnqueueError):
    """The kind is not one the app declares with ``@app.job``."""


class PayloadTooLarge(EnqueueError):
    """The payload is over the host's ``jobs.max_payload``."""


class InvalidOptions(EnqueueError):
    """A bad option: unknown queue, empty key, ..."""


class QueueUnavailable(EnqueueError, ServiceUnavailable):
    """The queue's database does not answer: 503 with ``retry-after: 1``."""

    def __init__(self, detail: str):
        HttpError.__init__(self, 503, detail, code="job_queue_unavailable",
                           headers=[("retry-after", "1")])


def _error(raw: Any) -> EnqueueError:
    name = type(raw).__name__
    if name == "Error_Unavailable":
        return QueueUnavailable(f"jobs: the queue does not answer: {raw.value}")
    if name == "Error_UnknownKind":
        return UnknownKind(f"jobs: `{raw.value}` is not a kind this plugin declares")
    if name == "Error_TooLarge":
        return PayloadTooLarge(f"jobs: the payload is over the limit of {raw.value} bytes")
    return InvalidOptions(f"jobs: {getattr(raw, 'value', name)}")


def enqueue(kind: str, payload: Any = b"", *, tx: "Transaction | None" = None,
            delay: float | datetime.timedelta | None = None, priority: int | None = None,
            queue: str | None = None, max_attempts: int | None = None,
            idempotency_key: str | None = None) -> str:
    """Enqueues a job of one of this plugin's kinds; returns its id.

    ``payload``: bytes, a str, or anything JSON (a dict, a dataclass).
    ``tx``: a :class:`~trellis_sdk.sql.Transaction`; the job then exists
    only if it commits. ``delay`` (seconds or a timedelta): run no earlier.
    ``idempotency_key``: while a job with this key is unfinished, enqueueing
    it again returns that job's id. Unset options take the kind's defaults.
    """
    host = _host.load("jobs")
    options = host.EnqueueOptions(
        delay_ms=None if delay is None else _host.millis(delay, "a job delay", _U64),
        priority=priority, queue=queue, max_attempts=max_attempts,
        idempotency_key=idempotency_key)
    data = payload_bytes(payload)
    if tx is None:
        return _host.call(_error, host.enqueue, kind, data, options)
    return _host.call(_error, host.enqueue_in, tx.raw, kind, data, options)


