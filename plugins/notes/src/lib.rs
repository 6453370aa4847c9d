//! A CRUD JSON API over the `sql` capability: create, get, list with keyset
//! pagination, update and delete notes. The same SQL runs on SQLite (the
//! embedded default) and PostgreSQL; titles are unique, so a duplicate is a
//! 409.

use serde::{Deserialize, Serialize};
use trellis_sdk::prelude::*;
use trellis_sdk::{Migration, params, sql};

/// Page size when `?limit=` is absent, and the most a page may hold.
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

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
        .post("/notes", create)
        .get("/notes", list)
        .get("/notes/{id}", get)
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

/// Keyset pagination over ids: `?limit=N&cursor=C`, `next_cursor` in the body.
fn list(req: Request) -> Result<Response> {
    let limit: i64 = req.query_as("limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::bad_request(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let after: i64 = req.query_as("cursor")?.unwrap_or(0);
    let notes: Vec<Note> = sql::query_replica_ok(
        &format!("SELECT {COLUMNS} FROM notes WHERE id > $1 ORDER BY id LIMIT $2"),
        &params![after, limit],
    )?
    .decode()?;
    let next_cursor = (notes.len() as i64 == limit)
        .then(|| notes.last().map(|n| n.id.to_string()))
        .flatten();
    Response::json(&serde_json::json!({ "items": notes, "next_cursor": next_cursor }))
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
        Some(note) => Response::json(&note),
        None => Err(Error::not_found(format!("no note {id}"))),
    }
}

fn delete(req: Request) -> Result<Response> {
    let id: i64 = req.param("id")?;
    match sql::execute("DELETE FROM notes WHERE id = $1", &params![id])? {
        0 => Err(Error::not_found(format!("no note {id}"))),
        _ => Ok(Response::no_content()),
    }
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
