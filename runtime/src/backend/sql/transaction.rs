//! Transactions on a plugin's database ([`Transaction`]), and the jobs
//! enqueued in them: on PostgreSQL straight into the queue through
//! `enqueue_job`, on SQLite into the plugin file's outbox, which the queue
//! takes from after the commit ([`PluginDb::outbox`]).
//!
//! Layer: `backend` (part of `backend::sql`); it may call sqlx and
//! `backend::jobs`' job type, nothing above `backend`.

use super::pool::{Dialect, Tx};
use super::{PluginDb, Rows, SqlError, Value, sqlite};

/// An open transaction on a plugin's database. Dropped without
/// [`Transaction::commit`], it rolls back.
#[derive(Debug)]
pub struct Transaction {
    pub(super) inner: TxOn,
}

/// The transaction on its engine.
#[derive(Debug)]
pub(super) enum TxOn {
    Sqlite(Tx<sqlx::Sqlite>),
    /// With the runtime's schema, where `enqueue_job` lives.
    Postgres(Tx<sqlx::Postgres>, String),
}

impl Transaction {
    /// Runs a statement that returns rows inside the transaction.
    pub async fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<Rows, SqlError> {
        match &mut self.inner {
            TxOn::Sqlite(tx) => tx.query(sql, params).await,
            TxOn::Postgres(tx, _) => tx.query(sql, params).await,
        }
    }

    /// Runs a statement inside the transaction.
    pub async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, SqlError> {
        match &mut self.inner {
            TxOn::Sqlite(tx) => tx.execute(sql, params).await,
            TxOn::Postgres(tx, _) => tx.execute(sql, params).await,
        }
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), SqlError> {
        match self.inner {
            TxOn::Sqlite(tx) => tx.commit().await,
            TxOn::Postgres(tx, _) => tx.commit().await,
        }
    }

    /// Enqueues `job` so that it exists only if this transaction commits.
    /// PostgreSQL: inserted into the queue through `enqueue_job`, in this
    /// transaction. SQLite: written to the plugin file's outbox, in this
    /// transaction; after the commit the queue takes it from there (see
    /// [`PluginDb::outbox`]). Returns the job's id, or for a duplicate
    /// idempotency key the id of the job holding it (PostgreSQL only; on
    /// SQLite the key is checked when the outbox is forwarded).
    pub async fn enqueue(
        &mut self,
        job: &crate::backend::jobs::NewJob,
    ) -> Result<String, SqlError> {
        match &mut self.inner {
            TxOn::Sqlite(tx) => {
                let json = serde_json::to_string(job)
                    .map_err(|e| SqlError::Invalid(format!("job: {e}")))?;
                let params = vec![Value::Text(job.id.clone()), Value::Text(json)];
                sqlx::Sqlite::execute_trusted(&mut tx.tx, OUTBOX_INSERT, params).await?;
                Ok(job.id.clone())
            }
            TxOn::Postgres(tx, ns) => {
                let sql = format!(
                    "SELECT {ns}.enqueue_job($1::text, $2::text, $3::text, $4::bigint, $5::bytea, \
                     $6::bigint, $7::bigint, $8::text, $9::text, $10::bigint)"
                );
                let params = vec![
                    Value::Text(job.id.clone()),
                    Value::Text(job.kind.clone()),
                    Value::Text(job.queue.clone()),
                    Value::Integer(job.priority),
                    Value::Blob(job.payload.clone()),
                    Value::Integer(job.max_attempts),
                    Value::Integer(job.run_at),
                    job.idempotency_key.clone().map_or(Value::Null, Value::Text),
                    job.trace.clone().map_or(Value::Null, Value::Text),
                    Value::Integer(job.created_at),
                ];
                let rows = sqlx::Postgres::query_on(&mut tx.tx, &sql, params, 1).await?;
                match rows.rows.first().and_then(|r| r.first()) {
                    Some(Value::Text(id)) => Ok(id.clone()),
                    _ => Err(SqlError::Unavailable("enqueue_job returned no id".into())),
                }
            }
        }
    }
}

/// Where a SQLite transaction leaves its jobs (a `_trellis` table the guard
/// keeps the plugin away from).
const OUTBOX_INSERT: &str = "INSERT INTO _trellis_job_outbox (id, job) VALUES ($1, $2)";

impl PluginDb {
    /// Jobs that SQLite transactions committed to the outbox and the queue
    /// has not yet taken (none on PostgreSQL, where they go straight to the
    /// queue). Call [`PluginDb::outbox_forwarded`] with the ids once queued.
    pub async fn outbox(&self) -> Result<Vec<crate::backend::jobs::NewJob>, SqlError> {
        let PluginDb::Sqlite(db) = self else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT job FROM _trellis_job_outbox ORDER BY id LIMIT 1000")
                .fetch_all(&db.pooled.pool)
                .await
                .map_err(sqlite::map_error)?;
        rows.into_iter()
            .map(|(json,)| {
                serde_json::from_str(&json)
                    .map_err(|e| SqlError::Invalid(format!("outbox entry: {e}")))
            })
            .collect()
    }

    /// Drops outbox entries the queue now holds.
    pub async fn outbox_forwarded(&self, ids: &[String]) -> Result<(), SqlError> {
        let PluginDb::Sqlite(db) = self else {
            return Ok(());
        };
        let mut tx = db.pooled.pool.begin().await.map_err(sqlite::map_error)?;
        for id in ids {
            sqlx::query("DELETE FROM _trellis_job_outbox WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(sqlite::map_error)?;
        }
        tx.commit().await.map_err(sqlite::map_error)
    }
}
