//! Host and process gauges: instances in use, connections open, the query
//! cache and read replicas (set from a [`HostSnapshot`] at scrape time),
//! startup, and the process's memory and CPU.
//!
//! Layer: monitor, low: it uses nothing of the crate but its siblings in
//! `monitor`; the layers above record through the handles.

use std::time::Duration;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Metrics;
use super::labels::{FloatGauge, ReplicaLabels, TargetLabels};

/// What the host knows at scrape time (gauges are set from it).
#[derive(Debug, Default)]
pub struct HostSnapshot {
    /// Instances alive now across all plugins.
    pub instances_in_use: i64,
    /// Query cache (hits, misses).
    pub query_cache: (u64, u64),
    /// Replica-ok reads by where they went: `replica`, or the primary with
    /// the reason (`primary_none_usable`, `primary_not_caught_up`).
    pub replica_reads: Vec<(&'static str, u64)>,
    /// Per replica: name, lag bytes, lag seconds, healthy.
    pub replicas: Vec<(String, u64, f64, bool)>,
    /// Bytes in the in-process cache tier.
    pub cache_l1_bytes: u64,
    /// `Some(up)` when Redis is configured.
    pub redis_up: Option<bool>,
}

impl HostSnapshot {
    /// Query cache hits over lookups; `None` before any lookup.
    pub fn query_cache_hit_rate(&self) -> Option<f64> {
        let (hits, misses) = self.query_cache;
        (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64)
    }
}

/// The host family of the registry.
#[derive(Debug)]
pub(super) struct HostMetrics {
    instances_in_use: Gauge,
    connections_open: Gauge,
    query_cache: Family<TargetLabels, Gauge>,
    replica_reads: Family<TargetLabels, Gauge>,
    replica_lag_bytes: Family<ReplicaLabels, Gauge>,
    replica_lag_seconds: Family<ReplicaLabels, FloatGauge>,
    replica_healthy: Family<ReplicaLabels, Gauge>,
    startup_seconds: FloatGauge,
    start_time: FloatGauge,
    process_rss: Gauge,
    process_cpu: FloatGauge,
}

impl HostMetrics {
    /// The family's handles, registered in `r`.
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = HostMetrics {
            instances_in_use: Gauge::default(),
            connections_open: Gauge::default(),
            query_cache: Family::default(),
            replica_reads: Family::default(),
            replica_lag_bytes: Family::default(),
            replica_lag_seconds: Family::default(),
            replica_healthy: Family::default(),
            startup_seconds: FloatGauge::default(),
            start_time: FloatGauge::default(),
            process_rss: Gauge::default(),
            process_cpu: FloatGauge::default(),
        };
        r.register(
            "instances_in_use",
            "Plugin instances alive now",
            m.instances_in_use.clone(),
        );
        r.register(
            "connections_open",
            "HTTP connections open now",
            m.connections_open.clone(),
        );
        r.register(
            "sql_query_cache",
            "Query cache lookups so far, by result (hit, miss)",
            m.query_cache.clone(),
        );
        r.register(
            "sql_replica_ok_reads",
            "replica-ok reads so far by where they ran (replica, or primary and why)",
            m.replica_reads.clone(),
        );
        r.register(
            "sql_replica_lag_bytes",
            "WAL bytes a replica is behind the primary, as last sampled",
            m.replica_lag_bytes.clone(),
        );
        r.register(
            "sql_replica_lag_seconds",
            "Replay delay of a replica, as last sampled",
            m.replica_lag_seconds.clone(),
        );
        r.register(
            "sql_replica_healthy",
            "1 when a replica answered its last sample",
            m.replica_healthy.clone(),
        );
        r.register(
            "startup_duration_seconds",
            "Process start (server start) to ready",
            m.startup_seconds.clone(),
        );
        r.register(
            "start_time_seconds",
            "When the server became ready, Unix time",
            m.start_time.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident set size of the process",
            m.process_rss.clone(),
        );
        r.register(
            "process_cpu_seconds",
            "CPU time the process has used (user and system)",
            m.process_cpu.clone(),
        );
        m
    }

    /// Sets the gauges from `host` and a sample of the process, before a
    /// scrape.
    pub(super) fn refresh(&self, host: &HostSnapshot) {
        self.instances_in_use.set(host.instances_in_use);
        let (hits, misses) = host.query_cache;
        set(&self.query_cache, "hit", hits);
        set(&self.query_cache, "miss", misses);
        for &(target, count) in &host.replica_reads {
            set(&self.replica_reads, target, count);
        }
        for (name, bytes, seconds, healthy) in &host.replicas {
            let labels = ReplicaLabels {
                replica: name.clone(),
            };
            self.replica_lag_bytes
                .get_or_create(&labels)
                .set(i64::try_from(*bytes).unwrap_or(i64::MAX));
            self.replica_lag_seconds
                .get_or_create(&labels)
                .set(*seconds);
            self.replica_healthy
                .get_or_create(&labels)
                .set(i64::from(*healthy));
        }
        if let Some(process) = crate::monitor::process::sample() {
            self.process_rss
                .set(i64::try_from(process.rss_bytes).unwrap_or(i64::MAX));
            self.process_cpu.set(process.cpu_seconds);
        }
    }
}

impl Metrics {
    /// One HTTP connection opened (+1) or closed (-1).
    pub fn connection(&self, delta: i64) {
        self.host.connections_open.inc_by(delta);
    }

    /// Records the startup time and the moment the server became ready.
    pub fn started(&self, elapsed: Duration) {
        self.host.startup_seconds.set(elapsed.as_secs_f64());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.host.start_time.set(now.as_secs_f64());
    }
}

fn set(family: &Family<TargetLabels, Gauge>, target: &str, value: u64) {
    family
        .get_or_create(&TargetLabels {
            target: target.into(),
        })
        .set(i64::try_from(value).unwrap_or(i64::MAX));
}
