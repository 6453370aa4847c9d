//! What both engines share around one statement: the [`Dialect`] each
//! supplies (running a statement on a connection, mapping its errors), a
//! plugin's pool with the bounds every statement runs under (rows, time),
//! transactions on one engine, migrations applied in order, and rows read
//! as they stream in.
//!
//! Layer: `backend` (part of `backend::sql`); it may call sqlx, nothing of
//! the crate above `backend::sql`.

use std::time::Duration;

use super::breaker::Breaker;
use super::{Migration, Rows, SqlError, Value};

/// What each backend supplies: running one statement on a connection and
/// mapping its errors. The pooling and bounds around it are shared.
pub(super) trait Dialect: sqlx::Database {
    /// Runs a query, refusing more than `max_rows` rows.
    fn query_on(
        conn: &mut Self::Connection,
        sql: &str,
        params: Vec<Value>,
        max_rows: usize,
    ) -> impl Future<Output = Result<Rows, SqlError>> + Send;

    /// Runs a statement; returns rows affected.
    fn execute_on(
        conn: &mut Self::Connection,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<u64, SqlError>> + Send;

    /// Runs a migration script (several statements) from the plugin.
    fn run_script(
        conn: &mut Self::Connection,
        sql: &str,
    ) -> impl Future<Output = Result<(), SqlError>> + Send;

    /// Runs a statement of the runtime's own, unchecked; returns rows affected.
    fn execute_trusted(
        conn: &mut Self::Connection,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<u64, SqlError>> + Send;

    /// sqlx's error as the guest's.
    fn map_error(err: sqlx::Error) -> SqlError;
}

/// A plugin's pool and the bounds every statement on it runs under.
#[derive(Debug)]
pub(super) struct Pooled<DB: sqlx::Database> {
    pub(super) pool: sqlx::Pool<DB>,
    pub(super) limits: Limits,
    /// Refuses work at once while the server is down.
    pub(super) breaker: Breaker,
}

impl<DB: sqlx::Database> Clone for Pooled<DB> {
    fn clone(&self) -> Self {
        Pooled {
            pool: self.pool.clone(),
            limits: self.limits,
            breaker: self.breaker.clone(),
        }
    }
}

impl<DB: Dialect> Pooled<DB> {
    /// A connection, unless the breaker says the server is down.
    async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<DB>, SqlError> {
        self.breaker
            .guard(self.pool.acquire())
            .await?
            .map_err(DB::map_error)
    }

    pub(super) async fn query(&self, sql: &str, params: Vec<Value>) -> Result<Rows, SqlError> {
        let mut conn = self.acquire().await?;
        let max_rows = self.limits.max_rows;
        timed(self.limits, DB::query_on(&mut conn, sql, params, max_rows)).await
    }

    pub(super) async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, SqlError> {
        let mut conn = self.acquire().await?;
        timed(self.limits, DB::execute_on(&mut conn, sql, params)).await
    }

    pub(super) async fn begin(&self) -> Result<Tx<DB>, SqlError> {
        let tx = self
            .breaker
            .guard(self.pool.begin())
            .await?
            .map_err(DB::map_error)?;
        Ok(Tx {
            tx,
            max_rows: self.limits.max_rows,
        })
    }

    /// Applies the migrations whose ids are not in `applied`, in order, each
    /// in a transaction together with `record` (`$1` id, `$2` name).
    pub(super) async fn apply(
        &self,
        migrations: &[Migration],
        applied: &[u32],
        record: &str,
    ) -> Result<Vec<u32>, SqlError> {
        let mut now = Vec::new();
        for m in migrations.iter().filter(|m| !applied.contains(&m.id)) {
            let mut tx = self.pool.begin().await.map_err(DB::map_error)?;
            DB::run_script(&mut tx, &m.sql).await?;
            let params = vec![Value::Integer(i64::from(m.id)), Value::Text(m.name.clone())];
            DB::execute_trusted(&mut tx, record, params).await?;
            tx.commit().await.map_err(DB::map_error)?;
            now.push(m.id);
        }
        Ok(now)
    }
}

/// A transaction on one backend, with the row limit of its pool.
#[derive(Debug)]
pub(super) struct Tx<DB: sqlx::Database> {
    pub(super) tx: sqlx::Transaction<'static, DB>,
    max_rows: usize,
}

impl<DB: Dialect> Tx<DB> {
    pub(super) async fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<Rows, SqlError> {
        DB::query_on(&mut self.tx, sql, params, self.max_rows).await
    }

    pub(super) async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, SqlError> {
        DB::execute_on(&mut self.tx, sql, params).await
    }

    pub(super) async fn commit(self) -> Result<(), SqlError> {
        self.tx.commit().await.map_err(DB::map_error)
    }
}

/// Bounds on one statement.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Rows a query may return.
    pub(super) max_rows: usize,
    /// Time a statement may take.
    pub(super) statement_timeout: Duration,
}

/// Runs `work` under the statement timeout.
pub(super) async fn timed<T>(
    limits: Limits,
    work: impl Future<Output = Result<T, SqlError>>,
) -> Result<T, SqlError> {
    tokio::time::timeout(limits.statement_timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(SqlError::Timeout(format!(
                "the statement ran longer than {}",
                humantime::format_duration(limits.statement_timeout)
            )))
        })
}

/// Reads a query's rows as they stream in, refusing more than `max_rows`.
pub(super) async fn collect_rows<R: sqlx::Row>(
    mut stream: impl futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    max_rows: usize,
    decode: fn(&R) -> Result<Vec<Value>, SqlError>,
    map_error: fn(sqlx::Error) -> SqlError,
) -> Result<Rows, SqlError> {
    use futures_util::TryStreamExt;
    use sqlx::Column;
    let mut rows = Rows::default();
    while let Some(row) = stream.try_next().await.map_err(map_error)? {
        if rows.columns.is_empty() {
            rows.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
        }
        if rows.rows.len() >= max_rows {
            return Err(SqlError::Invalid(format!(
                "the query returns more than {max_rows} rows (limits.max_rows, sql.pool.max_rows); \
                 add a LIMIT"
            )));
        }
        rows.rows.push(decode(&row)?);
    }
    Ok(rows)
}
