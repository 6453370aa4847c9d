//! SQL backends behind one API: SQLite (a file per plugin, the embedded
//! default) and PostgreSQL (a schema and login role per plugin). The
//! capability layer converts WIT values to these types and back.

mod cache;
mod guard;
mod postgres;
mod replica;
mod shape;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use crate::config::SqlConfig;

pub use cache::{QueryCache, ReadSet};
pub use guard::check_statement;
pub use replica::{ReplicaStats, format_lsn, parse_lsn};
pub use shape::shape;

pub(crate) use postgres::map_error as postgres_error;
pub(crate) use sqlite::map_error as sqlite_error;

/// A parameter or column value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
    /// A boolean.
    Boolean(bool),
    /// JSON text.
    Json(String),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
}

/// Column names and rows of values.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rows {
    /// Column names in order.
    pub columns: Vec<String>,
    /// Rows of values in column order.
    pub rows: Vec<Vec<Value>>,
}

/// Why a statement failed, as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// A constraint was violated.
    #[error("constraint violation: {0}")]
    Constraint(String),
    /// The statement does not parse.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// Not allowed for this plugin.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The statement timed out.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else wrong with the statement or parameters.
    #[error("invalid statement: {0}")]
    Invalid(String),
    /// The transaction was already committed or rolled back.
    #[error("the transaction is already finished")]
    TransactionClosed,
}

/// A cluster-wide role held by this node (a PostgreSQL session advisory
/// lock on a connection of its own); dropping it lets another node lead.
#[derive(Debug)]
pub struct Leader(Option<sqlx::PgConnection>);

impl Leader {
    /// Whether the role is still held (the lock's connection answers).
    pub async fn still(&mut self) -> bool {
        match &mut self.0 {
            None => true,
            Some(conn) => sqlx::Connection::ping(conn).await.is_ok(),
        }
    }
}

/// A plugin's database: its pool on the configured backend.
#[derive(Debug, Clone)]
pub enum PluginDb {
    /// A SQLite file of its own.
    Sqlite(sqlite::Db),
    /// A PostgreSQL schema and login role of its own.
    Postgres(postgres::Db),
}

/// An open transaction on a plugin's database. Dropped without
/// [`Transaction::commit`], it rolls back.
#[derive(Debug)]
pub struct Transaction {
    inner: TxOn,
}

#[derive(Debug)]
enum TxOn {
    Sqlite(Tx<sqlx::Sqlite>),
    /// With the runtime's schema, where `enqueue_job` lives.
    Postgres(Tx<sqlx::Postgres>, String),
}

/// What each backend supplies: running one statement on a connection and
/// mapping its errors. The pooling and bounds around it are shared.
trait Dialect: sqlx::Database {
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
struct Pooled<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    limits: Limits,
}

impl<DB: sqlx::Database> Clone for Pooled<DB> {
    fn clone(&self) -> Self {
        Pooled {
            pool: self.pool.clone(),
            limits: self.limits,
        }
    }
}

impl<DB: Dialect> Pooled<DB> {
    async fn query(&self, sql: &str, params: Vec<Value>) -> Result<Rows, SqlError> {
        let mut conn = self.pool.acquire().await.map_err(DB::map_error)?;
        let max_rows = self.limits.max_rows;
        timed(self.limits, DB::query_on(&mut conn, sql, params, max_rows)).await
    }

    async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, SqlError> {
        let mut conn = self.pool.acquire().await.map_err(DB::map_error)?;
        timed(self.limits, DB::execute_on(&mut conn, sql, params)).await
    }

    async fn begin(&self) -> Result<Tx<DB>, SqlError> {
        let tx = self.pool.begin().await.map_err(DB::map_error)?;
        Ok(Tx {
            tx,
            max_rows: self.limits.max_rows,
        })
    }

    /// Applies the migrations whose ids are not in `applied`, in order, each
    /// in a transaction together with `record` (`$1` id, `$2` name).
    async fn apply(
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
struct Tx<DB: sqlx::Database> {
    tx: sqlx::Transaction<'static, DB>,
    max_rows: usize,
}

impl<DB: Dialect> Tx<DB> {
    async fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<Rows, SqlError> {
        DB::query_on(&mut self.tx, sql, params, self.max_rows).await
    }

    async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, SqlError> {
        DB::execute_on(&mut self.tx, sql, params).await
    }

    async fn commit(self) -> Result<(), SqlError> {
        self.tx.commit().await.map_err(DB::map_error)
    }
}

/// One migration to apply.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Increasing id.
    pub id: u32,
    /// Description.
    pub name: String,
    /// The SQL for this backend.
    pub sql: String,
}

/// Provisions plugin databases on the configured backend.
#[derive(Debug, Clone)]
pub enum SqlService {
    /// SQLite files under the data directory.
    Sqlite(Arc<sqlite::Service>),
    /// PostgreSQL through an admin connection.
    Postgres(Arc<postgres::Service>),
}

impl SqlError {
    /// A short name of the kind, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SqlError::Constraint(_) => "constraint",
            SqlError::Syntax(_) => "syntax",
            SqlError::PermissionDenied(_) => "permission_denied",
            SqlError::Timeout(_) => "timeout",
            SqlError::Unavailable(_) => "unavailable",
            SqlError::Invalid(_) => "invalid",
            SqlError::TransactionClosed => "transaction_closed",
        }
    }
}

impl SqlService {
    /// Connects (PostgreSQL) or prepares the directory (SQLite).
    pub async fn start(config: &SqlConfig, data_dir: &std::path::Path) -> Result<Self, SqlError> {
        match &config.postgres {
            Some(pg) => Ok(SqlService::Postgres(Arc::new(
                postgres::Service::start(pg, &config.pool).await?,
            ))),
            None => Ok(SqlService::Sqlite(Arc::new(sqlite::Service::start(
                &data_dir.join("sql"),
                &config.pool,
            )?))),
        }
    }

    /// The job queue on the same engine: `<data_dir>/jobs.db` beside the
    /// plugin files, or the runtime's PostgreSQL schema.
    pub async fn job_store(
        &self,
        connections: u32,
    ) -> Result<crate::backend::jobs::JobStore, SqlError> {
        match self {
            SqlService::Sqlite(s) => s.job_store().await,
            SqlService::Postgres(s) => s.job_store(connections).await,
        }
    }

    /// Uploaded plugin versions and what is live, on the same engine:
    /// `<data_dir>/runtime.db`, or the runtime's PostgreSQL schema.
    pub async fn runtime_store(
        &self,
    ) -> Result<crate::backend::runtime_store::RuntimeStore, SqlError> {
        match self {
            SqlService::Sqlite(s) => s.runtime_store().await,
            SqlService::Postgres(s) => Ok(s.runtime_store()),
        }
    }

    /// The backend's name for migrations (`sqlite` or `postgres`).
    pub fn dialect(&self) -> &'static str {
        match self {
            SqlService::Sqlite(_) => "sqlite",
            SqlService::Postgres(_) => "postgres",
        }
    }

    /// Where replica-ok reads ran and how far each replica is behind
    /// (empty on SQLite and without replicas).
    pub fn replica_stats(&self) -> ReplicaStats {
        match self {
            SqlService::Sqlite(_) => (Vec::new(), Vec::new()),
            SqlService::Postgres(s) => s.replica_stats(),
        }
    }

    /// Tries to become the one node doing `role` (e.g. evaluating alerts)
    /// among the nodes sharing this database: `None` while another node
    /// is. With SQLite there is one node, and it always leads.
    pub async fn try_lead(&self, role: &str) -> Result<Option<Leader>, SqlError> {
        match self {
            SqlService::Sqlite(_) => Ok(Some(Leader(None))),
            SqlService::Postgres(s) => Ok(s.try_lead(role).await?.map(|c| Leader(Some(c)))),
        }
    }

    /// Keeps `held` while its connection answers, else tries to take
    /// `role`: true while this node holds it. Logs changes of hands.
    pub async fn hold_lead(&self, role: &str, held: &mut Option<Leader>) -> bool {
        if let Some(leader) = held
            && !leader.still().await
        {
            tracing::warn!(role, "lost a cluster role");
            *held = None;
        }
        if held.is_none() {
            match self.try_lead(role).await {
                Ok(Some(leader)) => {
                    tracing::info!(role, "this node holds a cluster role");
                    *held = Some(leader);
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(role, %err, "cannot take a cluster role"),
            }
        }
        held.is_some()
    }

    /// Checks the backend answers; returns the round trip.
    pub async fn ping(&self) -> Result<Duration, SqlError> {
        let started = std::time::Instant::now();
        match self {
            SqlService::Sqlite(s) => s.ping()?,
            SqlService::Postgres(s) => s.ping().await?,
        }
        Ok(started.elapsed())
    }

    /// The database of `plugin`, created if new.
    pub async fn provision(&self, plugin: &str) -> Result<PluginDb, SqlError> {
        match self {
            SqlService::Sqlite(s) => Ok(PluginDb::Sqlite(s.provision(plugin).await?)),
            SqlService::Postgres(s) => Ok(PluginDb::Postgres(s.provision(plugin).await?)),
        }
    }
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

/// Bounds on one statement.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Rows a query may return.
    max_rows: usize,
    /// Time a statement may take.
    statement_timeout: Duration,
}

/// Runs `work` under the statement timeout.
async fn timed<T>(
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
async fn collect_rows<R: sqlx::Row>(
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

/// The identifier-safe form of a plugin name (`my-plugin` → `my_plugin`).
pub fn ident(plugin: &str) -> String {
    plugin.replace('-', "_")
}
