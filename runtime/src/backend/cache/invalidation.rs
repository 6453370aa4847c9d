//! Invalidation messages between nodes: every write, delete and tag bump
//! is published on `<namespace>:invalidate`, and every other node drops
//! the key from its L1 (or moves the tag's epoch on) when it arrives. A
//! node flushes its whole L1 when its subscription drops and again when it
//! is back, since it may have missed messages.
//!
//! Layer: backend (the `cache` part). It may call the Redis clients
//! (`backend::redis`), the clock, the cache's config, and `monitor` for its
//! figures.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use fred::interfaces::{EventInterface, PubsubInterface};

use super::{CacheService, Inner, l1_key};
use crate::backend::redis::Redis;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Invalidation {
    /// The node that published it.
    n: String,
    p: String,
    /// A key, or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    /// a tag and its new epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<(String, u64)>,
}

impl CacheService {
    fn channel(redis: &Redis) -> String {
        format!("{}invalidate", redis.prefix)
    }

    pub(super) async fn publish(
        &self,
        redis: &Redis,
        plugin: &str,
        key: Option<String>,
        tag: Option<(String, u64)>,
    ) {
        let message = Invalidation {
            n: self.inner.node.clone(),
            p: plugin.to_string(),
            k: key,
            t: tag,
        };
        let Ok(text) = serde_json::to_string(&message) else {
            return;
        };
        if let Err(err) = redis
            .client
            .publish::<(), _, _>(Self::channel(redis), text)
            .await
        {
            self.redis_failed("publish", &err);
        }
    }

    /// Subscribes to the channel and applies what other nodes publish;
    /// flushes L1 when the subscription drops and when it is back.
    pub(super) async fn listen(&self) {
        let Some(redis) = self.inner.redis.clone() else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let mut messages = redis.subscriber.message_rx();
        let mut reconnects = redis.subscriber.reconnect_rx();
        let mut errors = redis.subscriber.error_rx();
        let channel = Self::channel(&redis);
        if let Err(err) = redis.subscriber.subscribe(channel.clone()).await {
            tracing::warn!(%err, "cannot subscribe to cache invalidations yet; will when Redis is back");
        } else if let Some(inner) = weak.upgrade() {
            inner.subscribed.store(true, Ordering::Relaxed);
        }
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = messages.recv() => {
                        let Some(inner) = weak.upgrade() else { return };
                        match message {
                            Ok(message) => {
                                if let Some(text) = message.value.as_string() {
                                    apply(&inner, &text);
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                // Missed messages: forget everything local.
                                CacheService { inner }.flush_l1();
                            }
                            Err(_) => return,
                        }
                    }
                    event = reconnects.recv() => {
                        let Some(inner) = weak.upgrade() else { return };
                        if event.is_err() { return; }
                        inner.subscribed.store(true, Ordering::Relaxed);
                        tracing::info!("Redis is back: the cache flushed its process tier");
                        CacheService { inner }.flush_l1();
                    }
                    event = errors.recv() => {
                        let Some(inner) = weak.upgrade() else { return };
                        if event.is_err() { return; }
                        // The subscription dropped: flush once. Failed
                        // reconnection attempts after it leave L1 alone,
                        // since it is all the cache has until Redis is back.
                        let down = inner.redis.as_ref().is_some_and(|r| !r.is_up());
                        if down && inner.subscribed.swap(false, Ordering::Relaxed) {
                            CacheService { inner }.flush_l1();
                        }
                    }
                }
            }
        });
    }
}

fn apply(inner: &Inner, text: &str) {
    let Ok(message) = serde_json::from_str::<Invalidation>(text) else {
        return;
    };
    if message.n == inner.node {
        return;
    }
    if let Some(key) = message.k {
        inner.l1.invalidate(&l1_key(&message.p, &key));
        inner.stats.invalidation("key", "remote");
    }
    if let Some((tag, epoch)) = message.t {
        let name = l1_key(&message.p, &tag);
        let current = inner.tags.get(&name).unwrap_or(0);
        inner.tags.insert(name, current.max(epoch));
        inner.stats.invalidation("tag", "remote");
    }
}
