//! A CRUD JSON API over the `sql` capability: create, get, list with keyset
//! pagination, update and delete notes. The same SQL runs on SQLite (the
//! embedded default) and PostgreSQL; titles are unique, so a duplicate is a
//! 409.
//!
//! Reads are served from the host's HTTP response cache (the `cache`
//! capability) for up to 30 s: a note is tagged `notes` and `note:{id}`, the
//! list `notes`. Every successful write invalidates the tags it touches, so
//! readers see it without waiting for the ttl.

use std::time::Duration;

use serde::{Deserialize, Serialize};
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
        .capability("cache")
        .post("/notes", create)
        .get("/notes", list)
        .cache(RouteCache::ttl(CACHE_TTL).tag("notes"))
        .get("/notes/{id}", get)
        .cache(RouteCache::ttl(CACHE_TTL).tag("notes").tag("note:{id}"))
        .put("/notes/{id}", update)
        .delete("/notes/{id}", delete)
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
    let now = now_micros();
    let note: Option<Note> = sql::query(
        &format!(
            "INSERT INTO notes (title, body, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             RETURNING {COLUMNS}"
        ),
        &params![input.title, input.body, now],
    )?
    .first()?;
    let note = note.ok_or_else(|| Error::internal("the insert returned no row"))?;
    cache::invalidate_tag("notes")?;
    Ok(Response::json(&note)?
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
