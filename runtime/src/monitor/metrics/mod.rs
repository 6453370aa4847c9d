//! The Prometheus registry (`prometheus-client`): every metric the runtime
//! exports, with handles resolved once per route and per plugin so the
//! request path does no label hashing or allocation.
//!
//! Names and labels are listed in `docs/observability.md`. Counters get
//! the `_total` suffix from the encoder.
//!
//! One file per family, each defining its handles, registering them (in the
//! order the exposition has always listed them) and the methods that
//! record into them: `http.rs` (routes), `plugins.rs` (guest calls and
//! their SQL), `host.rs` (host and process gauges), `cache.rs` (the cache
//! and the response cache), `locks.rs`, `jobs.rs`; `labels.rs` holds the label
//! sets. This file holds [`Metrics`], its construction and the rendering.
//!
//! Layer: monitor, low: it uses nothing of the crate but its siblings in
//! `monitor`; the layers above record through the handles.

mod cache;
mod host;
mod http;
mod jobs;
mod labels;
mod locks;
mod plugins;

use std::fmt::Write as _;

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use cache::{CacheStats, ResponseCacheStats};
pub use host::HostSnapshot;
pub use http::{RouteStats, RouteSummary};
pub use locks::LockStats;
pub use plugins::PluginStats;

use labels::BuildLabels;

/// Every metric of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http: http::HttpMetrics,
    plugins: plugins::PluginMetrics,
    host: host::HostMetrics,
    cache: cache::CacheMetrics,
    locks: locks::LockMetrics,
    jobs: jobs::JobMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered, family by family.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("trellis");
        let http = http::HttpMetrics::registered(&mut registry);
        let plugins = plugins::PluginMetrics::registered(&mut registry);
        let host = host::HostMetrics::registered(&mut registry);
        let cache = cache::CacheMetrics::registered(&mut registry);
        let locks = locks::LockMetrics::registered(&mut registry);
        let jobs = jobs::JobMetrics::registered(&mut registry);
        registry.register(
            "build",
            "The Trellis build",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        );
        Metrics {
            registry,
            http,
            plugins,
            host,
            cache,
            locks,
            jobs,
        }
    }

    /// The text exposition, gauges refreshed from `host` and the process.
    pub fn render(&self, host: &HostSnapshot) -> String {
        self.host.refresh(host);
        self.cache.refresh(host);
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            let _ = writeln!(text, "# encoding failed");
        }
        text
    }
}
