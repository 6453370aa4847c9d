//! The queue in a SQLite file of the runtime's own. Several processes on
//! one machine may share it (WAL mode and a busy timeout); a claim is one
//! `UPDATE … RETURNING` statement, which SQLite runs under its write lock,
//! so two workers never claim the same job.
//!
//! Layer: backend (the job tables); it may call sqlx and the sql backend's
//! error mapping.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::{COLUMNS, FINISHED, WAITING};
use crate::backend::sql::{SqlError, sqlite_error as map_error};

/// The queue file's pool.
#[derive(Debug)]
pub struct Queue {
    pool: SqlitePool,
    jobs: String,
    workers: String,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        plugin TEXT NOT NULL,
        kind TEXT NOT NULL,
        queue TEXT NOT NULL,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL,
        payload BLOB NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        run_at INTEGER NOT NULL,
        idempotency_key TEXT,
        unique_key TEXT,
        trace TEXT,
        worker TEXT,
        cancel_requested BOOLEAN NOT NULL DEFAULT 0,
        errors TEXT NOT NULL DEFAULT '[]',
        result BLOB,
        created_at INTEGER NOT NULL,
        attempted_at INTEGER,
        lease_until INTEGER,
        finished_at INTEGER
    )",
    "CREATE INDEX IF NOT EXISTS jobs_fetch ON jobs (queue, priority DESC, run_at, id)
        WHERE state IN ('available', 'scheduled', 'retryable')",
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (plugin, idempotency_key)
        WHERE idempotency_key IS NOT NULL AND state NOT IN ('completed', 'discarded', 'cancelled')",
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique ON jobs (plugin, unique_key)
        WHERE unique_key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS jobs_running ON jobs (worker) WHERE state = 'running'",
    "CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at)
        WHERE state IN ('completed', 'cancelled')",
    "CREATE TABLE IF NOT EXISTS job_workers (
        id TEXT PRIMARY KEY,
        heartbeat_at INTEGER NOT NULL
    )",
];

impl Queue {
    pub(super) async fn open(dir: &Path, busy: Duration) -> Result<Queue, SqlError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SqlError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join("jobs.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        for statement in SCHEMA {
            sqlx::query(*statement)
                .execute(&pool)
                .await
                .map_err(map_error)?;
        }
        Ok(Queue {
            pool,
            jobs: "jobs".into(),
            workers: "job_workers".into(),
        })
    }

    /// `errors` with the JSON text of parameter `param` appended.
    fn append_error(param: &str) -> String {
        format!("json_insert(errors, '$[#]', json({param}))")
    }

    super::same_on_both!(Sqlite);

    /// The claim: `$1` worker, `$2` now, `$3` lease end, `$4` queue,
    /// `$5` limit; one statement, under SQLite's write lock.
    fn claim_sql(&self) -> String {
        format!(
            "UPDATE jobs SET state = 'running', attempt = attempt + 1, worker = $1, \
             attempted_at = $2, lease_until = $3 \
             WHERE id IN (SELECT id FROM jobs WHERE state IN {WAITING} AND queue = $4 \
               AND run_at <= $2 ORDER BY priority DESC, run_at, id LIMIT $5) \
             RETURNING {COLUMNS}"
        )
    }

    pub(super) async fn complete(
        &self,
        done: &[(String, i64, Vec<u8>)],
        worker: &str,
        now: i64,
    ) -> Result<(), SqlError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        for (id, attempt, result) in done {
            sqlx::query(
                "UPDATE jobs SET state = 'completed', result = $1, finished_at = $2, \
                 worker = NULL WHERE id = $3 AND attempt = $4 AND worker = $5 AND state = 'running'",
            )
            .bind(result)
            .bind(now)
            .bind(id)
            .bind(attempt)
            .bind(worker)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        }
        tx.commit().await.map_err(map_error)
    }
}
