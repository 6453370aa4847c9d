//! Warm instances: `[plugins.<name>] reuse = N` lets one instance serve up
//! to N requests of its plugin, one at a time, instead of a fresh instance
//! per request (`reuse = 0`, the default and the isolation guarantee).
//!
//! An instance that answered is parked here, with its store and its place
//! in the host's instance budget, and the plugin's next request runs in it.
//! It is dropped instead after its Nth request, after a trap, a deadline or
//! a memory-limit hit (the guest may have stopped anywhere), after
//! `reuse_idle` parked without work (a reaper task looks), and with its
//! plugin version (a reload loads a new one; the old pool goes with it).
//! The pool holds at most the plugin's `max_concurrency` instances: each
//! one parked was running under one of its permits.
//!
//! What carries over between two requests in one instance is the guest's
//! own state (globals, the heap, an interpreter's modules); the host's
//! per-request state (request id, trace, deadline, each capability's
//! instance state) is renewed. Batch calls, mounted `wasi:http`
//! components and jobs always get a fresh instance.
//!
//! Layer: `plugin`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;

use super::PluginHost;
use crate::capability::HostState;
use crate::capability::bindings::http_handler;

/// One instance, parked or serving.
pub(super) struct Warm {
    pub(super) store: Store<HostState>,
    /// Its `http-handler` export; `None` until it is instantiated.
    pub(super) handler: Option<http_handler::Guest>,
    /// Requests it has served.
    pub(super) served: u32,
    /// Its place in the host's instance budget, for as long as it lives.
    pub(super) _instance: OwnedSemaphorePermit,
    parked_at: Instant,
}

impl Warm {
    /// A new, not yet instantiated instance in `store`.
    pub(super) fn fresh(store: Store<HostState>, instance: OwnedSemaphorePermit) -> Warm {
        Warm {
            store,
            handler: None,
            served: 0,
            _instance: instance,
            parked_at: Instant::now(),
        }
    }

    /// Makes a parked instance ready for request `request_id` under
    /// `trace`, to be interrupted after `budget`.
    pub(super) fn renew(
        &mut self,
        host: &PluginHost,
        request_id: String,
        trace: opentelemetry::Context,
        budget: Duration,
    ) {
        let state = self.store.data_mut();
        state.renew(
            &host.capabilities,
            request_id,
            trace,
            Instant::now() + budget,
            host.activity.begin(),
        );
        self.store.set_epoch_deadline(1);
    }
}

/// A plugin version's parked instances.
pub(super) struct WarmPool {
    /// Requests one instance may serve.
    max_requests: u32,
    /// How long one may stay parked.
    idle: Duration,
    parked: Mutex<Vec<Warm>>,
    /// Whether a reaper task is running.
    reaping: AtomicBool,
}

impl WarmPool {
    /// A pool for instances serving up to `reuse` requests each; `None`
    /// when `reuse` is 0 or 1 (every request a fresh instance).
    pub(super) fn new(reuse: u32, idle: Duration) -> Option<Arc<WarmPool>> {
        (reuse > 1).then(|| {
            Arc::new(WarmPool {
                max_requests: reuse,
                idle,
                parked: Mutex::new(Vec::new()),
                reaping: AtomicBool::new(false),
            })
        })
    }

    /// The instance parked last, if one is.
    pub(super) fn take(&self) -> Option<Warm> {
        self.lock().pop()
    }

    /// Parks `warm`, which answered its last request, unless it has served
    /// its share (then it is dropped).
    pub(super) fn park(self: &Arc<Self>, mut warm: Warm) {
        if warm.served >= self.max_requests {
            return;
        }
        warm.parked_at = Instant::now();
        // A parked instance does not keep the epoch ticker awake.
        warm.store.data_mut().rest();
        self.lock().push(warm);
        if !self.reaping.swap(true, Ordering::AcqRel) {
            tokio::spawn(reap(Arc::downgrade(self)));
        }
    }

    /// Drops the instances parked for longer than `idle`; whether any stay.
    fn drop_idle(&self) -> bool {
        let expired: Vec<Warm> = {
            let mut parked = self.lock();
            let (expired, kept) = std::mem::take(&mut *parked)
                .into_iter()
                .partition(|w| w.parked_at.elapsed() >= self.idle);
            *parked = kept;
            expired
        };
        // Dropped outside the lock: freeing an instance takes a while.
        drop(expired);
        !self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Warm>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every `idle / 2`, drops the instances idle too long; ends when none is
/// parked (the next park starts it again) or the pool is gone.
async fn reap(pool: Weak<WarmPool>) {
    loop {
        let Some(every) = pool
            .upgrade()
            .map(|p| (p.idle / 2).max(Duration::from_millis(10)))
        else {
            return;
        };
        tokio::time::sleep(every).await;
        let Some(pool) = pool.upgrade() else { return };
        if pool.drop_idle() {
            continue;
        }
        pool.reaping.store(false, Ordering::Release);
        // One parked between the check and the store: keep reaping.
        if pool.lock().is_empty() || pool.reaping.swap(true, Ordering::AcqRel) {
            return;
        }
    }
}
