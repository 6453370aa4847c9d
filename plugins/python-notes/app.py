"""Notes in Python: a small JSON API over the `sql` capability, built with
componentize-py (see wit/world.wit and build.sh). Its migration creates the
table on whichever database the runtime gives it (SQLite by default,
PostgreSQL by config). Routes:

    POST /python-notes          {"title": "...", "body": "..."} -> 201, the note
    GET  /python-notes          every note, newest first (at most 100)
    GET  /python-notes/{id}     one note, or 404

A title is unique: a second note with the same title is a 409, from the
database's constraint. A sql call that fails raises
`componentize_py_types.Err` whose `value` is one of `sql.Error_*`.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import manifest, migrations
from wit_world.imports import sql, types

ROUTES = [("POST", "/python-notes"), ("GET", "/python-notes"), ("GET", "/python-notes/{id}")]


class Manifest(exports.Manifest):
    def describe(self) -> manifest.PluginManifest:
        return manifest.PluginManifest(
            name="python-notes",
            version="0.1.0",
            routes=[manifest.Route(method=m, path=p, options=[]) for m, p in ROUTES],
            capabilities=["sql"],
        )


class Migrations(exports.Migrations):
    def all(self) -> list[migrations.Migration]:
        return [
            migrations.Migration(
                id=1,
                name="notes",
                sqlite="CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "title TEXT NOT NULL UNIQUE, body TEXT NOT NULL)",
                postgres="CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, "
                "title TEXT NOT NULL UNIQUE, body TEXT NOT NULL)",
            )
        ]


class Problem(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class HttpHandler(exports.HttpHandler):
    def handle(self, req: types.Request) -> types.Response:
        try:
            return [create, list_notes, get_note][req.route](req)
        except Problem as p:
            return problem(p.status, p.detail, req.request_id)
        except Err as err:
            return problem(*sql_status(err.value), req.request_id)


def create(req: types.Request) -> types.Response:
    try:
        note = json.loads(req.body)
    except ValueError as err:
        raise Problem(400, f"invalid JSON: {err}")
    if not isinstance(note, dict):
        raise Problem(400, "invalid JSON: expected an object")
    title, body = note.get("title"), note.get("body", "")
    if not isinstance(title, str) or not title:
        raise Problem(400, "invalid JSON at `title`: expected a non-empty string")
    if not isinstance(body, str):
        raise Problem(400, "invalid JSON at `body`: expected a string")
    try:
        rows = sql.query(
            "INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING id",
            [sql.Value_Text(title), sql.Value_Text(body)],
            sql.Consistency.PRIMARY,
        )
    except Err as err:
        if isinstance(err.value, sql.Error_ConstraintViolation):
            raise Problem(409, f"a note titled {title!r} exists")
        raise
    note = {"id": rows.rows[0][0].value, "title": title, "body": body}
    return json_response(201, note, [("location", f"/python-notes/{note['id']}")])


def list_notes(req: types.Request) -> types.Response:
    rows = sql.query(
        "SELECT id, title, body FROM notes ORDER BY id DESC LIMIT 100",
        [],
        sql.Consistency.REPLICA_OK,
    )
    return json_response(200, {"items": [to_note(row) for row in rows.rows]})


def get_note(req: types.Request) -> types.Response:
    raw = dict(req.params)["id"]
    try:
        note_id = int(raw)
    except ValueError:
        raise Problem(400, f"invalid path parameter `id`: `{raw}`")
    rows = sql.query(
        "SELECT id, title, body FROM notes WHERE id = $1",
        [sql.Value_Integer(note_id)],
        sql.Consistency.REPLICA_OK,
    )
    if not rows.rows:
        raise Problem(404, f"no note {note_id}")
    return json_response(200, to_note(rows.rows[0]))


def to_note(row: list[sql.Value]) -> dict:
    note_id, title, body = (value.value for value in row)
    return {"id": note_id, "title": title, "body": body}


def sql_status(error: sql.Error) -> tuple[int, str]:
    """The HTTP status and detail for a sql error nothing else handled."""
    if isinstance(error, (sql.Error_Unavailable, sql.Error_Timeout)):
        return 503, f"the database is unavailable: {error.value}"
    detail = getattr(error, "value", None) or type(error).__name__
    return 500, f"database error: {detail}"


TITLES = {400: "Bad Request", 404: "Not Found", 409: "Conflict", 500: "Internal Server Error",
          503: "Service Unavailable"}


def problem(status: int, detail: str, request_id: str) -> types.Response:
    title = TITLES.get(status, "Error")
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "code": title.lower().replace(" ", "_"), "request_id": request_id}
    return types.Response(status, [("content-type", "application/problem+json")],
                          json.dumps(body).encode())


def json_response(status: int, value, headers=()) -> types.Response:
    return types.Response(status, [("content-type", "application/json"), *headers],
                          json.dumps(value).encode())
