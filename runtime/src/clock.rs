//! Wall-clock time as the runtime stores it: milliseconds since the Unix
//! epoch; and [`Activity`], which lets a periodic thread sleep while there
//! is nothing for it to time. A leaf: it imports nothing from the crate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now (0 before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Work a periodic thread serves (the epoch ticker: guests running). The
/// thread calls [`Activity::idle_wait`] between its periods and is parked
/// while no [`Busy`] guard exists; the first guard wakes it.
#[derive(Debug, Default)]
pub struct Activity {
    running: AtomicUsize,
    waiter: OnceLock<Thread>,
}

/// One piece of work in progress, for as long as it lives.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Activity {
    /// Work begins: the serving thread is woken if it sleeps.
    pub fn begin(self: &Arc<Self>) -> Busy {
        if self.running.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(waiter) = self.waiter.get()
        {
            waiter.unpark();
        }
        Busy(self.clone())
    }

    /// Whether any work is in progress.
    pub fn is_busy(&self) -> bool {
        self.running.load(Ordering::Acquire) > 0
    }

    /// Called by the serving thread (always the same one): returns at once
    /// while there is work, else parks until some begins or `at_most`
    /// passes (so the thread can notice it should end).
    pub fn idle_wait(&self, at_most: Duration) {
        let _ = self.waiter.set(std::thread::current());
        if !self.is_busy() {
            // A `begin` between the check and the park leaves its unpark
            // token, so the park returns at once.
            std::thread::park_timeout(at_most);
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waiter_sleeps_while_idle_and_wakes_for_work() {
        let activity = Arc::new(Activity::default());
        let waiter = activity.clone();
        let woke = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            waiter.idle_wait(Duration::from_secs(10));
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(50));
        let busy = activity.begin();
        assert!(activity.is_busy());
        let slept = woke.join().expect("the waiter ends");
        assert!(
            slept < Duration::from_secs(5),
            "woken by the work, not the timeout"
        );
        // While busy, the wait returns at once.
        activity.idle_wait(Duration::from_secs(10));
        drop(busy);
        assert!(!activity.is_busy());
    }
}
