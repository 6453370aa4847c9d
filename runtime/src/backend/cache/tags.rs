//! Tags, invalidated lazily through epochs: an entry records the epoch of
//! each of its tags when stored and is not served once one moved on.
//! Epochs live in Redis (one `INCR` counter per namespace) and are cached
//! per node; without Redis they come from a counter in process.
//!
//! Layer: backend (the `cache` part). It may call the Redis clients
//! (`backend::redis`), the clock, the cache's config, and `monitor` for its
//! figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fred::interfaces::{KeysInterface, LuaInterface};

use super::{CacheError, CacheService, Entry, l1_key, millis};
use crate::config::CacheConfig;

/// Tags remembered per node (their epochs).
const TAG_CAPACITY: u64 = 100_000;

/// A tag's new epoch comes from one counter for the whole namespace, so a
/// tag key that expired (after every entry it could outdate did) and is
/// set again still gets an epoch above any entry stored before.
const BUMP_TAG: &str = r"
local epoch = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], epoch, 'PX', ARGV[1])
return epoch
";

/// The per-node cache of tag epochs. With Redis its entries live
/// `l1_max_ttl`; without, a tag pushed out for room raises `floor` past
/// its epoch, so it still reads as newer than any entry it outdated.
pub(super) fn build(
    config: &CacheConfig,
    with_redis: bool,
    floor: Arc<AtomicU64>,
) -> moka::sync::Cache<String, u64> {
    let builder = moka::sync::Cache::builder().max_capacity(TAG_CAPACITY);
    if with_redis {
        builder.time_to_live(config.l1_max_ttl).build()
    } else {
        builder
            .eviction_listener(move |_key, epoch: u64, cause| {
                // Only a tag pushed out for room is forgotten.
                if cause == moka::notification::RemovalCause::Size {
                    floor.fetch_max(epoch.saturating_add(1), Ordering::Relaxed);
                }
            })
            .build()
    }
}

impl CacheService {
    /// The current epochs of `tags`, to store an entry later with the
    /// epochs from before its value was computed (a tag invalidated in
    /// between then outdates it at once). Unknown epochs read as 0.
    pub(crate) async fn tag_epochs(&self, plugin: &str, tags: &[String]) -> Vec<(String, u64)> {
        let mut epochs = Vec::with_capacity(tags.len());
        for tag in tags {
            let epoch = self.tag_epoch(plugin, tag).await.unwrap_or(0);
            epochs.push((tag.clone(), epoch));
        }
        epochs
    }

    /// Makes every entry tagged `tag` unservable, on every node.
    pub async fn invalidate_tag(&self, plugin: &str, tag: &str) -> Result<(), CacheError> {
        Self::check_name("tag", tag)?;
        self.invalidate_tag_internal(plugin, tag).await;
        Ok(())
    }

    /// As [`CacheService::invalidate_tag`] for a tag the runtime made (the
    /// query cache's table tags).
    pub(crate) async fn invalidate_tag_internal(&self, plugin: &str, tag: &str) {
        let name = l1_key(plugin, tag);
        self.inner.stats.invalidation("tag", "local");
        if let Some(redis) = self.up() {
            let keep = self.inner.config.max_ttl + self.inner.config.stale_for;
            let bumped = redis
                .client
                .eval::<u64, _, _, _>(
                    BUMP_TAG,
                    vec![
                        format!("{}epoch", redis.prefix),
                        self.redis_tag(redis, plugin, tag),
                    ],
                    vec![millis(keep).to_string()],
                )
                .await;
            match bumped {
                Ok(epoch) => {
                    self.inner.tags.insert(name, epoch);
                    self.publish(redis, plugin, None, Some((tag.to_string(), epoch)))
                        .await;
                    return;
                }
                Err(err) => self.redis_failed("invalidate_tag", &err),
            }
            // Redis failed: at least this node stops serving the tag.
            self.inner.tags.insert(name, u64::MAX);
            return;
        }
        let epoch = self.inner.next_epoch.fetch_add(1, Ordering::Relaxed);
        let floor = self.inner.floor.load(Ordering::Relaxed);
        self.inner.tags.insert(name, epoch.max(floor));
    }

    pub(super) async fn tags_current(&self, plugin: &str, entry: &Entry) -> bool {
        for (tag, epoch) in &entry.tags {
            match self.tag_epoch(plugin, tag).await {
                Some(current) if *epoch >= current => {}
                _ => return false,
            }
        }
        true
    }

    /// The current epoch of a tag; `None` when it cannot be known (Redis
    /// down and not cached), which callers treat as invalidated.
    async fn tag_epoch(&self, plugin: &str, tag: &str) -> Option<u64> {
        let name = l1_key(plugin, tag);
        if let Some(epoch) = self.inner.tags.get(&name) {
            return Some(epoch);
        }
        let Some(redis) = &self.inner.redis else {
            return Some(self.inner.floor.load(Ordering::Relaxed));
        };
        if !redis.is_up() {
            return None;
        }
        match redis
            .client
            .get::<Option<u64>, _>(self.redis_tag(redis, plugin, tag))
            .await
        {
            Ok(epoch) => {
                let epoch = epoch.unwrap_or(0);
                self.inner.tags.insert(name, epoch);
                Some(epoch)
            }
            Err(err) => {
                self.redis_failed("get", &err);
                None
            }
        }
    }
}
