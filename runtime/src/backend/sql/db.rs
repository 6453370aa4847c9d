//! A plugin's database handle ([`PluginDb`]): statements on the primary or
//! a replica, the consistency token after a write, plans, transactions
//! begun, and migrations applied in order.
//!
//! Layer: `backend` (part of `backend::sql`); it may call sqlx through the
//! engines, nothing above `backend`.

use super::transaction::{Transaction, TxOn};
use super::{Migration, Rows, SqlError, Value, postgres, sqlite};

/// A plugin's database: its pool on the configured backend.
#[derive(Debug, Clone)]
pub enum PluginDb {
    /// A SQLite file of its own.
    Sqlite(sqlite::Db),
    /// A PostgreSQL schema and login role of its own.
    Postgres(postgres::Db),
}

impl PluginDb {
    /// Lowers the rows one query may return to `max` (a plugin's own limit).
    pub fn limit_rows(&mut self, max: usize) {
        let limits = match self {
            PluginDb::Sqlite(db) => &mut db.pooled.limits,
            PluginDb::Postgres(db) => &mut db.pooled.limits,
        };
        limits.max_rows = limits.max_rows.min(max);
    }

    /// Runs a statement that returns rows.
    pub async fn query(&self, sql: &str, params: Vec<Value>) -> Result<Rows, SqlError> {
        match self {
            PluginDb::Sqlite(db) => db.pooled.query(sql, params).await,
            PluginDb::Postgres(db) => db.pooled.query(sql, params).await,
        }
    }

    /// Runs a read that may go to a read replica (PostgreSQL with replicas
    /// configured); `min_lsn` is a write it must see.
    pub async fn read(
        &self,
        sql: &str,
        params: Vec<Value>,
        min_lsn: Option<u64>,
    ) -> Result<Rows, SqlError> {
        match self {
            PluginDb::Sqlite(db) => db.pooled.query(sql, params).await,
            PluginDb::Postgres(db) => db.read(sql, params, min_lsn).await,
        }
    }

    /// Causal reads by principal (PostgreSQL with replicas): the request
    /// header naming the principal, and how long after its write its reads
    /// must see it.
    pub fn causal(&self) -> Option<(&str, std::time::Duration)> {
        match self {
            PluginDb::Sqlite(_) => None,
            PluginDb::Postgres(db) => db.causal(),
        }
    }

    /// The consistency token after a write: the primary's WAL position, when
    /// there are replicas to be consistent with.
    pub async fn write_position(&self) -> Option<u64> {
        match self {
            PluginDb::Sqlite(_) => None,
            PluginDb::Postgres(db) => db.write_position().await,
        }
    }

    /// Runs a statement; returns rows affected.
    pub async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, SqlError> {
        match self {
            PluginDb::Sqlite(db) => db.pooled.execute(sql, params).await,
            PluginDb::Postgres(db) => db.pooled.execute(sql, params).await,
        }
    }

    /// The plan of `sql` with `params`, one line per plan row (`EXPLAIN` on
    /// PostgreSQL, `EXPLAIN QUERY PLAN` on SQLite). Runs inside a
    /// transaction that is rolled back, so nothing it might do persists.
    pub async fn explain(&self, sql: &str, params: Vec<Value>) -> Result<String, SqlError> {
        let prefix = match self {
            PluginDb::Sqlite(_) => "EXPLAIN QUERY PLAN ",
            PluginDb::Postgres(_) => "EXPLAIN ",
        };
        let mut tx = self.begin().await?;
        let plan = tx.query(&format!("{prefix}{sql}"), params).await?;
        drop(tx);
        let lines: Vec<String> = plan
            .rows
            .iter()
            .filter_map(|row| match row.last() {
                Some(Value::Text(line)) => Some(line.clone()),
                _ => None,
            })
            .collect();
        Ok(lines.join("\n"))
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Transaction, SqlError> {
        let inner = match self {
            PluginDb::Sqlite(db) => TxOn::Sqlite(db.pooled.begin().await?),
            PluginDb::Postgres(db) => {
                TxOn::Postgres(db.pooled.begin().await?, db.namespace().to_string())
            }
        };
        Ok(Transaction { inner })
    }

    /// Applies the migrations not yet applied, each in its own transaction
    /// together with its record. Returns the ids applied now.
    pub async fn migrate(&self, migrations: &[Migration]) -> Result<Vec<u32>, SqlError> {
        let mut last = 0;
        for m in migrations {
            if m.id <= last {
                return Err(SqlError::Invalid(format!(
                    "migration ids must increase: {} follows {last}",
                    m.id
                )));
            }
            last = m.id;
        }
        match self {
            PluginDb::Sqlite(db) => db.migrate(migrations).await,
            PluginDb::Postgres(db) => db.migrate(migrations).await,
        }
    }
}
