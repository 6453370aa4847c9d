//! Per-plugin metrics: guest calls (time in the instance, instantiation,
//! memory high water), the requests a plugin failed, and its SQL
//! statements.
//!
//! Layer: monitor, low: it uses nothing of the crate but its siblings in
//! `monitor`; the layers above record through the handles.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::Metrics;
use super::labels::{Histograms, KindLabels, OutboundLabels, PluginLabels, latency_histogram};

/// The plugin family of the registry.
#[derive(Debug)]
pub(super) struct PluginMetrics {
    guest_duration: Histograms<PluginLabels>,
    instantiate_duration: Histograms<PluginLabels>,
    faults: Family<KindLabels, Counter>,
    memory_high_water: Family<PluginLabels, Gauge>,
    sql_duration: Histograms<KindLabels>,
    sql_errors: Family<KindLabels, Counter>,
    outbound: Family<OutboundLabels, Counter>,
    outbound_duration: Histograms<PluginLabels>,
    outbound_opened: Family<PluginLabels, Counter>,
    outbound_open: Family<PluginLabels, Gauge>,
    instances_reused: Family<PluginLabels, Counter>,
}

impl PluginMetrics {
    /// The family's handles, registered in `r`.
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = PluginMetrics {
            guest_duration: Family::new_with_constructor(latency_histogram),
            instantiate_duration: Family::new_with_constructor(latency_histogram),
            faults: Family::default(),
            memory_high_water: Family::default(),
            sql_duration: Family::new_with_constructor(latency_histogram),
            sql_errors: Family::default(),
            outbound: Family::default(),
            outbound_duration: Family::new_with_constructor(latency_histogram),
            outbound_opened: Family::default(),
            outbound_open: Family::default(),
            instances_reused: Family::default(),
        };
        r.register(
            "guest_call_duration_seconds",
            "Time in the plugin instance (instantiate and handle) per request",
            m.guest_duration.clone(),
        );
        r.register(
            "instantiate_duration_seconds",
            "Time to instantiate a plugin from its pre-instantiated component",
            m.instantiate_duration.clone(),
        );
        r.register(
            "guest_faults",
            "Requests a plugin failed, by error code (deadline_exceeded, guest_fault, memory_limit, overloaded, ...)",
            m.faults.clone(),
        );
        r.register(
            "plugin_memory_high_water_bytes",
            "Largest linear memory any instance of the plugin grew to",
            m.memory_high_water.clone(),
        );
        r.register(
            "sql_statement_duration_seconds",
            "SQL statements run by plugins, by operation (query, execute, cached)",
            m.sql_duration.clone(),
        );
        r.register(
            "sql_statement_errors",
            "SQL statements that failed, by error kind",
            m.sql_errors.clone(),
        );
        r.register(
            "outbound_requests",
            "Outgoing HTTP requests of plugins, by host and status (or the error: denied, connect, timeout, ...)",
            m.outbound.clone(),
        );
        r.register(
            "outbound_request_duration_seconds",
            "Outgoing HTTP requests of plugins: time to the response's head",
            m.outbound_duration.clone(),
        );
        r.register(
            "outbound_connections_opened",
            "Connections the plugin's outgoing-HTTP pool opened (requests per connection opened is its reuse)",
            m.outbound_opened.clone(),
        );
        r.register(
            "outbound_connections_open",
            "Connections of the plugin's outgoing-HTTP pool open now, in use or idle",
            m.outbound_open.clone(),
        );
        r.register(
            "instances_reused",
            "Requests a plugin served in a warm instance (`reuse`) instead of a fresh one",
            m.instances_reused.clone(),
        );
        m
    }
}

impl Metrics {
    /// The handles of one plugin.
    pub fn plugin(self: &Arc<Self>, plugin: &str) -> PluginStats {
        let labels = PluginLabels {
            plugin: plugin.into(),
        };
        let sql = |op: &str| {
            self.plugins
                .sql_duration
                .get_or_create(&KindLabels {
                    plugin: plugin.into(),
                    kind: op.into(),
                })
                .clone()
        };
        PluginStats {
            name: plugin.into(),
            guest_duration: self.plugins.guest_duration.get_or_create(&labels).clone(),
            instantiate_duration: self
                .plugins
                .instantiate_duration
                .get_or_create(&labels)
                .clone(),
            memory_high_water: self
                .plugins
                .memory_high_water
                .get_or_create(&labels)
                .clone(),
            sql_query: sql("query"),
            sql_execute: sql("execute"),
            sql_cached: sql("cached"),
            instances_reused: self.plugins.instances_reused.get_or_create(&labels).clone(),
            metrics: self.clone(),
        }
    }
}

/// One plugin's handles.
#[derive(Debug, Clone)]
pub struct PluginStats {
    pub(super) name: String,
    guest_duration: Histogram,
    instantiate_duration: Histogram,
    memory_high_water: Gauge<i64, AtomicI64>,
    sql_query: Histogram,
    sql_execute: Histogram,
    sql_cached: Histogram,
    instances_reused: Counter,
    pub(super) metrics: Arc<Metrics>,
}

impl PluginStats {
    /// A connection of the plugin's outgoing pool opened: counted, and the
    /// gauge of open ones returned, for its close to decrement.
    pub fn outbound_connection_opened(&self) -> Gauge {
        let plugins = &self.metrics.plugins;
        let labels = PluginLabels {
            plugin: self.name.clone(),
        };
        plugins.outbound_opened.get_or_create(&labels).inc();
        let open = plugins.outbound_open.get_or_create(&labels).clone();
        open.inc();
        open
    }

    /// An outgoing request of the plugin to `host`: its `status` (or the
    /// error's kind) and the time to its response's head.
    pub fn outbound(&self, host: &str, status: &str, elapsed: Option<Duration>) {
        let plugins = &self.metrics.plugins;
        plugins
            .outbound
            .get_or_create(&OutboundLabels {
                plugin: self.name.clone(),
                host: host.into(),
                status: status.into(),
            })
            .inc();
        if let Some(elapsed) = elapsed {
            plugins
                .outbound_duration
                .get_or_create(&PluginLabels {
                    plugin: self.name.clone(),
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// A finished guest call: the time to instantiate (none for a warm
    /// instance, or when instantiation failed), its time in all and the
    /// memory its instance reached.
    pub fn guest_call(&self, instantiate: Option<Duration>, total: Duration, memory: usize) {
        if let Some(instantiate) = instantiate {
            self.instantiate_duration.observe(instantiate.as_secs_f64());
        }
        self.guest_duration.observe(total.as_secs_f64());
        let memory = i64::try_from(memory).unwrap_or(i64::MAX);
        self.memory_high_water
            .inner()
            .fetch_max(memory, std::sync::atomic::Ordering::Relaxed);
    }

    /// A request served in a warm instance.
    pub fn instance_reused(&self) {
        self.instances_reused.inc();
    }

    /// A request the plugin failed, by kind.
    pub fn fault(&self, kind: &str) {
        self.metrics
            .plugins
            .faults
            .get_or_create(&KindLabels {
                plugin: self.name.clone(),
                kind: kind.into(),
            })
            .inc();
    }

    /// One SQL statement: `op` is `query`, `execute` or `cached`; `error`
    /// its error kind when it failed.
    pub fn sql(&self, op: &str, elapsed: Duration, error: Option<&str>) {
        let histogram = match op {
            "execute" => &self.sql_execute,
            "cached" => &self.sql_cached,
            _ => &self.sql_query,
        };
        histogram.observe(elapsed.as_secs_f64());
        if let Some(kind) = error {
            self.metrics
                .plugins
                .sql_errors
                .get_or_create(&KindLabels {
                    plugin: self.name.clone(),
                    kind: kind.into(),
                })
                .inc();
        }
    }
}
