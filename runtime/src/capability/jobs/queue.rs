//! The job queue as the rest of the runtime sees it: a plugin's kinds and
//! schedules, enqueueing (checked, defaults applied), the SQLite outbox,
//! depth and backoff. Storage is `backend::jobs`; the workers and the
//! leader's maintenance (the top-level `jobs` module) run on top of it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use croner::Cron;

use crate::backend::jobs::{JobStore, NewJob};
use crate::backend::sql::{PluginDb, SqlError};
use crate::clock::now_ms;
use crate::config::JobsConfig;

/// Longest idempotency key, kind or queue name.
const MAX_NAME: usize = 200;

/// A job kind a plugin declares, with the host's defaults applied.
#[derive(Debug, Clone)]
pub struct KindSpec {
    /// Its queue.
    pub queue: String,
    /// Attempts before discarding.
    pub max_attempts: u32,
    /// Time one attempt may take.
    pub timeout: Duration,
    /// Default priority.
    pub priority: i16,
}

/// A cron schedule a plugin (or the operator) declares.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// Unique per plugin.
    pub name: String,
    /// The parsed expression (UTC).
    pub cron: Cron,
    /// The kind it enqueues.
    pub kind: String,
    /// The payload of each job.
    pub payload: Vec<u8>,
}

/// A plugin's job kinds and schedules, read from its `job-handler`.
#[derive(Debug, Clone, Default)]
pub struct JobKinds {
    /// By name.
    pub kinds: BTreeMap<String, KindSpec>,
    /// Its schedules.
    pub schedules: Vec<ScheduleSpec>,
}

/// How a caller wants a job run; `None` takes the kind's default.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Not before this many milliseconds from now.
    pub delay_ms: Option<u64>,
    /// Higher runs first.
    pub priority: Option<i16>,
    /// The queue.
    pub queue: Option<String>,
    /// Attempts before discarding.
    pub max_attempts: Option<u32>,
    /// Dedupes while unfinished.
    pub idempotency_key: Option<String>,
}

/// Why a job was not enqueued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnqueueError {
    /// Not a kind of this plugin.
    #[error("plugin `{plugin}` has no job kind `{kind}`")]
    UnknownKind {
        /// The plugin.
        plugin: String,
        /// The kind asked for.
        kind: String,
    },
    /// The payload is over `jobs.max_payload`.
    #[error("the payload is {size} bytes; the limit is {limit} (jobs.max_payload)")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A bad option.
    #[error("{0}")]
    Invalid(String),
    /// The queue's database does not answer.
    #[error("the job queue is unavailable: {0}")]
    Unavailable(String),
}

impl From<SqlError> for EnqueueError {
    fn from(err: SqlError) -> Self {
        match err {
            SqlError::Constraint(m) => EnqueueError::Invalid(m),
            other => EnqueueError::Unavailable(other.to_string()),
        }
    }
}

/// The queue as the rest of the runtime sees it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: JobStore,
    config: JobsConfig,
    /// Wakes this node's idle workers at once after a local enqueue.
    wake: Arc<tokio::sync::Notify>,
}

impl Jobs {
    /// The queue on `store` under `config`.
    pub fn new(store: JobStore, config: JobsConfig) -> Jobs {
        Jobs {
            inner: Arc::new(Inner {
                store,
                config,
                wake: Arc::new(tokio::sync::Notify::new()),
            }),
        }
    }

    /// The storage.
    pub fn store(&self) -> &JobStore {
        &self.inner.store
    }

    /// `[jobs]`.
    pub fn config(&self) -> &JobsConfig {
        &self.inner.config
    }

    /// What idle workers wait on.
    pub(crate) fn wake(&self) -> &Arc<tokio::sync::Notify> {
        &self.inner.wake
    }

    /// A job of `plugin`'s `kind`, checked and with defaults applied,
    /// ready to insert (or to put in a transaction).
    pub fn prepare(
        &self,
        plugin: &str,
        kinds: &JobKinds,
        kind: &str,
        payload: Vec<u8>,
        options: EnqueueOptions,
        trace: Option<String>,
    ) -> Result<NewJob, EnqueueError> {
        let spec = kinds
            .kinds
            .get(kind)
            .ok_or_else(|| EnqueueError::UnknownKind {
                plugin: plugin.to_string(),
                kind: kind.to_string(),
            })?;
        let limit = self.inner.config.max_payload.as_u64();
        if payload.len() as u64 > limit {
            return Err(EnqueueError::TooLarge {
                size: payload.len() as u64,
                limit,
            });
        }
        let queue = options.queue.unwrap_or_else(|| spec.queue.clone());
        if !valid_queue(&queue) {
            return Err(EnqueueError::Invalid(format!(
                "queue `{queue}`: 1 to 64 of a-z, 0-9, `-` and `_`"
            )));
        }
        if let Some(key) = &options.idempotency_key
            && (key.is_empty() || key.len() > MAX_NAME)
        {
            return Err(EnqueueError::Invalid(format!(
                "an idempotency key is 1 to {MAX_NAME} bytes"
            )));
        }
        let max_attempts = options.max_attempts.unwrap_or(spec.max_attempts);
        if max_attempts == 0 {
            return Err(EnqueueError::Invalid(
                "max-attempts must be at least 1".into(),
            ));
        }
        let now = now_ms() as i64;
        let delay = options.delay_ms.unwrap_or(0).min(i64::MAX as u64 / 2) as i64;
        Ok(NewJob {
            id: new_id(),
            plugin: plugin.to_string(),
            kind: kind.to_string(),
            queue,
            priority: i64::from(options.priority.unwrap_or(spec.priority)),
            payload,
            max_attempts: i64::from(max_attempts),
            run_at: now.saturating_add(delay),
            idempotency_key: options.idempotency_key,
            unique_key: None,
            trace,
            created_at: now,
        })
    }

    /// Inserts prepared jobs and wakes this node's workers. Returns each
    /// one's id (the first job's, for a duplicate idempotency key).
    pub async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<String>, EnqueueError> {
        let ids = self.inner.store.insert(jobs).await?;
        self.inner.wake.notify_waiters();
        ids.into_iter()
            .zip(jobs)
            .map(|(id, job)| {
                id.ok_or_else(|| {
                    EnqueueError::Unavailable(format!(
                        "job {} collided with a job that finished meanwhile; enqueue again",
                        job.id
                    ))
                })
            })
            .collect()
    }

    /// Moves jobs committed to a SQLite plugin file's outbox into the
    /// queue (a no-op on PostgreSQL). Safe to repeat: a job already
    /// queued is not queued twice.
    pub async fn forward_outbox(&self, db: &PluginDb) -> Result<usize, SqlError> {
        let jobs = db.outbox().await?;
        if jobs.is_empty() {
            return Ok(0);
        }
        self.inner.store.insert(&jobs).await?;
        let ids: Vec<String> = jobs.into_iter().map(|j| j.id).collect();
        db.outbox_forwarded(&ids).await?;
        self.inner.wake.notify_waiters();
        Ok(ids.len())
    }

    /// Jobs per queue and state, now.
    pub async fn depth(&self) -> Result<BTreeMap<String, BTreeMap<String, i64>>, SqlError> {
        let mut depth: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for (queue, state, n) in self.inner.store.depth().await? {
            depth.entry(queue).or_default().insert(state, n);
        }
        Ok(depth)
    }

    /// Jobs waiting (available, scheduled or retryable) in every queue.
    pub async fn waiting(&self) -> Result<i64, SqlError> {
        Ok(self
            .inner
            .store
            .depth()
            .await?
            .iter()
            .filter(|(_, state, _)| {
                matches!(state.as_str(), "available" | "scheduled" | "retryable")
            })
            .map(|(_, _, n)| n)
            .sum())
    }

    /// The delay before attempt `attempt + 1` after a failure: doubling
    /// from `backoff_base`, capped at `backoff_max`, with ±25 % jitter.
    pub fn backoff(&self, attempt: u32, seed: &str) -> Duration {
        let config = &self.inner.config;
        let doubled = config
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(30));
        let base = doubled.min(config.backoff_max);
        let jitter = jitter(seed, attempt);
        base.mul_f64(0.75 + jitter * 0.5)
    }
}

/// A number in [0, 1) that differs per job and attempt.
fn jitter(seed: &str, attempt: u32) -> f64 {
    use std::hash::BuildHasher;
    let hash = std::collections::hash_map::RandomState::new().hash_one((seed, attempt));
    (hash % 10_000) as f64 / 10_000.0
}

/// A new job id: a UUIDv7, so ids sort in enqueue order.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub use crate::config::jobs::{parse_cron, valid_queue};
