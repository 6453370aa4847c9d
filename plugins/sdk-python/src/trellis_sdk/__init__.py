"""The Trellis plugin SDK for Python: write HTTP handlers in Python, build
them into a WebAssembly component with componentize-py, and let the Trellis
runtime serve them.

::

    from dataclasses import dataclass
    from trellis_sdk import App, NotFound, sql

    app = App("notes", "0.1.0")
    app.migration(1, "notes", sqlite="CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT)")

    @dataclass
    class Note:
        id: int
        title: str

    @app.get("/notes/{id}")
    def get_note(req, id: int):
        note = sql.query_replica_ok("SELECT id, title FROM notes WHERE id = $1", id).first(Note)
        if note is None:
            raise NotFound(f"no note {id}")
        return note

    Manifest, HttpHandler, Migrations = app.exports()

Handlers return a :class:`Response` or a plain value (a dict or dataclass
is JSON); an :class:`HttpError` raised anywhere becomes an
``application/problem+json`` response with the request id. The capability
modules (:mod:`~trellis_sdk.sql`, :mod:`~trellis_sdk.cache`,
:mod:`~trellis_sdk.jobs`, :mod:`~trellis_sdk.lock`,
:mod:`~trellis_sdk.config`, :mod:`~trellis_sdk.log`,
:mod:`~trellis_sdk.trace`, :mod:`~trellis_sdk.http`) import the generated
bindings only when called, so a plugin's world imports just what it uses.
:mod:`trellis_sdk.testing` runs an app under pytest without a server.
"""

from . import cache, config, http, jobs, lock, log, page, sql, trace
from .app import App, Migration, RouteCache
from .errors import (BadGateway, BadRequest, Conflict, ContentTooLarge, Forbidden,
                     GatewayTimeout, Gone, HttpError, InternalError, MethodNotAllowed,
                     NotFound, NotImplementedYet, ServiceUnavailable, TooManyRequests,
                     Unauthorized, Unprocessable, UnsupportedMediaType)
from .jobs import Job
from .request import Request, decode_json as decode
from .response import Response

__version__ = "0.1.0"

__all__ = [
    "App", "Migration", "RouteCache", "Request", "Response", "Job", "decode",
    "HttpError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "MethodNotAllowed",
    "Conflict", "Gone", "ContentTooLarge", "UnsupportedMediaType", "Unprocessable",
    "TooManyRequests", "InternalError", "NotImplementedYet", "BadGateway",
    "ServiceUnavailable", "GatewayTimeout",
    "cache", "config", "http", "jobs", "lock", "log", "page", "sql", "trace",
]
