//! A test plugin over the `cache` and `lock` capabilities: every route is a
//! thin JSON door to one SDK call, so the runtime's tests can drive the
//! cache (values, tags, read-through loads, the size limit) and the locks
//! (mutual exclusion, fencing, expiry, extension, timeouts) over HTTP. Not an
//! example: never mount it on a real server.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use trellis_sdk::cache::{self, Lookup, Options};
use trellis_sdk::lock::{self, Lease};
use trellis_sdk::prelude::*;
use trellis_sdk::{Migration, RouteCache, params, sql};

/// Defaults of the `*_ms` query parameters.
const CACHE_TTL_MS: u64 = 60_000;
const LOCK_TTL_MS: u64 = 5_000;
const LOCK_WAIT_MS: u64 = 10_000;

/// The largest value `/kv/big/{bytes}` builds, so a typo cannot exhaust the
/// instance's memory.
const MAX_BIG: usize = 64 << 20;

fn app() -> App {
    App::new("kv", env!("CARGO_PKG_VERSION"))
        .capability("cache")
        .capability("lock")
        .migration(Migration {
            id: 1,
            name: "counters and register",
            sqlite: "CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
                     CREATE TABLE register (name TEXT PRIMARY KEY, value TEXT NOT NULL,
                                            fence INTEGER NOT NULL);",
            postgres: "CREATE TABLE counters (name TEXT PRIMARY KEY, n BIGINT NOT NULL);
                       CREATE TABLE register (name TEXT PRIMARY KEY, value TEXT NOT NULL,
                                              fence BIGINT NOT NULL);",
        })
        .get("/kv/{key}", kv_get)
        .lenient_fields()
        .put("/kv/{key}", kv_put)
        .delete("/kv/{key}", kv_delete)
        .post("/kv/tags/{tag}/invalidate", kv_invalidate)
        .post("/kv/many", kv_many)
        .get("/kv/load/{key}", kv_load)
        .get("/kv/big/{bytes}", kv_big)
        .get("/kv/render/{key}", kv_render)
        .cache(
            RouteCache::ttl(Duration::from_secs(30))
                .vary("accept-language")
                .tag("kv:{key}"),
        )
        .post("/locks/{name}/increment", lock_increment)
        .get("/locks/{name}/counter", lock_counter)
        .post("/locks/{name}/fenced", lock_fenced)
        .get("/locks/{name}/register", lock_register)
        .post("/locks/{name}/hold", lock_hold)
        .post("/locks/{name}/extend", lock_extend)
        .post("/locks/{name}/try", lock_try)
}

/// A response the host caches (30 s, varied by `accept-language`, tagged
/// `kv:{key}`): `{"key", "lang", "rendered_at"}`, so a test sees whether the
/// plugin ran.
fn kv_render(req: Request) -> Result<Response> {
    let key: String = req.param("key")?;
    let lang = req.header("accept-language").unwrap_or("").to_string();
    Response::json(&json!({ "key": key, "lang": lang, "rendered_at": now_micros() }))
}

/// `{"key": k, "value": s|null}`; a value that is not UTF-8 is shown lossily.
fn kv_get(req: Request) -> Result<Response> {
    let key: String = req.param("key")?;
    let value = cache::get(&key)?.map(text);
    Response::json(&json!({ "key": key, "value": value }))
}

/// Stores the body under `key` for `?ttl_ms=` with the tags `?tags=a,b`.
fn kv_put(req: Request) -> Result<Response> {
    let key: String = req.param("key")?;
    let mut options = Options::ttl(millis(&req, "ttl_ms", CACHE_TTL_MS)?);
    for tag in req.query("tags").unwrap_or("").split(',') {
        if !tag.is_empty() {
            options = options.tag(tag);
        }
    }
    cache::set(&key, req.body(), &options)?;
    Ok(Response::no_content())
}

fn kv_delete(req: Request) -> Result<Response> {
    let key: String = req.param("key")?;
    cache::delete(&key)?;
    Ok(Response::no_content())
}

fn kv_invalidate(req: Request) -> Result<Response> {
    let tag: String = req.param("tag")?;
    cache::invalidate_tag(&tag)?;
    Ok(Response::no_content())
}

/// Body: a JSON array of keys. `{"values": [s|null, ...]}` in key order.
fn kv_many(req: Request) -> Result<Response> {
    let keys: Vec<String> = req.json()?;
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values: Vec<Option<String>> = cache::get_many(&keys)?
        .into_iter()
        .map(|value| value.map(text))
        .collect();
    Response::json(&json!({ "values": values }))
}

/// A read-through with the low-level `fetch`. On a load it sleeps
/// `?delay_ms=` (so concurrent callers pile up behind it), then fails with
/// `?fail=1`, stores a negative entry with `?absent=1`, or else stores
/// `loaded-<micros>` for `?ttl_ms=`.
fn kv_load(req: Request) -> Result<Response> {
    let key: String = req.param("key")?;
    let delay = millis(&req, "delay_ms", 0)?;
    let fail = flag(&req, "fail")?;
    let absent = flag(&req, "absent")?;
    let options = Options::ttl(millis(&req, "ttl_ms", CACHE_TTL_MS)?);
    let loader = match cache::fetch(&key)? {
        Lookup::Hit(bytes) => {
            return Response::json(&json!({ "value": text(bytes), "loaded": false }));
        }
        Lookup::Absent => return Response::json(&json!({ "value": null, "loaded": false })),
        Lookup::Load(loader) => loader,
    };
    std::thread::sleep(delay);
    if fail {
        loader.fail("load failed");
        return Err(Error::new(503, "load failed").with_code("load_failed"));
    }
    if absent {
        loader.fill(None, &options)?;
        return Response::json(&json!({ "value": null, "loaded": true }));
    }
    let value = format!("loaded-{}", now_micros());
    loader.fill(Some(value.as_bytes()), &options)?;
    Response::json(&json!({ "value": value, "loaded": true }))
}

/// Stores a value of `{bytes}` bytes under `big`: over the host's limit, the
/// SDK's error (a 500 `cache_value_too_large`). `{"stored": bytes}` if it fits.
fn kv_big(req: Request) -> Result<Response> {
    let bytes: usize = req.param("bytes")?;
    if bytes > MAX_BIG {
        return Err(Error::bad_request(format!("at most {MAX_BIG} bytes")));
    }
    let options = Options::ttl(Duration::from_millis(CACHE_TTL_MS));
    cache::set("big", &vec![b'x'; bytes], &options)?;
    Response::json(&json!({ "stored": bytes }))
}

/// A deliberately non-atomic read-modify-write of counter `name` under lock
/// `name`: only the lock prevents lost updates. `{"token": t, "n": n}`.
fn lock_increment(req: Request) -> Result<Response> {
    let name: String = req.param("name")?;
    let ttl = millis(&req, "ttl_ms", LOCK_TTL_MS)?;
    let wait = millis(&req, "wait_ms", LOCK_WAIT_MS)?;
    lock::with_lock(&name, ttl, wait, |lease| {
        let n = counter(&name)? + 1;
        sql::execute(
            "INSERT INTO counters (name, n) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET n = excluded.n",
            &params![name.as_str(), n],
        )?;
        Response::json(&json!({ "token": lease.fencing_token(), "n": n }))
    })
}

fn lock_counter(req: Request) -> Result<Response> {
    let name: String = req.param("name")?;
    Response::json(&json!({ "n": counter(&name)? }))
}

/// Takes lock `name`, holds it `?hold_ms=` (long enough to lose it), then
/// writes `?value=` (default: the token) to the register row with the
/// fencing token. `{"token": t, "accepted": bool}`.
fn lock_fenced(req: Request) -> Result<Response> {
    let name: String = req.param("name")?;
    let lease = acquire(&req, &name, LOCK_WAIT_MS)?;
    std::thread::sleep(millis(&req, "hold_ms", 0)?);
    let token = lease.fencing_token();
    let value = req
        .query("value")
        .map_or_else(|| token.to_string(), str::to_string);
    let accepted = sql::fenced_write(
        "register",
        "name",
        name.as_str().into(),
        &[("value", value.into())],
        "fence",
        token,
    )?;
    // A stale holder's lease has run out: that is the case under test.
    if let Err(err) = lease.release()
        && err.code() != Some("lock_lost")
    {
        return Err(err);
    }
    Response::json(&json!({ "token": token, "accepted": accepted }))
}

/// `{"value": s|null, "fence": n|null}`.
fn lock_register(req: Request) -> Result<Response> {
    #[derive(Deserialize)]
    struct Register {
        value: String,
        fence: i64,
    }
    let name: String = req.param("name")?;
    let row: Option<Register> = sql::query(
        "SELECT value, fence FROM register WHERE name = $1",
        &params![name],
    )?
    .first()?;
    let (value, fence) = row.map(|r| (r.value, r.fence)).unzip();
    Response::json(&json!({ "value": value, "fence": fence }))
}

/// Takes lock `name` without waiting, sleeps `?hold_ms=` without extending,
/// then reports whether the store still records it as the holder.
fn lock_hold(req: Request) -> Result<Response> {
    let name: String = req.param("name")?;
    let ttl = millis(&req, "ttl_ms", LOCK_TTL_MS)?;
    let lease = lock::acquire(&name, ttl, Duration::ZERO)?;
    std::thread::sleep(millis(&req, "hold_ms", 0)?);
    Response::json(&json!({
        "token": lease.fencing_token(),
        "valid_until": lease.valid_until(),
        "held_after": lease.is_held()?,
    }))
}

/// Takes lock `name` for `?ttl_ms=` and extends it to twice that.
fn lock_extend(req: Request) -> Result<Response> {
    let name: String = req.param("name")?;
    let ttl = millis(&req, "ttl_ms", LOCK_TTL_MS)?;
    let lease = acquire(&req, &name, LOCK_WAIT_MS)?;
    lease.extend(ttl.saturating_mul(2))?;
    Response::json(&json!({ "token": lease.fencing_token(), "extended": true }))
}

/// Takes lock `name` (waiting `?wait_ms=`, default 0) and releases it at once.
fn lock_try(req: Request) -> Result<Response> {
    let name: String = req.param("name")?;
    let lease = acquire(&req, &name, 0)?;
    let token = lease.fencing_token();
    lease.release()?;
    Response::json(&json!({ "token": token }))
}

/// Lock `name` for `?ttl_ms=`, waiting up to `?wait_ms=` (default `wait_ms`).
fn acquire(req: &Request, name: &str, wait_ms: u64) -> Result<Lease> {
    let ttl = millis(req, "ttl_ms", LOCK_TTL_MS)?;
    let wait = millis(req, "wait_ms", wait_ms)?;
    lock::acquire(name, ttl, wait)
}

/// Counter `name`, 0 before its first increment.
fn counter(name: &str) -> Result<i64> {
    #[derive(Deserialize)]
    struct Counter {
        n: i64,
    }
    let row: Option<Counter> =
        sql::query("SELECT n FROM counters WHERE name = $1", &params![name])?.first()?;
    Ok(row.map_or(0, |r| r.n))
}

/// Query parameter `name` in milliseconds, or `default`; not a number is a 400.
fn millis(req: &Request, name: &str, default: u64) -> Result<Duration> {
    Ok(Duration::from_millis(
        req.query_as(name)?.unwrap_or(default),
    ))
}

/// Query parameter `name` as a 0/1 flag (absent: 0).
fn flag(req: &Request, name: &str) -> Result<bool> {
    Ok(req.query_as::<u8>(name)?.unwrap_or(0) != 0)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

trellis_sdk::plugin!(app);
