//! What the queue stores and answers: a job to insert, a stored job (and
//! how it is read from a row), how an attempt ended, the job API's filter,
//! and what the rescuer did.
//!
//! Layer: backend (the job tables). It may call sqlx and the sql backend's
//! error mapping; the job workers and the job API above use it.

use serde::Serialize;

/// Every state a job can be in.
pub const STATES: &[&str] = &[
    "scheduled",
    "available",
    "running",
    "retryable",
    "completed",
    "discarded",
    "cancelled",
];

/// A job to insert.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct NewJob {
    /// A UUIDv7 (time-ordered), made by the enqueuer.
    pub id: String,
    /// The plugin whose `job-handler` runs it.
    pub plugin: String,
    /// One of the plugin's kinds.
    pub kind: String,
    /// The queue it waits in.
    pub queue: String,
    /// Higher runs first.
    pub priority: i64,
    /// The handler's input.
    pub payload: Vec<u8>,
    /// Attempts before it is discarded.
    pub max_attempts: i64,
    /// Not before this time.
    pub run_at: i64,
    /// Dedupes enqueues while the first job is not finished.
    pub idempotency_key: Option<String>,
    /// Dedupes forever (scheduled ticks).
    pub unique_key: Option<String>,
    /// The enqueuer's `traceparent`.
    pub trace: Option<String>,
    /// When it was enqueued.
    pub created_at: i64,
}

impl NewJob {
    /// The state it starts in: `available`, or `scheduled` for later.
    pub(super) fn state(&self) -> &'static str {
        if self.run_at > self.created_at {
            "scheduled"
        } else {
            "available"
        }
    }
}

/// A stored job.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Its id (UUIDv7).
    pub id: String,
    /// The plugin that runs it.
    pub plugin: String,
    /// Its kind.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// Higher runs first.
    pub priority: i64,
    /// One of [`STATES`].
    pub state: String,
    /// The handler's input.
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// Attempts started so far (the running one included).
    pub attempt: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// When it may (next) run.
    pub run_at: i64,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// Its unique key (scheduled ticks).
    pub unique_key: Option<String>,
    /// The enqueuer's `traceparent`.
    #[serde(skip)]
    pub trace: Option<String>,
    /// The worker running it.
    pub worker: Option<String>,
    /// Cancellation asked while it runs.
    pub cancel_requested: bool,
    /// JSON array of `{attempt, at, error}`.
    #[serde(skip)]
    pub errors: String,
    /// What the last successful attempt returned.
    #[serde(skip)]
    pub result: Option<Vec<u8>>,
    /// When it was enqueued.
    pub created_at: i64,
    /// When its last attempt started.
    pub attempted_at: Option<i64>,
    /// While running: when the attempt's lease ends (a backstop; a live
    /// worker ends it long before).
    pub lease_until: Option<i64>,
    /// When it completed, was discarded or cancelled.
    pub finished_at: Option<i64>,
}

impl<'r, R> sqlx::FromRow<'r, R> for Job
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Job {
            id: row.try_get("id")?,
            plugin: row.try_get("plugin")?,
            kind: row.try_get("kind")?,
            queue: row.try_get("queue")?,
            priority: row.try_get("priority")?,
            state: row.try_get("state")?,
            payload: row.try_get("payload")?,
            attempt: row.try_get("attempt")?,
            max_attempts: row.try_get("max_attempts")?,
            run_at: row.try_get("run_at")?,
            idempotency_key: row.try_get("idempotency_key")?,
            unique_key: row.try_get("unique_key")?,
            trace: row.try_get("trace")?,
            worker: row.try_get("worker")?,
            cancel_requested: row.try_get("cancel_requested")?,
            errors: row.try_get("errors")?,
            result: row.try_get("result")?,
            created_at: row.try_get("created_at")?,
            attempted_at: row.try_get("attempted_at")?,
            lease_until: row.try_get("lease_until")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

/// How an attempt ended, as stored.
#[derive(Debug, Clone)]
pub enum Finish {
    /// Done; the bytes are its result.
    Completed(Vec<u8>),
    /// Failed; runs again at `at`.
    Retry {
        /// When.
        at: i64,
        /// Why it failed.
        error: String,
    },
    /// Failed for good (fatal, or attempts exhausted).
    Discard(String),
    /// Not failed: runs again at this time, the attempt given back.
    Snooze(i64),
    /// Handed back unfinished (its worker is shutting down): runs again at
    /// this time. The attempt stays spent, so the next run is a higher
    /// attempt and the handler can tell it is a repeat.
    HandBack(i64),
    /// Stopped by a cancellation.
    Cancelled,
}

impl Finish {
    /// (state, run_at, result, error, attempt change).
    pub(super) fn columns(&self) -> (&'static str, Option<i64>, Option<&[u8]>, Option<&str>, i64) {
        match self {
            Finish::Completed(result) => ("completed", None, Some(result), None, 0),
            Finish::Retry { at, error } => ("retryable", Some(*at), None, Some(error), 0),
            Finish::Discard(error) => ("discarded", None, None, Some(error), 0),
            Finish::Snooze(at) => ("scheduled", Some(*at), None, None, -1),
            Finish::HandBack(at) => (
                "scheduled",
                Some(*at),
                None,
                Some("handed back unfinished: its worker shut down"),
                0,
            ),
            Finish::Cancelled => ("cancelled", None, None, Some("cancelled while running"), 0),
        }
    }

    pub(super) fn is_final(&self) -> bool {
        matches!(
            self,
            Finish::Completed(_) | Finish::Discard(_) | Finish::Cancelled
        )
    }
}

/// What the job API lists.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this state.
    pub state: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this plugin's jobs.
    pub plugin: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Ids after this one (the cursor).
    pub after: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// What the rescuer did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rescued {
    /// Jobs of dead workers or past their lease, set to run again.
    pub retried: u64,
    /// Of those, jobs with no attempt left, discarded.
    pub discarded: u64,
}
