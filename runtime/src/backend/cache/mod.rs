//! The two-tier cache behind the `cache` capability and the HTTP response
//! cache.
//!
//! - **L1**: in process (moka), bounded in bytes, a ttl per entry. With
//!   Redis configured an entry stays in L1 at most `cache.l1_max_ttl`.
//! - **L2**: Redis (fred), when configured. Every write and delete is
//!   published on `<namespace>:invalidate`; every node drops the key from
//!   its L1 when the message arrives (milliseconds). A node flushes its
//!   whole L1 when its subscription drops and again when it is back, since
//!   it may have missed messages; `l1_max_ttl` bounds what a lost message
//!   can cost.
//! - **Tags** are invalidated lazily through epochs: an entry records the
//!   epoch of each of its tags when stored, and is not served once a tag's
//!   epoch moved on. Epochs live in Redis (`INCR`) and are cached per node,
//!   refreshed by the same invalidation messages.
//! - **Loads**: [`CacheService::fetch`] is read-through with single-flight
//!   (concurrent misses on one key in one node load once), probabilistic
//!   early refresh (XFetch: `now + delta·β·(−ln rand) ≥ expiry`), negative
//!   entries, and stale-on-error (a failed load lets waiters have the old
//!   value up to `cache.stale_for` past its expiry).
//! - **Redis down**: reads and writes use L1 alone (with a warning and
//!   `trellis_cache_redis_errors_total`); nothing fails; fred reconnects.
//!
//! Keys are namespaced per plugin here, so a plugin cannot name another's.
//!
//! Each concern has a file: `values.rs` (get, get-many, set, delete),
//! `l1.rs` (the in-process tier), `l2.rs` (reads that go on to Redis, and
//! Redis trouble), `tags.rs` (epochs), `invalidation.rs` (pub/sub between
//! nodes) and `flight.rs` (read-through loads). This file holds the service, its
//! start and its bounds.
//!
//! Layer: backend (the `cache` part). It may call the Redis clients
//! (`backend::redis`), the clock, the cache's config, and `monitor` for its
//! figures.

mod entry;
mod flight;
mod invalidation;
mod l1;
mod l2;
mod tags;
mod values;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use entry::Entry;
pub use flight::{Fetched, LoadTicket};

use super::redis::Redis;
use crate::config::CacheConfig;
use crate::monitor::CacheStats;
use flight::Flight;
use l1::Stored;

/// Longest key or tag a plugin may use, in bytes.
pub const MAX_KEY: usize = 512;
/// Most keys in one `get-many`.
pub const MAX_MANY: usize = 1000;
/// Most tags on one entry.
pub const MAX_TAGS: usize = 32;

/// Why a cache call was refused. Redis trouble is never one of these: the
/// cache degrades instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The value is larger than `cache.max_value` or the plugin's
    /// `limits.max_cache_value` (the limit, in bytes).
    #[error(
        "the value is larger than the limit of {0} bytes (cache.max_value, limits.max_cache_value)"
    )]
    TooLarge(u64),
    /// A bad key, tag, ttl or count.
    #[error("{0}")]
    Invalid(String),
}

/// The cache every plugin (and the response cache) uses. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CacheService {
    inner: Arc<Inner>,
}

struct Inner {
    l1: moka::sync::Cache<String, Arc<Stored>>,
    /// Epoch per `plugin/tag`.
    tags: moka::sync::Cache<String, u64>,
    /// Embedded mode: epochs come from this counter; a tag evicted from
    /// `tags` reads as `floor`, which is above any epoch it ever had.
    next_epoch: AtomicU64,
    floor: Arc<AtomicU64>,
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    redis: Option<Redis>,
    config: CacheConfig,
    /// This node, to skip its own invalidation messages.
    node: String,
    stats: CacheStats,
    /// When Redis trouble was last logged (to log it once per 10 s).
    warned_at: Mutex<Option<Instant>>,
    subscribed: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService")
            .field("redis", &self.redis)
            .field("l1_entries", &self.l1.entry_count())
            .finish_non_exhaustive()
    }
}

impl CacheService {
    /// A cache with `config`'s bounds, on `redis` when given. Starts the
    /// invalidation listener.
    pub async fn start(config: &CacheConfig, redis: Option<Redis>, stats: CacheStats) -> Self {
        let floor = Arc::new(AtomicU64::new(0));
        let cache = CacheService {
            inner: Arc::new(Inner {
                l1: l1::build(config, stats.clone()),
                tags: tags::build(config, redis.is_some(), floor.clone()),
                next_epoch: AtomicU64::new(1),
                floor,
                flights: Mutex::default(),
                redis,
                config: config.clone(),
                node: uuid::Uuid::new_v4().simple().to_string(),
                stats,
                warned_at: Mutex::default(),
                subscribed: AtomicBool::new(false),
            }),
        };
        cache.listen().await;
        cache
    }

    /// Whether a Redis tier is configured, and whether it is up.
    pub fn redis_state(&self) -> Option<bool> {
        self.inner.redis.as_ref().map(Redis::is_up)
    }

    /// The Redis clients, when configured (locks share them).
    pub fn redis(&self) -> Option<&Redis> {
        self.inner.redis.as_ref()
    }

    /// The configured bounds.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// Checks a key or tag.
    pub fn check_name(what: &str, name: &str) -> Result<(), CacheError> {
        if name.is_empty() || name.len() > MAX_KEY {
            return Err(CacheError::Invalid(format!(
                "a cache {what} is 1 to {MAX_KEY} bytes"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(CacheError::Invalid(format!(
                "a cache {what} has no control characters"
            )));
        }
        Ok(())
    }

    /// Drops everything in process (used when invalidations may have been
    /// missed).
    pub fn flush_l1(&self) {
        self.inner.l1.invalidate_all();
        self.inner.tags.invalidate_all();
    }

    /// Entries in process now, and their weight.
    pub fn l1_usage(&self) -> (u64, u64) {
        self.inner.l1.run_pending_tasks();
        (self.inner.l1.entry_count(), self.inner.l1.weighted_size())
    }
}

fn l1_key(plugin: &str, key: &str) -> String {
    format!("{plugin}\u{1f}{key}")
}

fn millis_u64(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
