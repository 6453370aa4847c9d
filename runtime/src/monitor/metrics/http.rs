//! Per-route HTTP metrics: requests by status class, latency, requests
//! that matched no route, and the sliding window of each route behind the
//! JSON summaries.
//!
//! Layer: monitor, low: it uses nothing of the crate but its siblings in
//! `monitor`; the layers above record through the handles.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::Metrics;
use super::labels::{Histograms, RequestLabels, RouteLabels, StatusLabels, latency_histogram};
use crate::monitor::window::{Summary, Window};

/// Status classes counted per route, in the order of [`RouteStats`]' array.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The HTTP family of the registry.
#[derive(Debug)]
pub(super) struct HttpMetrics {
    /// Sliding windows per (plugin, route, method), shared across versions.
    windows: Mutex<BTreeMap<(String, String, String), Arc<Window>>>,
    requests: Family<RequestLabels, Counter>,
    request_duration: Histograms<RouteLabels>,
    unrouted: Family<StatusLabels, Counter>,
}

impl HttpMetrics {
    /// The family's handles, registered in `r`.
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = HttpMetrics {
            windows: Mutex::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            unrouted: Family::default(),
        };
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
        m
    }
}

impl Metrics {
    /// The handles of one route, resolved once per plugin version.
    pub fn route(&self, plugin: &str, route: &str, method: &str) -> RouteStats {
        let counter = |status: &str| {
            self.http
                .requests
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
                .http
                .request_duration
                .get_or_create(&RouteLabels {
                    plugin: plugin.into(),
                    route: route.into(),
                    method: method.into(),
                })
                .clone(),
            window: self
                .http
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
        let windows = self.http.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows
            .iter()
            .map(|((p, r, m), w)| (p.clone(), r.clone(), m.clone(), w.clone()))
            .collect()
    }

    /// Each route's last minute and last five minutes.
    pub fn summaries(&self) -> Vec<RouteSummary> {
        let windows = self.http.windows.lock().unwrap_or_else(|e| e.into_inner());
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

    /// A request that matched no route.
    pub fn unrouted(&self, status: u16) {
        self.http
            .unrouted
            .get_or_create(&StatusLabels {
                status: status.to_string(),
            })
            .inc();
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
