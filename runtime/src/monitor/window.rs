//! A sliding window of recent requests for one route: slots of
//! [`SLOT`] each, holding a count, an error count and an HDR histogram of
//! latencies, so percentiles over the last minute or five are exact to two
//! significant digits. Behind `GET /api/v1/monitoring/metrics`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Width of one slot.
pub const SLOT: Duration = Duration::from_secs(10);
/// Slots kept: five minutes.
const SLOTS: usize = 30;
/// Largest latency recorded exactly (µs); longer ones are clamped.
const MAX_MICROS: u64 = 60_000_000;

/// Recent requests of one route.
#[derive(Debug)]
pub struct Window {
    epoch: Instant,
    slots: Mutex<Vec<Slot>>,
}

#[derive(Debug)]
struct Slot {
    /// Which slot of time (since `epoch`) this holds.
    index: u64,
    requests: u64,
    errors: u64,
    latency: Histogram<u64>,
}

impl Slot {
    fn new(index: u64) -> Slot {
        Slot {
            index,
            requests: 0,
            errors: 0,
            latency: new_histogram(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that `new_with_bounds` accepts.
    Histogram::new_with_bounds(1, MAX_MICROS, 2).unwrap_or_else(|_| {
        Histogram::new(2).unwrap_or_else(|_| unreachable!("2 significant figures are valid"))
    })
}

/// Requests over one span of time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Requests counted.
    pub requests: u64,
    /// Requests per second over the span.
    pub rps: f64,
    /// Share of requests answered with a 5xx, 0 to 1.
    pub error_rate: f64,
    /// Latency percentiles in milliseconds (absent with no requests).
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            epoch: Instant::now(),
            slots: Mutex::new(Vec::with_capacity(SLOTS)),
        }
    }
}

impl Window {
    /// Records one response.
    pub fn record(&self, elapsed: Duration, error: bool) {
        self.record_at(Instant::now(), elapsed, error);
    }

    fn record_at(&self, now: Instant, elapsed: Duration, error: bool) {
        let index = self.index(now);
        let micros = (elapsed.as_micros() as u64).clamp(1, MAX_MICROS);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.last().is_none_or(|s| s.index != index) {
            if slots.len() == SLOTS {
                slots.remove(0);
            }
            slots.push(Slot::new(index));
        }
        if let Some(slot) = slots.last_mut() {
            slot.requests += 1;
            slot.errors += u64::from(error);
            let _ = slot.latency.record(micros);
        }
    }

    fn index(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_secs()) / SLOT.as_secs()
    }

    /// The last `span` (rounded up to whole slots, at most five minutes).
    pub fn summary(&self, span: Duration) -> Summary {
        self.summary_at(Instant::now(), span)
    }

    fn summary_at(&self, now: Instant, span: Duration) -> Summary {
        let count = span
            .as_secs()
            .div_ceil(SLOT.as_secs())
            .clamp(1, SLOTS as u64);
        let current = self.index(now);
        let oldest = current.saturating_sub(count - 1);
        let mut latency = new_histogram();
        let (mut requests, mut errors) = (0, 0);
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for slot in slots.iter().filter(|s| s.index >= oldest) {
            requests += slot.requests;
            errors += slot.errors;
            let _ = latency.add(&slot.latency);
        }
        drop(slots);
        // The current slot is partly over: count only the time elapsed.
        let into_current = now.saturating_duration_since(self.epoch).as_secs_f64()
            - (current * SLOT.as_secs()) as f64;
        let covered = ((count - 1) * SLOT.as_secs()) as f64 + into_current.max(1.0);
        let percentile =
            |q: f64| (requests > 0).then(|| latency.value_at_quantile(q) as f64 / 1000.0);
        Summary {
            requests,
            rps: requests as f64 / covered,
            error_rate: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
            p50_ms: percentile(0.50),
            p95_ms: percentile(0.95),
            p99_ms: percentile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_rates_cover_the_span_only() {
        let window = Window::default();
        let start = window.epoch;
        for i in 0..100 {
            window.record_at(start, Duration::from_millis(i + 1), i % 10 == 0);
        }
        let now = start + Duration::from_secs(5);
        let recent = window.summary_at(now, Duration::from_secs(60));
        assert_eq!(recent.requests, 100);
        assert!((recent.error_rate - 0.1).abs() < 1e-9);
        let p50 = recent.p50_ms.expect("requests were recorded");
        assert!((49.0..=51.0).contains(&p50), "{p50}");
        assert!(recent.p99_ms >= recent.p95_ms && recent.p95_ms >= recent.p50_ms);

        // Six minutes later, the old slots are out of every window.
        let later = start + Duration::from_secs(360);
        window.record_at(later, Duration::from_millis(2), false);
        let recent = window.summary_at(later, Duration::from_secs(300));
        assert_eq!(recent.requests, 1);
        assert_eq!(recent.error_rate, 0.0);
    }

    #[test]
    fn an_idle_route_has_no_percentiles() {
        let summary = Window::default().summary(Duration::from_secs(60));
        assert_eq!(summary.requests, 0);
        assert_eq!(summary.p50_ms, None);
    }
}
