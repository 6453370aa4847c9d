//! `[cache]`, `[redis]` and `[lock]`: the two-tier cache, the Redis every
//! node shares, and the bounds of the `lock` capability; their defaults and
//! checks.
//!
//! Layer: config, the bottom. It uses nothing of the crate but the config
//! module's own error type.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[redis]`: the Redis every node shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS.
    pub url: String,
    /// With `rediss://`: CA certificates (PEM) trusted besides the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    /// Prefix of every key and channel, so deployments can share a Redis.
    #[serde(default = "default_redis_namespace")]
    pub namespace: String,
    /// A command that takes longer fails (the cache then degrades, a lock
    /// call reports `unavailable`).
    #[serde(default = "default_redis_timeout", with = "humantime_serde")]
    pub command_timeout: Duration,
    /// `/readyz` answers 503 while Redis does not answer. `false`: the node
    /// stays ready and serves degraded (cache in process, locks
    /// unavailable), which keeps a cluster serving when its Redis is down.
    #[serde(default = "default_redis_required")]
    pub required: bool,
}

fn default_redis_required() -> bool {
    true
}

fn default_redis_namespace() -> String {
    "trellis".into()
}

fn default_redis_timeout() -> Duration {
    Duration::from_millis(500)
}

/// `[cache]`: sizes and time bounds of the two-tier cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Memory of the in-process tier (values and keys).
    pub l1_size: ByteSize,
    /// The largest value a plugin may store.
    pub max_value: ByteSize,
    /// The longest ttl a plugin may ask for (longer ones are cut to it).
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// With Redis: how long a node keeps an entry in process at most. An
    /// invalidation published by another node normally arrives within
    /// milliseconds; if it is lost, this bounds how long the old value is
    /// served.
    #[serde(with = "humantime_serde")]
    pub l1_max_ttl: Duration,
    /// How long after expiry an entry may still be served when its reload
    /// fails (stale-on-error).
    #[serde(with = "humantime_serde")]
    pub stale_for: Duration,
    /// How long a `fetch` waits for another caller's load of the same key
    /// before loading itself.
    #[serde(with = "humantime_serde")]
    pub load_wait: Duration,
    /// Without Redis: memory of the in-process `wasi:keyvalue` store
    /// (every plugin's keys and values); a write beyond it fails. With
    /// Redis the store is Redis's and this does not apply.
    pub keyvalue_size: ByteSize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            l1_size: ByteSize::mib(64),
            max_value: ByteSize::mib(1),
            max_ttl: Duration::from_secs(24 * 3600),
            l1_max_ttl: Duration::from_secs(10),
            stale_for: Duration::from_secs(30),
            load_wait: Duration::from_secs(5),
            keyvalue_size: ByteSize::mib(16),
        }
    }
}

/// `[lock]`: bounds of the `lock` capability.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockConfig {
    /// The longest lease a plugin may take.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// The longest a plugin may wait to acquire.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            max_ttl: Duration::from_secs(300),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl RedisConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.url.starts_with("redis://") || self.url.starts_with("rediss://")) {
            return invalid("redis.url", "must be a redis:// URL");
        }
        if self.namespace.is_empty()
            || !self
                .namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return invalid("redis.namespace", "letters, digits, `_` and `-`");
        }
        if self.command_timeout.is_zero() {
            return invalid("redis.command_timeout", "must be more than 0");
        }
        Ok(())
    }
}

impl CacheConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_value.as_u64() == 0 || self.max_value > self.l1_size {
            return invalid("cache.max_value", "must be more than 0 and at most l1_size");
        }
        if self.keyvalue_size.as_u64() == 0 {
            return invalid("cache.keyvalue_size", "must be more than 0");
        }
        if self.max_ttl.is_zero() || self.l1_max_ttl.is_zero() {
            return invalid("cache", "max_ttl and l1_max_ttl must be more than 0");
        }
        Ok(())
    }
}

impl LockConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_ttl.is_zero() {
            return invalid("lock.max_ttl", "must be more than 0");
        }
        Ok(())
    }
}
