//! `[engine]`, `[limits]` and `[plugins.<name>.limits]`: the wasmtime
//! engine shared by all plugins and the limits of each; their defaults,
//! how overrides merge, and checks.
//!
//! Layer: config, the bottom. It uses nothing of the crate but the config
//! module's own error type.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[engine]`: the wasmtime engine shared by all plugins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Cache compiled components on disk (keyed by wasm hash and engine
    /// settings) so restarts skip compilation.
    pub compile_cache: bool,
    /// The cache directory; default `<data_dir>/compile-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Epoch tick: how often a running guest yields to the scheduler and has
    /// its deadline checked.
    #[serde(with = "humantime_serde")]
    pub epoch_tick: Duration,
    /// Instances alive at once across all plugins (sizes the pooling allocator).
    pub max_instances: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            compile_cache: true,
            cache_dir: None,
            epoch_tick: Duration::from_millis(2),
            max_instances: 1000,
        }
    }
}

impl EngineConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.epoch_tick.is_zero() || self.epoch_tick > Duration::from_secs(1) {
            return invalid("engine.epoch_tick", "must be between 1ms and 1s");
        }
        if self.max_instances == 0 {
            return invalid("engine.max_instances", "must be at least 1");
        }
        Ok(())
    }
}

/// Per-plugin limits. Each exceeded limit has its own error (see `docs/operations.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock time per request; exceeded → 504.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Linear memory per instance; exceeded → 500.
    pub memory: ByteSize,
    /// Instances of this plugin at once; more → 503 with `Retry-After`.
    pub max_concurrency: u32,
    /// Request body size; larger → 413.
    pub max_request_body: ByteSize,
    /// Response body size; larger → 500.
    pub max_response_body: ByteSize,
    /// Requests that wait for a free instance when `max_concurrency` are
    /// busy (within the deadline); more → 503 with `Retry-After`.
    pub max_queued: u32,
    /// Rows one query may return (`invalid` error beyond); at most
    /// `sql.pool.max_rows`.
    pub max_rows: u32,
    /// The largest value the plugin may store in the cache (`too-large`
    /// beyond); at most `cache.max_value`.
    pub max_cache_value: ByteSize,
    /// Jobs one request (or job run) may enqueue (`invalid` beyond).
    pub max_enqueue: u32,
}

/// `[plugins.<name>.limits]`: overrides of the default limits.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitOverrides {
    /// See [`Limits::deadline`].
    #[serde(with = "humantime_serde")]
    pub deadline: Option<Duration>,
    /// See [`Limits::memory`].
    pub memory: Option<ByteSize>,
    /// See [`Limits::max_concurrency`].
    pub max_concurrency: Option<u32>,
    /// See [`Limits::max_request_body`].
    pub max_request_body: Option<ByteSize>,
    /// See [`Limits::max_response_body`].
    pub max_response_body: Option<ByteSize>,
    /// See [`Limits::max_queued`].
    pub max_queued: Option<u32>,
    /// See [`Limits::max_rows`].
    pub max_rows: Option<u32>,
    /// See [`Limits::max_cache_value`].
    pub max_cache_value: Option<ByteSize>,
    /// See [`Limits::max_enqueue`].
    pub max_enqueue: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(10),
            memory: ByteSize::mib(64),
            max_concurrency: 100,
            max_request_body: ByteSize::mib(1),
            max_response_body: ByteSize::mib(8),
            max_queued: 32,
            max_rows: 10_000,
            max_cache_value: ByteSize::mib(1),
            max_enqueue: 100,
        }
    }
}

impl Limits {
    /// These limits with `overrides` applied.
    pub fn with(self, overrides: &LimitOverrides) -> Limits {
        Limits {
            deadline: overrides.deadline.unwrap_or(self.deadline),
            memory: overrides.memory.unwrap_or(self.memory),
            max_concurrency: overrides.max_concurrency.unwrap_or(self.max_concurrency),
            max_request_body: overrides.max_request_body.unwrap_or(self.max_request_body),
            max_response_body: overrides
                .max_response_body
                .unwrap_or(self.max_response_body),
            max_queued: overrides.max_queued.unwrap_or(self.max_queued),
            max_rows: overrides.max_rows.unwrap_or(self.max_rows),
            max_cache_value: overrides.max_cache_value.unwrap_or(self.max_cache_value),
            max_enqueue: overrides.max_enqueue.unwrap_or(self.max_enqueue),
        }
    }
}

impl Limits {
    pub(super) fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.deadline.is_zero() {
            return invalid(&format!("{prefix}.deadline"), "must be more than 0");
        }
        if self.memory < ByteSize::mib(1) || self.memory > ByteSize::gib(4) {
            return invalid(
                &format!("{prefix}.memory"),
                "must be between 1 MiB and 4 GiB",
            );
        }
        if self.max_concurrency == 0 {
            return invalid(&format!("{prefix}.max_concurrency"), "must be at least 1");
        }
        if self.max_response_body.as_u64() == 0 {
            return invalid(
                &format!("{prefix}.max_response_body"),
                "must be more than 0",
            );
        }
        if self.max_rows == 0 {
            return invalid(&format!("{prefix}.max_rows"), "must be at least 1");
        }
        if self.max_cache_value.as_u64() == 0 {
            return invalid(&format!("{prefix}.max_cache_value"), "must be more than 0");
        }
        Ok(())
    }
}
