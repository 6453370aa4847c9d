//! Cache metrics: the two-tier cache (lookups per tier, loads, evictions,
//! invalidations, Redis trouble, the size of its process tier) and the
//! HTTP response cache per route; with the handles the cache and the
//! response cache record through.
//!
//! Layer: monitor, low: it uses nothing of the crate but its siblings in
//! `monitor`; the layers above record through the handles.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::labels::{
    CauseLabels, InvalidationLabels, OpLabels, ResponseCacheLabels, ResultLabels, TierLabels,
    latency_histogram,
};
use super::{HostSnapshot, Metrics};

/// The cache family of the registry.
#[derive(Debug)]
pub(super) struct CacheMetrics {
    lookups: Family<TierLabels, Counter>,
    loads: Family<ResultLabels, Counter>,
    load_duration: Histogram,
    evictions: Family<CauseLabels, Counter>,
    invalidations: Family<InvalidationLabels, Counter>,
    stale_served: Counter,
    redis_errors: Family<OpLabels, Counter>,
    l1_bytes: Gauge,
    redis_up: Gauge,
    response_cache: Family<ResponseCacheLabels, Counter>,
}

impl CacheMetrics {
    /// The family's handles, registered in `r`.
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = CacheMetrics {
            lookups: Family::default(),
            loads: Family::default(),
            load_duration: latency_histogram(),
            evictions: Family::default(),
            invalidations: Family::default(),
            stale_served: Counter::default(),
            redis_errors: Family::default(),
            l1_bytes: Gauge::default(),
            redis_up: Gauge::default(),
            response_cache: Family::default(),
        };
        r.register(
            "cache_lookups",
            "Cache lookups by tier (l1, l2) and result (hit, miss)",
            m.lookups.clone(),
        );
        r.register(
            "cache_loads",
            "Cache loads (fetch misses filled or failed) by result (ok, failed)",
            m.loads.clone(),
        );
        r.register(
            "cache_load_duration_seconds",
            "Time from a fetch miss to its fill or failure",
            m.load_duration.clone(),
        );
        r.register(
            "cache_evictions",
            "Entries the in-process tier dropped, by cause (size, expired)",
            m.evictions.clone(),
        );
        r.register(
            "cache_invalidations",
            "Invalidations by kind (key, tag) and origin (local, remote node)",
            m.invalidations.clone(),
        );
        r.register(
            "cache_stale_served",
            "Stale values served because their reload failed",
            m.stale_served.clone(),
        );
        r.register(
            "cache_redis_errors",
            "Cache operations that fell back to process memory, by Redis operation",
            m.redis_errors.clone(),
        );
        r.register(
            "cache_l1_bytes",
            "Bytes held by the in-process cache tier",
            m.l1_bytes.clone(),
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
        m
    }

    /// Sets the gauges from `host`, before a scrape.
    pub(super) fn refresh(&self, host: &HostSnapshot) {
        self.l1_bytes
            .set(i64::try_from(host.cache_l1_bytes).unwrap_or(i64::MAX));
        if let Some(up) = host.redis_up {
            self.redis_up.set(i64::from(up));
        }
    }
}

impl Metrics {
    /// Handles for the cache.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            lookups: self.cache.lookups.clone(),
            loads: self.cache.loads.clone(),
            load_duration: self.cache.load_duration.clone(),
            evictions: self.cache.evictions.clone(),
            invalidations: self.cache.invalidations.clone(),
            stale_served: self.cache.stale_served.clone(),
            redis_errors: self.cache.redis_errors.clone(),
        }
    }

    /// The response cache counters of one route (hit, miss, bypass,
    /// not_modified), resolved once per plugin version.
    pub fn response_cache(&self, plugin: &str, route: &str) -> ResponseCacheStats {
        let counter = |result: &str| {
            self.cache
                .response_cache
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
