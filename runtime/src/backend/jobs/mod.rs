//! The job queue's storage: the runtime's own tables on the deployment's
//! database engine. SQLite (`<data_dir>/jobs.db`, the embedded default) or
//! PostgreSQL (the runtime's schema, claimed with `FOR UPDATE SKIP LOCKED`
//! and woken with `LISTEN/NOTIFY`). One API over both; the worker, the
//! leader's maintenance and the job API above it do not know which.
//!
//! Times are milliseconds since the Unix epoch, taken from the node's clock
//! (nodes sharing a database are expected to keep their clocks in sync, as
//! lock leases already require).
//!
//! `job.rs` holds the types stored and answered, `queries.rs` the queries
//! both engines run alike, `postgres.rs` and `sqlite.rs` what each does its
//! own way; this file the [`JobStore`] that dispatches to them.
//!
//! Layer: backend (the job tables). It may call sqlx and the sql backend's
//! error mapping; the job workers and the job API above use it.

mod job;
mod postgres;
mod queries;
mod sqlite;

use std::sync::Arc;

use crate::backend::sql::SqlError;

pub use job::{Filter, Finish, Job, NewJob, Rescued, STATES};
pub(crate) use postgres::{
    SCHEMA as POSTGRES_SCHEMA, ddl as postgres_ddl, grant as postgres_grant,
};
use queries::{push_filter, same_on_both};

/// States a worker may claim from (once `run_at` has come).
const WAITING: &str = "('available', 'scheduled', 'retryable')";

/// States of a job that is over; its idempotency key is free again.
const FINISHED: &str = "('completed', 'discarded', 'cancelled')";

/// The columns of [`Job`], in order.
const COLUMNS: &str = "id, plugin, kind, queue, priority, state, payload, attempt, max_attempts, \
     run_at, idempotency_key, unique_key, trace, worker, cancel_requested, errors, result, \
     created_at, attempted_at, lease_until, finished_at";

/// Rows per `INSERT` statement.
const INSERT_CHUNK: usize = 500;

/// The queue on one engine. Cheap to clone.
#[derive(Debug, Clone)]
pub enum JobStore {
    /// `<data_dir>/jobs.db`.
    Sqlite(Arc<sqlite::Queue>),
    /// The runtime's schema in PostgreSQL.
    Postgres(Arc<postgres::Queue>),
}

macro_rules! dispatch {
    ($self:ident, $q:ident => $call:expr) => {
        match $self {
            JobStore::Sqlite($q) => $call,
            JobStore::Postgres($q) => $q.breaker.guard_sql(async { $call }).await,
        }
    };
}

impl JobStore {
    /// The queue in `<dir>/jobs.db`, created if new.
    pub async fn sqlite(
        dir: &std::path::Path,
        busy: std::time::Duration,
    ) -> Result<Self, SqlError> {
        Ok(JobStore::Sqlite(Arc::new(
            sqlite::Queue::open(dir, busy).await?,
        )))
    }

    /// The queue in the runtime's PostgreSQL schema (made by the sql
    /// backend's startup), on a pool of its own.
    pub async fn postgres(
        options: sqlx::postgres::PgConnectOptions,
        namespace: &str,
        connections: u32,
        acquire_timeout: std::time::Duration,
        breaker: crate::backend::sql::Breaker,
    ) -> Result<Self, SqlError> {
        Ok(JobStore::Postgres(Arc::new(
            postgres::Queue::open(options, namespace, connections, acquire_timeout, breaker)
                .await?,
        )))
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self {
            JobStore::Sqlite(_) => "sqlite",
            JobStore::Postgres(_) => "postgres",
        }
    }

    /// Inserts jobs in one statement; returns each one's id, or for a
    /// duplicate idempotency key the id of the unfinished job holding it
    /// (and for a duplicate unique key, `None`).
    pub async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<Option<String>>, SqlError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut inserted = Vec::with_capacity(jobs.len());
        // 13 parameters a row: well within both engines' limits per chunk.
        for chunk in jobs.chunks(INSERT_CHUNK) {
            inserted.extend(dispatch!(self, q => q.insert(chunk).await)?);
        }
        let mut ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            if inserted.contains(&job.id) {
                ids.push(Some(job.id.clone()));
            } else if let Some(key) = &job.idempotency_key {
                ids.push(self.holder(&job.plugin, key).await?);
            } else {
                ids.push(None);
            }
        }
        Ok(ids)
    }

    /// The unfinished job of `plugin` holding idempotency key `key`.
    pub async fn holder(&self, plugin: &str, key: &str) -> Result<Option<String>, SqlError> {
        dispatch!(self, q => q.holder(plugin, key).await)
    }

    /// Claims up to `limit` waiting jobs of `queue` whose time has come,
    /// highest priority first, for `worker`: each becomes `running` with
    /// one more attempt and a lease until `lease_until`.
    pub async fn claim(
        &self,
        queue: &str,
        worker: &str,
        limit: u32,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<Job>, SqlError> {
        let mut claimed =
            dispatch!(self, q => q.claim(queue, worker, limit, now, lease_until).await)?;
        // RETURNING gives no order; run the most urgent first.
        claimed.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        Ok(claimed)
    }

    /// Records `worker`'s successes in one statement (PostgreSQL) or one
    /// transaction (SQLite). An entry whose job was meanwhile rescued,
    /// handed back or cancelled (not running this attempt on this worker)
    /// is skipped.
    pub async fn complete(
        &self,
        done: &[(String, i64, Vec<u8>)],
        worker: &str,
        now: i64,
    ) -> Result<(), SqlError> {
        if done.is_empty() {
            return Ok(());
        }
        dispatch!(self, q => q.complete(done, worker, now).await)
    }

    /// Records how attempt `attempt` of job `id` on `worker` ended. False
    /// when the job was no longer that attempt there (rescued meanwhile).
    pub async fn finish(
        &self,
        id: &str,
        attempt: i64,
        worker: &str,
        finish: &Finish,
        now: i64,
    ) -> Result<bool, SqlError> {
        let error = finish.columns().3.map(|message| {
            serde_json::json!({"attempt": attempt, "at": now, "error": message}).to_string()
        });
        dispatch!(self, q => q.finish(id, (attempt, worker), finish, error.as_deref(), now).await)
    }

    /// Marks `worker` alive; returns the ids of its running jobs that were
    /// asked to cancel.
    pub async fn heartbeat(&self, worker: &str, now: i64) -> Result<Vec<String>, SqlError> {
        dispatch!(self, q => q.heartbeat(worker, now).await)
    }

    /// Forgets `worker` (it stopped cleanly).
    pub async fn retire(&self, worker: &str) -> Result<(), SqlError> {
        dispatch!(self, q => q.retire(worker).await)
    }

    /// Running jobs whose worker has not beaten since `dead_before`, or
    /// whose lease ran out, go back to the queue (or are discarded when
    /// that was their last attempt).
    pub async fn rescue(&self, now: i64, dead_before: i64) -> Result<Rescued, SqlError> {
        let error = serde_json::json!({
            "at": now,
            "error": "the worker running it stopped answering (rescued)"
        })
        .to_string();
        dispatch!(self, q => q.rescue(now, dead_before, &error).await)
    }

    /// Deletes completed and cancelled jobs finished before `before`.
    pub async fn prune(&self, before: i64) -> Result<u64, SqlError> {
        dispatch!(self, q => q.prune(before).await)
    }

    /// One job.
    pub async fn get(&self, id: &str) -> Result<Option<Job>, SqlError> {
        dispatch!(self, q => q.get(id).await)
    }

    /// Jobs matching `filter`, by id (enqueue order).
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Job>, SqlError> {
        dispatch!(self, q => q.list(filter).await)
    }

    /// Cancels a waiting job at once, or asks a running one to stop.
    /// Returns the job as it is now.
    pub async fn cancel(&self, id: &str, now: i64) -> Result<Option<Job>, SqlError> {
        dispatch!(self, q => q.cancel(id, now).await)?;
        self.get(id).await
    }

    /// Runs a discarded or cancelled job again from attempt 1 (its errors
    /// are kept). Returns the job as it is now.
    pub async fn retry(&self, id: &str, now: i64) -> Result<Option<Job>, SqlError> {
        dispatch!(self, q => q.retry(id, now).await)?;
        self.get(id).await
    }

    /// Jobs per (queue, state).
    pub async fn depth(&self) -> Result<Vec<(String, String, i64)>, SqlError> {
        dispatch!(self, q => q.depth().await)
    }

    /// Waits for a PostgreSQL notification that jobs were inserted (woken
    /// with `LISTEN`); on SQLite, never completes (workers poll, and the
    /// enqueuing node wakes its own workers).
    pub async fn listen(&self, wake: Arc<tokio::sync::Notify>) {
        match self {
            JobStore::Sqlite(_) => std::future::pending().await,
            JobStore::Postgres(q) => q.listen(wake).await,
        }
    }
}
