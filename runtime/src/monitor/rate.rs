//! A rate limit for what the runtime records and logs on behalf of a busy
//! or hostile source: spans of unsampled requests, guest output lines,
//! outbound denials. Lock-free (GCRA), so a hot path pays one atomic
//! update.
//!
//! Layer: monitor, low: it uses nothing of the crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// `take` succeeds at most `per_second` times a second on average, after
/// a burst of up to `burst` (a full bucket at the start).
#[derive(Debug)]
pub struct RateLimit {
    /// Nanoseconds between two takes; 0 when none is allowed.
    interval: u64,
    /// How far ahead of now the next take's due time may run: `burst`
    /// intervals.
    tolerance: u64,
    /// The theoretical arrival time of the next take, in nanoseconds since
    /// `epoch`.
    next: AtomicU64,
    epoch: Instant,
}

impl RateLimit {
    /// `per_second` takes a second after a burst of `burst` (0: none).
    pub fn new(per_second: u32, burst: u32) -> RateLimit {
        let interval = match per_second {
            0 => 0,
            rate => 1_000_000_000 / u64::from(rate),
        };
        RateLimit {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst)),
            next: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Whether one more may go now.
    pub fn take(&self) -> bool {
        if self.interval == 0 {
            return false;
        }
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.next
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
                let start = next.max(now);
                (start < now.saturating_add(self.tolerance)).then_some(start + self.interval)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let limit = RateLimit::new(1000, 5);
        let taken = (0..20).filter(|_| limit.take()).count();
        assert!((5..=6).contains(&taken), "{taken}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(limit.take());
        let none = RateLimit::new(0, 100);
        assert!(!none.take());
    }
}
