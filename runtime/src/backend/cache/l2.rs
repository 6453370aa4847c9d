//! The Redis tier: reads that go on to Redis after an L1 miss, what comes
//! back admitted into L1, the key names, and Redis trouble (counted, logged
//! once per 10 s, never an error: the cache falls back to process memory).
//!
//! Layer: backend (the `cache` part). It may call the Redis clients
//! (`backend::redis`), the clock, the cache's config, and `monitor` for its
//! figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::interfaces::KeysInterface;

use super::l1::Stored;
use super::{CacheService, Entry, l1_key};
use crate::backend::redis::Redis;

impl CacheService {
    /// The entry of `key`, fresh or stale-but-servable, that no tag
    /// invalidated: L1 first, then L2.
    pub(super) async fn read(&self, plugin: &str, key: &str) -> Option<Arc<Entry>> {
        if let Some(entry) = self.read_l1(plugin, key).await {
            return Some(entry);
        }
        let redis = self.up()?;
        match redis
            .client
            .get::<Option<Bytes>, _>(self.redis_key(redis, plugin, key))
            .await
        {
            Ok(raw) => self.admit(plugin, key, raw).await,
            Err(err) => {
                self.redis_failed("get", &err);
                None
            }
        }
    }

    /// An L2 answer: decoded, checked against tag epochs, kept in L1.
    pub(super) async fn admit(
        &self,
        plugin: &str,
        key: &str,
        raw: Option<Bytes>,
    ) -> Option<Arc<Entry>> {
        let entry = raw.as_ref().and_then(Entry::decode);
        let entry = match entry {
            Some(e) if self.tags_current(plugin, &e).await => Some(e),
            _ => None,
        };
        self.inner.stats.lookup("l2", entry.is_some());
        let entry = entry?;
        self.inner.l1.insert(
            l1_key(plugin, key),
            Arc::new(Stored {
                keep: self.l1_keep(&entry),
                entry: entry.clone(),
            }),
        );
        Some(Arc::new(entry))
    }

    /// Redis, when configured and connected.
    pub(super) fn up(&self) -> Option<&Redis> {
        let redis = self.inner.redis.as_ref()?;
        if redis.is_up() {
            return Some(redis);
        }
        self.inner.stats.redis_error("disconnected");
        self.warn("Redis is not connected: the cache serves from process memory");
        None
    }

    pub(super) fn redis_failed(&self, op: &'static str, err: &fred::error::Error) {
        self.inner.stats.redis_error(op);
        self.warn(&format!(
            "Redis {op} failed ({err}): the cache falls back to process memory"
        ));
    }

    fn warn(&self, message: &str) {
        let mut warned = self
            .inner
            .warned_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            *warned = Some(Instant::now());
            tracing::warn!("{message}");
        }
    }

    pub(super) fn redis_key(&self, redis: &Redis, plugin: &str, key: &str) -> String {
        format!("{}c:{}:{plugin}:{key}", redis.prefix, plugin.len())
    }

    pub(super) fn redis_tag(&self, redis: &Redis, plugin: &str, tag: &str) -> String {
        format!("{}t:{}:{plugin}:{tag}", redis.prefix, plugin.len())
    }
}
