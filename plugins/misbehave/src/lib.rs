//! A hostile plugin for the runtime's tests: each route breaks one limit.
//! Never mount it on a real server.

use std::hint::black_box;
use trellis_sdk::prelude::*;

fn app() -> App {
    App::new("misbehave", env!("CARGO_PKG_VERSION"))
        .get("/misbehave/ok", ok)
        .get("/misbehave/loop", endless_loop)
        .get("/misbehave/memory", memory_bomb)
        .get("/misbehave/trap", trap)
        .get("/misbehave/big", big_response)
        .get("/misbehave/status", bad_status)
        .get("/misbehave/sleep", sleep)
        .post("/misbehave/body", body_len)
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
