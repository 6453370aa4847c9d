//! `trellis:plugin/sql`: the plugin's own database. Converts WIT values to
//! the backend's and back; the backend (`backend::sql`) does the isolation
//! and the work. A plugin without the `sql` grant never gets here: it does
//! not load.

use std::time::Instant;

use opentelemetry::KeyValue;
use tracing::Instrument;
use wasmtime::component::Resource;

mod setup;

use crate::backend::sql::{self as backend, PluginDb, SqlError};
use crate::capability::HostState;
use crate::capability::bindings::sql::{Consistency, Error, Host, HostTransaction, Rows, Value};
use crate::monitor::{Occurrence, trace_id};
pub use setup::{Sql, SqlInstance, SqlPlugin, SqlWatch, committed};

/// The header that carries the consistency token: the primary's WAL
/// position after the request's writes (out), or one the client saw (in).
pub const CONSISTENCY_HEADER: &str = "x-trellis-lsn";

/// The transaction of an atomic batch (`http::api::batch`): one database
/// transaction its operations run in, one after another. Each guest call
/// takes it for its duration (the `sql` instance state) and hands it back
/// when it answers; a call that traps or runs out of time drops it, which
/// rolls it back.
#[derive(Debug, Default)]
pub struct Ambient {
    /// The transaction (`None`: gone, rolled back).
    pub tx: Option<backend::Transaction>,
    /// Write statements run in it: the query cache forgets their tables
    /// once it commits.
    pub written: Vec<String>,
    /// Jobs were enqueued in it (SQLite's outbox is forwarded after the
    /// commit).
    pub enqueued: bool,
    /// Savepoints opened so far (their names are numbered).
    savepoints: u32,
}

impl Ambient {
    /// The ambient transaction of a batch that begins with `tx`.
    pub fn new(tx: backend::Transaction) -> Ambient {
        Ambient {
            tx: Some(tx),
            ..Ambient::default()
        }
    }
}

/// Where an atomic batch keeps its [`Ambient`] between operations; travels
/// to the plugin call as a request extension.
pub type AmbientSlot = std::sync::Arc<std::sync::Mutex<Ambient>>;

/// The host side of a guest's `transaction` resource. `None` once committed;
/// dropping it rolls back.
#[derive(Debug)]
pub struct SqlTransaction {
    pub(crate) tx: Option<backend::Transaction>,
    /// Inside an atomic batch, a guest transaction is a savepoint of the
    /// batch's: its name until released or rolled back to.
    savepoint: Option<String>,
    /// Write statements run in it: the query cache forgets their tables
    /// again at commit, as other readers may have cached the old rows.
    written: Vec<String>,
    /// Jobs were enqueued in it: on SQLite they wait in the outbox until
    /// the commit, then move to the queue.
    pub(crate) enqueued: bool,
}

impl HostState {
    /// `db.system.name` of the plugin's database.
    fn db_system(&self) -> &'static str {
        match &self.plugin.capabilities.sql.db {
            Some(PluginDb::Postgres(_)) => "postgresql",
            _ => "sqlite",
        }
    }

    fn db(&self) -> Result<&PluginDb, Error> {
        self.plugin.capabilities.sql.db.as_ref().ok_or_else(|| {
            Error::PermissionDenied(format!(
                "plugin `{}` has no database: grant it `sql`",
                self.plugin.name
            ))
        })
    }
}

/// One statement being watched: its shape, span and start time.
struct Watch {
    op: &'static str,
    shape: String,
    span: tracing::Span,
    /// The statement's OpenTelemetry span, inside a traced request.
    trace: Option<opentelemetry::Context>,
    started: Instant,
}

impl HostState {
    fn watch(&self, op: &'static str, statement: &str) -> Watch {
        let shape = backend::shape(statement);
        let span = tracing::debug_span!(
            "sql",
            plugin = %self.plugin.name,
            op,
            shape = %shape,
        );
        let trace = self.host_span(
            if op == "execute" {
                "sql.execute"
            } else {
                "sql.query"
            },
            vec![
                KeyValue::new("db.system.name", self.db_system()),
                KeyValue::new("db.query.text", shape.clone()),
            ],
        );
        Watch {
            op,
            shape,
            span,
            trace,
            started: Instant::now(),
        }
    }

    /// After a statement: counts its shape for N+1 detection and, when it
    /// succeeded but was slow, logs it with its plan, fetched off the
    /// request path.
    fn record(
        &mut self,
        mut watch: Watch,
        failure: Option<&SqlError>,
        statement: String,
        params: Vec<backend::Value>,
    ) {
        let error = failure.map(SqlError::kind);
        if let Some(err @ (SqlError::Unavailable(_) | SqlError::Timeout(_))) = failure {
            // The database failed the plugin: an infrastructure error.
            self.plugin.errors.record(Occurrence {
                plugin: &self.plugin.name,
                route: "sql",
                kind: if error == Some("timeout") {
                    "sql_timeout"
                } else {
                    "sql_unavailable"
                },
                message: &err.to_string(),
                fingerprint: None,
                request_id: &self.request_id,
                trace_id: trace_id(&self.trace),
            });
        }
        let elapsed = watch.started.elapsed();
        self.plugin.stats.sql(watch.op, elapsed, error);
        crate::capability::end_span(watch.trace.take(), error);
        let succeeded = error.is_none();
        let thresholds = self.plugin.capabilities.sql.watch;
        let seen = self
            .instance
            .sql
            .seen
            .shapes
            .entry(watch.shape.clone())
            .or_insert(0);
        *seen += 1;
        if *seen == thresholds.n_plus_one_threshold {
            tracing::warn!(
                plugin = %self.plugin.name,
                request_id = %self.request_id,
                shape = %watch.shape,
                repeats = *seen,
                "N+1 suspected: one statement shape repeated within a request"
            );
            self.instance.sql.seen.n_plus_one = Some(watch.shape.clone());
        }
        if succeeded
            && elapsed >= thresholds.slow_query
            && let Some(db) = self.plugin.capabilities.sql.db.clone()
        {
            let plugin = self.plugin.name.clone();
            let request_id = self.request_id.clone();
            tokio::spawn(async move {
                let plan = db
                    .explain(&statement, params)
                    .await
                    .unwrap_or_else(|err| format!("(no plan: {err})"));
                tracing::warn!(
                    %plugin,
                    %request_id,
                    shape = %watch.shape,
                    elapsed_ms = elapsed.as_millis() as u64,
                    %plan,
                    "slow query"
                );
            });
        }
    }
}

impl HostState {
    /// After a successful write: cached results over the tables it names
    /// are stale; later reads of this request, and the client's next
    /// requests (through the response header), must see it.
    async fn wrote(&mut self, db: &PluginDb, statements: &[String]) {
        for statement in statements {
            self.plugin
                .capabilities
                .sql
                .query_cache
                .wrote(&self.plugin.name, statement)
                .await;
        }
        if let Some(lsn) = db.write_position().await {
            self.instance.sql.seen.min_lsn =
                Some(self.instance.sql.seen.min_lsn.map_or(lsn, |m| m.max(lsn)));
            self.instance.sql.seen.wrote = true;
        }
    }

    /// A write inside a transaction: cached results over its tables are
    /// dropped now (this request may read them) and again at commit.
    async fn written_in(
        &mut self,
        this: &Resource<SqlTransaction>,
        statement: &str,
    ) -> wasmtime::Result<()> {
        self.plugin
            .capabilities
            .sql
            .query_cache
            .wrote(&self.plugin.name, statement)
            .await;
        self.table
            .get_mut(this)?
            .written
            .push(statement.to_string());
        Ok(())
    }

    /// The one query path: routed by consistency, watched, and a write on
    /// the primary recorded.
    async fn run_query(
        &mut self,
        db: &PluginDb,
        statement: String,
        params: Vec<backend::Value>,
        consistency: Consistency,
    ) -> Result<backend::Rows, SqlError> {
        let watch = self.watch("query", &statement);
        let result = match consistency {
            Consistency::ReplicaOk => {
                db.read(&statement, params.clone(), self.instance.sql.seen.min_lsn)
                    .instrument(watch.span.clone())
                    .await
            }
            Consistency::Primary => {
                db.query(&statement, params.clone())
                    .instrument(watch.span.clone())
                    .await
            }
        };
        if result.is_ok() && consistency == Consistency::Primary && may_write(&statement) {
            self.wrote(db, std::slice::from_ref(&statement)).await;
        }
        self.record(watch, result.as_ref().err(), statement, params);
        result
    }
}

/// The transaction `this` runs on: its own, or (a savepoint) the atomic
/// batch's. `None` once finished.
pub(crate) fn tx_of<'a>(
    table: &'a mut wasmtime::component::ResourceTable,
    ambient: &'a mut Option<Ambient>,
    this: &Resource<SqlTransaction>,
) -> wasmtime::Result<Option<&'a mut backend::Transaction>> {
    let transaction = table.get_mut(this)?;
    Ok(match (transaction.tx.as_mut(), &transaction.savepoint) {
        (Some(tx), _) => Some(tx),
        (None, Some(_)) => ambient.as_mut().and_then(|a| a.tx.as_mut()),
        (None, None) => None,
    })
}

/// A statement of a guest call inside an atomic batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InBatch {
    Query,
    Execute,
}

/// What such a statement returned.
enum Done {
    Rows(backend::Rows),
    Affected(u64),
}

impl HostState {
    /// Runs a statement on the atomic batch's transaction: every statement
    /// of a call inside an atomic batch goes there (no replica, no query
    /// cache: it must see the batch's own writes and nobody else may see
    /// them before the commit).
    async fn in_batch(
        &mut self,
        kind: InBatch,
        statement: String,
        params: Vec<backend::Value>,
    ) -> Result<Done, SqlError> {
        let op = match kind {
            InBatch::Query => "query",
            InBatch::Execute => "execute",
        };
        let watch = self.watch(op, &statement);
        let result = match self
            .instance
            .sql
            .ambient
            .as_mut()
            .and_then(|a| a.tx.as_mut())
        {
            None => Err(SqlError::TransactionClosed),
            Some(tx) => match kind {
                InBatch::Query => tx
                    .query(&statement, params.clone())
                    .instrument(watch.span.clone())
                    .await
                    .map(Done::Rows),
                InBatch::Execute => tx
                    .execute(&statement, params.clone())
                    .instrument(watch.span.clone())
                    .await
                    .map(Done::Affected),
            },
        };
        if result.is_ok()
            && (kind == InBatch::Execute || may_write(&statement))
            && let Some(ambient) = self.instance.sql.ambient.as_mut()
        {
            ambient.written.push(statement.clone());
        }
        self.record(watch, result.as_ref().err(), statement, params);
        result
    }

    async fn query_in_batch(
        &mut self,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, Error>> {
        Ok(
            match self
                .in_batch(InBatch::Query, statement, from_wit(params))
                .await
            {
                Ok(Done::Rows(rows)) => Ok(to_wit_rows(rows)),
                Ok(Done::Affected(_)) => Ok(to_wit_rows(backend::Rows::default())),
                Err(err) => Err(to_wit_error(err)),
            },
        )
    }
}

/// Whether a statement run through `query` on the primary may have written.
fn may_write(statement: &str) -> bool {
    let head = statement.trim_start();
    !(head.len() >= 6 && head[..6].eq_ignore_ascii_case("select"))
}

impl Host for HostState {
    async fn query(
        &mut self,
        statement: String,
        params: Vec<Value>,
        consistency: Consistency,
    ) -> wasmtime::Result<Result<Rows, Error>> {
        let db = match self.db() {
            Ok(db) => db.clone(),
            Err(err) => return Ok(Err(err)),
        };
        if self.instance.sql.ambient.is_some() {
            return self.query_in_batch(statement, params).await;
        }
        let result = self
            .run_query(&db, statement, from_wit(params), consistency)
            .await;
        Ok(result.map(to_wit_rows).map_err(to_wit_error))
    }

    async fn query_cached(
        &mut self,
        statement: String,
        params: Vec<Value>,
        consistency: Consistency,
        ttl_ms: u32,
    ) -> wasmtime::Result<Result<Rows, Error>> {
        let db = match self.db() {
            Ok(db) => db.clone(),
            Err(err) => return Ok(Err(err)),
        };
        if self.instance.sql.ambient.is_some() {
            return self.query_in_batch(statement, params).await;
        }
        let params = from_wit(params);
        let cache = self.plugin.capabilities.sql.query_cache.clone();
        let plugin = self.plugin.name.clone();
        let Some(read_set) = cache.read_set(&plugin, &statement).await else {
            let result = self.run_query(&db, statement, params, consistency).await;
            return Ok(result.map(to_wit_rows).map_err(to_wit_error));
        };
        let started = Instant::now();
        if let Some(rows) = cache.get(&plugin, &statement, &params).await {
            self.plugin.stats.sql("cached", started.elapsed(), None);
            return Ok(Ok(to_wit_rows(rows)));
        }
        let result = self
            .run_query(&db, statement.clone(), params.clone(), consistency)
            .await;
        if let Ok(rows) = &result {
            let ttl = std::time::Duration::from_millis(u64::from(ttl_ms));
            cache
                .put(&plugin, &statement, &params, rows, ttl, read_set)
                .await;
        }
        Ok(result.map(to_wit_rows).map_err(to_wit_error))
    }

    async fn execute(
        &mut self,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let db = match self.db() {
            Ok(db) => db.clone(),
            Err(err) => return Ok(Err(err)),
        };
        if self.instance.sql.ambient.is_some() {
            return Ok(
                match self
                    .in_batch(InBatch::Execute, statement, from_wit(params))
                    .await
                {
                    Ok(Done::Affected(n)) => Ok(n),
                    Ok(Done::Rows(_)) => Ok(0),
                    Err(err) => Err(to_wit_error(err)),
                },
            );
        }
        let params = from_wit(params);
        let watch = self.watch("execute", &statement);
        let result = db
            .execute(&statement, params.clone())
            .instrument(watch.span.clone())
            .await;
        if result.is_ok() {
            self.wrote(&db, std::slice::from_ref(&statement)).await;
        }
        self.record(watch, result.as_ref().err(), statement, params);
        Ok(result.map_err(to_wit_error))
    }

    async fn begin(&mut self) -> wasmtime::Result<Result<Resource<SqlTransaction>, Error>> {
        let db = match self.db() {
            Ok(db) => db.clone(),
            Err(err) => return Ok(Err(err)),
        };
        if let Some(ambient) = self.instance.sql.ambient.as_mut() {
            // Nested in the batch's transaction: a savepoint.
            ambient.savepoints += 1;
            let name = format!("trellis_sp{}", ambient.savepoints);
            let opened = match ambient.tx.as_mut() {
                Some(tx) => tx.execute(&format!("SAVEPOINT {name}"), Vec::new()).await,
                None => Err(SqlError::TransactionClosed),
            };
            if let Err(err) = opened {
                return Ok(Err(to_wit_error(err)));
            }
            let resource = self.table.push(SqlTransaction {
                tx: None,
                savepoint: Some(name),
                written: Vec::new(),
                enqueued: false,
            })?;
            return Ok(Ok(resource));
        }
        match db.begin().await {
            Ok(tx) => {
                let resource = self.table.push(SqlTransaction {
                    tx: Some(tx),
                    savepoint: None,
                    written: Vec::new(),
                    enqueued: false,
                })?;
                Ok(Ok(resource))
            }
            Err(err) => Ok(Err(to_wit_error(err))),
        }
    }
}

impl HostTransaction for HostState {
    async fn query(
        &mut self,
        this: Resource<SqlTransaction>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, Error>> {
        let params = from_wit(params);
        let watch = self.watch("query", &statement);
        let Some(tx) = tx_of(&mut self.table, &mut self.instance.sql.ambient, &this)? else {
            return Ok(Err(Error::TransactionClosed));
        };
        let result = tx
            .query(&statement, params.clone())
            .instrument(watch.span.clone())
            .await;
        if result.is_ok() && may_write(&statement) {
            self.written_in(&this, &statement).await?;
        }
        self.record(watch, result.as_ref().err(), statement, params);
        Ok(result.map(to_wit_rows).map_err(to_wit_error))
    }

    async fn execute(
        &mut self,
        this: Resource<SqlTransaction>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let params = from_wit(params);
        let watch = self.watch("execute", &statement);
        let Some(tx) = tx_of(&mut self.table, &mut self.instance.sql.ambient, &this)? else {
            return Ok(Err(Error::TransactionClosed));
        };
        let result = tx
            .execute(&statement, params.clone())
            .instrument(watch.span.clone())
            .await;
        if result.is_ok() {
            self.written_in(&this, &statement).await?;
        }
        self.record(watch, result.as_ref().err(), statement, params);
        Ok(result.map_err(to_wit_error))
    }

    async fn commit(
        &mut self,
        this: Resource<SqlTransaction>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let transaction = self.table.get_mut(&this)?;
        if let Some(name) = transaction.savepoint.take() {
            // A savepoint of the atomic batch: released; its writes commit
            // (or not) with the batch.
            let written = std::mem::take(&mut transaction.written);
            let Some(ambient) = self.instance.sql.ambient.as_mut() else {
                return Ok(Err(Error::TransactionClosed));
            };
            ambient.written.extend(written);
            let Some(tx) = ambient.tx.as_mut() else {
                return Ok(Err(Error::TransactionClosed));
            };
            let released = tx
                .execute(&format!("RELEASE SAVEPOINT {name}"), Vec::new())
                .await;
            return Ok(released.map(|_| ()).map_err(to_wit_error));
        }
        let Some(tx) = transaction.tx.take() else {
            return Ok(Err(Error::TransactionClosed));
        };
        let written = std::mem::take(&mut transaction.written);
        let enqueued = transaction.enqueued;
        let result = tx.commit().await.map_err(to_wit_error);
        if result.is_ok() && enqueued {
            crate::capability::jobs::forward_outbox(self.plugin.clone()).await;
        }
        if result.is_ok()
            && !written.is_empty()
            && let Ok(db) = self.db()
        {
            let db = db.clone();
            self.wrote(&db, &written).await;
        }
        Ok(result)
    }

    async fn drop(&mut self, this: Resource<SqlTransaction>) -> wasmtime::Result<()> {
        // Dropping an uncommitted sqlx transaction rolls it back; an
        // unreleased savepoint is rolled back to.
        let transaction = self.table.delete(this)?;
        if let Some(name) = transaction.savepoint
            && let Some(tx) = self
                .instance
                .sql
                .ambient
                .as_mut()
                .and_then(|a| a.tx.as_mut())
        {
            let mut undone = tx
                .execute(&format!("ROLLBACK TO SAVEPOINT {name}"), Vec::new())
                .await;
            if undone.is_ok() {
                undone = tx
                    .execute(&format!("RELEASE SAVEPOINT {name}"), Vec::new())
                    .await;
            }
            if let Err(err) = undone {
                tracing::warn!(%err, "cannot roll back to a savepoint; the batch fails");
                self.instance.sql.ambient = Some(Ambient::default());
            }
        }
        Ok(())
    }
}

fn from_wit(params: Vec<Value>) -> Vec<backend::Value> {
    params
        .into_iter()
        .map(|v| match v {
            Value::Null => backend::Value::Null,
            Value::Integer(i) => backend::Value::Integer(i),
            Value::Real(x) => backend::Value::Real(x),
            Value::Text(s) => backend::Value::Text(s),
            Value::Blob(b) => backend::Value::Blob(b),
            Value::Boolean(b) => backend::Value::Boolean(b),
            Value::Json(s) => backend::Value::Json(s),
            Value::Timestamp(t) => backend::Value::Timestamp(t),
        })
        .collect()
}

fn to_wit_value(value: backend::Value) -> Value {
    match value {
        backend::Value::Null => Value::Null,
        backend::Value::Integer(i) => Value::Integer(i),
        backend::Value::Real(x) => Value::Real(x),
        backend::Value::Text(s) => Value::Text(s),
        backend::Value::Blob(b) => Value::Blob(b),
        backend::Value::Boolean(b) => Value::Boolean(b),
        backend::Value::Json(s) => Value::Json(s),
        backend::Value::Timestamp(t) => Value::Timestamp(t),
    }
}

fn to_wit_rows(rows: backend::Rows) -> Rows {
    Rows {
        columns: rows.columns,
        rows: rows
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(to_wit_value).collect())
            .collect(),
    }
}

fn to_wit_error(err: SqlError) -> Error {
    match err {
        SqlError::Constraint(m) => Error::ConstraintViolation(m),
        SqlError::Syntax(m) => Error::Syntax(m),
        SqlError::PermissionDenied(m) => Error::PermissionDenied(m),
        SqlError::Timeout(m) => Error::Timeout(m),
        SqlError::Unavailable(m) => Error::Unavailable(m),
        SqlError::Invalid(m) => Error::Invalid(m),
        SqlError::TransactionClosed => Error::TransactionClosed,
    }
}
