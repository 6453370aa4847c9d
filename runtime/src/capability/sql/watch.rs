//! Statement watching for the `sql` capability: each statement's tracing
//! span and OpenTelemetry span, its stats, infrastructure failures recorded
//! as error groups, N+1 detection (one shape repeated within a request),
//! and the plan of a slow query, fetched off the request path.
//!
//! Layer: `capability` (part of `capability::sql`); it may call
//! `backend::sql` (shapes, `EXPLAIN`) and `monitor`, nothing above.

use std::time::Instant;

use opentelemetry::KeyValue;

use crate::backend::sql::{self as backend, SqlError};
use crate::capability::HostState;
use crate::monitor::{Occurrence, trace_id};

/// One statement being watched: its shape, span and start time.
pub(super) struct Watch {
    op: &'static str,
    shape: String,
    pub(super) span: tracing::Span,
    /// The statement's OpenTelemetry span, inside a traced request.
    trace: Option<opentelemetry::Context>,
    started: Instant,
}

impl HostState {
    pub(super) fn watch(&self, op: &'static str, statement: &str) -> Watch {
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
            || {
                vec![
                    KeyValue::new("db.system.name", self.db_system()),
                    KeyValue::new("db.query.text", shape.clone()),
                ]
            },
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
    pub(super) fn record(
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
