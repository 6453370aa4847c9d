//! `[deploy]`: changing plugins on a live server (file watching, uploads,
//! what nodes share); its defaults and checks.
//!
//! Layer: config, the bottom. It uses nothing of the crate but the config
//! module's own error type.

use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[deploy]`: changing plugins on a live server (see
/// `docs/operations.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeployConfig {
    /// Reload a plugin when its component file (`path`) changes.
    pub watch: bool,
    /// Quiet time after the last change to a file before it is reloaded,
    /// so a file still being written is not read half-way.
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    /// How often a node checks the shared database for versions uploaded
    /// on other nodes (PostgreSQL also announces them at once).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Largest component `PUT /admin/plugins/{name}` accepts.
    pub max_upload: ByteSize,
    /// Uploaded versions kept per plugin (besides the live and previous).
    pub keep_versions: u32,
    /// This node's name in `GET /admin/plugins`. Default: `<hostname>-<pid>`.
    pub node: Option<String>,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            watch: true,
            debounce: Duration::from_millis(300),
            poll_interval: Duration::from_secs(2),
            max_upload: ByteSize::mib(64),
            keep_versions: 5,
            node: None,
        }
    }
}

impl DeployConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.poll_interval < Duration::from_millis(100) {
            return invalid("deploy.poll_interval", "must be at least 100ms");
        }
        if self.debounce.is_zero() || self.debounce > Duration::from_secs(60) {
            return invalid("deploy.debounce", "must be between 1ms and 60s");
        }
        if self.max_upload.as_u64() < 1024 {
            return invalid("deploy.max_upload", "must be at least 1 KiB");
        }
        if self
            .node
            .as_ref()
            .is_some_and(|n| n.is_empty() || n.len() > 128)
        {
            return invalid("deploy.node", "must be 1 to 128 characters");
        }
        Ok(())
    }
}
