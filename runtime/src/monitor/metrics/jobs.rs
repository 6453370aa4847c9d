//! Job metrics: attempts by outcome, their time and pickup delay (per
//! plugin, recorded through [`PluginStats`]), and the queue depth the
//! maintenance leader samples.
//!
//! Layer: monitor, low: it uses nothing of the crate but its siblings in
//! `monitor`; the layers above record through the handles.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::labels::{Histograms, JobLabels, KindLabels, QueueLabels, latency_histogram};
use super::{Metrics, PluginStats};

/// The job family of the registry.
#[derive(Debug)]
pub(super) struct JobMetrics {
    attempts: Family<JobLabels, Counter>,
    duration: Histograms<KindLabels>,
    pickup: Histogram,
    depth: Family<QueueLabels, Gauge>,
}

impl JobMetrics {
    /// The family's handles, registered in `r`.
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = JobMetrics {
            attempts: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            pickup: latency_histogram(),
            depth: Family::default(),
        };
        r.register(
            "job_attempts",
            "Job attempts run on this node by outcome (completed, retryable, discarded, snoozed, cancelled)",
            m.attempts.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Time one job attempt took, by plugin and kind",
            m.duration.clone(),
        );
        r.register(
            "job_pickup_seconds",
            "Time from a job being due to a worker starting it",
            m.pickup.clone(),
        );
        r.register(
            "job_queue_depth",
            "Jobs per queue and state (sampled by the maintenance leader)",
            m.depth.clone(),
        );
        m
    }
}

impl Metrics {
    /// Sets the queue depth gauges from per (queue, state) counts.
    pub fn job_depth(&self, counts: &[(String, String, i64)]) {
        self.jobs.depth.clear();
        for (queue, state, n) in counts {
            self.jobs
                .depth
                .get_or_create(&QueueLabels {
                    queue: queue.clone(),
                    state: state.clone(),
                })
                .set(*n);
        }
    }
}

impl PluginStats {
    /// One job attempt: its kind, outcome, time, and the time from being
    /// due to starting (`None` when unknown).
    pub fn job(&self, kind: &str, outcome: &str, pickup: Option<Duration>, elapsed: Duration) {
        self.metrics
            .jobs
            .attempts
            .get_or_create(&JobLabels {
                plugin: self.name.clone(),
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.metrics
            .jobs
            .duration
            .get_or_create(&KindLabels {
                plugin: self.name.clone(),
                kind: kind.into(),
            })
            .observe(elapsed.as_secs_f64());
        if let Some(pickup) = pickup {
            self.metrics.jobs.pickup.observe(pickup.as_secs_f64());
        }
    }
}
