//! The job queue's storage: the runtime's own tables on the deployment's
//! database engine. SQLite (`<data_dir>/jobs.db`, the embedded default) or
//! PostgreSQL (the runtime's schema, claimed with `FOR UPDATE SKIP LOCKED`
//! and woken with `LISTEN/NOTIFY`). One API over both; the worker, the
//! leader's maintenance and the job API above it do not know which.
//!
//! Times are milliseconds since the Unix epoch, taken from the node's clock
//! (nodes sharing a database are expected to keep their clocks in sync, as
//! lock leases already require).

mod postgres;
mod sqlite;

use std::sync::Arc;

use serde::Serialize;

use crate::backend::sql::SqlError;

pub(crate) use postgres::{
    SCHEMA as POSTGRES_SCHEMA, ddl as postgres_ddl, grant as postgres_grant,
};

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
    fn state(&self) -> &'static str {
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
    fn columns(&self) -> (&'static str, Option<i64>, Option<&[u8]>, Option<&str>, i64) {
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

    fn is_final(&self) -> bool {
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
            JobStore::Postgres($q) => $call,
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
    ) -> Result<Self, SqlError> {
        Ok(JobStore::Postgres(Arc::new(
            postgres::Queue::open(options, namespace, connections, acquire_timeout).await?,
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

/// The queries both engines run alike (portable SQL over the queue's two
/// tables, `self.jobs` and `self.workers`); each engine's `Queue` invokes it
/// inside its `impl` with its `sqlx` database type, and supplies `open`,
/// `complete`, `claim_sql` and `append_error` itself.
macro_rules! same_on_both {
    ($db:ty) => {
    pub(super) async fn claim(
        &self,
        queue: &str,
        worker: &str,
        limit: u32,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<super::Job>, SqlError> {
        sqlx::query_as(sqlx::AssertSqlSafe(self.claim_sql()))
            .bind(worker)
            .bind(now)
            .bind(lease_until)
            .bind(queue)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)
    }

    pub(super) async fn insert(&self, jobs: &[super::NewJob]) -> Result<Vec<String>, SqlError> {
        let mut query = sqlx::QueryBuilder::<$db>::new(format!(
            "INSERT INTO {} (id, plugin, kind, queue, priority, state, payload, max_attempts, \
             run_at, idempotency_key, unique_key, trace, created_at) ",
            self.jobs
        ));
        query.push_values(jobs, |mut row, job| {
            row.push_bind(&job.id)
                .push_bind(&job.plugin)
                .push_bind(&job.kind)
                .push_bind(&job.queue)
                .push_bind(job.priority)
                .push_bind(job.state())
                .push_bind(&job.payload)
                .push_bind(job.max_attempts)
                .push_bind(job.run_at)
                .push_bind(&job.idempotency_key)
                .push_bind(&job.unique_key)
                .push_bind(&job.trace)
                .push_bind(job.created_at);
        });
        query.push(" ON CONFLICT DO NOTHING RETURNING id");
        let rows: Vec<(String,)> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub(super) async fn holder(&self, plugin: &str, key: &str) -> Result<Option<String>, SqlError> {
        let sql = format!(
            "SELECT id FROM {} WHERE plugin = $1 AND idempotency_key = $2 \
             AND state NOT IN {FINISHED}",
            self.jobs
        );
        let row: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(plugin)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.map(|(id,)| id))
    }

    pub(super) async fn finish(
        &self,
        id: &str,
        (attempt, worker): (i64, &str),
        finish: &super::Finish,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool, SqlError> {
        let (state, run_at, result, _, change) = finish.columns();
        let sql = format!(
            "UPDATE {} SET state = $1, run_at = COALESCE($2, run_at), \
             result = COALESCE($3, result), \
             errors = CASE WHEN $4 IS NULL THEN errors ELSE {} END, \
             attempt = attempt + $5, finished_at = $6, worker = NULL \
             WHERE id = $7 AND attempt = $8 AND worker = $9 AND state = 'running'",
            self.jobs,
            Self::append_error("$4")
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state)
            .bind(run_at)
            .bind(result)
            .bind(error)
            .bind(change)
            .bind(finish.is_final().then_some(now))
            .bind(id)
            .bind(attempt)
            .bind(worker)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn heartbeat(&self, worker: &str, now: i64) -> Result<Vec<String>, SqlError> {
        let sql = format!(
            "INSERT INTO {} (id, heartbeat_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            self.workers
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        let sql = format!(
            "SELECT id FROM {} WHERE worker = $1 AND state = 'running' AND cancel_requested",
            self.jobs
        );
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub(super) async fn retire(&self, worker: &str) -> Result<(), SqlError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE id = $1",
            self.workers
        )))
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    pub(super) async fn rescue(
        &self,
        now: i64,
        dead_before: i64,
        error: &str,
    ) -> Result<super::Rescued, SqlError> {
        let sql = format!(
            "UPDATE {jobs} SET \
               state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END, \
               finished_at = CASE WHEN attempt >= max_attempts THEN $1 ELSE NULL END, \
               run_at = $1, worker = NULL, \
               errors = {append} \
             WHERE state = 'running' AND (lease_until < $1 OR worker IS NULL OR worker NOT IN \
               (SELECT id FROM {workers} WHERE heartbeat_at >= $3)) \
             RETURNING state",
            jobs = self.jobs,
            workers = self.workers,
            append = Self::append_error("$2")
        );
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(error)
            .bind(dead_before)
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE heartbeat_at < $1",
            self.workers
        )))
        .bind(dead_before)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(super::Rescued {
            retried: rows.len() as u64,
            discarded: rows.iter().filter(|(s,)| s == "discarded").count() as u64,
        })
    }

    pub(super) async fn prune(&self, before: i64) -> Result<u64, SqlError> {
        let sql = format!(
            "DELETE FROM {jobs} WHERE id IN (SELECT id FROM {jobs} \
             WHERE state IN ('completed', 'cancelled') AND finished_at < $1 LIMIT 10000)",
            jobs = self.jobs
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected())
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<super::Job>, SqlError> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM {} WHERE id = $1",
            self.jobs
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)
    }

    pub(super) async fn list(&self, filter: &super::Filter) -> Result<Vec<super::Job>, SqlError> {
        let mut query = sqlx::QueryBuilder::<$db>::new(format!(
            "SELECT {COLUMNS} FROM {} WHERE 1 = 1",
            self.jobs
        ));
        super::push_filter(&mut query, filter);
        query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)
    }

    pub(super) async fn cancel(&self, id: &str, now: i64) -> Result<(), SqlError> {
        let sql = format!(
            "UPDATE {} SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END, \
             finished_at = CASE WHEN state = 'running' THEN finished_at ELSE $1 END, \
             cancel_requested = (state = 'running') OR cancel_requested \
             WHERE id = $2 AND (state IN {WAITING} OR state = 'running')",
            self.jobs
        );
        self.update_one(sql, now, id).await
    }

    pub(super) async fn retry(&self, id: &str, now: i64) -> Result<(), SqlError> {
        let sql = format!(
            "UPDATE {} SET state = 'available', attempt = 0, run_at = $1, finished_at = NULL, \
             cancel_requested = false WHERE id = $2 AND state IN ('discarded', 'cancelled')",
            self.jobs
        );
        self.update_one(sql, now, id).await
    }

    /// Runs an update of one job: `$1` now, `$2` its id.
    async fn update_one(&self, sql: String, now: i64, id: &str) -> Result<(), SqlError> {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    pub(super) async fn depth(&self) -> Result<Vec<(String, String, i64)>, SqlError> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT queue, state, count(*) FROM {} GROUP BY queue, state",
            self.jobs
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)
    }

    };
}
pub(crate) use same_on_both;

/// Appends `filter`'s conditions, order and limit to a `SELECT … WHERE 1 = 1`.
fn push_filter<DB>(query: &mut sqlx::QueryBuilder<DB>, filter: &Filter)
where
    DB: sqlx::Database,
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: for<'a> sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let conditions = [
        ("state", &filter.state),
        ("kind", &filter.kind),
        ("plugin", &filter.plugin),
        ("queue", &filter.queue),
    ];
    for (column, value) in conditions {
        if let Some(value) = value {
            query.push(format!(" AND {column} = "));
            query.push_bind(value.as_str());
        }
    }
    if let Some(after) = &filter.after {
        query.push(" AND id > ");
        query.push_bind(after.as_str());
    }
    query.push(" ORDER BY id LIMIT ");
    query.push_bind(i64::from(filter.limit));
}
