"""The plugin's own database: a SQLite file of its own by default, or a
PostgreSQL schema of its own. Needs the ``sql`` capability (and ``import
trellis:plugin/sql@0.1.7`` in the world).

Use ``$1``, ``$2``, ... placeholders: they work on both backends. Python
values map to SQL values: ``None``, ``bool``, ``int`` (64-bit), ``float``,
``str``, ``bytes``, ``dict``/``list`` (JSON), ``datetime`` (a timestamp);
:class:`Json` and :class:`Timestamp` say so explicitly::

    rows = sql.query_replica_ok("SELECT id, title FROM notes WHERE id > $1", 0)
    notes = rows.all(Note)          # dataclasses, by column name
    first = rows.first()            # a dict, or None

    with sql.begin() as tx:         # commits at the end, rolls back on error
        tx.execute("UPDATE notes SET title = $1 WHERE id = $2", title, 7)

A failed statement raises a :class:`SqlError` that is an
:class:`~trellis_sdk.HttpError` too: uncaught, a constraint violation
answers 409 (``sql_constraint_violation``), an unavailable database 503 with
``retry-after: 1``, a timeout 504, anything else 500, as in the Rust SDK.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any, Iterator

from . import _host, _json
from ._convert import I64_MAX, I64_MIN, DecodeError, decode
from .errors import (Conflict, GatewayTimeout, HttpError, InternalError, NotFound,
                     ServiceUnavailable)

__all__ = ["query", "query_replica_ok", "query_cached", "execute", "begin", "fenced_write",
           "Rows", "Transaction", "Json", "Timestamp", "SqlError", "ConstraintViolation",
           "UniqueViolation", "Syntax", "PermissionDenied", "Timeout", "Unavailable",
           "Invalid", "TransactionClosed"]


# -- values ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Json:
    """A parameter sent as JSON (``jsonb`` on PostgreSQL, TEXT on SQLite)."""

    value: Any


@dataclasses.dataclass(frozen=True)
class Timestamp:
    """A parameter sent as a timestamp: microseconds since the Unix epoch,
    UTC (``timestamptz`` on PostgreSQL, INTEGER on SQLite)."""

    micros: int

    @classmethod
    def of(cls, moment: datetime.datetime) -> "Timestamp":
        """The timestamp of ``moment`` (naive means UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return cls((moment - epoch) // datetime.timedelta(microseconds=1))


def _to_host(value: Any, position: int, host: Any) -> Any:
    if value is None:
        return host.Value_Null()
    if isinstance(value, bool):
        return host.Value_Boolean(value)
    if isinstance(value, int):
        if not I64_MIN <= value <= I64_MAX:
            raise InternalError(f"sql parameter ${position}: {value} is outside 64 bits")
        return host.Value_Integer(value)
    if isinstance(value, float):
        return host.Value_Real(value)
    if isinstance(value, str):
        return host.Value_Text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return host.Value_Blob(bytes(value))
    if isinstance(value, Json):
        return host.Value_Json(_json.dumps(value.value).decode())
    if isinstance(value, (dict, list)):
        return host.Value_Json(_json.dumps(value).decode())
    if isinstance(value, Timestamp):
        return host.Value_Timestamp(value.micros)
    if isinstance(value, datetime.datetime):
        return host.Value_Timestamp(Timestamp.of(value).micros)
    raise InternalError(f"sql parameter ${position}: a {type(value).__name__} is not a SQL "
                        "value (None, bool, int, float, str, bytes, dict, list, datetime)")


def _params(values: tuple, host: Any) -> list:
    return [_to_host(v, i, host) for i, v in enumerate(values, 1)]


def _from_host(value: Any) -> Any:
    name = type(value).__name__
    if name == "Value_Null":
        return None
    if name == "Value_Json":
        try:
            return json.loads(value.value)
        except ValueError:
            return value.value
    return value.value


# -- errors ------------------------------------------------------------------

class SqlError(HttpError):
    """A statement that failed: ``kind`` (``constraint_violation``, ...) and
    the database's ``message``. As an HttpError: ``database: <message>`` with
    code ``sql_<kind>``."""

    kind = "invalid"
    status = 500

    def __init__(self, message: str):
        HttpError.__init__(self, type(self).status, f"database: {message}",
                           code=f"sql_{type(self).kind}")
        self.message = message


class ConstraintViolation(SqlError, Conflict):
    """A unique, foreign key, not-null or check constraint: 409."""

    kind = "constraint_violation"
    status = 409


class UniqueViolation(ConstraintViolation):
    """A constraint violation that is a unique (or primary) key's: a
    duplicate."""


class Syntax(SqlError):
    """The statement does not parse."""

    kind = "syntax"


class PermissionDenied(SqlError):
    """Another plugin's data, runtime tables, ATTACH, ..."""

    kind = "permission_denied"


class Timeout(SqlError, GatewayTimeout):
    """The statement ran longer than the statement timeout: 504."""

    kind = "timeout"
    status = 504


class Unavailable(SqlError, ServiceUnavailable):
    """The database is unreachable or overloaded: 503, ``retry-after: 1``."""

    kind = "unavailable"
    status = 503

    def __init__(self, message: str):
        super().__init__(message)
        self.with_header("retry-after", "1")


class Invalid(SqlError):
    """Anything else wrong: unknown table, type mismatch, too many rows..."""

    kind = "invalid"


class TransactionClosed(SqlError):
    """The transaction was already finished."""

    kind = "transaction_closed"

    def __init__(self, message: str = "the transaction is already finished"):
        super().__init__(message)


_UNIQUE_MARKERS = ("UNIQUE constraint failed", "duplicate key value violates unique constraint")


def _error(raw: Any) -> SqlError:
    name = type(raw).__name__
    if name == "Error_TransactionClosed":
        return TransactionClosed()
    message = raw.value
    if name == "Error_ConstraintViolation":
        if any(marker in message for marker in _UNIQUE_MARKERS):
            return UniqueViolation(message)
        return ConstraintViolation(message)
    return {
        "Error_Syntax": Syntax,
        "Error_PermissionDenied": PermissionDenied,
        "Error_Timeout": Timeout,
        "Error_Unavailable": Unavailable,
    }.get(name, Invalid)(message)


# -- rows --------------------------------------------------------------------

class Rows:
    """A query's result. Iterating gives each row as a dict by column name;
    ``all(Note)`` and ``first(Note)`` decode rows into dataclasses."""

    def __init__(self, columns: list[str], values: list[list[Any]]):
        #: Column names (empty when there are no rows).
        self.columns = columns
        #: The rows as lists of Python values, in column order.
        self.values = values

    @classmethod
    def from_host(cls, raw: Any) -> "Rows":
        """The rows of the host's ``sql.rows`` record."""
        return cls(list(raw.columns), [[_from_host(v) for v in row] for row in raw.rows])

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[dict]:
        return (dict(zip(self.columns, row)) for row in self.values)

    def __getitem__(self, index: int) -> dict:
        return dict(zip(self.columns, self.values[index]))

    def __repr__(self) -> str:
        return f"Rows({self.columns!r}, {len(self.values)} rows)"

    def all(self, kind: Any = None) -> list:
        """Every row: dicts, or instances of ``kind`` (a dataclass) by
        column name. Extra columns are ignored; a missing or mistyped one is
        a 500 naming it (``0``/``1`` pass as booleans)."""
        return [self._decode(row, kind) for row in self]

    def first(self, kind: Any = None) -> Any:
        """The first row (a dict, or a ``kind``), or ``None``."""
        return self._decode(self[0], kind) if self.values else None

    def first_or_404(self, detail: str, kind: Any = None) -> Any:
        """The first row (a dict, or a ``kind``); without rows, a 404
        :class:`~trellis_sdk.NotFound` with ``detail``."""
        if not self.values:
            raise NotFound(detail)
        return self.first(kind)

    def scalar(self) -> Any:
        """The first column of the first row, or ``None`` without rows."""
        return self.values[0][0] if self.values and self.values[0] else None

    @staticmethod
    def _decode(row: dict, kind: Any) -> Any:
        if kind is None:
            return row
        try:
            return decode(row, kind, unknown_fields=True, int_bools=True)
        except DecodeError as err:
            raise InternalError(f"cannot decode a row: {err}") from None


# -- statements --------------------------------------------------------------

def query(statement: str, *params: Any) -> Rows:
    """Runs a statement that returns rows, on the primary."""
    host = _host.load("sql")
    return Rows.from_host(_host.call(_error, host.query, statement, _params(params, host),
                                     host.Consistency.PRIMARY))


def query_replica_ok(statement: str, *params: Any) -> Rows:
    """Runs a read that a read replica may serve (it may lag, within the
    configured bound)."""
    host = _host.load("sql")
    return Rows.from_host(_host.call(_error, host.query, statement, _params(params, host),
                                     host.Consistency.REPLICA_OK))


def query_cached(statement: str, *params: Any, ttl: float | datetime.timedelta) -> Rows:
    """Runs a read whose result may come from the host's query cache for up
    to ``ttl`` (seconds or a timedelta; a replica may serve it too). Any
    write by this plugin to a table it reads invalidates it at once."""
    host = _host.load("sql")
    return Rows.from_host(_host.call(
        _error, host.query_cached, statement, _params(params, host),
        host.Consistency.REPLICA_OK, _host.millis(ttl, "a query cache ttl")))


def execute(statement: str, *params: Any) -> int:
    """Runs a statement; returns the number of rows it changed."""
    host = _host.load("sql")
    return _host.call(_error, host.execute, statement, _params(params, host))


class Transaction:
    """A transaction on the primary. As a context manager it commits when
    the block ends and rolls back when it raises; outside one, call
    :meth:`commit` (a transaction never committed rolls back when the
    request ends)."""

    def __init__(self, raw: Any):
        #: The host's resource, for :func:`trellis_sdk.jobs.enqueue` ``tx=``.
        self.raw = raw
        self.finished = False

    def query(self, statement: str, *params: Any) -> Rows:
        """Runs a statement that returns rows inside the transaction."""
        host = _host.load("sql")
        return Rows.from_host(_host.call(_error, self.raw.query, statement,
                                         _params(params, host)))

    def execute(self, statement: str, *params: Any) -> int:
        """Runs a statement inside the transaction; the rows it changed."""
        host = _host.load("sql")
        return _host.call(_error, self.raw.execute, statement, _params(params, host))

    def commit(self) -> None:
        """Commits; the transaction is finished either way."""
        self.finished = True
        _host.call(_error, self.raw.commit)

    def rollback(self) -> None:
        """Rolls back now (by dropping the host's handle)."""
        if not self.finished:
            self.finished = True
            _host.release(self.raw)

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None and not self.finished:
            self.commit()
        else:
            self.rollback()


def begin() -> Transaction:
    """Starts a transaction on the primary (see :class:`Transaction`)."""
    host = _host.load("sql")
    return Transaction(_host.call(_error, host.begin))


def fenced_write(table: str, key_column: str, key: Any, columns: dict[str, Any],
                 fence_column: str, token: int) -> bool:
    """Writes one row only if ``token`` is newer than the fencing token
    stored with it: the correctness half of a :mod:`~trellis_sdk.lock`
    lease. Inserts ``key_column = key`` with ``columns`` and ``fence_column
    = token``, or updates them where the stored fence is lower, in one
    statement that runs on SQLite (3.24+) and PostgreSQL. Returns whether
    the row was written (``False``: a stale holder, nothing written).

    Identifiers must be ASCII letters, digits and ``_``, not starting with a
    digit, or it is a 500 ``invalid identifier``. ``key_column`` must be
    the primary key or unique; a token above 2**63-1 is stored as that.
    """
    names = [key_column, *columns, fence_column]
    for name in [table, *names]:
        _check_identifier(name)
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    updates = ", ".join(f"{name} = excluded.{name}" for name in names[1:])
    statement = (f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders}) "
                 f"ON CONFLICT ({key_column}) DO UPDATE SET {updates} "
                 f"WHERE {table}.{fence_column} < excluded.{fence_column}")
    return execute(statement, key, *columns.values(), min(token, I64_MAX)) > 0


def _check_identifier(name: str) -> None:
    if not (name and (name[0].isascii() and (name[0].isalpha() or name[0] == "_"))
            and all(c.isascii() and (c.isalnum() or c == "_") for c in name)):
        raise InternalError(f"invalid identifier `{name}`: use ASCII letters, digits and "
                            "`_`, not starting with a digit")
