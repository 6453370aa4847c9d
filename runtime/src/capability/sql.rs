//! `trellis:plugin/sql`: the plugin's own database. Converts WIT values to
//! the backend's and back; the backend (`backend::sql`) does the isolation
//! and the work. A plugin without the `sql` grant never gets here: it does
//! not load.

use std::time::Instant;

use opentelemetry::KeyValue;
use tracing::Instrument;
use wasmtime::component::Resource;

use crate::backend::sql::{self as backend, PluginDb, SqlError};
use crate::monitor::{Occurrence, trace_id};
use crate::plugin::HostState;
use crate::plugin::bindings::sql::{Consistency, Error, Host, HostTransaction, Rows, Value};

/// The header that carries the consistency token: the primary's WAL
/// position after the request's writes (out), or one the client saw (in).
pub const CONSISTENCY_HEADER: &str = "x-trellis-lsn";

/// The host side of a guest's `transaction` resource. `None` once committed;
/// dropping it rolls back.
#[derive(Debug)]
pub struct SqlTransaction {
    pub(crate) tx: Option<backend::Transaction>,
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
        match &self.plugin.sql {
            Some(PluginDb::Postgres(_)) => "postgresql",
            _ => "sqlite",
        }
    }

    fn db(&self) -> Result<&PluginDb, Error> {
        self.plugin.sql.as_ref().ok_or_else(|| {
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
        super::end_span(watch.trace.take(), error);
        let succeeded = error.is_none();
        let thresholds = self.plugin.sql_watch;
        let seen = self.sql_seen.shapes.entry(watch.shape.clone()).or_insert(0);
        *seen += 1;
        if *seen == thresholds.n_plus_one_threshold {
            tracing::warn!(
                plugin = %self.plugin.name,
                request_id = %self.request_id,
                shape = %watch.shape,
                repeats = *seen,
                "N+1 suspected: one statement shape repeated within a request"
            );
            self.sql_seen.n_plus_one = Some(watch.shape.clone());
        }
        if succeeded
            && elapsed >= thresholds.slow_query
            && let Some(db) = self.plugin.sql.clone()
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
                .query_cache
                .wrote(&self.plugin.name, statement)
                .await;
        }
        if let Some(lsn) = db.write_position().await {
            self.sql_seen.min_lsn = Some(self.sql_seen.min_lsn.map_or(lsn, |m| m.max(lsn)));
            self.sql_seen.wrote = true;
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
                db.read(&statement, params.clone(), self.sql_seen.min_lsn)
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
        let params = from_wit(params);
        let cache = self.plugin.query_cache.clone();
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
        match db.begin().await {
            Ok(tx) => {
                let resource = self.table.push(SqlTransaction {
                    tx: Some(tx),
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
        let Some(tx) = self.table.get_mut(&this)?.tx.as_mut() else {
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
        let Some(tx) = self.table.get_mut(&this)?.tx.as_mut() else {
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
        let Some(tx) = transaction.tx.take() else {
            return Ok(Err(Error::TransactionClosed));
        };
        let written = std::mem::take(&mut transaction.written);
        let enqueued = transaction.enqueued;
        let result = tx.commit().await.map_err(to_wit_error);
        if result.is_ok() && enqueued {
            super::jobs::forward_outbox(self.plugin.clone()).await;
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
        // Dropping an uncommitted sqlx transaction rolls it back.
        self.table.delete(this)?;
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
