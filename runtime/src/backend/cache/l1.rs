//! The in-process tier (moka): bounded in bytes, each entry kept as long
//! as it can still be served (with Redis, at most `cache.l1_max_ttl`), and
//! read only while its tags are current.
//!
//! Layer: backend (the `cache` part). It may call the Redis clients
//! (`backend::redis`), the clock, the cache's config, and `monitor` for its
//! figures.

use std::sync::Arc;
use std::time::Duration;

use super::{CacheService, Entry, l1_key};
use crate::clock::now_ms;
use crate::config::CacheConfig;
use crate::monitor::CacheStats;

/// An L1 entry and how long L1 may keep it.
#[derive(Debug)]
pub(super) struct Stored {
    pub(super) entry: Entry,
    pub(super) keep: Duration,
}

/// The in-process tier for `config`, counting evictions in `stats`.
pub(super) fn build(
    config: &CacheConfig,
    stats: CacheStats,
) -> moka::sync::Cache<String, Arc<Stored>> {
    moka::sync::Cache::builder()
        .max_capacity(config.l1_size.as_u64())
        .weigher(|key: &String, stored: &Arc<Stored>| {
            u32::try_from(key.len() + stored.entry.weight()).unwrap_or(u32::MAX)
        })
        .expire_after(KeepFor)
        .eviction_listener(move |_key, _value, cause| match cause {
            moka::notification::RemovalCause::Size => stats.evicted("size"),
            moka::notification::RemovalCause::Expired => stats.evicted("expired"),
            _ => {}
        })
        .build()
}

impl CacheService {
    pub(super) async fn read_l1(&self, plugin: &str, key: &str) -> Option<Arc<Entry>> {
        let name = l1_key(plugin, key);
        let stored = self.inner.l1.get(&name);
        let hit = match stored {
            Some(stored) if self.tags_current(plugin, &stored.entry).await => {
                Some(Arc::new(stored.entry.clone()))
            }
            Some(_) => {
                self.inner.l1.invalidate(&name);
                None
            }
            None => None,
        };
        self.inner.stats.lookup("l1", hit.is_some());
        hit
    }

    /// How long L1 may keep `entry`: until it can no longer be served even
    /// stale, and with Redis at most `l1_max_ttl`.
    pub(super) fn l1_keep(&self, entry: &Entry) -> Duration {
        let config = &self.inner.config;
        let left =
            Duration::from_millis(entry.expires_at_ms.saturating_sub(now_ms())) + config.stale_for;
        if self.inner.redis.is_some() {
            left.min(config.l1_max_ttl)
        } else {
            left
        }
    }
}

/// L1 keeps each entry as long as [`Stored::keep`] says.
struct KeepFor;

impl moka::Expiry<String, Arc<Stored>> for KeepFor {
    fn expire_after_create(
        &self,
        _key: &String,
        stored: &Arc<Stored>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(stored.keep)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        stored: &Arc<Stored>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(stored.keep)
    }
}
