//! Lock metrics: the `lock` capability's acquisitions, the time spent
//! waiting for them, and leases found lost; with the handles the locks
//! record through.
//!
//! Layer: monitor, low: it uses nothing of the crate but its siblings in
//! `monitor`; the layers above record through the handles.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::Metrics;
use super::labels::{ResultLabels, latency_histogram};

/// The lock family of the registry.
#[derive(Debug)]
pub(super) struct LockMetrics {
    acquires: Family<ResultLabels, Counter>,
    wait: Histogram,
    lost: Counter,
}

impl LockMetrics {
    /// The family's handles, registered in `r`.
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = LockMetrics {
            acquires: Family::default(),
            wait: latency_histogram(),
            lost: Counter::default(),
        };
        r.register(
            "lock_acquires",
            "Lock acquisitions by result (acquired, timeout, unavailable, invalid)",
            m.acquires.clone(),
        );
        r.register(
            "lock_wait_seconds",
            "Time spent acquiring a lock (contention)",
            m.wait.clone(),
        );
        r.register(
            "lock_lost",
            "Leases found lost on extend or release",
            m.lost.clone(),
        );
        m
    }
}

impl Metrics {
    /// Handles for locks.
    pub fn lock_stats(&self) -> LockStats {
        LockStats {
            acquires: self.locks.acquires.clone(),
            wait: self.locks.wait.clone(),
            lost: self.locks.lost.clone(),
        }
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
