"""Unit tests for a plugin without a server and without WebAssembly.

:class:`Client` runs an :class:`~trellis_sdk.App` natively (under pytest)
the way the runtime would: it routes requests exactly as the host does
(a static segment wins over ``{name}``, which wins over ``{*name}``;
parameters percent-decoded as UTF-8, ``%2F`` staying inside its segment;
404 and 405 problems), calls the app through the same export classes
componentize-py calls, and gives the app in-memory stand-ins of the host's
imports:

- ``sql``: SQLite (stdlib ``sqlite3``) in a temporary file, with the app's
  SQLite migrations applied, ``$1`` placeholders, ``RETURNING``, a
  transaction per connection, and the host's error kinds (a duplicate is a
  ``constraint-violation``: :class:`trellis_sdk.sql.UniqueViolation`);
- ``cache``: entries with ttls and tags on a clock the test moves
  (:attr:`Client.clock`), ``fetch`` with loaders and negative entries;
  also the host's HTTP response cache for routes with a
  :class:`~trellis_sdk.RouteCache` (``x-trellis-cache: hit | miss``);
- ``lock``: leases with fencing tokens and ttls on the same clock;
- ``jobs``: enqueued jobs recorded in :attr:`Client.jobs` (those enqueued in
  a transaction only once it commits), run by :meth:`Client.run_jobs`;
- ``config`` from a dict, ``log`` into :attr:`Client.logs`, ``trace`` spans
  into :attr:`Client.spans`, ``outbound-http`` through a function of the
  test's.

::

    from trellis_sdk import testing
    from app import app

    def test_create():
        client = testing.Client(app, config={"greeting": "Hi"})
        r = client.post("/notes", json={"title": "a"})
        assert r.status == 201, r.text
        assert r.json()["title"] == "a"

Like a request's instance in the runtime, what a request leaves open (a
transaction never committed, a lease never released) is dropped when it
returns: the transaction rolls back.
"""

from __future__ import annotations

import dataclasses
import itertools
import json as jsonlib
import re
import sqlite3
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from . import _fake_wit, _host, _json
from ._router import Found, NotAllowed, Router
from .app import App
from .errors import BadRequest, HttpError, MethodNotAllowed, NotFound

__all__ = ["Client", "TestResponse", "Clock", "QueuedJob", "OutboundRequest", "Unreachable",
           "Host"]

_active: "Host | None" = None


def _host_now() -> "Host":
    if _active is None:
        raise RuntimeError("no trellis_sdk.testing.Client is active: make one first")
    return _active


def _err(interface: str, case: str, *value: Any) -> _fake_wit.Err:
    """The ``Err`` the real binding raises for ``interface``'s error case."""
    return _fake_wit.Err(getattr(_MODULES[f"wit_world.imports.{interface}"], case)(*value))


class Clock:
    """The time the cache, locks and jobs see, in seconds: it starts at the
    wall clock and moves only when the test calls :meth:`advance`."""

    def __init__(self) -> None:
        self._now = time.time()

    def now(self) -> float:
        """Seconds since the Unix epoch."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Moves time forward (entries and leases expire)."""
        self._now += seconds


# -- sql -----------------------------------------------------------------------

_PLACEHOLDER_SKIP = {"'": "'", '"': '"', "`": "`", "[": "]"}


def translate_placeholders(statement: str) -> str:
    """``$1`` → ``?1`` outside strings, quoted names and comments: SQLite's
    numbered parameters, bound by position as the host binds them."""
    out, i, n = [], 0, len(statement)
    while i < n:
        c = statement[i]
        if c in _PLACEHOLDER_SKIP:
            end = statement.find(_PLACEHOLDER_SKIP[c], i + 1)
            end = n if end < 0 else end + 1
            out.append(statement[i:end])
            i = end
        elif statement.startswith("--", i):
            end = statement.find("\n", i)
            end = n if end < 0 else end
            out.append(statement[i:end])
            i = end
        elif statement.startswith("/*", i):
            end = statement.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(statement[i:end])
            i = end
        elif c == "$" and i + 1 < n and statement[i + 1].isdigit():
            j = i + 1
            while j < n and statement[j].isdigit():
                j += 1
            out.append("?" + statement[i + 1:j])
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _bind(value: Any) -> Any:
    name = type(value).__name__
    if name == "Value_Null":
        return None
    if name == "Value_Boolean":
        return int(value.value)
    return value.value


def _to_value(value: Any) -> Any:
    sql = _MODULES["wit_world.imports.sql"]
    if value is None:
        return sql.Value_Null()
    if isinstance(value, bool):
        return sql.Value_Boolean(value)
    if isinstance(value, int):
        return sql.Value_Integer(value)
    if isinstance(value, float):
        return sql.Value_Real(value)
    if isinstance(value, bytes):
        return sql.Value_Blob(value)
    return sql.Value_Text(str(value))


def _sql_error(err: sqlite3.Error) -> _fake_wit.Err:
    """sqlite3's error as the host's ``sql.error`` (as the host maps
    SQLite's)."""
    message = str(err)
    if isinstance(err, sqlite3.IntegrityError) or "NOT NULL constraint" in message:
        return _err("sql", "Error_ConstraintViolation", message)
    if "not authorized" in message:
        return _err("sql", "Error_PermissionDenied", message)
    if "syntax error" in message or "incomplete input" in message:
        return _err("sql", "Error_Syntax", message)
    if "database is locked" in message:
        return _err("sql", "Error_Unavailable", message)
    return _err("sql", "Error_Invalid", message)


def _deny_attach(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_DENY if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) \
        else sqlite3.SQLITE_OK


class FakeSql:
    """The plugin's SQLite database, in a temporary file."""

    def __init__(self, directory: str, migrations: Iterable[Any]):
        self.path = str(Path(directory) / "plugin.db")
        self.conn = self.connect()
        self.conn.execute("PRAGMA journal_mode=WAL")
        #: Transactions of the current request that are still open.
        self.open: list[FakeTransaction] = []
        for m in migrations:
            try:
                self.conn.executescript(f"BEGIN;\n{m.sqlite};\nCOMMIT;")
            except sqlite3.Error as err:
                self.conn.execute("ROLLBACK") if self.conn.in_transaction else None
                raise RuntimeError(f"migration {m.id} ({m.name}) fails on SQLite: {err}") \
                    from None

    def connect(self) -> sqlite3.Connection:
        """A connection as the host's: foreign keys on, no busy wait."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=0,
                               check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.set_authorizer(_deny_attach)
        return conn

    @staticmethod
    def run(conn: sqlite3.Connection, statement: str, params: list) -> sqlite3.Cursor:
        """Runs one statement; a failure raises the host's error."""
        try:
            return conn.execute(translate_placeholders(statement), [_bind(p) for p in params])
        except sqlite3.Error as err:
            raise _sql_error(err) from None

    @staticmethod
    def rows(cursor: sqlite3.Cursor) -> Any:
        """The host's ``rows`` of a cursor (column names only with rows)."""
        try:
            fetched = cursor.fetchall()
        except sqlite3.Error as err:
            raise _sql_error(err) from None
        sql = _MODULES["wit_world.imports.sql"]
        columns = [d[0] for d in cursor.description or ()] if fetched else []
        return sql.Rows(columns=columns, rows=[[_to_value(v) for v in row] for row in fetched])

    def query(self, statement: str, params: list) -> Any:
        return self.rows(self.run(self.conn, statement, params))

    def execute(self, statement: str, params: list) -> int:
        cursor = self.run(self.conn, statement, params)
        return max(cursor.rowcount, 0)

    def begin(self) -> "FakeTransaction":
        tx = FakeTransaction(self)
        self.open.append(tx)
        return tx

    def drop_open(self) -> None:
        """Rolls back what the request left open, as the end of an instance
        does."""
        for tx in list(self.open):
            tx.__exit__(None, None, None)

    def close(self) -> None:
        self.drop_open()
        self.conn.close()


class FakeTransaction:
    """The ``sql.transaction`` resource: its own connection, rolled back
    when dropped without a commit."""

    def __init__(self, db: FakeSql):
        self.db = db
        self.conn = db.connect()
        self.conn.execute("BEGIN")
        self.done = False
        #: Jobs enqueued in it, added to the queue when it commits.
        self.jobs: list[QueuedJob] = []

    def _check(self) -> None:
        if self.done:
            raise _err("sql", "Error_TransactionClosed")

    def query(self, statement: str, params: list) -> Any:
        self._check()
        return self.db.rows(self.db.run(self.conn, statement, params))

    def execute(self, statement: str, params: list) -> int:
        self._check()
        return max(self.db.run(self.conn, statement, params).rowcount, 0)

    def commit(self) -> None:
        self._check()
        self._finish()
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise _sql_error(err) from None
        finally:
            self.conn.close()
        for job in self.jobs:
            _host_now().jobs.queue.append(job)

    def _finish(self) -> None:
        self.done = True
        if self in self.db.open:
            self.db.open.remove(self)

    def __enter__(self) -> "FakeTransaction":
        return self

    def __exit__(self, *_: Any) -> None:
        if not self.done:
            self._finish()
            self.conn.execute("ROLLBACK")
            self.conn.close()


# -- cache ---------------------------------------------------------------------

MAX_KEY = 512
MAX_TAGS = 32
MAX_MANY = 1000
MAX_VALUE = 1024 * 1024


@dataclasses.dataclass
class CacheEntry:
    """One cached value (``None``: a negative entry)."""

    value: bytes | None
    expires: float
    tags: list[str]


class FakeCache:
    """The plugin's cache: entries with ttls and tags on the test's clock."""

    def __init__(self, clock: Clock, max_value: int = MAX_VALUE):
        self.clock = clock
        self.max_value = max_value
        self.entries: dict[str, CacheEntry] = {}
        #: The host's HTTP response cache: key -> (entry, response).
        self.responses: dict[str, tuple[CacheEntry, "TestResponse"]] = {}
        #: Every tag invalidated, in order.
        self.invalidated: list[str] = []

    @staticmethod
    def check_name(what: str, name: str) -> None:
        if not name or len(name.encode()) > MAX_KEY:
            raise _err("cache", "Error_Invalid", f"a cache {what} is 1 to {MAX_KEY} bytes")
        if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
            raise _err("cache", "Error_Invalid", f"a cache {what} has no control characters")

    def _live(self, key: str) -> CacheEntry | None:
        entry = self.entries.get(key)
        if entry is not None and entry.expires <= self.clock.now():
            del self.entries[key]
            return None
        return entry

    def get(self, key: str) -> bytes | None:
        self.check_name("key", key)
        entry = self._live(key)
        return None if entry is None else entry.value

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        if len(keys) > MAX_MANY:
            raise _err("cache", "Error_Invalid", f"at most {MAX_MANY} keys at once")
        return [self.get(k) for k in keys]

    def _entry(self, value: bytes | None, options: Any) -> CacheEntry:
        if value is not None and len(value) > self.max_value:
            raise _err("cache", "Error_TooLarge", self.max_value)
        if options.ttl_ms < 1:
            raise _err("cache", "Error_Invalid", "a cache ttl is at least 1 ms")
        if len(options.tags) > MAX_TAGS:
            raise _err("cache", "Error_Invalid", f"at most {MAX_TAGS} tags per entry")
        for tag in options.tags:
            self.check_name("tag", tag)
        return CacheEntry(value, self.clock.now() + options.ttl_ms / 1000, list(options.tags))

    def set(self, key: str, value: bytes, options: Any) -> None:
        self.check_name("key", key)
        self.entries[key] = self._entry(bytes(value), options)

    def delete(self, key: str) -> None:
        self.check_name("key", key)
        self.entries.pop(key, None)

    def invalidate_tag(self, tag: str) -> None:
        self.check_name("tag", tag)
        self.invalidated.append(tag)
        self.entries = {k: e for k, e in self.entries.items() if tag not in e.tags}
        self.responses = {k: v for k, v in self.responses.items() if tag not in v[0].tags}

    def fetch(self, key: str) -> Any:
        self.check_name("key", key)
        cache = _MODULES["wit_world.imports.cache"]
        entry = self._live(key)
        if entry is None:
            return cache.Lookup_Load(FakeLoader(self, key))
        if entry.value is None:
            return cache.Lookup_Absent()
        return cache.Lookup_Hit(entry.value)


class FakeLoader:
    """The ``cache.loader`` resource."""

    def __init__(self, cache: FakeCache, key: str):
        self.cache = cache
        self.key = key
        #: The message of :meth:`fail`, when it was called.
        self.failed: str | None = None

    def fill(self, value: bytes | None, options: Any) -> None:
        self.cache.entries[self.key] = self.cache._entry(
            None if value is None else bytes(value), options)

    def fail(self, message: str) -> None:
        self.failed = message

    def __enter__(self) -> "FakeLoader":
        return self

    def __exit__(self, *_: Any) -> None:
        pass


# -- lock ----------------------------------------------------------------------

class FakeLocks:
    """Leases by name, with fencing tokens, on the test's clock."""

    MAX_NAME = 256
    MAX_TTL_MS = 5 * 60 * 1000
    MAX_WAIT_MS = 30 * 1000

    def __init__(self, clock: Clock):
        self.clock = clock
        #: name -> (holder, expires)
        self.held: dict[str, tuple["FakeLease", float]] = {}
        self.tokens: dict[str, int] = {}

    def acquire(self, name: str, ttl_ms: int, wait_ms: int) -> "FakeLease":
        if not name or len(name.encode()) > self.MAX_NAME or any(ord(c) < 32 for c in name):
            raise _err("lock", "Error_Invalid",
                       f"a lock name is 1 to {self.MAX_NAME} bytes without control characters")
        if not 1 <= ttl_ms <= self.MAX_TTL_MS:
            raise _err("lock", "Error_Invalid", "a lock ttl is 1 ms to 5m")
        if wait_ms > self.MAX_WAIT_MS:
            raise _err("lock", "Error_Invalid", "a lock wait is at most 30s")
        if self.holder(name) is not None:
            raise _err("lock", "Error_Timeout")
        self.tokens[name] = self.tokens.get(name, 0) + 1
        now = self.clock.now()
        lease = FakeLease(self, name, self.tokens[name],
                          int(now * 1000) + ttl_ms - 2 - ttl_ms // 100)
        self.held[name] = (lease, now + ttl_ms / 1000)
        return lease

    def holder(self, name: str) -> "FakeLease | None":
        held = self.held.get(name)
        if held is None or held[1] <= self.clock.now():
            return None
        return held[0]


class FakeLease:
    """The ``lock.lease`` resource."""

    def __init__(self, locks: FakeLocks, name: str, token: int, valid_until: int):
        self.locks, self.name, self.token, self.until = locks, name, token, valid_until

    def fencing_token(self) -> int:
        return self.token

    def valid_until(self) -> int:
        return self.until

    def extend(self, ttl_ms: int) -> None:
        if self.locks.holder(self.name) is not self:
            raise _err("lock", "Error_Lost")
        self.locks.held[self.name] = (self, self.locks.clock.now() + ttl_ms / 1000)

    def is_held(self) -> bool:
        return self.locks.holder(self.name) is self

    def release(self) -> None:
        if self.locks.holder(self.name) is not self:
            raise _err("lock", "Error_Lost")
        del self.locks.held[self.name]

    def __enter__(self) -> "FakeLease":
        return self

    def __exit__(self, *_: Any) -> None:
        if self.locks.holder(self.name) is self:
            del self.locks.held[self.name]


# -- jobs ----------------------------------------------------------------------

DEFAULT_MAX_ATTEMPTS = 5
MAX_PAYLOAD = 64 * 1024


@dataclasses.dataclass
class QueuedJob:
    """A job in the fake queue."""

    id: str
    kind: str
    payload: bytes
    max_attempts: int
    run_at: float
    enqueued_at: float
    idempotency_key: str | None = None
    priority: int | None = None
    queue: str | None = None
    #: ``pending``, ``completed`` or ``discarded``.
    state: str = "pending"
    #: Attempts spent so far.
    attempts: int = 0
    #: The result bytes of a completed job.
    result: bytes | None = None
    #: The last failure, as ``kind: message``.
    error: str | None = None

    def json(self) -> Any:
        """The payload as JSON."""
        return jsonlib.loads(self.payload)


class FakeJobs:
    """The queue: jobs of the app's kinds."""

    def __init__(self, clock: Clock, kinds: dict[str, int]):
        self.clock = clock
        self.kinds = kinds
        self.queue: list[QueuedJob] = []
        self._ids = itertools.count(1)

    def enqueue(self, kind: str, payload: bytes, options: Any,
                tx: FakeTransaction | None) -> str:
        if kind not in self.kinds:
            raise _err("jobs", "Error_UnknownKind", kind)
        if len(payload) > MAX_PAYLOAD:
            raise _err("jobs", "Error_TooLarge", MAX_PAYLOAD)
        key = options.idempotency_key
        if key is not None:
            if not key:
                raise _err("jobs", "Error_Invalid", "an idempotency key is not empty")
            pending = [j for j in self.queue + (tx.jobs if tx else [])
                       if j.idempotency_key == key and j.state == "pending"]
            if pending:
                return pending[0].id
        if tx is not None:
            tx._check()
        now = self.clock.now()
        job = QueuedJob(
            id=f"job-{next(self._ids)}", kind=kind, payload=bytes(payload),
            max_attempts=options.max_attempts or self.kinds[kind] or DEFAULT_MAX_ATTEMPTS,
            run_at=now + (options.delay_ms or 0) / 1000, enqueued_at=now,
            idempotency_key=key, priority=options.priority, queue=options.queue)
        (tx.jobs if tx is not None else self.queue).append(job)
        return job.id


# -- outbound http ---------------------------------------------------------------

@dataclasses.dataclass
class OutboundRequest:
    """An outgoing request the plugin made, as the test's function sees it."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes


class Unreachable(Exception):
    """Raise it from an outbound function to answer with the host's error:
    ``kind`` is ``denied``, ``invalid``, ``connect``, ``timeout``,
    ``too-large``, ``limited`` or ``failed``."""

    _CASES = {"denied": "Denied", "invalid": "Invalid", "connect": "Connect",
              "timeout": "Timeout", "too-large": "TooLarge", "limited": "Limited",
              "failed": "Failed"}

    def __init__(self, kind: str, value: Any = ""):
        if kind not in self._CASES:
            raise ValueError(f"Unreachable kind is one of {', '.join(self._CASES)}")
        super().__init__(kind, value)
        self.kind, self.value = kind, value

    def to_err(self) -> _fake_wit.Err:
        case = self._CASES[self.kind]
        if case in ("Timeout", "Limited"):
            return _err("outbound_http", f"Error_{case}")
        return _err("outbound_http", f"Error_{case}", self.value)


# -- trace -----------------------------------------------------------------------

class FakeSpan:
    """The ``trace.span`` resource; recorded in :attr:`Client.spans`."""

    def __init__(self, name: str, parent: "FakeSpan | None"):
        self.name = name
        self.parent = parent
        self.attributes: dict[str, str] = {}
        self.events: list[tuple[str, dict[str, str]]] = []
        self.error: str | None = None
        self.ended = False
        _host_now().spans.append(self)

    def set_attribute(self, key: str, value: str) -> None:
        self.attributes[key] = value

    def add_event(self, name: str, attributes: list) -> None:
        self.events.append((name, dict(attributes)))

    def set_error(self, message: str) -> None:
        self.error = message

    def end(self) -> None:
        self.ended = True

    def __enter__(self) -> "FakeSpan":
        return self

    def __exit__(self, *_: Any) -> None:
        self.ended = True


_MODULES = _fake_wit.install(_host_now, {
    "sql.Transaction": FakeTransaction, "cache.Loader": FakeLoader,
    "lock.Lease": FakeLease, "trace.Span": FakeSpan,
})


# -- the host and the client -----------------------------------------------------

class Host:
    """Everything the fake imports keep for one :class:`Client`."""

    def __init__(self, app: App, config: Mapping[str, Any], outbound: Callable | None,
                 allowed: set[str] | None):
        self.clock = Clock()
        self.directory = tempfile.TemporaryDirectory(prefix="trellis-test-")
        self.sql = FakeSql(self.directory.name, app.migrations)
        self.cache = FakeCache(self.clock)
        self.locks = FakeLocks(self.clock)
        self.jobs = FakeJobs(self.clock, {k.name: k.max_attempts for k in app.jobs})
        self.config = {str(k): str(v) for k, v in config.items()}
        self.logs: list[tuple[str, str, dict[str, str]]] = []
        self.spans: list[FakeSpan] = []
        self.outbound = outbound
        self.allowed = allowed

    def fetch(self, req: Any) -> Any:
        http = _MODULES["wit_world.imports.outbound_http"]
        if self.outbound is None:
            raise _err("outbound_http", "Error_Denied",
                       f"{req.url}: no outbound function in this test "
                       "(testing.Client(app, outbound=...))")
        try:
            answer = self.outbound(OutboundRequest(req.method, req.url, list(req.headers),
                                                   bytes(req.body)))
        except Unreachable as err:
            raise err.to_err() from None
        status, headers, body = _reply(answer)
        return http.Response(status=status, headers=headers, body=body)

    def activate(self) -> None:
        global _active
        _active = self
        _host.allowed = self.allowed

    def end_instance(self) -> None:
        """What the end of an instance drops: open transactions."""
        self.sql.drop_open()

    def close(self) -> None:
        self.sql.close()
        self.directory.cleanup()


def _reply(answer: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """An outbound function's answer: ``(status, body)`` or ``(status,
    headers, body)``; a body may be bytes, a str or JSON."""
    if not isinstance(answer, tuple) or len(answer) not in (2, 3):
        raise TypeError("an outbound function returns (status, body) or "
                        "(status, headers, body)")
    status, headers, body = (answer[0], [], answer[1]) if len(answer) == 2 else answer
    headers = [(k.lower(), v) for k, v in (headers.items() if isinstance(headers, dict)
                                           else headers)]
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes):
        body = _json.dumps(body)
        headers.append(("content-type", "application/json"))
    return status, headers, body


class TestResponse:
    """A response as the client got it."""

    __test__ = False  # not a pytest test class

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (a problem+json error body too)."""
        return jsonlib.loads(self.body)

    def __repr__(self) -> str:
        return f"TestResponse({self.status}, {self.text[:200]!r})"


_WORLD_IMPORT = re.compile(r"^\s*import\s+trellis:plugin/([a-z-]+)@", re.MULTILINE)
_WORLD_EXPORT = re.compile(r"^\s*export\s+trellis:plugin/([a-z-]+)@", re.MULTILINE)
_EXPORT_CLASSES = {"manifest": "Manifest", "http-handler": "HttpHandler",
                   "migrations": "Migrations", "job-handler": "JobHandler",
                   "batch-handler": "BatchHandler"}


def _read_world(path: str | Path, app: App) -> set[str]:
    """The imports of a plugin's ``wit/world.wit`` (by module name), after
    checking that its exports are the classes ``app.exports()`` gives."""
    text = Path(path).read_text()
    exported = [_EXPORT_CLASSES.get(name, name) for name in _WORLD_EXPORT.findall(text)]
    offered = [cls.__name__ for cls in app.exports()]
    if sorted(exported) != sorted(offered):
        raise ValueError(f"{path} exports {', '.join(exported)}, but app.exports() gives "
                         f"{', '.join(offered)}: the world must export exactly these")
    return {name.replace("-", "_") for name in _WORLD_IMPORT.findall(text)}


_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


class Client:
    """Sends requests to an app as the runtime would (see the module).

    ``config``: the plugin's settings. ``world``: the path of the plugin's
    ``wit/world.wit``; given, a helper whose interface it does not import
    fails as it would in the component, and its exports must match
    ``app.exports()``. ``outbound``: a function answering outgoing
    requests (:class:`OutboundRequest` → ``(status, body)`` or ``(status,
    headers, body)``; raise :class:`Unreachable` for the host's errors).
    ``response_cache``: emulate the host's HTTP response cache.
    """

    def __init__(self, app: App, *, config: Mapping[str, Any] | None = None,
                 world: str | Path | None = None, outbound: Callable | None = None,
                 response_cache: bool = True):
        self.app = app
        allowed = _read_world(world, app) if world is not None else None
        self.host = Host(app, config or {}, outbound, allowed)
        self.host.activate()
        self.exports = {cls.__name__: cls for cls in app.exports()}
        manifest = self.exports["Manifest"]().describe()
        self.routes = [(r.method, r.path, dict(r.options)) for r in manifest.routes]
        self.router = Router([(m, p) for m, p, _ in self.routes])
        self.response_cache = response_cache
        self._ids = itertools.count(1)

    # -- what the test inspects -------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The time the cache, locks and jobs see; ``advance`` it."""
        return self.host.clock

    @property
    def logs(self) -> list[tuple[str, str, dict[str, str]]]:
        """Logged events: (level, message, fields)."""
        return self.host.logs

    @property
    def spans(self) -> list[FakeSpan]:
        """Spans opened, in order."""
        return self.host.spans

    @property
    def jobs(self) -> list[QueuedJob]:
        """Jobs enqueued (committed), in order, with their state."""
        return self.host.jobs.queue

    @property
    def cache(self) -> FakeCache:
        """The cache: ``entries`` and the tags ``invalidated``."""
        return self.host.cache

    @property
    def db(self) -> sqlite3.Connection:
        """A connection to the plugin's database, for assertions."""
        return self.host.sql.conn

    def close(self) -> None:
        """Removes the temporary database."""
        self.host.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------

    def request(self, method: str, target: str, *, json: Any = None, body: bytes | str = b"",
                headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                request_id: str | None = None) -> TestResponse:
        """Sends ``method`` ``target`` (a path with an optional query
        string; characters a client would escape are escaped). ``json``
        sends a JSON body with its content type."""
        self.host.activate()
        method = method.upper()
        request_id = request_id or f"test-request-{next(self._ids)}"
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        pairs = [(k.lower(), str(v)) for k, v in pairs]
        if json is not None:
            body = _json.dumps(json)
            pairs.append(("content-type", "application/json"))
        body = body.encode() if isinstance(body, str) else bytes(body)
        path, _, query = target.partition("?")
        path = urllib.parse.quote(path, safe=_PATH_SAFE)
        routed = self.router.lookup(method, path)
        if isinstance(routed, NotAllowed):
            error = MethodNotAllowed(f"{method} is not allowed here; allowed: {routed.allow}",
                                     code="method_not_allowed", headers=[("allow", routed.allow)])
            return _problem(error, request_id)
        if not isinstance(routed, Found):
            return _problem(NotFound(f"no route matches {path}"), request_id)
        params = []
        for name, raw in routed.params:
            try:
                value = urllib.parse.unquote_to_bytes(raw).decode() if "%" in raw else raw
            except UnicodeDecodeError:
                return _problem(BadRequest(
                    f"path parameter `{name}` is not UTF-8 once percent-decoded"), request_id)
            params.append((name, value))
        types = _MODULES["wit_world.imports.types"]
        raw_request = types.Request(
            route=routed.route, method=method, path=path, params=params,
            query=urllib.parse.parse_qsl(query, keep_blank_values=True, errors="replace"),
            headers=pairs, body=body, request_id=request_id)
        options = self.routes[routed.route][2]
        if self.response_cache and "cache-ttl" in options and method in ("GET", "HEAD"):
            response = self._through_cache(raw_request, query, options)
        else:
            response = self._call(raw_request)
        if method == "HEAD":
            response = TestResponse(response.status, response.headers, b"")
        return response

    def _call(self, raw_request: Any) -> TestResponse:
        try:
            raw = self.exports["HttpHandler"]().handle(raw_request)
        finally:
            self.host.end_instance()
        if not 100 <= raw.status <= 599:
            return _problem(HttpError(500, f"the plugin answered with status {raw.status}",
                                      code="invalid_response"), raw_request.request_id)
        return TestResponse(raw.status, list(raw.headers), bytes(raw.body))

    def _through_cache(self, raw_request: Any, query: str, options: dict) -> TestResponse:
        """The host's HTTP response cache: 200s without ``set-cookie`` or
        ``cache-control: private/no-store`` are kept for the route's ttl,
        tagged, and served again until a tag is invalidated."""
        cache = self.host.cache
        vary = [h for h in options.get("cache-vary", "").split(",") if h]
        key = jsonlib.dumps([raw_request.route, raw_request.path, query,
                             [[v for k, v in raw_request.headers if k == h] for h in vary]])
        held = cache.responses.get(key)
        no_cache = any(k == "cache-control" and "no-cache" in v for k, v in raw_request.headers)
        if held and held[0].expires > self.clock.now() and not no_cache:
            entry, response = held
            return TestResponse(response.status, [*response.headers, ("x-trellis-cache", "hit")],
                                response.body)
        response = self._call(raw_request)
        control = (response.header("cache-control") or "").lower()
        if response.status == 200 and response.header("set-cookie") is None \
                and "private" not in control and "no-store" not in control:
            ttl = int(options["cache-ttl"].removesuffix("ms")) / 1000
            tags = [t for t in options.get("cache-tags", "").split(",") if t]
            for name, value in raw_request.params:
                tags = [t.replace(f"{{{name}}}", value) for t in tags]
            cache.responses[key] = (CacheEntry(None, self.clock.now() + ttl, tags), response)
            return TestResponse(response.status, [*response.headers, ("x-trellis-cache", "miss")],
                                response.body)
        return TestResponse(response.status, [*response.headers, ("x-trellis-cache", "bypass")],
                            response.body)

    def get(self, target: str, **kwargs: Any) -> TestResponse:
        """A ``GET``; see :meth:`request`."""
        return self.request("GET", target, **kwargs)

    def head(self, target: str, **kwargs: Any) -> TestResponse:
        """A ``HEAD`` (served by the ``GET`` route, without a body)."""
        return self.request("HEAD", target, **kwargs)

    def post(self, target: str, **kwargs: Any) -> TestResponse:
        """A ``POST``; see :meth:`request`."""
        return self.request("POST", target, **kwargs)

    def put(self, target: str, **kwargs: Any) -> TestResponse:
        """A ``PUT``; see :meth:`request`."""
        return self.request("PUT", target, **kwargs)

    def patch(self, target: str, **kwargs: Any) -> TestResponse:
        """A ``PATCH``; see :meth:`request`."""
        return self.request("PATCH", target, **kwargs)

    def delete(self, target: str, **kwargs: Any) -> TestResponse:
        """A ``DELETE``; see :meth:`request`."""
        return self.request("DELETE", target, **kwargs)

    def batch(self, requests: list[tuple[str, str, Any]]) -> list[TestResponse]:
        """Sends ``(method, target, json)`` operations, all to one route, as
        the batch endpoint does: to the ``BatchHandler`` export in one call."""
        types = _MODULES["wit_world.imports.types"]
        raws = []
        for i, (method, target, body) in enumerate(requests):
            routed = self.router.lookup(method.upper(), target)
            if not isinstance(routed, Found):
                raise ValueError(f"{method} {target} matches no route")
            raws.append(types.Request(
                route=routed.route, method=method.upper(), path=target, params=routed.params,
                query=[], headers=[("content-type", "application/json")],
                body=_json.dumps(body), request_id=f"test-batch-{i}"))
        self.host.activate()
        handler = self.exports.get("BatchHandler")
        try:
            raw = handler().handle_batch(raws) if handler else \
                [self.exports["HttpHandler"]().handle(r) for r in raws]
        finally:
            self.host.end_instance()
        return [TestResponse(r.status, list(r.headers), bytes(r.body)) for r in raw]

    # -- jobs ---------------------------------------------------------------------------

    def run_job(self, kind: str, payload: Any = b"", *, attempt: int = 1,
                max_attempts: int = 1) -> bytes:
        """Runs one job of ``kind`` through the app's ``JobHandler`` export
        (not the queue); returns its result bytes or raises the
        :class:`~trellis_sdk.jobs.JobError` the host would record."""
        from . import jobs

        self.host.activate()
        raw = _MODULES["wit_world.exports.job_handler"].Job(
            id="test-job", kind=kind, payload=jobs.payload_bytes(payload), attempt=attempt,
            max_attempts=max_attempts, idempotency_key=None,
            enqueued_at=int(self.clock.now() * 1000))
        try:
            return self.exports["JobHandler"]().run(raw)
        except _fake_wit.Err as err:
            raise _job_error(err.value) from None
        finally:
            self.host.end_instance()

    def run_jobs(self, max_runs: int = 1000) -> list[QueuedJob]:
        """Runs every due pending job (and those they enqueue) until none is
        due, as a worker would: a failure is retried at once until its
        attempts run out, a ``Retry`` or ``Snooze`` waits on the clock.
        Returns the jobs that finished (completed or discarded)."""
        finished: list[QueuedJob] = []
        for _ in range(max_runs):
            due = [j for j in self.jobs if j.state == "pending" and j.run_at <= self.clock.now()]
            if not due:
                return finished
            job = due[0]
            self._attempt(job)
            if job.state != "pending":
                finished.append(job)
        raise RuntimeError(f"jobs still due after {max_runs} runs (a job snoozing at 0?)")

    def _attempt(self, job: QueuedJob) -> None:
        self.host.activate()
        types = _MODULES["wit_world.exports.job_handler"]
        raw = types.Job(id=job.id, kind=job.kind, payload=job.payload,
                        attempt=job.attempts + 1, max_attempts=job.max_attempts,
                        idempotency_key=job.idempotency_key,
                        enqueued_at=int(job.enqueued_at * 1000))
        try:
            job.result = self.exports["JobHandler"]().run(raw)
            job.attempts += 1
            job.state = "completed"
            return
        except _fake_wit.Err as err:
            value = err.value
        finally:
            self.host.end_instance()
        case = type(value).__name__.removeprefix("JobError_")
        if case == "Snooze":
            job.run_at = self.clock.now() + value.value / 1000
            return
        job.attempts += 1
        message = value.value.message if case == "RetryIn" else value.value
        job.error = f"{case}: {message}"
        if case == "Fatal" or job.attempts >= job.max_attempts:
            job.state = "discarded"
        elif case == "RetryIn":
            job.run_at = self.clock.now() + value.value.delay_ms / 1000


def _job_error(value: Any) -> Exception:
    from . import jobs

    case = type(value).__name__.removeprefix("JobError_")
    if case == "RetryIn":
        return jobs.Retry(value.value.delay_ms / 1000, value.value.message)
    if case == "Snooze":
        return jobs.Snooze(value.value / 1000)
    return {"Failed": jobs.Failed, "Fatal": jobs.Fatal}[case](value.value)


def _problem(error: HttpError, request_id: str) -> TestResponse:
    response = error.to_response(request_id)
    return TestResponse(response.status, response.headers, response.body)
