"""Notes in Python on trellis_sdk, the twin of plugins/notes (Rust) under
/python-notes: CRUD over `sql` with keyset pagination, reads cached by the
host (tags `notes`, `note:{id}`) and invalidated by writes, an `index-note`
job enqueued in each insert's transaction, and an hourly `digest`."""

import time
from dataclasses import dataclass

from trellis_sdk import (App, BadRequest, Conflict, HttpError, NotFound, Response, RouteCache,
                         Unprocessable, cache, decode, jobs, page, sql)

app = App("python-notes", "0.1.0", capabilities=["cache", "jobs"])
NOTES = """title TEXT NOT NULL UNIQUE, body TEXT NOT NULL DEFAULT '', created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL); CREATE INDEX notes_updated_at ON notes (updated_at);"""
app.migration(1, "create notes", sqlite="CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, "
              + NOTES, postgres="CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, " + NOTES)
app.migration(2, "note index and digests", sqlite="""CREATE TABLE note_index (note_id BIGINT
    PRIMARY KEY, words BIGINT NOT NULL, indexed_at BIGINT NOT NULL);
    CREATE TABLE digests (at BIGINT PRIMARY KEY, notes BIGINT NOT NULL);""")
app.schedule("hourly-digest", "0 * * * *", "digest", {})
COLUMNS = "id, title, body, created_at, updated_at"  # the note's JSON fields; times in µs


@dataclass
class NoteInput:
    title: str
    body: str = ""

    def __post_init__(self):
        if not self.title.strip() or len(self.title) > 200:
            raise Unprocessable("title must be 1 to 200 characters")


def insert(tx: sql.Transaction, note: NoteInput, at: int) -> dict:
    """Inserts a note and enqueues its index job in `tx`: neither without the other."""
    try:
        row = tx.query(f"INSERT INTO notes (title, body, created_at, updated_at) VALUES "
                       f"($1, $2, $3, $3) RETURNING {COLUMNS}", note.title, note.body, at).first()
    except sql.UniqueViolation:
        raise Conflict(f"a note titled {note.title!r} exists") from None
    jobs.enqueue("index-note", {"id": row["id"]}, tx=tx)
    return row


@app.post("/python-notes")
def create(req):
    with sql.begin() as tx:
        note = insert(tx, req.json(NoteInput), now())
    cache.invalidate_tag("notes")
    return Response.created(note, f"/python-notes/{note['id']}")


@app.post("/python-notes/bulk")
def bulk(req):
    items, results, at = req.json(list), [], now()
    if not 1 <= len(items) <= 100:
        raise BadRequest(f"send 1 to 100 notes, not {len(items)}")
    with sql.begin() as tx:  # each note under a savepoint, answered on its own
        for item in items:
            tx.execute("SAVEPOINT note")
            try:
                results.append({"status": 201, "note": insert(tx, decode(item, NoteInput), at)})
                tx.execute("RELEASE SAVEPOINT note")
            except HttpError as err:
                tx.execute("ROLLBACK TO SAVEPOINT note")
                results.append({"status": err.status, "detail": str(err)})
    cache.invalidate_tag("notes")
    return {"results": results}


@app.get("/python-notes", cache=RouteCache(30, tags=["notes"]))
def list_notes(req):
    asked = page.from_request(req, default=20, maximum=100, cursor=int)
    notes = sql.query_replica_ok(f"SELECT {COLUMNS} FROM notes WHERE id > $1 ORDER BY id "
                                 "LIMIT $2", asked.after or 0, asked.limit)
    return page.respond(notes.all(), asked.limit, lambda note: note["id"])


@app.get("/python-notes/{id}", cache=RouteCache(30, tags=["notes", "note:{id}"]))
def get_note(req, id: int):
    rows = sql.query_replica_ok(f"SELECT {COLUMNS} FROM notes WHERE id = $1", id)
    return rows.first_or_404(f"no note {id}")


@app.get("/python-notes/{id}/index")
def get_index(req, id: int):
    rows = sql.query("SELECT note_id, words, indexed_at FROM note_index WHERE note_id = $1", id)
    return rows.first_or_404(f"note {id} is not indexed (yet)")


@app.put("/python-notes/{id}")
def update(req, id: int):
    note = req.json(NoteInput)
    rows = sql.query(f"UPDATE notes SET title = $1, body = $2, updated_at = $3 WHERE id = $4 "
                     f"RETURNING {COLUMNS}", note.title, note.body, now(), id)
    updated = rows.first_or_404(f"no note {id}")
    invalidate(id)
    jobs.enqueue("index-note", {"id": id}, idempotency_key=f"index:{id}")
    return updated


@app.delete("/python-notes/{id}")
def delete(req, id: int):
    if sql.execute("DELETE FROM notes WHERE id = $1", id) == 0:
        raise NotFound(f"no note {id}")
    invalidate(id)


@app.job("index-note", max_attempts=5)
def index_note(job):
    """Counts the note's words into note_index: an upsert, so a rerun changes nothing."""
    id = job.json()["id"]
    body = sql.query("SELECT body FROM notes WHERE id = $1", id).scalar()
    if body is None:
        return "note deleted"
    words = len(body.split())
    sql.execute("INSERT INTO note_index (note_id, words, indexed_at) VALUES ($1, $2, $3) ON "
                "CONFLICT (note_id) DO UPDATE SET words = excluded.words, indexed_at = "
                "excluded.indexed_at", id, words, now())
    return {"words": words}


@app.job("digest", max_attempts=3)
def digest(job):
    n = sql.query("SELECT count(*) FROM notes").scalar()
    sql.execute("INSERT INTO digests (at, notes) VALUES ($1, $2) ON CONFLICT (at) DO NOTHING",
                now(), n)
    return {"notes": n}


def invalidate(id: int):
    cache.invalidate_tag(f"note:{id}")
    cache.invalidate_tag("notes")


def now() -> int:
    return time.time_ns() // 1000


Manifest, HttpHandler, Migrations, JobHandler = app.exports()
