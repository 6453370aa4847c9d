//! Configuration: `trellis.toml` plus `TRELLIS_*` environment overrides,
//! validated strictly before anything starts.
//!
//! The bottom layer: it imports nothing from the crate but the embedded
//! examples. Each section has a file that defines its types, their
//! defaults and their checks ([`server`], [`sql`], [`cache`], [`jobs`],
//! [`telemetry`], [`engine`], [`plugins`], [`deploy`], with [`alert_rule`]
//! and [`paths`] beside them); this file holds [`Config`] itself, loading,
//! and the validation that calls each section's own. Every key has a
//! default in code (see [`Config::default`]), unknown keys are errors, and an
//! error names the key, and the line where the file has one.
//!
//! Environment overrides (`env.rs`): `TRELLIS_<KEY>` with `__` between nesting levels,
//! e.g. `TRELLIS_SERVER__LISTEN=127.0.0.1:9000` or
//! `TRELLIS_LIMITS__DEADLINE=2s`. A value that parses as a TOML value
//! (number, boolean, quoted string) is taken as such; anything else as a
//! string. `TRELLIS_CONFIG` (the config path), `TRELLIS_ROLE` and `TRELLIS_LOG` (a log
//! filter) are not overrides.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::examples;

pub mod alert_rule;
pub mod cache;
pub mod deploy;
pub mod engine;
pub(crate) mod env;
pub mod jobs;
pub mod outbound;
pub mod paths;
pub mod plugins;
pub mod server;
pub mod sql;
pub mod telemetry;
#[cfg(test)]
mod tests;

pub use cache::{CacheConfig, LockConfig, RedisConfig};
pub use deploy::DeployConfig;
pub use engine::{EngineConfig, LimitOverrides, Limits};
pub use jobs::{JobsConfig, ScheduleConfig};
pub use outbound::{AllowedHost, OutboundConfig};
pub use plugins::{CAPABILITIES, PluginConfig, PluginSource, SettingValue};
pub use server::{AdminConfig, BatchConfig, CompressionConfig, ServerConfig, ServerTlsConfig};
pub use sql::{PostgresConfig, SqlConfig, SqlPoolConfig};
pub use telemetry::{AlertRule, AlertsConfig, LogConfig, LogFormat, TelemetryConfig};

/// A configuration error: what is wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema; the message
    /// carries the line, column and key.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and key.
        message: String,
    },
    /// An environment override does not fit the schema.
    #[error("invalid environment override ({key}): {message}")]
    Env {
        /// The config key the overrides touched, as a dotted path.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A value is well-formed but not acceptable.
    #[error("invalid config value `{key}`: {message}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where runtime state lives (compile cache, later databases).
    pub data_dir: PathBuf,
    /// The HTTP server.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
    /// The WebAssembly engine.
    pub engine: EngineConfig,
    /// Default limits of every plugin; `[plugins.<name>.limits]` overrides.
    pub limits: Limits,
    /// The `sql` capability's backend and pools.
    pub sql: SqlConfig,
    /// Admin authentication for `/admin/*` and the monitoring API.
    pub admin: AdminConfig,
    /// Tracing: sampling, OTLP export, the local trace store.
    pub telemetry: TelemetryConfig,
    /// Alert rules and where notifications go.
    pub alerts: AlertsConfig,
    /// Redis, shared by every node: the cache's second tier and its
    /// invalidations, and locks. Absent: both stay in process.
    pub redis: Option<RedisConfig>,
    /// The `cache` capability and the HTTP response cache.
    pub cache: CacheConfig,
    /// The `lock` capability.
    pub lock: LockConfig,
    /// Response compression.
    pub compression: CompressionConfig,
    /// `POST /api/v1/batch`.
    pub batch: BatchConfig,
    /// The job queue, its workers and the scheduler.
    pub jobs: JobsConfig,
    /// Hot reload: file watching, uploads, what nodes share.
    pub deploy: DeployConfig,
    /// The plugins to serve, by name. Absent: the embedded examples.
    pub plugins: Option<BTreeMap<String, PluginConfig>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(".trellis"),
            server: ServerConfig::default(),
            log: LogConfig::default(),
            engine: EngineConfig::default(),
            limits: Limits::default(),
            sql: SqlConfig::default(),
            admin: AdminConfig::default(),
            telemetry: TelemetryConfig::default(),
            alerts: AlertsConfig::default(),
            redis: None,
            cache: CacheConfig::default(),
            lock: LockConfig::default(),
            compression: CompressionConfig::default(),
            batch: BatchConfig::default(),
            jobs: JobsConfig::default(),
            deploy: DeployConfig::default(),
            plugins: None,
        }
    }
}

impl Config {
    /// Loads `path` (or the defaults when `None`), applies the `TRELLIS_*`
    /// variables of the process environment, and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, std::env::vars())
    }

    /// As [`Config::load`], with the environment given explicitly.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?,
            None => String::new(),
        };
        let shown = path.unwrap_or(Path::new("<defaults>"));
        Config::parse(&text, shown, env)
    }

    /// Parses and validates config `text`; `path` is only used in messages
    /// and to resolve relative plugin paths.
    pub fn parse(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let parse_error = |err: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: err.to_string(),
        };
        // First the file alone, so errors point at its lines.
        let mut config: Config = toml::from_str(text).map_err(parse_error)?;
        if let Some(overridden) = env::overridden(text, env, parse_error)? {
            config = overridden;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    /// The plugins to serve: the configured ones, or the embedded examples.
    pub fn plugins(&self) -> BTreeMap<String, PluginConfig> {
        self.plugins.clone().unwrap_or_else(|| {
            examples::EXAMPLES
                .iter()
                .map(|(name, _)| (name.to_string(), PluginConfig::builtin(name)))
                .collect()
        })
    }

    /// The compile cache directory (absolute), if the cache is on.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.engine.compile_cache.then(|| {
            let dir = self
                .engine
                .cache_dir
                .clone()
                .unwrap_or_else(|| self.data_dir.join("compile-cache"));
            std::path::absolute(&dir).unwrap_or(dir)
        })
    }

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(plugins) = &mut self.plugins {
            for plugin in plugins.values_mut() {
                if let Some(path) = &mut plugin.path
                    && path.is_relative()
                {
                    *path = base.join(&*path);
                }
            }
        }
    }

    /// Checks every section with its own `validate`, in the order the
    /// checks have always run (the first problem is the error, so a file
    /// with several reports the same one).
    fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.engine.validate()?;
        self.deploy.validate()?;
        self.sql.validate()?;
        self.admin.validate()?;
        self.telemetry.validate()?;
        self.alerts.validate()?;
        if let Some(redis) = &self.redis {
            redis.validate()?;
        }
        self.cache.validate()?;
        self.compression.validate()?;
        self.batch.validate()?;
        self.lock.validate()?;
        let plugins = self.plugins();
        self.jobs.validate(&plugins)?;
        self.log.validate()?;
        self.limits.validate("limits")?;
        for (name, plugin) in &plugins {
            plugin.validate(name, &self.limits)?;
        }
        Ok(())
    }
}

/// The error of a value of `key` that is well-formed but not acceptable.
fn invalid<T>(key: &str, message: &str) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        key: key.to_string(),
        message: message.to_string(),
    })
}
