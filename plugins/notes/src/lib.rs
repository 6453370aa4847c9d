//! A CRUD JSON API over the `sql` capability: create, get, list with keyset
//! pagination, update and delete notes. The same SQL runs on SQLite (the
//! embedded default) and PostgreSQL; titles are unique, so a duplicate is a
//! 409.
//!
//! Reads are served from the host's HTTP response cache (the `cache`
//! capability) for up to 30 s: a note is tagged `notes` and `note:{id}`, the
//! list `notes`. Every successful write invalidates the tags it touches, so
//! readers see it without waiting for the ttl.
//!
//! Background jobs (the `jobs` capability): creating a note enqueues an
//! `index-note` job in the same transaction as the insert (no note without
//! its job, no job without its note); updating one enqueues it again, keyed
//! so that repeated updates while one waits share one job. The job counts
//! the note's words into `note_index` (`GET /notes/{id}/index`). An hourly
//! schedule records a `digest` of how many notes exist.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use trellis_sdk::jobs::{self, Job, JobError, Kind, Options};
use trellis_sdk::page::{self, Page};
use trellis_sdk::prelude::*;
use trellis_sdk::{Migration, RouteCache, cache, params, sql};

/// Page size when `?limit=` is absent, and the most a page may hold.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// How long the host may serve a cached read.
const CACHE_TTL: Duration = Duration::from_secs(30);

fn app() -> App {
    App::new("notes", env!("CARGO_PKG_VERSION"))
        .migration(Migration {
            id: 1,
            name: "create notes",
            sqlite: "CREATE TABLE notes (
                         id INTEGER PRIMARY KEY AUTOINCREMENT,
                         title TEXT NOT NULL UNIQUE,
                         body TEXT NOT NULL DEFAULT '',
                         created_at INTEGER NOT NULL,
                         updated_at INTEGER NOT NULL);
                     CREATE INDEX notes_updated_at ON notes (updated_at);",
            postgres: "CREATE TABLE notes (
                           id BIGSERIAL PRIMARY KEY,
                           title TEXT NOT NULL UNIQUE,
                           body TEXT NOT NULL DEFAULT '',
                           created_at BIGINT NOT NULL,
                           updated_at BIGINT NOT NULL);
                       CREATE INDEX notes_updated_at ON notes (updated_at);",
        })
        .migration(Migration {
            id: 2,
            name: "note index and digests",
            sqlite: "CREATE TABLE note_index (
                         note_id INTEGER PRIMARY KEY,
                         words INTEGER NOT NULL,
                         indexed_at INTEGER NOT NULL);
                     CREATE TABLE digests (
                         at INTEGER PRIMARY KEY,
                         notes INTEGER NOT NULL);",
            postgres: "CREATE TABLE note_index (
                           note_id BIGINT PRIMARY KEY,
                           words BIGINT NOT NULL,
                           indexed_at BIGINT NOT NULL);
                       CREATE TABLE digests (
                           at BIGINT PRIMARY KEY,
                           notes BIGINT NOT NULL);",
        })
        .capability("cache")
        .capability("jobs")
        .job(Kind::new("index-note").max_attempts(5), index_note)
        .job(Kind::new("digest").max_attempts(3), digest)
        .schedule("hourly-digest", "0 * * * *", "digest", b"{}".to_vec())
        .post("/notes", create)
        .batch(create_many)
        .request_schema(note_input_schema)
        .response_schema(note_schema)
        .post("/notes/bulk", bulk)
        .request_schema(|| json!({"type": "array", "items": note_input_schema(), "minItems": 1, "maxItems": MAX_LIMIT}))
        .get("/notes", list)
        .cache(RouteCache::ttl(CACHE_TTL).tag("notes"))
        .response_schema(|| json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": note_schema()},
                "next_cursor": {"type": ["string", "null"]},
            },
        }))
        .get("/notes/{id}", get)
        .cache(RouteCache::ttl(CACHE_TTL).tag("notes").tag("note:{id}"))
        .response_schema(note_schema)
        .get("/notes/{id}/index", index)
        .put("/notes/{id}", update)
        .request_schema(note_input_schema)
        .response_schema(note_schema)
        .delete("/notes/{id}", delete)
}

/// The JSON Schema of [`Note`], for the OpenAPI document.
fn note_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["id", "title", "body", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "body": {"type": "string"},
            "created_at": {"type": "integer", "description": "Unix microseconds"},
            "updated_at": {"type": "integer", "description": "Unix microseconds"},
        },
    })
}

/// The JSON Schema of [`NoteInput`].
fn note_input_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["title"],
        "additionalProperties": false,
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "body": {"type": "string"},
        },
    })
}

#[derive(Debug, Serialize, Deserialize)]
struct Note {
    id: i64,
    title: String,
    body: String,
    created_at: i64,
    updated_at: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteInput {
    title: String,
    #[serde(default)]
    body: String,
}

const COLUMNS: &str = "id, title, body, created_at, updated_at";

fn create(req: Request) -> Result<Response> {
    let input: NoteInput = req.json()?;
    validate(&input)?;
    let tx = sql::begin()?;
    let note = insert(&tx, &input, now_micros())?;
    tx.commit()?;
    cache::invalidate_tag("notes")?;
    created(&note)
}

/// `POST /notes` many at once, for the batch endpoint: one instance and one
/// transaction for all, each request still answered on its own (201, 409
/// for a taken title, 400/422 for bad input).
fn create_many(requests: Vec<Request>) -> Vec<Result<Response>> {
    let inputs: Vec<Result<NoteInput>> = requests
        .iter()
        .map(|req| {
            let input: NoteInput = req.json()?;
            validate(&input)?;
            Ok(input)
        })
        .collect();
    match insert_all(inputs) {
        Ok(results) => results
            .into_iter()
            .map(|r| r.and_then(|note| created(&note)))
            .collect(),
        Err(err) => requests.iter().map(|_| Err(err.clone())).collect(),
    }
}

/// `POST /notes/bulk` with `[{"title", "body"}, …]` (at most 100): the same
/// work as [`create_many`], for clients that send one request.
fn bulk(req: Request) -> Result<Response> {
    let inputs: Vec<serde_json::Value> = req.json()?;
    if inputs.is_empty() || inputs.len() > MAX_LIMIT {
        return Err(Error::bad_request(format!(
            "send 1 to {MAX_LIMIT} notes, not {}",
            inputs.len()
        )));
    }
    let inputs = inputs
        .into_iter()
        .map(|value| {
            let input: NoteInput = serde_json::from_value(value).map_err(Error::from)?;
            validate(&input)?;
            Ok(input)
        })
        .collect();
    let results: Vec<serde_json::Value> = insert_all(inputs)?
        .into_iter()
        .map(|result| match result {
            Ok(note) => json!({"status": 201, "note": note}),
            Err(err) => json!({"status": err.status(), "detail": err.to_string()}),
        })
        .collect();
    Response::json(&json!({ "results": results }))
}

/// Inserts each valid input in one transaction (with its index job), each
/// under a savepoint, so a taken title is a 409 for that input alone. The
/// error is the transaction's.
fn insert_all(inputs: Vec<Result<NoteInput>>) -> Result<Vec<Result<Note>>> {
    let now = now_micros();
    let tx = sql::begin()?;
    let mut results = Vec::with_capacity(inputs.len());
    for input in inputs {
        let input = match input {
            Ok(input) => input,
            Err(err) => {
                results.push(Err(err));
                continue;
            }
        };
        tx.execute("SAVEPOINT note", &[])?;
        let inserted = insert(&tx, &input, now);
        let end = if inserted.is_ok() {
            "RELEASE SAVEPOINT note"
        } else {
            "ROLLBACK TO SAVEPOINT note"
        };
        tx.execute(end, &[])?;
        results.push(inserted);
    }
    tx.commit()?;
    if results.iter().any(Result::is_ok) {
        cache::invalidate_tag("notes")?;
    }
    Ok(results)
}

/// Inserts one note and enqueues its index job in `tx`. A taken title is
/// the database's unique violation: a 409 `conflict` naming it.
fn insert(tx: &sql::Transaction, input: &NoteInput, now: i64) -> Result<Note> {
    let note: Option<Note> = tx
        .query(
            &format!(
                "INSERT INTO notes (title, body, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                 RETURNING {COLUMNS}"
            ),
            &params![&input.title, &input.body, now],
        )
        .map_err(|err| match err.is_constraint_violation() {
            true => Error::conflict(format!("a note titled `{}` exists", input.title)),
            false => err.into(),
        })?
        .first()?;
    let note = note.ok_or_else(|| Error::internal("the insert returned no row"))?;
    let payload = serde_json::to_vec(&IndexJob { id: note.id })
        .map_err(|e| Error::internal(e.to_string()))?;
    jobs::enqueue_in(tx, "index-note", &payload, Options::new())?;
    Ok(note)
}

fn created(note: &Note) -> Result<Response> {
    Ok(Response::json(note)?
        .with_status(201)
        .header("location", format!("/notes/{}", note.id)))
}

fn get(req: Request) -> Result<Response> {
    let id: i64 = req.param("id")?;
    let note: Option<Note> = sql::query_replica_ok(
        &format!("SELECT {COLUMNS} FROM notes WHERE id = $1"),
        &params![id],
    )?
    .first()?;
    match note {
        Some(note) => Response::json(&note),
        None => Err(Error::not_found(format!("no note {id}"))),
    }
}

/// Keyset pagination over ids, the SDK's convention: `?limit=N&cursor=C`,
/// `next_cursor` in the body (and a `Link` header from the host).
fn list(req: Request) -> Result<Response> {
    let page: Page<i64> = page::from_request(&req, DEFAULT_LIMIT, MAX_LIMIT)?;
    let notes: Vec<Note> = sql::query_replica_ok(
        &format!("SELECT {COLUMNS} FROM notes WHERE id > $1 ORDER BY id LIMIT $2"),
        &params![page.after.unwrap_or(0), page.limit as i64],
    )?
    .decode()?;
    page::respond(&notes, page.limit, |n| n.id)
}

fn update(req: Request) -> Result<Response> {
    let id: i64 = req.param("id")?;
    let input: NoteInput = req.json()?;
    validate(&input)?;
    let note: Option<Note> = sql::query(
        &format!(
            "UPDATE notes SET title = $1, body = $2, updated_at = $3 WHERE id = $4 \
             RETURNING {COLUMNS}"
        ),
        &params![input.title, input.body, now_micros(), id],
    )?
    .first()?;
    match note {
        Some(note) => {
            invalidate(id)?;
            jobs::enqueue_json(
                "index-note",
                &IndexJob { id },
                Options::new().idempotency_key(format!("index:{id}")),
            )?;
            Response::json(&note)
        }
        None => Err(Error::not_found(format!("no note {id}"))),
    }
}

fn delete(req: Request) -> Result<Response> {
    let id: i64 = req.param("id")?;
    match sql::execute("DELETE FROM notes WHERE id = $1", &params![id])? {
        0 => Err(Error::not_found(format!("no note {id}"))),
        _ => {
            invalidate(id)?;
            Ok(Response::no_content())
        }
    }
}

/// The payload of `index-note`.
#[derive(Debug, Serialize, Deserialize)]
struct IndexJob {
    id: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexEntry {
    note_id: i64,
    words: i64,
    indexed_at: i64,
}

/// `{"note_id", "words", "indexed_at"}` once the note's job has run.
fn index(req: Request) -> Result<Response> {
    let id: i64 = req.param("id")?;
    let entry: Option<IndexEntry> = sql::query(
        "SELECT note_id, words, indexed_at FROM note_index WHERE note_id = $1",
        &params![id],
    )?
    .first()?;
    match entry {
        Some(entry) => Response::json(&entry),
        None => Err(Error::not_found(format!("note {id} is not indexed (yet)"))),
    }
}

/// Counts the note's words into `note_index`. An upsert, so a rerun (jobs
/// run at least once) changes nothing; a note deleted meanwhile is done.
fn index_note(job: Job) -> std::result::Result<Vec<u8>, JobError> {
    let input: IndexJob = job.json()?;
    let body: Option<NoteBody> =
        sql::query("SELECT body FROM notes WHERE id = $1", &params![input.id])?.first()?;
    let Some(note) = body else {
        return Ok(b"\"note deleted\"".to_vec());
    };
    let words = note.body.split_whitespace().count() as i64;
    sql::execute(
        "INSERT INTO note_index (note_id, words, indexed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (note_id) DO UPDATE SET words = excluded.words, indexed_at = excluded.indexed_at",
        &params![input.id, words, now_micros()],
    )?;
    Ok(format!("{{\"words\":{words}}}").into_bytes())
}

#[derive(Debug, Deserialize)]
struct NoteBody {
    body: String,
}

/// Records how many notes exist now.
fn digest(_job: Job) -> std::result::Result<Vec<u8>, JobError> {
    #[derive(Deserialize)]
    struct Count {
        n: i64,
    }
    let count: Option<Count> = sql::query("SELECT count(*) AS n FROM notes", &[])?.first()?;
    let n = count.map_or(0, |c| c.n);
    sql::execute(
        "INSERT INTO digests (at, notes) VALUES ($1, $2) ON CONFLICT (at) DO NOTHING",
        &params![now_micros(), n],
    )?;
    Ok(format!("{{\"notes\":{n}}}").into_bytes())
}

/// Drops the cached reads of note `id` and of the list, after a write to it.
fn invalidate(id: i64) -> Result<()> {
    cache::invalidate_tag(&format!("note:{id}"))?;
    cache::invalidate_tag("notes")
}

fn validate(input: &NoteInput) -> Result<()> {
    if input.title.trim().is_empty() || input.title.len() > 200 {
        return Err(Error::unprocessable("title must be 1 to 200 characters"));
    }
    Ok(())
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

trellis_sdk::plugin!(app);
