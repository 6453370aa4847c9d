// The notes example in JavaScript on the SDK (../sdk-js): a twin of
// plugins/notes (Rust) under /js-notes. A CRUD JSON API over `sql` (titles
// are unique: a duplicate is a 409) with keyset pagination; reads served
// from the host's response cache for up to 30 s, tagged `notes` and
// `note:{id}` and invalidated by every write; an `index-note` job enqueued
// in the insert's transaction counts each note's words
// (`GET /js-notes/{id}/index`), and an hourly `digest` job counts the notes.
import { App, Conflict, NotFound, Response, Unprocessable, BadRequest } from "../sdk-js/src/index.js";
import { optional, pageOf, pageResponse, validate } from "../sdk-js/src/index.js";
import * as sql from "trellis:plugin/sql@0.1.7";
import * as cache from "trellis:plugin/cache@0.1.7";
import * as jobs from "trellis:plugin/jobs@0.1.7";

const MAX_LIMIT = 100;
const CACHE_TTL_MS = 30_000;
const COLUMNS = "id, title, body, created_at, updated_at";
const NOTE_INPUT = { title: "string", body: optional("string", "") };

export const app = new App("js-notes", "0.1.0", { sql, cache, jobs });

app.migration({
  id: 1,
  name: "create notes",
  sqlite: `CREATE TABLE notes (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             title TEXT NOT NULL UNIQUE,
             body TEXT NOT NULL DEFAULT '',
             created_at INTEGER NOT NULL,
             updated_at INTEGER NOT NULL);
           CREATE INDEX notes_updated_at ON notes (updated_at);`,
  postgres: `CREATE TABLE notes (
               id BIGSERIAL PRIMARY KEY,
               title TEXT NOT NULL UNIQUE,
               body TEXT NOT NULL DEFAULT '',
               created_at BIGINT NOT NULL,
               updated_at BIGINT NOT NULL);
             CREATE INDEX notes_updated_at ON notes (updated_at);`,
});
app.migration({
  id: 2,
  name: "note index and digests",
  sqlite: `CREATE TABLE note_index (note_id INTEGER PRIMARY KEY, words INTEGER NOT NULL, indexed_at INTEGER NOT NULL);
           CREATE TABLE digests (at INTEGER PRIMARY KEY, notes INTEGER NOT NULL);`,
  postgres: `CREATE TABLE note_index (note_id BIGINT PRIMARY KEY, words BIGINT NOT NULL, indexed_at BIGINT NOT NULL);
             CREATE TABLE digests (at BIGINT PRIMARY KEY, notes BIGINT NOT NULL);`,
});

app.job("index-note", indexNote, { maxAttempts: 5 });
app.job("digest", digest, { maxAttempts: 3 });
app.schedule("hourly-digest", "0 * * * *", "digest", "{}");

// JSON Schemas for the runtime's OpenAPI document (made only when the host reads the manifest).
const noteSchema = () => ({
  type: "object",
  required: ["id", "title", "body", "created_at", "updated_at"],
  properties: {
    id: { type: "integer" },
    title: { type: "string" },
    body: { type: "string" },
    created_at: { type: "integer", description: "Unix microseconds" },
    updated_at: { type: "integer", description: "Unix microseconds" },
  },
});
const inputSchema = () => ({
  type: "object",
  required: ["title"],
  additionalProperties: false,
  properties: { title: { type: "string", minLength: 1, maxLength: 200 }, body: { type: "string" } },
});

app.post("/js-notes", create, { requestSchema: inputSchema, responseSchema: noteSchema });
app.post("/js-notes/bulk", bulk, {
  requestSchema: () => ({ type: "array", items: inputSchema(), minItems: 1, maxItems: MAX_LIMIT }),
});
app.get("/js-notes", list, {
  cache: { ttlMs: CACHE_TTL_MS, tags: ["notes"] },
  responseSchema: () => ({
    type: "object",
    required: ["items", "next_cursor"],
    properties: { items: { type: "array", items: noteSchema() }, next_cursor: { type: ["string", "null"] } },
  }),
});
app.get("/js-notes/{id}", get, { cache: { ttlMs: CACHE_TTL_MS, tags: ["notes", "note:{id}"] }, responseSchema: noteSchema });
app.get("/js-notes/{id}/index", index);
app.put("/js-notes/{id}", update, { requestSchema: inputSchema, responseSchema: noteSchema });
app.delete("/js-notes/{id}", remove);

const nowMicros = () => Date.now() * 1000;
const encoder = new TextEncoder();

/** A 422 unless the title has 1 to 200 bytes and is not blank. */
function checked(input) {
  if (input.title.trim() === "" || encoder.encode(input.title).length > 200) {
    throw new Unprocessable("title must be 1 to 200 characters");
  }
  return input;
}

/** Inserts one note and enqueues its index job in `tx`; a taken title is a 409. */
function insert(tx, input, now) {
  let note;
  try {
    note = tx.queryOne(
      `INSERT INTO notes (title, body, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING ${COLUMNS}`,
      [input.title, input.body, now],
    );
  } catch (err) {
    if (err.isUniqueViolation) throw new Conflict(`a note titled \`${input.title}\` exists`);
    throw err;
  }
  app.jobs.enqueueIn(tx, "index-note", { id: note.id });
  return note;
}

function create(req, { sql, cache }) {
  const input = checked(req.json(NOTE_INPUT));
  const note = sql.transaction((tx) => insert(tx, input, nowMicros()));
  cache.invalidateTag("notes");
  return Response.created(`/js-notes/${note.id}`, note);
}

/**
 * `POST /js-notes/bulk` with `[{"title", "body"}, …]` (1 to 100): one
 * transaction, each note under a savepoint so that a taken title is a 409
 * for that note alone; `{"results": [{"status", "note" | "detail"}]}`.
 */
function bulk(req, { sql, cache }) {
  const values = req.json(["any"]);
  if (values.length === 0 || values.length > MAX_LIMIT) {
    throw new BadRequest(`send 1 to ${MAX_LIMIT} notes, not ${values.length}`);
  }
  const now = nowMicros();
  const results = sql.transaction((tx) =>
    values.map((value) => {
      try {
        const input = checked(validate(value, NOTE_INPUT));
        tx.execute("SAVEPOINT note");
        try {
          const note = insert(tx, input, now);
          tx.execute("RELEASE SAVEPOINT note");
          return { status: 201, note };
        } catch (err) {
          tx.execute("ROLLBACK TO SAVEPOINT note");
          throw err;
        }
      } catch (err) {
        if (!(err instanceof Conflict || err instanceof BadRequest || err instanceof Unprocessable)) throw err;
        return { status: err.status, detail: err.toString() };
      }
    }),
  );
  if (results.some((r) => r.status === 201)) cache.invalidateTag("notes");
  return { results };
}

function get(req, { sql }) {
  const id = req.param("id", "int");
  const note = sql.queryOne(`SELECT ${COLUMNS} FROM notes WHERE id = $1`, [id], { replica: true });
  if (!note) throw new NotFound(`no note ${id}`);
  return note;
}

/** Keyset pagination over ids: `?limit=N&cursor=C`, `next_cursor` in the body. */
function list(req, { sql }) {
  const page = pageOf(req, { defaultLimit: 20, max: MAX_LIMIT, cursor: "int" });
  const notes = sql.query(`SELECT ${COLUMNS} FROM notes WHERE id > $1 ORDER BY id LIMIT $2`, [page.after ?? 0, page.limit], {
    replica: true,
  });
  return pageResponse(notes, page.limit, (note) => note.id);
}

function update(req, { sql, jobs }) {
  const id = req.param("id", "int");
  const input = checked(req.json(NOTE_INPUT));
  const note = sql.queryOne(
    `UPDATE notes SET title = $1, body = $2, updated_at = $3 WHERE id = $4 RETURNING ${COLUMNS}`,
    [input.title, input.body, nowMicros(), id],
  );
  if (!note) throw new NotFound(`no note ${id}`);
  invalidate(id);
  jobs.enqueue("index-note", { id }, { idempotencyKey: `index:${id}` });
  return note;
}

function remove(req, { sql }) {
  const id = req.param("id", "int");
  if (sql.execute("DELETE FROM notes WHERE id = $1", [id]) === 0) throw new NotFound(`no note ${id}`);
  invalidate(id);
  return Response.noContent();
}

/** `{"note_id", "words", "indexed_at"}` once the note's job has run. */
function index(req, { sql }) {
  const id = req.param("id", "int");
  const entry = sql.queryOne("SELECT note_id, words, indexed_at FROM note_index WHERE note_id = $1", [id]);
  if (!entry) throw new NotFound(`note ${id} is not indexed (yet)`);
  return entry;
}

/** Counts the note's words into note_index: an upsert, so a rerun changes nothing. */
function indexNote(job, { sql }) {
  const { id } = validate(job.json(), { id: "int" });
  const note = sql.queryOne("SELECT body FROM notes WHERE id = $1", [id]);
  if (!note) return JSON.stringify("note deleted");
  const words = note.body.split(/\s+/).filter(Boolean).length;
  sql.execute(
    "INSERT INTO note_index (note_id, words, indexed_at) VALUES ($1, $2, $3) " +
      "ON CONFLICT (note_id) DO UPDATE SET words = excluded.words, indexed_at = excluded.indexed_at",
    [id, words, nowMicros()],
  );
  return { words };
}

/** Records how many notes exist now. */
function digest(_job, { sql }) {
  const { n } = sql.queryOne("SELECT count(*) AS n FROM notes");
  sql.execute("INSERT INTO digests (at, notes) VALUES ($1, $2) ON CONFLICT (at) DO NOTHING", [nowMicros(), n]);
  return { notes: n };
}

/** Drops the cached reads of note `id` and of the list, after a write to it. */
function invalidate(id) {
  app.cache.invalidateTag(`note:${id}`);
  app.cache.invalidateTag("notes");
}

export const { manifest, httpHandler, migrations, jobHandler } = app.exports();
