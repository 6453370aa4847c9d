"""The App: a plugin's routes, migrations, job kinds and schedules, the
dispatch from the host's calls to them, and the export classes that
componentize-py calls.

::

    from trellis_sdk import App, NotFound

    app = App("hello", "0.1.0", capabilities=["config"])

    @app.get("/hello/{name}")
    def hello(req, name: str):
        return {"greeting": f"Hello, {name}!"}

    Manifest, HttpHandler = app.exports()
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import sys
import traceback
import typing
from typing import Any, Callable, Iterable, Sequence

from . import _host, _json
from ._router import param_names
from .errors import HttpError, InternalError
from .jobs import Job, JobError, run_result
from .request import Request
from .response import Response

__all__ = ["App", "RouteCache", "Migration", "JobKind", "Route"]

Handler = Callable[..., Any]


@dataclasses.dataclass
class RouteCache:
    """Lets the host answer repeated ``GET`` requests of a route from its
    HTTP response cache, without calling the plugin, for ``ttl`` seconds (a
    number or a ``timedelta``) or until a tag is invalidated
    (:func:`trellis_sdk.cache.invalidate_tag`).

    ``tags``: a ``{param}`` in a tag is the request's path parameter, so
    ``note:{id}`` on ``/notes/{id}`` tags ``/notes/7`` with ``note:7``.
    ``vary``: request headers that select a variant (``accept-language``).
    """

    ttl: float | datetime.timedelta
    tags: Sequence[str] = ()
    vary: Sequence[str] = ()

    def options(self) -> list[tuple[str, str]]:
        """The route options, as the Rust SDK writes them: ``cache-ttl``
        (``"30000ms"``), and ``cache-vary`` and ``cache-tags`` as
        comma-separated lists when not empty."""
        options = [("cache-ttl", f"{_host.millis(self.ttl, 'a route cache ttl')}ms")]
        if self.vary:
            options.append(("cache-vary", ",".join(h.lower() for h in self.vary)))
        if self.tags:
            options.append(("cache-tags", ",".join(self.tags)))
        return options


@dataclasses.dataclass
class Migration:
    """A schema migration: SQL for each backend (several statements allowed),
    applied once, in id order, before the plugin version serves."""

    id: int
    name: str
    sqlite: str
    postgres: str


@dataclasses.dataclass
class JobKind:
    """A kind of job and its defaults (0 and ``""`` take the host's)."""

    name: str
    handler: Callable[[Job], Any]
    max_attempts: int = 0
    queue: str = ""
    timeout_ms: int = 0
    priority: int = 0


@dataclasses.dataclass
class Route:
    """A route: method, pattern, handler and manifest options."""

    method: str
    path: str
    handler: Handler
    options: list[tuple[str, str]]
    #: Path parameters the handler takes as keyword arguments.
    arguments: list[str]
    batch: "Callable[[list[Request]], list[Any]] | None" = None
    _kinds: "dict[str, Any] | None" = None

    def call(self, request: Request) -> Any:
        """Runs the handler with the request and its typed parameters."""
        if self._kinds is None:
            try:
                hints = typing.get_type_hints(self.handler)
            except Exception:  # unresolvable annotations: take text
                hints = {}
            self._kinds = {name: hints.get(name, str) for name in self.arguments}
        kwargs = {name: request.param(name, kind) for name, kind in self._kinds.items()}
        return self.handler(request, **kwargs)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class App:
    """A plugin: its name and version, routes, the capabilities it asks for
    (each must be granted by the operator), migrations, job kinds and cron
    schedules.

    The host matches requests against the routes, so a handler is only
    called for its own method and path pattern: ``{name}`` matches one path
    segment, ``{*name}`` the rest of the path.
    """

    def __init__(self, name: str, version: str, *, capabilities: Iterable[str] = ()):
        self.name = name
        self.version = version
        self.capabilities: list[str] = []
        self.routes: list[Route] = []
        self.migrations: list[Migration] = []
        self.jobs: list[JobKind] = []
        self.schedules: list[tuple[str, str, str, bytes]] = []
        for capability in capabilities:
            self.capability(capability)

    # -- declaring -----------------------------------------------------------

    def capability(self, *names: str) -> "App":
        """Declares capabilities the plugin uses (``"config"``, ``"cache"``,
        ``"jobs"``, ...). Each must also be imported by the plugin's world
        and granted by the operator."""
        for name in names:
            if name not in self.capabilities:
                self.capabilities.append(name)
        return self

    def route(self, method: str, path: str, *, cache: RouteCache | None = None,
              lenient_fields: bool = False, request_schema: Any = None,
              response_schema: Any = None) -> Callable[[Handler], Handler]:
        """Serves ``method`` requests to ``path`` with the decorated handler.

        The handler takes the :class:`Request` first, then any of the
        route's parameters by name, converted to their annotation (``id:
        int``: a value that is not an integer is a 400 naming ``id``). It
        returns a :class:`Response` or a plain value (see
        :meth:`Response.of`) and raises :class:`HttpError` for errors.

        ``cache``: see :class:`RouteCache` (``GET`` only). ``lenient_fields``:
        ``?fields=`` skips unknown fields instead of a 400.
        ``request_schema``/``response_schema``: JSON Schemas (a dict, or a
        function making one) the runtime publishes in its OpenAPI document.
        """
        method = method.upper()
        names = param_names(path)
        if cache is not None and method != "GET":
            raise ValueError(f"{method} {path}: only GET routes may be cached")

        def register(handler: Handler) -> Handler:
            arguments = _arguments(handler, names, f"{method} {path}")
            options = list(cache.options()) if cache else []
            if lenient_fields:
                options.append(("fields", "lenient"))
            for key, schema in (("request-schema", request_schema),
                                ("response-schema", response_schema)):
                if schema is not None:
                    value = schema() if callable(schema) else schema
                    options.append((key, _json.dumps(value).decode()))
            self.routes.append(Route(method, path, handler, options, arguments))
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Serves ``GET`` (and ``HEAD``) requests to ``path``; see :meth:`route`."""
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Serves ``POST`` requests to ``path``; see :meth:`route`."""
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Serves ``PUT`` requests to ``path``; see :meth:`route`."""
        return self.route("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Serves ``PATCH`` requests to ``path``; see :meth:`route`."""
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Serves ``DELETE`` requests to ``path``; see :meth:`route`."""
        return self.route("DELETE", path, **options)

    def batch(self, handler: Handler) -> Callable[[Callable], Callable]:
        """Serves the route of ``handler`` many requests at a time: the
        runtime's batch endpoint hands every operation of a batch that goes
        to it to the decorated function in one call. It takes a list of
        :class:`Request` and returns one result per request, in order: a
        response or plain value, or an :class:`HttpError` (returned, not
        raised). The world must export ``batch-handler``.
        """
        route = next((r for r in self.routes if r.handler is handler), None)
        if route is None:
            raise ValueError(f"app.batch({getattr(handler, '__name__', handler)}): "
                             "that function serves no route of this app (yet)")

        def register(batch: Callable) -> Callable:
            route.batch = batch
            route.options = [o for o in route.options if o[0] != "batch"] + [("batch", "true")]
            return batch

        return register

    def migration(self, id: int, name: str, *, sqlite: str, postgres: str | None = None) -> "App":
        """Adds a schema migration (and declares the ``sql`` capability).
        ``postgres`` defaults to the ``sqlite`` text, for SQL both take."""
        if self.migrations and id <= self.migrations[-1].id:
            raise ValueError(f"migration {id} ({name}): ids increase, and "
                             f"{self.migrations[-1].id} came before it")
        self.capability("sql")
        self.migrations.append(Migration(id, name, sqlite, sqlite if postgres is None else postgres))
        return self

    def job(self, kind: str, *, max_attempts: int = 0, queue: str = "",
            timeout: float | datetime.timedelta = 0,
            priority: int = 0) -> Callable[[Callable[[Job], Any]], Callable[[Job], Any]]:
        """Declares job kind ``kind``, run by the decorated function. It takes
        a :class:`~trellis_sdk.jobs.Job` and returns the result (bytes, a
        str, JSON or ``None``); it raises
        :class:`~trellis_sdk.jobs.Retry`, :class:`~trellis_sdk.jobs.Fatal`,
        :class:`~trellis_sdk.jobs.Snooze`, or anything else to fail the
        attempt. Enqueueing needs the ``jobs`` capability; running does not.
        """
        if any(k.name == kind for k in self.jobs):
            raise ValueError(f"job kind `{kind}` is declared twice")

        def register(handler: Callable[[Job], Any]) -> Callable[[Job], Any]:
            self.jobs.append(JobKind(kind, handler, max_attempts, queue,
                                     _host.millis(timeout, f"the timeout of job kind `{kind}`"),
                                     priority))
            return handler

        return register

    def schedule(self, name: str, cron: str, kind: str, payload: Any = b"{}") -> "App":
        """Enqueues a job of ``kind`` with ``payload`` (bytes, a str, or JSON)
        on a cron schedule: five fields (minute hour day month weekday) or
        six with seconds first, in UTC. Each tick is enqueued once across
        the cluster."""
        from .jobs import payload_bytes

        self.schedules.append((name, cron, kind, payload_bytes(payload)))
        return self

    # -- serving -------------------------------------------------------------

    def manifest(self) -> dict:
        """The manifest as plain data: name, version, routes (method, path,
        options) and capabilities."""
        return {
            "name": self.name,
            "version": self.version,
            "routes": [(r.method, r.path, list(r.options)) for r in self.routes],
            "capabilities": list(self.capabilities),
        }

    def handle(self, request: Request) -> Response:
        """Runs the handler of the route the host matched; an
        :class:`HttpError` (or any other exception) becomes problem+json."""
        if not 0 <= request.route < len(self.routes):
            error = InternalError(f"the host asked for route {request.route} but this "
                                  f"plugin has {len(self.routes)}")
            return error.to_response(request.request_id)
        route = self.routes[request.route]
        try:
            return Response.of(route.call(request))
        except Exception as err:  # noqa: BLE001 - every failure is an answer
            return _problem(err, f"the handler of {route}").to_response(request.request_id)

    def handle_batch(self, requests: list[Request]) -> list[Response]:
        """Runs many requests to one route: through its batch function when
        it has one, else one by one. Always one response per request."""
        routes = {r.route for r in requests}
        route = self.routes[requests[0].route] if len(routes) == 1 and \
            0 <= requests[0].route < len(self.routes) else None
        if route is None or route.batch is None:
            return [self.handle(r) for r in requests]
        try:
            results = list(route.batch(list(requests)))
        except Exception as err:  # noqa: BLE001
            error = _problem(err, f"the batch function of {route}")
            return [error.to_response(r.request_id) for r in requests]
        responses = []
        for i, request in enumerate(requests):
            result = results[i] if i < len(results) else InternalError(
                "the batch function returned fewer results than requests")
            if isinstance(result, Exception):
                responses.append(_problem(result, f"the batch function of {route}")
                                 .to_response(request.request_id))
            else:
                responses.append(Response.of(result))
        return responses

    def run_job(self, job: Job) -> bytes:
        """Runs the handler of ``job.kind``; returns the result bytes or
        raises a :class:`~trellis_sdk.jobs.JobError`."""
        kind = next((k for k in self.jobs if k.name == job.kind), None)
        if kind is None:
            from .jobs import Fatal

            raise Fatal(f"this plugin has no job kind `{job.kind}`")
        return run_result(kind.handler, job)

    def exports(self) -> tuple[type, ...]:
        """The classes componentize-py calls, for the app module to bind to
        the names its world exports::

            Manifest, HttpHandler = app.exports()

        Always ``Manifest`` and ``HttpHandler``; then ``Migrations`` when the
        app has migrations, ``JobHandler`` when it has job kinds, and
        ``BatchHandler`` when a route has a batch function, in that order.
        The world must export exactly these (a mismatch fails the build).
        """
        _host.preload()
        classes = [_export("Manifest", self), _export("HttpHandler", self)]
        if self.migrations:
            classes.append(_export("Migrations", self))
        if self.jobs or self.schedules:
            classes.append(_export("JobHandler", self))
        if any(r.batch for r in self.routes):
            classes.append(_export("BatchHandler", self))
        return tuple(classes)


def _arguments(handler: Handler, names: list[str], route: str) -> list[str]:
    """The route parameters ``handler`` takes by name; a parameter the route
    does not have (and that has no default) is a ``TypeError`` now rather
    than at the first request."""
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return []
    if not parameters:
        raise TypeError(f"{route}: the handler {handler.__name__} must take the request "
                        "as its first argument")
    arguments = []
    for parameter in parameters[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name in names:
            arguments.append(parameter.name)
        elif parameter.default is parameter.empty:
            raise TypeError(f"{route}: the handler {handler.__name__} takes "
                            f"`{parameter.name}`, which is not a parameter of the route "
                            f"(it has {', '.join(names) or 'none'})")
    return arguments


def _problem(err: BaseException, where: str) -> HttpError:
    """The HttpError an exception answers with: itself, or a 500
    ``unhandled_exception`` whose traceback goes to stderr."""
    if isinstance(err, HttpError):
        return err
    traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    return InternalError(f"{where} raised {type(err).__name__}",
                         code="unhandled_exception")


def _export(name: str, app: App) -> type:
    """The export class ``name`` bound to ``app``, subclassing the generated
    protocol when there is one."""
    methods: dict[str, Callable] = {
        "Manifest": {"describe": lambda self: _describe(app)},
        "HttpHandler": {"handle": lambda self, req: _to_raw(app.handle(Request.from_raw(req)))},
        "Migrations": {"all": lambda self: _migrations(app)},
        "JobHandler": {
            "kinds": lambda self: _job_kinds(app),
            "schedules": lambda self: _schedules(app),
            "run": lambda self, job: _run_job(app, job),
        },
        "BatchHandler": {
            "handle_batch": lambda self, requests: [
                _to_raw(r) for r in app.handle_batch([Request.from_raw(q) for q in requests])],
        },
    }[name]
    cls = type(name, (_host.protocol(name),), {
        **methods,
        "__doc__": f"The `{name}` export of plugin {app.name}.",
        "__module__": __name__,
    })
    return cls


def _to_raw(response: Response) -> Any:
    return _host.http_types().Response(response.status, list(response.headers),
                                       response.body)


def _describe(app: App) -> Any:
    types = _host.export_types("manifest")
    plain = app.manifest()
    return types.PluginManifest(
        name=plain["name"], version=plain["version"],
        routes=[types.Route(method=m, path=p, options=o) for m, p, o in plain["routes"]],
        capabilities=plain["capabilities"])


def _migrations(app: App) -> list:
    types = _host.export_types("migrations")
    return [types.Migration(id=m.id, name=m.name, sqlite=m.sqlite, postgres=m.postgres)
            for m in app.migrations]


def _job_kinds(app: App) -> list:
    types = _host.export_types("job_handler")
    return [types.JobKind(name=k.name, queue=k.queue, max_attempts=k.max_attempts,
                          timeout_ms=k.timeout_ms, priority=k.priority) for k in app.jobs]


def _schedules(app: App) -> list:
    types = _host.export_types("job_handler")
    return [types.Schedule(name=n, cron=c, kind=k, payload=p) for n, c, k, p in app.schedules]


def _run_job(app: App, raw: Any) -> bytes:
    from componentize_py_types import Err

    try:
        return app.run_job(Job.from_raw(raw))
    except JobError as err:
        raise Err(err.to_raw(_host.export_types("job_handler"))) from None
