//! Reading and writing values: get, get-many, set, delete, and the store
//! that writes both tiers and tells the other nodes.
//!
//! Layer: backend (the `cache` part). It may call the Redis clients
//! (`backend::redis`), the clock, the cache's config, and `monitor` for its
//! figures.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::interfaces::KeysInterface;
use fred::types::Expiration;

use super::l1::Stored;
use super::{CacheError, CacheService, Entry, MAX_MANY, MAX_TAGS, l1_key, millis, millis_u64};
use crate::clock::now_ms;

impl CacheService {
    /// A fresh value of `plugin`'s `key`: `Some(None)` for a negative entry.
    pub async fn get(&self, plugin: &str, key: &str) -> Result<Option<Option<Bytes>>, CacheError> {
        Self::check_name("key", key)?;
        Ok(self.get_internal(plugin, key).await)
    }

    /// As [`CacheService::get`] for a key the runtime made.
    pub(crate) async fn get_internal(&self, plugin: &str, key: &str) -> Option<Option<Bytes>> {
        let now = now_ms();
        self.read(plugin, key)
            .await
            .filter(|e| e.fresh(now))
            .map(|e| e.value.clone())
    }

    /// Stores a runtime-made entry with tag epochs taken before its value
    /// was computed ([`CacheService::tag_epochs`]).
    pub(crate) async fn set_tagged(
        &self,
        plugin: &str,
        key: &str,
        value: Bytes,
        ttl: Duration,
        tagged: Vec<(String, u64)>,
    ) -> Result<Arc<Entry>, CacheError> {
        self.store_entry(plugin, key, Some(value), ttl, tagged, Duration::ZERO)
            .await
    }

    /// Many keys; L2 is asked once for all L1 misses.
    pub async fn get_many(
        &self,
        plugin: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        if keys.len() > MAX_MANY {
            return Err(CacheError::Invalid(format!(
                "at most {MAX_MANY} keys at once"
            )));
        }
        for key in keys {
            Self::check_name("key", key)?;
        }
        let now = now_ms();
        let mut found: Vec<Option<Arc<Entry>>> = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let entry = self.read_l1(plugin, key).await;
            if entry.is_none() {
                missing.push(i);
            }
            found.push(entry);
        }
        if !missing.is_empty()
            && let Some(redis) = self.up()
        {
            let names: Vec<String> = missing
                .iter()
                .map(|&i| self.redis_key(redis, plugin, &keys[i]))
                .collect();
            match redis.client.mget::<Vec<Option<Bytes>>, _>(names).await {
                Ok(values) => {
                    for (&i, raw) in missing.iter().zip(values) {
                        found[i] = self.admit(plugin, &keys[i], raw).await;
                    }
                }
                Err(err) => self.redis_failed("mget", &err),
            }
        }
        Ok(found
            .into_iter()
            .map(|e| e.filter(|e| e.fresh(now)).and_then(|e| e.value.clone()))
            .collect())
    }

    /// Stores `value` (`None`: a negative entry) for `ttl` with `tags`, and
    /// invalidates the key on every other node.
    pub async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: Option<Bytes>,
        ttl: Duration,
        tags: &[String],
    ) -> Result<Arc<Entry>, CacheError> {
        Self::check_name("key", key)?;
        self.store(plugin, key, value, ttl, tags, Duration::ZERO)
            .await
    }

    /// As [`CacheService::set`] for a key the runtime made (the response
    /// cache's keys hold a control character, so no plugin key can equal
    /// one).
    pub(crate) async fn set_internal(
        &self,
        plugin: &str,
        key: &str,
        value: Bytes,
        ttl: Duration,
        tags: &[String],
    ) -> Result<Arc<Entry>, CacheError> {
        self.store(plugin, key, Some(value), ttl, tags, Duration::ZERO)
            .await
    }

    /// Removes `key` on every node.
    pub async fn delete(&self, plugin: &str, key: &str) -> Result<(), CacheError> {
        Self::check_name("key", key)?;
        self.inner.l1.invalidate(&l1_key(plugin, key));
        self.inner.stats.invalidation("key", "local");
        if let Some(redis) = self.up() {
            if let Err(err) = redis
                .client
                .del::<(), _>(self.redis_key(redis, plugin, key))
                .await
            {
                self.redis_failed("del", &err);
            }
            self.publish(redis, plugin, Some(key.to_string()), None)
                .await;
        }
        Ok(())
    }

    pub(super) async fn store(
        &self,
        plugin: &str,
        key: &str,
        value: Option<Bytes>,
        ttl: Duration,
        tags: &[String],
        delta: Duration,
    ) -> Result<Arc<Entry>, CacheError> {
        if tags.len() > MAX_TAGS {
            return Err(CacheError::Invalid(format!(
                "at most {MAX_TAGS} tags per entry"
            )));
        }
        for tag in tags {
            Self::check_name("tag", tag)?;
        }
        // Unknown epochs (Redis away) read as 0, which any invalidation
        // outdates.
        let tagged = self.tag_epochs(plugin, tags).await;
        self.store_entry(plugin, key, value, ttl, tagged, delta)
            .await
    }

    async fn store_entry(
        &self,
        plugin: &str,
        key: &str,
        value: Option<Bytes>,
        ttl: Duration,
        tagged: Vec<(String, u64)>,
        delta: Duration,
    ) -> Result<Arc<Entry>, CacheError> {
        let config = &self.inner.config;
        if let Some(v) = &value
            && v.len() as u64 > config.max_value.as_u64()
        {
            return Err(CacheError::TooLarge(config.max_value.as_u64()));
        }
        if ttl.is_zero() {
            return Err(CacheError::Invalid("a cache ttl is at least 1 ms".into()));
        }
        let ttl = ttl.min(config.max_ttl);
        let entry = Arc::new(Entry {
            value,
            expires_at_ms: now_ms().saturating_add(millis_u64(ttl)),
            delta_ms: u32::try_from(delta.as_millis()).unwrap_or(u32::MAX),
            tags: tagged,
        });
        let name = l1_key(plugin, key);
        self.inner.l1.insert(
            name,
            Arc::new(Stored {
                keep: self.l1_keep(&entry),
                entry: (*entry).clone(),
            }),
        );
        if let Some(redis) = self.up() {
            let keep = ttl + config.stale_for;
            if let Err(err) = redis
                .client
                .set::<(), _, _>(
                    self.redis_key(redis, plugin, key),
                    entry.encode(),
                    Some(Expiration::PX(millis(keep))),
                    None,
                    false,
                )
                .await
            {
                self.redis_failed("set", &err);
            }
            self.publish(redis, plugin, Some(key.to_string()), None)
                .await;
        }
        Ok(entry)
    }
}
