//! The Prometheus registry (`prometheus-client`): every metric the runtime
//! exports, with handles resolved once per route and per plugin so the
//! request path does no label hashing or allocation.
//!
//! Names and labels are listed in `docs/observability.md`. Counters get
//! the `_total` suffix from the encoder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::window::{Summary, Window};

/// Latency buckets in seconds: 100 µs to 30 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 30.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    plugin: String,
    route: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    plugin: String,
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    plugin: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    plugin: String,
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InvalidationLabels {
    kind: String,
    origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseCacheLabels {
    plugin: String,
    route: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Status classes counted per route, in the order of [`RouteStats`]' array.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Every metric of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Sliding windows per (plugin, route, method), shared across versions.
    windows: Mutex<BTreeMap<(String, String, String), Arc<Window>>>,
    requests: Family<RequestLabels, Counter>,
    request_duration: Histograms<RouteLabels>,
    unrouted: Family<StatusLabels, Counter>,
    guest_duration: Histograms<PluginLabels>,
    instantiate_duration: Histograms<PluginLabels>,
    faults: Family<KindLabels, Counter>,
    memory_high_water: Family<PluginLabels, Gauge>,
    sql_duration: Histograms<KindLabels>,
    sql_errors: Family<KindLabels, Counter>,
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
    cache_lookups: Family<TierLabels, Counter>,
    cache_loads: Family<ResultLabels, Counter>,
    cache_load_duration: Histogram,
    cache_evictions: Family<CauseLabels, Counter>,
    cache_invalidations: Family<InvalidationLabels, Counter>,
    cache_stale_served: Counter,
    cache_redis_errors: Family<OpLabels, Counter>,
    cache_l1_bytes: Gauge,
    redis_up: Gauge,
    response_cache: Family<ResponseCacheLabels, Counter>,
    lock_acquires: Family<ResultLabels, Counter>,
    lock_wait: Histogram,
    lock_lost: Counter,
    job_attempts: Family<JobLabels, Counter>,
    job_duration: Histograms<KindLabels>,
    job_pickup: Histogram,
    job_depth: Family<QueueLabels, Gauge>,
}

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

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("trellis");
        let metrics = Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            unrouted: Family::default(),
            guest_duration: Family::new_with_constructor(latency_histogram),
            instantiate_duration: Family::new_with_constructor(latency_histogram),
            faults: Family::default(),
            memory_high_water: Family::default(),
            sql_duration: Family::new_with_constructor(latency_histogram),
            sql_errors: Family::default(),
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
            cache_lookups: Family::default(),
            cache_loads: Family::default(),
            cache_load_duration: latency_histogram(),
            cache_evictions: Family::default(),
            cache_invalidations: Family::default(),
            cache_stale_served: Counter::default(),
            cache_redis_errors: Family::default(),
            cache_l1_bytes: Gauge::default(),
            redis_up: Gauge::default(),
            response_cache: Family::default(),
            lock_acquires: Family::default(),
            lock_wait: latency_histogram(),
            lock_lost: Counter::default(),
            job_attempts: Family::default(),
            job_duration: Family::new_with_constructor(latency_histogram),
            job_pickup: latency_histogram(),
            job_depth: Family::default(),
            registry: Registry::default(),
            windows: Mutex::default(),
        };
        let m = &metrics;
        let r = &mut registry;
        r.register(
            "http_requests",
            "HTTP requests served by a plugin route, by status class",
            m.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time from request head to response, per plugin route",
            m.request_duration.clone(),
        );
        r.register(
            "http_unrouted_requests",
            "Requests that matched no route (404) or no method (405)",
            m.unrouted.clone(),
        );
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
        r.register(
            "cache_lookups",
            "Cache lookups by tier (l1, l2) and result (hit, miss)",
            m.cache_lookups.clone(),
        );
        r.register(
            "cache_loads",
            "Cache loads (fetch misses filled or failed) by result (ok, failed)",
            m.cache_loads.clone(),
        );
        r.register(
            "cache_load_duration_seconds",
            "Time from a fetch miss to its fill or failure",
            m.cache_load_duration.clone(),
        );
        r.register(
            "cache_evictions",
            "Entries the in-process tier dropped, by cause (size, expired)",
            m.cache_evictions.clone(),
        );
        r.register(
            "cache_invalidations",
            "Invalidations by kind (key, tag) and origin (local, remote node)",
            m.cache_invalidations.clone(),
        );
        r.register(
            "cache_stale_served",
            "Stale values served because their reload failed",
            m.cache_stale_served.clone(),
        );
        r.register(
            "cache_redis_errors",
            "Cache operations that fell back to process memory, by Redis operation",
            m.cache_redis_errors.clone(),
        );
        r.register(
            "cache_l1_bytes",
            "Bytes held by the in-process cache tier",
            m.cache_l1_bytes.clone(),
        );
        r.register(
            "redis_up",
            "1 when Redis is configured and connected, 0 when configured and not",
            m.redis_up.clone(),
        );
        r.register(
            "http_response_cache",
            "Cacheable GET requests by result (hit, miss, bypass, not_modified)",
            m.response_cache.clone(),
        );
        r.register(
            "lock_acquires",
            "Lock acquisitions by result (acquired, timeout, unavailable, invalid)",
            m.lock_acquires.clone(),
        );
        r.register(
            "lock_wait_seconds",
            "Time spent acquiring a lock (contention)",
            m.lock_wait.clone(),
        );
        r.register(
            "lock_lost",
            "Leases found lost on extend or release",
            m.lock_lost.clone(),
        );
        r.register(
            "job_attempts",
            "Job attempts run on this node by outcome (completed, retryable, discarded, snoozed, cancelled)",
            m.job_attempts.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Time one job attempt took, by plugin and kind",
            m.job_duration.clone(),
        );
        r.register(
            "job_pickup_seconds",
            "Time from a job being due to a worker starting it",
            m.job_pickup.clone(),
        );
        r.register(
            "job_queue_depth",
            "Jobs per queue and state (sampled by the maintenance leader)",
            m.job_depth.clone(),
        );
        r.register(
            "build",
            "The Trellis build",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The handles of one route, resolved once per plugin version.
    pub fn route(&self, plugin: &str, route: &str, method: &str) -> RouteStats {
        let counter = |status: &str| {
            self.requests
                .get_or_create(&RequestLabels {
                    plugin: plugin.into(),
                    route: route.into(),
                    method: method.into(),
                    status: status.into(),
                })
                .clone()
        };
        RouteStats {
            requests: STATUS_CLASSES.map(counter),
            duration: self
                .request_duration
                .get_or_create(&RouteLabels {
                    plugin: plugin.into(),
                    route: route.into(),
                    method: method.into(),
                })
                .clone(),
            window: self
                .windows
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry((plugin.into(), route.into(), method.into()))
                .or_default()
                .clone(),
        }
    }

    /// Each route's window: plugin, route, method, window.
    pub fn route_windows(&self) -> Vec<(String, String, String, Arc<Window>)> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows
            .iter()
            .map(|((p, r, m), w)| (p.clone(), r.clone(), m.clone(), w.clone()))
            .collect()
    }

    /// Each route's last minute and last five minutes.
    pub fn summaries(&self) -> Vec<RouteSummary> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows
            .iter()
            .map(|((plugin, route, method), window)| RouteSummary {
                plugin: plugin.clone(),
                route: route.clone(),
                method: method.clone(),
                last_1m: window.summary(Duration::from_secs(60)),
                last_5m: window.summary(Duration::from_secs(300)),
            })
            .collect()
    }

    /// The handles of one plugin.
    pub fn plugin(self: &Arc<Self>, plugin: &str) -> PluginStats {
        let labels = PluginLabels {
            plugin: plugin.into(),
        };
        let sql = |op: &str| {
            self.sql_duration
                .get_or_create(&KindLabels {
                    plugin: plugin.into(),
                    kind: op.into(),
                })
                .clone()
        };
        PluginStats {
            name: plugin.into(),
            guest_duration: self.guest_duration.get_or_create(&labels).clone(),
            instantiate_duration: self.instantiate_duration.get_or_create(&labels).clone(),
            memory_high_water: self.memory_high_water.get_or_create(&labels).clone(),
            sql_query: sql("query"),
            sql_execute: sql("execute"),
            sql_cached: sql("cached"),
            metrics: self.clone(),
        }
    }

    /// Sets the queue depth gauges from per (queue, state) counts.
    pub fn job_depth(&self, counts: &[(String, String, i64)]) {
        self.job_depth.clear();
        for (queue, state, n) in counts {
            self.job_depth
                .get_or_create(&QueueLabels {
                    queue: queue.clone(),
                    state: state.clone(),
                })
                .set(*n);
        }
    }

    /// A request that matched no route.
    pub fn unrouted(&self, status: u16) {
        self.unrouted
            .get_or_create(&StatusLabels {
                status: status.to_string(),
            })
            .inc();
    }

    /// One HTTP connection opened (+1) or closed (-1).
    pub fn connection(&self, delta: i64) {
        self.connections_open.inc_by(delta);
    }

    /// Records the startup time and the moment the server became ready.
    pub fn started(&self, elapsed: Duration) {
        self.startup_seconds.set(elapsed.as_secs_f64());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.start_time.set(now.as_secs_f64());
    }

    /// Handles for the cache.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            lookups: self.cache_lookups.clone(),
            loads: self.cache_loads.clone(),
            load_duration: self.cache_load_duration.clone(),
            evictions: self.cache_evictions.clone(),
            invalidations: self.cache_invalidations.clone(),
            stale_served: self.cache_stale_served.clone(),
            redis_errors: self.cache_redis_errors.clone(),
        }
    }

    /// Handles for locks.
    pub fn lock_stats(&self) -> LockStats {
        LockStats {
            acquires: self.lock_acquires.clone(),
            wait: self.lock_wait.clone(),
            lost: self.lock_lost.clone(),
        }
    }

    /// The response cache counters of one route (hit, miss, bypass,
    /// not_modified), resolved once per plugin version.
    pub fn response_cache(&self, plugin: &str, route: &str) -> ResponseCacheStats {
        let counter = |result: &str| {
            self.response_cache
                .get_or_create(&ResponseCacheLabels {
                    plugin: plugin.into(),
                    route: route.into(),
                    result: result.into(),
                })
                .clone()
        };
        ResponseCacheStats {
            hit: counter("hit"),
            miss: counter("miss"),
            bypass: counter("bypass"),
            not_modified: counter("not_modified"),
        }
    }

    /// The text exposition, gauges refreshed from `host` and the process.
    pub fn render(&self, host: &HostSnapshot) -> String {
        self.instances_in_use.set(host.instances_in_use);
        self.cache_l1_bytes
            .set(i64::try_from(host.cache_l1_bytes).unwrap_or(i64::MAX));
        if let Some(up) = host.redis_up {
            self.redis_up.set(i64::from(up));
        }
        let (hits, misses) = host.query_cache;
        self.set(&self.query_cache, "hit", hits);
        self.set(&self.query_cache, "miss", misses);
        for &(target, count) in &host.replica_reads {
            self.set(&self.replica_reads, target, count);
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
        if let Some(process) = super::process::sample() {
            self.process_rss
                .set(i64::try_from(process.rss_bytes).unwrap_or(i64::MAX));
            self.process_cpu.set(process.cpu_seconds);
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            let _ = writeln!(text, "# encoding failed");
        }
        text
    }

    fn set(&self, family: &Family<TargetLabels, Gauge>, target: &str, value: u64) {
        family
            .get_or_create(&TargetLabels {
                target: target.into(),
            })
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }
}

/// A route's recent traffic, for `/api/v1/monitoring/metrics`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteSummary {
    /// The plugin serving it.
    pub plugin: String,
    /// The path pattern.
    pub route: String,
    /// The method.
    pub method: String,
    /// The last minute.
    pub last_1m: Summary,
    /// The last five minutes.
    pub last_5m: Summary,
}

/// One route's handles: requests by status class, latency, and the sliding
/// window behind the JSON summary.
#[derive(Debug, Clone)]
pub struct RouteStats {
    requests: [Counter; 5],
    duration: Histogram,
    /// Recent requests, for `/api/v1/monitoring/metrics`.
    pub window: Arc<Window>,
}

impl RouteStats {
    /// Records one response.
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[class].inc();
        self.duration.observe(elapsed.as_secs_f64());
        self.window.record(elapsed, status >= 500);
    }
}

/// One plugin's handles.
#[derive(Debug, Clone)]
pub struct PluginStats {
    name: String,
    guest_duration: Histogram,
    instantiate_duration: Histogram,
    memory_high_water: Gauge<i64, AtomicI64>,
    sql_query: Histogram,
    sql_execute: Histogram,
    sql_cached: Histogram,
    metrics: Arc<Metrics>,
}

impl PluginStats {
    /// A finished guest call: its time and the memory its instance reached.
    pub fn guest_call(&self, instantiate: Duration, total: Duration, memory: usize) {
        self.instantiate_duration.observe(instantiate.as_secs_f64());
        self.guest_duration.observe(total.as_secs_f64());
        let memory = i64::try_from(memory).unwrap_or(i64::MAX);
        self.memory_high_water
            .inner()
            .fetch_max(memory, std::sync::atomic::Ordering::Relaxed);
    }

    /// A request the plugin failed, by kind.
    pub fn fault(&self, kind: &str) {
        self.metrics
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
                .sql_errors
                .get_or_create(&KindLabels {
                    plugin: self.name.clone(),
                    kind: kind.into(),
                })
                .inc();
        }
    }
}

impl PluginStats {
    /// One job attempt: its kind, outcome, time, and the time from being
    /// due to starting (`None` when unknown).
    pub fn job(&self, kind: &str, outcome: &str, pickup: Option<Duration>, elapsed: Duration) {
        self.metrics
            .job_attempts
            .get_or_create(&JobLabels {
                plugin: self.name.clone(),
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.metrics
            .job_duration
            .get_or_create(&KindLabels {
                plugin: self.name.clone(),
                kind: kind.into(),
            })
            .observe(elapsed.as_secs_f64());
        if let Some(pickup) = pickup {
            self.metrics.job_pickup.observe(pickup.as_secs_f64());
        }
    }
}

/// The cache's handles.
#[derive(Debug, Clone)]
pub struct CacheStats {
    lookups: Family<TierLabels, Counter>,
    loads: Family<ResultLabels, Counter>,
    load_duration: Histogram,
    evictions: Family<CauseLabels, Counter>,
    invalidations: Family<InvalidationLabels, Counter>,
    stale_served: Counter,
    redis_errors: Family<OpLabels, Counter>,
}

impl Default for CacheStats {
    /// Handles registered nowhere (for tools and tests).
    fn default() -> Self {
        Metrics::new().cache_stats()
    }
}

impl CacheStats {
    /// A lookup in `tier` (`l1`, `l2`).
    pub fn lookup(&self, tier: &str, hit: bool) {
        self.lookups
            .get_or_create(&TierLabels {
                tier: tier.into(),
                result: if hit { "hit" } else { "miss" }.into(),
            })
            .inc();
    }

    /// A finished load.
    pub fn load(&self, ok: bool, elapsed: Duration) {
        self.loads
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "failed" }.into(),
            })
            .inc();
        self.load_duration.observe(elapsed.as_secs_f64());
    }

    /// An entry dropped from the in-process tier.
    pub fn evicted(&self, cause: &str) {
        self.evictions
            .get_or_create(&CauseLabels {
                cause: cause.into(),
            })
            .inc();
    }

    /// An invalidation of `kind` (`key`, `tag`) from `origin` (`local`,
    /// `remote`).
    pub fn invalidation(&self, kind: &str, origin: &str) {
        self.invalidations
            .get_or_create(&InvalidationLabels {
                kind: kind.into(),
                origin: origin.into(),
            })
            .inc();
    }

    /// A stale value served after a failed load.
    pub fn stale_served(&self) {
        self.stale_served.inc();
    }

    /// A Redis operation that failed (or was skipped while disconnected).
    pub fn redis_error(&self, op: &str) {
        self.redis_errors
            .get_or_create(&OpLabels { op: op.into() })
            .inc();
    }
}

/// The lock handles.
#[derive(Debug, Clone)]
pub struct LockStats {
    acquires: Family<ResultLabels, Counter>,
    wait: Histogram,
    lost: Counter,
}

impl LockStats {
    /// An acquisition attempt's result and how long it took.
    pub fn acquired(&self, result: &str, waited: Duration) {
        self.acquires
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
        self.wait.observe(waited.as_secs_f64());
    }

    /// A lease found lost.
    pub fn lost(&self) {
        self.lost.inc();
    }
}

/// One route's response cache counters.
#[derive(Debug, Clone)]
pub struct ResponseCacheStats {
    /// Served from the cache.
    pub hit: Counter,
    /// Computed by the plugin (and stored).
    pub miss: Counter,
    /// The client asked for a fresh answer (`Cache-Control: no-cache`).
    pub bypass: Counter,
    /// Answered 304 to `If-None-Match`.
    pub not_modified: Counter,
}
