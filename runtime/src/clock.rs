//! Wall-clock time as the runtime stores it: milliseconds since the Unix
//! epoch; and [`Activity`], which tells a periodic thread whether there is
//! anything for it to time. A leaf: it imports nothing from the crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now (0 before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Work a periodic thread serves (the epoch ticker: guests running),
/// counted so the thread can look whether there is any. Beginning work is
/// one atomic add: the thread is not woken for it (a wake-up per request
/// was a system call on the request path and two context switches of the
/// thread; `docs/performance.md`), it looks on its own.
#[derive(Debug, Default)]
pub struct Activity {
    running: AtomicUsize,
}

/// One piece of work in progress, for as long as it lives.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Activity {
    /// Work begins; it ends when the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.running.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Whether any work is in progress.
    pub fn is_busy(&self) -> bool {
        self.running.load(Ordering::Acquire) > 0
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
    fn work_is_counted_while_its_guards_live() {
        let activity = Arc::new(Activity::default());
        assert!(!activity.is_busy());
        let first = activity.begin();
        let second = activity.begin();
        drop(first);
        assert!(activity.is_busy(), "one guard is still alive");
        drop(second);
        assert!(!activity.is_busy());
    }
}
