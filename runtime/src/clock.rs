//! Wall-clock time as the runtime stores it: milliseconds since the Unix
//! epoch; and [`Activity`], which tells a periodic thread whether there is
//! anything for it to time. A leaf: it imports nothing from the crate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Work a periodic thread serves (the epoch ticker: guests running),
/// counted so the thread can look whether there is any. Beginning work is
/// an atomic add and a load: the thread is not woken for it while it looks
/// on its own (a wake-up per request was a system call on the request path
/// and two context switches of the thread; `docs/performance.md`). Only
/// after a long while without work does the thread go to sleep until work
/// begins ([`Activity::sleep_until_work`]); the first work wakes it.
#[derive(Debug, Default)]
pub struct Activity {
    /// Work in progress (the low 32 bits) and work begun, wrapping (the
    /// high 32): one atomic add for both.
    counts: AtomicU64,
    sleeping: AtomicBool,
    waiter: OnceLock<Thread>,
}

/// One unit of work begun, in `Activity::counts`' high half.
const BEGUN: u64 = 1 << 32;

/// One piece of work in progress, for as long as it lives.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Activity {
    /// Work begins; it ends when the guard is dropped. Wakes the thread
    /// if it sleeps until work.
    pub fn begin(self: &Arc<Self>) -> Busy {
        // SeqCst with `sleep_until_work`: either this sees the thread
        // asleep, or the thread sees this work before it parks.
        self.counts.fetch_add(BEGUN | 1, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst)
            && self.sleeping.swap(false, Ordering::SeqCst)
            && let Some(waiter) = self.waiter.get()
        {
            waiter.unpark();
        }
        Busy(self.clone())
    }

    /// Whether any work is in progress.
    pub fn is_busy(&self) -> bool {
        self.counts.load(Ordering::SeqCst) & (BEGUN - 1) > 0
    }

    /// How much work has begun (wrapping): the thread compares two looks
    /// to tell whether any began in between.
    pub fn begun(&self) -> u32 {
        (self.counts.load(Ordering::SeqCst) >> 32) as u32
    }

    /// Called by the serving thread (always the same one) after a long
    /// while without work: parks until work begins or `at_most` passes (so
    /// the thread can notice it should end). Returns at once if there is
    /// work.
    pub fn sleep_until_work(&self, at_most: Duration) {
        let _ = self.waiter.set(std::thread::current());
        self.sleeping.store(true, Ordering::SeqCst);
        if !self.is_busy() {
            // A `begin` between the store and the park leaves its unpark
            // token, so the park returns at once.
            std::thread::park_timeout(at_most);
        }
        self.sleeping.store(false, Ordering::SeqCst);
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.counts.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_is_counted_while_its_guards_live() {
        let activity = Arc::new(Activity::default());
        assert!(!activity.is_busy());
        let first = activity.begin();
        let second = activity.begin();
        drop(first);
        assert!(activity.is_busy(), "one guard is still alive");
        drop(second);
        assert!(!activity.is_busy());
        assert_eq!(activity.begun(), 2, "what ended is still counted as begun");
    }

    #[test]
    fn a_sleeping_thread_wakes_for_work() {
        let activity = Arc::new(Activity::default());
        let waiter = activity.clone();
        let woke = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            waiter.sleep_until_work(Duration::from_secs(10));
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
        // While busy, the sleep returns at once.
        activity.sleep_until_work(Duration::from_secs(10));
        drop(busy);
        assert!(!activity.is_busy());
    }
}
