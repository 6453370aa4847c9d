//! Background jobs: declare kinds with [`App::job`](crate::App::job), run
//! them in a handler, enqueue them from routes (or other jobs) with
//! [`enqueue`], or inside a transaction with [`enqueue_in`] so the job
//! exists only if the transaction commits. Enqueueing needs the `jobs`
//! capability.
//!
//! Jobs run **at least once**: a job whose worker dies runs again (its
//! [`Job::attempt`] says which attempt this is), so a handler must be safe
//! to repeat, e.g. by writing with an upsert keyed by the job id.
//!
//! ```no_run
//! use trellis_sdk::jobs::{self, Job, JobError, Kind, Options};
//! use trellis_sdk::prelude::*;
//!
//! fn app() -> App {
//!     App::new("notes", "1.0.0")
//!         .capability("jobs")
//!         .job(Kind::new("index-note").max_attempts(3), index_note)
//!         .schedule("nightly-digest", "0 3 * * *", "digest", b"{}")
//!         .post("/notes/{id}/index", index_later)
//! }
//!
//! fn index_note(job: Job) -> Result<Vec<u8>, JobError> {
//!     let input: serde_json::Value = job.json()?;
//!     // ... write the index with an upsert keyed by job.id ...
//!     Ok(Vec::new())
//! }
//!
//! fn index_later(req: Request) -> Result<Response> {
//!     let id: i64 = req.param("id")?;
//!     jobs::enqueue_json("index-note", &serde_json::json!({ "id": id }), Options::new())?;
//!     Ok(Response::new(202))
//! }
//! ```

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::exports::trellis::plugin::job_handler as raw;
use crate::bindings::trellis::plugin::jobs as host;
pub use crate::bindings::trellis::plugin::jobs::Error as EnqueueError;
use crate::{Error, Result};

/// A job handler: a plain function from [`Job`] to its result bytes.
pub type JobHandler = fn(Job) -> std::result::Result<Vec<u8>, JobError>;

/// A kind of job and its defaults.
#[derive(Debug, Clone)]
pub struct Kind {
    pub(crate) name: String,
    pub(crate) queue: String,
    pub(crate) max_attempts: u32,
    pub(crate) timeout: Duration,
    pub(crate) priority: i16,
}

impl Kind {
    /// A kind in the `default` queue with the host's attempts and timeout.
    pub fn new(name: impl Into<String>) -> Self {
        Kind {
            name: name.into(),
            queue: String::new(),
            max_attempts: 0,
            timeout: Duration::ZERO,
            priority: 0,
        }
    }

    /// Its jobs go to `queue` (workers run queues the operator lists).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Attempts before a failing job is discarded.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Time one attempt may take (the host's `jobs.timeout` otherwise).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Default priority: higher runs first.
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    pub(crate) fn to_raw(&self) -> raw::JobKind {
        raw::JobKind {
            name: self.name.clone(),
            queue: self.queue.clone(),
            max_attempts: self.max_attempts,
            timeout_ms: u32::try_from(self.timeout.as_millis()).unwrap_or(u32::MAX),
            priority: self.priority,
        }
    }
}

/// One attempt at a job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its id; stable across attempts, so a good key for idempotent writes.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// The payload it was enqueued with.
    pub payload: Vec<u8>,
    /// 1 on the first attempt.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The key it was enqueued with, if any.
    pub idempotency_key: Option<String>,
    /// When it was enqueued, milliseconds since the Unix epoch.
    pub enqueued_at: u64,
}

impl Job {
    pub(crate) fn from_raw(job: raw::Job) -> Self {
        Job {
            id: job.id,
            kind: job.kind,
            payload: job.payload,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            idempotency_key: job.idempotency_key,
            enqueued_at: job.enqueued_at,
        }
    }

    /// The payload as JSON; a payload that does not parse is a
    /// [`JobError::Fatal`] (retrying cannot fix it).
    pub fn json<T: DeserializeOwned>(&self) -> std::result::Result<T, JobError> {
        serde_json::from_slice(&self.payload)
            .map_err(|e| JobError::Fatal(format!("the payload is not the expected JSON: {e}")))
    }

    /// Whether this is the last attempt allowed.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// How an attempt ended other than in success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Failed: retried after exponential backoff, or discarded after the
    /// last attempt.
    Failed(String),
    /// Failed: retried no sooner than the delay (an attempt spent).
    RetryIn(Duration, String),
    /// Failed for good: discarded now.
    Fatal(String),
    /// Not failed: run again after the delay, without spending an attempt.
    Snooze(Duration),
}

/// Any SDK error (a failed query, a cache or lock error) fails the attempt
/// and is retried, except 4xx errors (bad input), which are fatal.
impl From<Error> for JobError {
    fn from(err: Error) -> Self {
        if (400..500).contains(&err.status()) {
            JobError::Fatal(err.detail().to_string())
        } else {
            JobError::Failed(err.detail().to_string())
        }
    }
}

impl From<crate::sql::SqlError> for JobError {
    fn from(err: crate::sql::SqlError) -> Self {
        Error::from(err).into()
    }
}

impl JobError {
    pub(crate) fn into_raw(self) -> raw::JobError {
        match self {
            JobError::Failed(m) => raw::JobError::Failed(m),
            JobError::RetryIn(delay, message) => raw::JobError::RetryIn(raw::Retry {
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                message,
            }),
            JobError::Fatal(m) => raw::JobError::Fatal(m),
            JobError::Snooze(delay) => {
                raw::JobError::Snooze(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
            }
        }
    }
}

/// How and when an enqueued job runs; unset fields take the kind's
/// defaults.
#[derive(Debug, Clone)]
pub struct Options {
    raw: host::EnqueueOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            raw: host::EnqueueOptions {
                delay_ms: None,
                priority: None,
                queue: None,
                max_attempts: None,
                idempotency_key: None,
            },
        }
    }
}

impl Options {
    /// The kind's defaults, to run now.
    pub fn new() -> Self {
        Options::default()
    }

    /// Run no earlier than `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.raw.delay_ms = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Higher runs first within its queue.
    pub fn priority(mut self, priority: i16) -> Self {
        self.raw.priority = Some(priority);
        self
    }

    /// Another queue than the kind's.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.raw.queue = Some(queue.into());
        self
    }

    /// Attempts before discarding.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.raw.max_attempts = Some(attempts);
        self
    }

    /// While a job with `key` is unfinished, enqueueing it again returns
    /// that job's id instead of a new job.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.raw.idempotency_key = Some(key.into());
        self
    }
}

/// Enqueues a job of one of this plugin's kinds; returns its id.
///
/// Errors: an undeclared kind, an oversized payload or a bad option is a
/// 500 (`job_invalid`, the plugin's bug); an unreachable queue a 503
/// `job_queue_unavailable` with `retry-after: 1`.
pub fn enqueue(kind: &str, payload: &[u8], options: Options) -> Result<String> {
    Ok(host::enqueue(kind, payload, &options.raw)?)
}

/// [`enqueue`] with a JSON payload.
pub fn enqueue_json<T: Serialize>(kind: &str, payload: &T, options: Options) -> Result<String> {
    let bytes =
        serde_json::to_vec(payload).map_err(|e| Error::internal(format!("job payload: {e}")))?;
    enqueue(kind, &bytes, options)
}

/// Enqueues a job that exists only if `tx` commits (a rolled-back or
/// dropped transaction leaves no job).
pub fn enqueue_in(
    tx: &crate::sql::Transaction,
    kind: &str,
    payload: &[u8],
    options: Options,
) -> Result<String> {
    Ok(host::enqueue_in(tx.raw(), kind, payload, &options.raw)?)
}

impl From<EnqueueError> for Error {
    fn from(err: EnqueueError) -> Self {
        match err {
            EnqueueError::Unavailable(message) => {
                Error::new(503, format!("jobs: the queue does not answer: {message}"))
                    .with_code("job_queue_unavailable")
                    .with_header("retry-after", "1")
            }
            EnqueueError::UnknownKind(kind) => {
                Error::internal(format!("jobs: `{kind}` is not a kind this plugin declares"))
                    .with_code("job_invalid")
            }
            EnqueueError::TooLarge(limit) => Error::internal(format!(
                "jobs: the payload is over the limit of {limit} bytes"
            ))
            .with_code("job_invalid"),
            EnqueueError::Invalid(message) => {
                Error::internal(format!("jobs: {message}")).with_code("job_invalid")
            }
        }
    }
}
