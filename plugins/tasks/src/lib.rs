//! A test plugin over the `jobs` capability: routes that enqueue (plainly
//! or inside a transaction), job kinds that succeed, fail, time out,
//! snooze or spin, and a `runs` table where every attempt leaves a row, so
//! the runtime's tests can check delivery (exactly once without failures,
//! at least once with them), retries, ordering and concurrency over HTTP.
//! Not an example: never mount it on a real server.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::json;
use trellis_sdk::jobs::{self, Job, JobError, Kind, Options};
use trellis_sdk::prelude::*;
use trellis_sdk::{Migration, params, sql};

fn app() -> App {
    App::new("tasks", env!("CARGO_PKG_VERSION"))
        .capability("jobs")
        .migration(Migration {
            id: 1,
            name: "runs and marks",
            sqlite:
                "CREATE TABLE runs (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL,
                                        kind TEXT NOT NULL, attempt INTEGER NOT NULL,
                                        started INTEGER NOT NULL, finished INTEGER);
                     CREATE TABLE marks (id TEXT PRIMARY KEY);",
            postgres: "CREATE TABLE runs (seq BIGSERIAL PRIMARY KEY, job_id TEXT NOT NULL,
                                          kind TEXT NOT NULL, attempt BIGINT NOT NULL,
                                          started BIGINT NOT NULL, finished BIGINT);
                       CREATE TABLE marks (id TEXT PRIMARY KEY);",
        })
        .job(Kind::new("noop"), noop)
        .job(Kind::new("record"), record)
        .job(Kind::new("flaky").max_attempts(4), flaky)
        .job(Kind::new("fatal").max_attempts(5), fatal)
        .job(Kind::new("spin").max_attempts(3), spin)
        .job(
            Kind::new("timeboxed")
                .max_attempts(2)
                .timeout(Duration::from_millis(300)),
            spin,
        )
        .job(Kind::new("snooze"), snooze)
        .job(Kind::new("serial").queue("serial"), spin)
        .post("/tasks/enqueue/{kind}", enqueue)
        .post("/tasks/many/{kind}", enqueue_many)
        .post("/tasks/tx/{kind}", enqueue_in_tx)
        .get("/tasks/runs", runs)
        .get("/tasks/runs/{job}", runs_of)
}

/// Enqueues `{kind}` with the body as payload; `?delay_ms= &priority=
/// &queue= &key= &max_attempts=`. → `{"id"}`.
fn enqueue(req: Request) -> Result<Response> {
    let kind: String = req.param("kind")?;
    let id = jobs::enqueue(&kind, req.body(), options(&req)?)?;
    Response::json(&json!({ "id": id }))
}

/// Enqueues `?n=` jobs of `{kind}` (at most 5,000) with the body as
/// payload, one host call each. → `{"ids": n}`.
fn enqueue_many(req: Request) -> Result<Response> {
    let kind: String = req.param("kind")?;
    let n: usize = req
        .query("n")
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=5000).contains(n))
        .ok_or_else(|| Error::bad_request("n must be 1 to 5000"))?;
    for _ in 0..n {
        jobs::enqueue(&kind, req.body(), Options::new())?;
    }
    Response::json(&json!({ "ids": n }))
}

/// In one transaction: marks `?mark=` and enqueues `{kind}`; commits when
/// `?commit=true`, else drops the transaction (a rollback). → `{"id"}`.
fn enqueue_in_tx(req: Request) -> Result<Response> {
    let kind: String = req.param("kind")?;
    let mark = req.query("mark").unwrap_or("mark").to_string();
    let tx = sql::begin()?;
    tx.execute(
        "INSERT INTO marks (id) VALUES ($1)",
        &params![mark.as_str()],
    )?;
    let id = jobs::enqueue_in(&tx, &kind, req.body(), options(&req)?)?;
    if req.query("commit") == Some("true") {
        tx.commit()?;
    }
    Response::json(&json!({ "id": id }))
}

fn options(req: &Request) -> Result<Options> {
    let number = |name: &str| -> Result<Option<u64>> {
        req.query(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::bad_request(format!("{name} must be a number")))
            })
            .transpose()
    };
    let mut options = Options::new();
    if let Some(ms) = number("delay_ms")? {
        options = options.delay(Duration::from_millis(ms));
    }
    if let Some(p) = number("priority")? {
        options = options.priority(i16::try_from(p).unwrap_or(i16::MAX));
    }
    if let Some(n) = number("max_attempts")? {
        options = options.max_attempts(u32::try_from(n).unwrap_or(u32::MAX));
    }
    if let Some(queue) = req.query("queue") {
        options = options.queue(queue);
    }
    if let Some(key) = req.query("key") {
        options = options.idempotency_key(key);
    }
    Ok(options)
}

/// `{"runs": n, "jobs": distinct job ids, "overlaps": pairs of runs of
/// one queue-serial kind that overlapped in time}`.
fn runs(_req: Request) -> Result<Response> {
    let rows = sql::query(
        "SELECT count(*) AS runs, count(DISTINCT job_id) AS jobs FROM runs",
        &[],
    )?;
    let (runs, jobs) = (int(&rows, "runs")?, int(&rows, "jobs")?);
    let overlaps = sql::query(
        "SELECT count(*) AS n FROM runs a JOIN runs b ON a.seq < b.seq \
         WHERE a.kind = 'serial' AND b.kind = 'serial' AND a.finished IS NOT NULL \
           AND b.finished IS NOT NULL AND a.started < b.finished AND b.started < a.finished",
        &[],
    )?;
    let overlaps = int(&overlaps, "n")?;
    Response::json(&json!({ "runs": runs, "jobs": jobs, "overlaps": overlaps }))
}

/// The attempts of one job, in order: `[{"attempt", "kind", "seq"}]`.
fn runs_of(req: Request) -> Result<Response> {
    let job: String = req.param("job")?;
    let rows = sql::query(
        "SELECT seq, kind, attempt, finished FROM runs WHERE job_id = $1 ORDER BY seq",
        &params![job.as_str()],
    )?;
    let runs: Vec<serde_json::Value> = rows.decode()?;
    Response::json(&json!({ "runs": runs }))
}

/// Leaves a row for this attempt; returns its `seq`.
fn started(job: &Job) -> std::result::Result<i64, JobError> {
    let rows = sql::query(
        "INSERT INTO runs (job_id, kind, attempt, started) VALUES ($1, $2, $3, $4) RETURNING seq",
        &params![
            job.id.as_str(),
            job.kind.as_str(),
            i64::from(job.attempt),
            now_ms()
        ],
    )?;
    Ok(int(&rows, "seq")?)
}

fn finished(seq: i64) -> std::result::Result<(), JobError> {
    sql::execute(
        "UPDATE runs SET finished = $1 WHERE seq = $2",
        &params![now_ms(), seq],
    )?;
    Ok(())
}

fn noop(_job: Job) -> std::result::Result<Vec<u8>, JobError> {
    Ok(Vec::new())
}

fn record(job: Job) -> std::result::Result<Vec<u8>, JobError> {
    let seq = started(&job)?;
    finished(seq)?;
    Ok(serde_json::to_vec(&json!({ "seq": seq })).unwrap_or_default())
}

#[derive(Deserialize)]
struct FlakyInput {
    fail_times: u32,
}

/// Fails its first `fail_times` attempts.
fn flaky(job: Job) -> std::result::Result<Vec<u8>, JobError> {
    let input: FlakyInput = job.json()?;
    let seq = started(&job)?;
    if job.attempt <= input.fail_times {
        return Err(JobError::RetryIn(
            Duration::from_millis(50),
            format!("flaky: attempt {} fails on purpose", job.attempt),
        ));
    }
    finished(seq)?;
    Ok(format!("\"ok after {} attempts\"", job.attempt).into_bytes())
}

fn fatal(job: Job) -> std::result::Result<Vec<u8>, JobError> {
    started(&job)?;
    Err(JobError::Fatal("fatal: this job can never succeed".into()))
}

#[derive(Deserialize)]
struct SpinInput {
    ms: u64,
    /// Spin only on the first attempt (later ones finish at once).
    #[serde(default)]
    first_only: bool,
}

/// Busy for `ms` milliseconds (a CPU loop: only the host's deadline or a
/// cancellation stops it early).
fn spin(job: Job) -> std::result::Result<Vec<u8>, JobError> {
    let input: SpinInput = job.json()?;
    let seq = started(&job)?;
    if !(input.first_only && job.attempt > 1) {
        let until = Instant::now() + Duration::from_millis(input.ms);
        let mut x = 0u64;
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
    finished(seq)?;
    Ok(Vec::new())
}

/// Snoozes the first time it runs, then succeeds.
fn snooze(job: Job) -> std::result::Result<Vec<u8>, JobError> {
    let before = sql::query(
        "SELECT count(*) AS n FROM runs WHERE job_id = $1",
        &params![job.id.as_str()],
    )?;
    let n = int(&before, "n")?;
    let seq = started(&job)?;
    if n == 0 {
        return Err(JobError::Snooze(Duration::from_millis(200)));
    }
    finished(seq)?;
    Ok(Vec::new())
}

/// Column `name` of the first row, as an integer.
fn int(rows: &sql::Rows, name: &str) -> Result<i64> {
    let row: Option<serde_json::Value> = rows.first()?;
    row.as_ref()
        .and_then(|r| r.get(name))
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| Error::internal(format!("no integer column `{name}`")))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

trellis_sdk::plugin!(app);
