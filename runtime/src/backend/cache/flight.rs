//! Read-through loads ([`CacheService::fetch`]): single-flight (concurrent
//! misses on one key in one node load once), probabilistic early refresh
//! (XFetch: `now + delta·β·(−ln rand) ≥ expiry`), and stale-on-error (a
//! failed load lets waiters have the old value up to `cache.stale_for`
//! past its expiry).
//!
//! Layer: backend (the `cache` part). It may call the Redis clients
//! (`backend::redis`), the clock, the cache's config, and `monitor` for its
//! figures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::{CacheError, CacheService, Entry, l1_key, millis_u64};
use crate::clock::now_ms;

/// XFetch's β: above 1 refreshes earlier.
const BETA: f64 = 1.0;

/// What [`CacheService::fetch`] found.
#[derive(Debug)]
pub enum Fetched {
    /// A value (fresh, or stale after a failed load).
    Hit(Bytes),
    /// A negative entry.
    Absent,
    /// The caller loads and fills (or fails) the ticket.
    Load(LoadTicket),
}

/// A load in progress on one node.
#[derive(Debug)]
pub(super) struct Flight {
    done: watch::Sender<Option<Outcome>>,
}

#[derive(Debug, Clone)]
enum Outcome {
    Filled(Arc<Entry>),
    Failed,
    /// The answer is not one to cache (say a 404): each waiter loads its
    /// own, at once, instead of one after another.
    Uncacheable,
}

/// The right (and duty) to load one key: fill it or fail it. Dropped
/// without either, it fails, so waiters never hang on a trapped guest.
#[derive(Debug)]
pub struct LoadTicket {
    cache: CacheService,
    plugin: String,
    key: String,
    flight: Option<Arc<Flight>>,
    started: Instant,
    finished: bool,
}

impl CacheService {
    /// Read-through with stampede protection (see the module docs).
    pub async fn fetch(&self, plugin: &str, key: &str) -> Result<Fetched, CacheError> {
        Self::check_name("key", key)?;
        Ok(self.fetch_internal(plugin, key).await)
    }

    /// As [`CacheService::fetch`] for a key the runtime made.
    pub(crate) async fn fetch_internal(&self, plugin: &str, key: &str) -> Fetched {
        let name = l1_key(plugin, key);
        for _ in 0..3 {
            let found = self.read(plugin, key).await;
            let now = now_ms();
            if let Some(entry) = &found
                && entry.fresh(now)
            {
                if early_refresh(entry, now)
                    && let Some(flight) = self.begin(&name)
                {
                    return Fetched::Load(self.ticket(plugin, key, Some(flight)));
                }
                return hit(entry);
            }
            let flight = match self.join(&name) {
                Joined::Leader(flight) => {
                    return Fetched::Load(self.ticket(plugin, key, Some(flight)));
                }
                Joined::Follower(flight) => flight,
            };
            let mut done = flight.done.subscribe();
            let outcome =
                tokio::time::timeout(self.inner.config.load_wait, done.wait_for(Option::is_some))
                    .await;
            match outcome {
                Ok(Ok(state)) => match state.clone() {
                    Some(Outcome::Filled(entry)) => return hit(&entry),
                    Some(Outcome::Uncacheable) => {
                        return Fetched::Load(self.ticket(plugin, key, None));
                    }
                    _ => {
                        // The load failed: the old value, if recent enough.
                        if let Some(entry) = found.filter(|e| self.servable_stale(e, now)) {
                            self.inner.stats.stale_served();
                            return hit(&entry);
                        }
                    }
                },
                // The leader's sender is gone: try again.
                Ok(Err(_)) => {}
                Err(_) => {
                    // Waited long enough: load without single-flight.
                    return Fetched::Load(self.ticket(plugin, key, None));
                }
            }
        }
        Fetched::Load(self.ticket(plugin, key, None))
    }

    fn servable_stale(&self, entry: &Entry, now: u64) -> bool {
        entry.value.is_some() && now < entry.expires_at_ms + millis_u64(self.inner.config.stale_for)
    }
}

/// Single-flight bookkeeping.
enum Joined {
    Leader(Arc<Flight>),
    Follower(Arc<Flight>),
}

impl CacheService {
    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Flight>>> {
        self.inner.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the load of `name` in progress, or starts one.
    fn join(&self, name: &str) -> Joined {
        let mut flights = self.flights();
        if let Some(flight) = flights.get(name) {
            return Joined::Follower(flight.clone());
        }
        let flight = Arc::new(Flight {
            done: watch::Sender::new(None),
        });
        flights.insert(name.to_string(), flight.clone());
        Joined::Leader(flight)
    }

    /// Starts a load of `name` only if none is in progress (early refresh).
    fn begin(&self, name: &str) -> Option<Arc<Flight>> {
        match self.join(name) {
            Joined::Leader(flight) => Some(flight),
            Joined::Follower(_) => None,
        }
    }

    fn ticket(&self, plugin: &str, key: &str, flight: Option<Arc<Flight>>) -> LoadTicket {
        LoadTicket {
            cache: self.clone(),
            plugin: plugin.to_string(),
            key: key.to_string(),
            flight,
            started: Instant::now(),
            finished: false,
        }
    }

    fn land(&self, plugin: &str, key: &str, flight: &Arc<Flight>, outcome: Outcome) {
        let name = l1_key(plugin, key);
        let mut flights = self.flights();
        if flights.get(&name).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            flights.remove(&name);
        }
        drop(flights);
        flight.done.send_replace(Some(outcome));
    }
}

impl LoadTicket {
    /// Stores the loaded value and hands it to the waiters.
    pub async fn fill(
        mut self,
        value: Option<Bytes>,
        ttl: Duration,
        tags: &[String],
    ) -> Result<(), CacheError> {
        self.finished = true;
        let elapsed = self.started.elapsed();
        let stored = self
            .cache
            .store(&self.plugin, &self.key, value, ttl, tags, elapsed)
            .await;
        self.cache.inner.stats.load(stored.is_ok(), elapsed);
        let outcome = match &stored {
            Ok(entry) => Outcome::Filled(entry.clone()),
            Err(_) => Outcome::Failed,
        };
        if let Some(flight) = self.flight.take() {
            self.cache.land(&self.plugin, &self.key, &flight, outcome);
        }
        stored.map(|_| ())
    }

    /// The load failed; waiters get a stale value or load themselves.
    pub fn fail(mut self) {
        self.failed();
    }

    /// The load worked but its result is not to be cached: waiters load
    /// their own at once (no stale value, no waiting in line).
    pub fn abandon(mut self) {
        self.finished = true;
        if let Some(flight) = self.flight.take() {
            self.cache
                .land(&self.plugin, &self.key, &flight, Outcome::Uncacheable);
        }
    }

    fn failed(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.cache.inner.stats.load(false, self.started.elapsed());
        if let Some(flight) = self.flight.take() {
            self.cache
                .land(&self.plugin, &self.key, &flight, Outcome::Failed);
        }
    }
}

impl Drop for LoadTicket {
    fn drop(&mut self) {
        self.failed();
    }
}

fn hit(entry: &Entry) -> Fetched {
    match &entry.value {
        Some(value) => Fetched::Hit(value.clone()),
        None => Fetched::Absent,
    }
}

/// XFetch: refresh early with a probability that rises as expiry nears,
/// scaled by how long the value took to load.
fn early_refresh(entry: &Entry, now: u64) -> bool {
    if entry.delta_ms == 0 {
        return false;
    }
    // A uniform draw in (0, 1] from the v4 uuid generator's randomness.
    let draw = (uuid::Uuid::new_v4().as_u128() >> 75) as f64 + 1.0;
    let unit = draw / (1u64 << 53) as f64;
    let gap = f64::from(entry.delta_ms) * BETA * -unit.ln();
    now as f64 + gap >= entry.expires_at_ms as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CacheConfig;
    use crate::monitor::CacheStats;

    fn entry(expires_in_ms: u64, delta_ms: u32, now: u64) -> Entry {
        Entry {
            value: Some(Bytes::from_static(b"v")),
            expires_at_ms: now + expires_in_ms,
            delta_ms,
            tags: Vec::new(),
        }
    }

    #[test]
    fn early_refresh_grows_as_expiry_nears_and_with_load_time() {
        let now = 1_000_000;
        let share = |e: &Entry| (0..2000).filter(|_| early_refresh(e, now)).count();
        // Far from expiry relative to the load time: practically never.
        assert_eq!(share(&entry(100_000, 1, now)), 0);
        // Never loaded through fetch (no load time): never.
        assert_eq!(share(&entry(1, 0, now)), 0);
        // Expiry within a small part of the load time: almost always.
        assert!(share(&entry(10, 1000, now)) > 1900);
        // In between: some, not all (P = e^-1 ≈ 37 %).
        let some = share(&entry(1000, 1000, now));
        assert!((500..1000).contains(&some), "{some}");
    }

    #[tokio::test]
    async fn waiters_on_an_uncacheable_answer_load_at_once() {
        let cache = CacheService::start(&CacheConfig::default(), None, CacheStats::default()).await;
        let Fetched::Load(leader) = cache.fetch("p", "k").await.expect("fetch") else {
            panic!("a miss is loaded");
        };
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.fetch("p", "k").await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abandon();
        // All three get a ticket of their own at once; none waits for
        // another's load.
        let tickets = tokio::time::timeout(Duration::from_millis(500), async {
            let mut tickets = Vec::new();
            for waiter in waiters {
                tickets.push(waiter.await.expect("joined").expect("fetch"));
            }
            tickets
        })
        .await
        .expect("waiters were not released together");
        assert!(tickets.iter().all(|t| matches!(t, Fetched::Load(_))));
    }

    #[tokio::test]
    async fn a_failed_load_serves_the_stale_value_to_waiters() {
        let config = CacheConfig {
            load_wait: Duration::from_secs(2),
            ..CacheConfig::default()
        };
        let cache = CacheService::start(&config, None, CacheStats::default()).await;
        cache
            .set(
                "p",
                "k",
                Some(Bytes::from_static(b"old")),
                Duration::from_millis(20),
                &[],
            )
            .await
            .expect("stored");
        tokio::time::sleep(Duration::from_millis(40)).await;
        let Fetched::Load(ticket) = cache.fetch("p", "k").await.expect("fetch") else {
            panic!("an expired entry is loaded");
        };
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.fetch("p", "k").await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(ticket);
        match waiter.await.expect("joined").expect("fetch") {
            Fetched::Hit(value) => assert_eq!(value, Bytes::from_static(b"old")),
            other => panic!("expected the stale value, got {other:?}"),
        }
    }
}
