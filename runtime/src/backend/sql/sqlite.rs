//! SQLite: one file per plugin under `<data_dir>/sql/`, WAL mode, a busy
//! timeout, a pool per file. Every statement passes the guard first; the
//! migration record lives in the plugin's own file, in a `_trellis` table
//! the guard keeps the plugin away from.

use std::path::{Path, PathBuf};

use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
};
use sqlx::{AssertSqlSafe, Column, Row, SqliteConnection, TypeInfo, ValueRef};

use super::guard::check_statement;
use super::pool::{Dialect, Limits, Pooled, collect_rows};
use super::{Migration, Rows, SqlError, Value};
use crate::config::SqlPoolConfig;

/// Makes plugin files under one directory.
#[derive(Debug)]
pub struct Service {
    dir: PathBuf,
    pool: SqlPoolConfig,
}

/// A plugin's SQLite file and its pool.
#[derive(Debug, Clone)]
pub struct Db {
    pub(super) pooled: Pooled<sqlx::Sqlite>,
}

impl Service {
    pub(super) fn start(dir: &Path, pool: &SqlPoolConfig) -> Result<Service, SqlError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SqlError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Service {
            dir: dir.to_path_buf(),
            pool: pool.clone(),
        })
    }

    /// The job queue: `jobs.db` in the data directory, beside `sql/`.
    pub(super) async fn job_store(&self) -> Result<crate::backend::jobs::JobStore, SqlError> {
        let dir = self.dir.parent().unwrap_or(&self.dir);
        crate::backend::jobs::JobStore::sqlite(dir, self.pool.statement_timeout).await
    }

    /// The plugin version store: `<data_dir>/runtime.db`.
    pub(super) async fn runtime_store(
        &self,
    ) -> Result<crate::backend::runtime_store::RuntimeStore, SqlError> {
        let dir = self.dir.parent().unwrap_or(&self.dir);
        crate::backend::runtime_store::RuntimeStore::sqlite(dir, self.pool.statement_timeout).await
    }

    /// The data directory is there to hold plugin files.
    pub(super) fn ping(&self) -> Result<(), SqlError> {
        match std::fs::metadata(&self.dir) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(SqlError::Unavailable(format!(
                "{} is not a directory",
                self.dir.display()
            ))),
            Err(e) => Err(SqlError::Unavailable(format!(
                "cannot reach {}: {e}",
                self.dir.display()
            ))),
        }
    }

    pub(super) async fn provision(&self, plugin: &str) -> Result<Db, SqlError> {
        let options = SqliteConnectOptions::new()
            .filename(self.dir.join(format!("{plugin}.db")))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(self.pool.statement_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .min_connections(self.pool.min_connections)
            .max_connections(self.pool.max_connections)
            .acquire_timeout(self.pool.acquire_timeout)
            .idle_timeout(self.pool.idle_timeout)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS _trellis_migrations \
             (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .execute(&pool)
        .await
        .map_err(map_error)?;
        sqlx::query("CREATE TABLE IF NOT EXISTS _trellis_job_outbox (id TEXT PRIMARY KEY, job TEXT NOT NULL)")
            .execute(&pool)
            .await
            .map_err(map_error)?;
        Ok(Db {
            pooled: Pooled {
                pool,
                breaker: super::breaker::Breaker::off(),
                limits: Limits {
                    max_rows: self.pool.max_rows,
                    statement_timeout: self.pool.statement_timeout,
                },
            },
        })
    }
}

impl Db {
    pub(super) async fn migrate(&self, migrations: &[Migration]) -> Result<Vec<u32>, SqlError> {
        let applied: Vec<(i64,)> = sqlx::query_as("SELECT id FROM _trellis_migrations")
            .fetch_all(&self.pooled.pool)
            .await
            .map_err(map_error)?;
        let applied: Vec<u32> = applied.into_iter().map(|(id,)| id as u32).collect();
        let record =
            "INSERT INTO _trellis_migrations (id, name, applied_at) VALUES ($1, $2, unixepoch())";
        self.pooled.apply(migrations, &applied, record).await
    }
}

impl Dialect for sqlx::Sqlite {
    async fn query_on(
        conn: &mut SqliteConnection,
        sql: &str,
        params: Vec<Value>,
        max_rows: usize,
    ) -> Result<Rows, SqlError> {
        check_statement(sql, false)?;
        let stream = bind(sqlx::query(AssertSqlSafe(sql)), params).fetch(conn);
        collect_rows(stream, max_rows, decode, map_error).await
    }

    async fn execute_on(
        conn: &mut SqliteConnection,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<u64, SqlError> {
        check_statement(sql, false)?;
        Self::execute_trusted(conn, sql, params).await
    }

    async fn run_script(conn: &mut SqliteConnection, sql: &str) -> Result<(), SqlError> {
        check_statement(sql, true)?;
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(conn)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn execute_trusted(
        conn: &mut SqliteConnection,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<u64, SqlError> {
        let done = bind(sqlx::query(AssertSqlSafe(sql)), params)
            .execute(conn)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected())
    }

    fn map_error(err: sqlx::Error) -> SqlError {
        map_error(err)
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, SqliteArguments>;

fn bind(mut query: Query<'_>, params: Vec<Value>) -> Query<'_> {
    for value in params {
        query = match value {
            Value::Null => query.bind(None::<i64>),
            Value::Integer(i) => query.bind(i),
            Value::Real(x) => query.bind(x),
            Value::Text(s) | Value::Json(s) => query.bind(s),
            Value::Blob(b) => query.bind(b),
            Value::Boolean(b) => query.bind(b),
            Value::Timestamp(t) => query.bind(t),
        };
    }
    query
}

fn decode(row: &SqliteRow) -> Result<Vec<Value>, SqlError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(map_error)?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        let storage = raw.type_info().name().to_string();
        let declared = column.type_info().name().to_ascii_uppercase();
        let get_err = |e| map_error(e);
        let value = match storage.as_str() {
            "INTEGER" if declared == "BOOLEAN" => Value::Boolean(row.try_get(i).map_err(get_err)?),
            "INTEGER" => Value::Integer(row.try_get(i).map_err(get_err)?),
            "REAL" => Value::Real(row.try_get(i).map_err(get_err)?),
            "BLOB" => Value::Blob(row.try_get(i).map_err(get_err)?),
            _ => Value::Text(row.try_get(i).map_err(get_err)?),
        };
        values.push(value);
    }
    Ok(values)
}

/// sqlx's error as the guest's error, by SQLite's error code.
pub(crate) fn map_error(err: sqlx::Error) -> SqlError {
    match err {
        sqlx::Error::Database(db) => {
            let message = db.message().to_string();
            if db.is_unique_violation()
                || db.is_foreign_key_violation()
                || db.is_check_violation()
                || message.contains("NOT NULL constraint")
            {
                SqlError::Constraint(message)
            } else if message.contains("syntax error") {
                SqlError::Syntax(message)
            } else if message.contains("database is locked") {
                SqlError::Unavailable(message)
            } else {
                SqlError::Invalid(message)
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            SqlError::Unavailable(err.to_string())
        }
        other => SqlError::Invalid(other.to_string()),
    }
}
