//! A hostile plugin for the runtime's tests: each route breaks one limit.
//! Never mount it on a real server.

use std::hint::black_box;
use trellis_sdk::prelude::*;
use trellis_sdk::{Migration, sql, trace};

fn app() -> App {
    let app = routes();
    // A migration from the operator's config, to test migration failures.
    match trellis_sdk::config::get("migration") {
        Some(sql) => {
            let sql: &'static str = Box::leak(sql.into_boxed_str());
            app.migration(Migration {
                id: 1,
                name: "from config",
                sqlite: sql,
                postgres: sql,
            })
        }
        None => app,
    }
}

fn routes() -> App {
    App::new("misbehave", env!("CARGO_PKG_VERSION"))
        .get("/misbehave/ok", ok)
        .get("/misbehave/loop", endless_loop)
        .get("/misbehave/memory", memory_bomb)
        .get("/misbehave/trap", trap)
        .get("/misbehave/big", big_response)
        .get("/misbehave/status", bad_status)
        .get("/misbehave/fail", fail)
        .get("/misbehave/spans", spans)
        .get("/misbehave/sleep", sleep)
        .post("/misbehave/body", body_len)
        .post("/misbehave/sql", run_sql)
        .post("/misbehave/sql-tx", sql_transaction)
        .get("/misbehave/sql-repeat", sql_repeat)
        .get("/misbehave/sql-hold", sql_hold)
        .post("/misbehave/sql-cached", sql_cached)
        .get("/misbehave/served", served)
}

/// Requests this instance has served, this one included: 1 in a fresh
/// instance, more in a warm one (`reuse`).
fn served(_req: Request) -> Result<Response> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SERVED: AtomicU64 = AtomicU64::new(0);
    let n = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
    Response::json(&serde_json::json!({ "served": n }))
}

/// Runs `{"sql": "...", "ttl_ms": N}` through the query cache and returns
/// the rows as JSON arrays.
fn sql_cached(req: Request) -> Result<Response> {
    #[derive(serde::Deserialize)]
    struct Cached {
        sql: String,
        ttl_ms: u64,
    }
    let cached: Cached = req.json()?;
    let rows = sql::query_cached(
        &cached.sql,
        &[],
        std::time::Duration::from_millis(cached.ttl_ms),
    )?;
    let values: Vec<Vec<String>> = rows
        .rows()
        .iter()
        .map(|row| row.iter().map(|v| format!("{v:?}")).collect())
        .collect();
    Response::json(&values)
}

/// Holds a database connection in an open transaction for `?ms=N`
/// milliseconds, starving a small pool.
fn sql_hold(req: Request) -> Result<Response> {
    let ms: u64 = req.query_as("ms")?.unwrap_or(800);
    let tx = sql::begin()?;
    tx.query("SELECT 1 AS x", &[])?;
    std::thread::sleep(std::time::Duration::from_millis(ms));
    drop(tx);
    Ok(Response::text("held"))
}

/// Runs one statement shape `?n=N` times with different literals: the N+1
/// pattern the host should flag.
fn sql_repeat(req: Request) -> Result<Response> {
    let n: u32 = req.query_as("n")?.unwrap_or(12);
    for i in 0..n {
        sql::query(&format!("SELECT {i} AS x"), &[])?;
    }
    Ok(Response::text(n.to_string()))
}

/// Runs the SQL in the body (`{"sql": "...", "execute": bool}`) on this
/// plugin's database and reports the outcome: a hostile plugin's probe.
fn run_sql(req: Request) -> Result<Response> {
    #[derive(serde::Deserialize)]
    struct Probe {
        sql: String,
        #[serde(default)]
        execute: bool,
    }
    let probe: Probe = req.json()?;
    let outcome = if probe.execute {
        sql::execute(&probe.sql, &[]).map(|n| serde_json::json!({ "affected": n }))
    } else {
        sql::query(&probe.sql, &[]).map(|rows| serde_json::json!({ "rows": rows.len() }))
    };
    Response::json(&match outcome {
        Ok(ok) => serde_json::json!({ "ok": ok }),
        Err(err) => serde_json::json!({ "error": err.kind(), "message": err.message() }),
    })
}

/// Opens a transaction, runs the statements in the body in it, then
/// commits, drops (`"end": "rollback"`) or panics (`"end": "trap"`).
fn sql_transaction(req: Request) -> Result<Response> {
    #[derive(serde::Deserialize)]
    struct Script {
        statements: Vec<String>,
        end: String,
    }
    let script: Script = req.json()?;
    let tx = sql::begin()?;
    for statement in &script.statements {
        tx.execute(statement, &[])?;
    }
    match script.end.as_str() {
        "commit" => tx.commit()?,
        "trap" => panic!("misbehave: trap inside a transaction"),
        _ => drop(tx),
    }
    Ok(Response::text(script.end))
}

fn ok(_req: Request) -> Result<Response> {
    Ok(Response::text("ok"))
}

/// Spins forever: the epoch deadline must stop it.
fn endless_loop(_req: Request) -> Result<Response> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates 1 MiB chunks until the memory cap stops it.
fn memory_bomb(_req: Request) -> Result<Response> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(black_box(vec![1u8; 1 << 20]));
    }
}

/// Panics, which traps the instance.
fn trap(_req: Request) -> Result<Response> {
    panic!("misbehave: deliberate panic");
}

/// Answers with `?bytes=N` bytes (default 64 MiB).
fn big_response(req: Request) -> Result<Response> {
    let bytes: usize = req.query_as("bytes")?.unwrap_or(64 << 20);
    Ok(Response::new(200).body(vec![b'x'; bytes]))
}

/// Answers with a status code HTTP does not have.
/// Opens guest spans: `guest.work` with an attribute and an event, and a
/// failed `guest.inner` under it; with `?n=`, that many more (a hostile
/// plugin past the limit).
fn spans(req: Request) -> Result<Response> {
    let n: u32 = req.query_as("n")?.unwrap_or(0);
    trace::in_span("guest.work", |work| {
        work.set("items", 3).event("started", &[("phase", "one")]);
        work.child("guest.inner").error("inner failed");
        for _ in 0..n {
            drop(trace::Span::start("guest.many"));
        }
    });
    Ok(Response::text("traced"))
}

/// A 500 from the plugin itself, naming `?n=` in its message; with
/// `?fingerprint=`, grouped under that.
fn fail(req: Request) -> Result<Response> {
    let n: u64 = req.query_as("n")?.unwrap_or(0);
    let error = Error::internal(format!("order {n} could not be charged"));
    Err(match req.query("fingerprint") {
        Some(fingerprint) => error.with_fingerprint(fingerprint),
        None => error,
    })
}

fn bad_status(_req: Request) -> Result<Response> {
    Ok(Response::new(1000).body("not a status"))
}

/// Sleeps `?ms=N` milliseconds (default 500) without burning CPU.
fn sleep(req: Request) -> Result<Response> {
    let ms: u64 = req.query_as("ms")?.unwrap_or(500);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(Response::text("slept"))
}

/// Reports how many body bytes arrived.
fn body_len(req: Request) -> Result<Response> {
    Ok(Response::text(req.body().len().to_string()))
}

trellis_sdk::plugin!(app);
