//! `[sql]`, `[sql.postgres]` and `[sql.pool]`: where plugins' databases
//! live, the read replicas, and each plugin's pool; their defaults and
//! checks.
//!
//! Layer: config, the bottom. It uses nothing of the crate but the config
//! module's own error type.

use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[sql]`: where plugins' databases live. Without `[sql.postgres]`, each
/// plugin gets a SQLite file under `<data_dir>/sql/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlConfig {
    /// PostgreSQL instead of SQLite.
    pub postgres: Option<PostgresConfig>,
    /// Pool settings, per plugin.
    pub pool: SqlPoolConfig,
    /// Statements slower than this are logged with their plan.
    #[serde(with = "humantime_serde")]
    pub slow_query: Duration,
    /// One statement shape run this many times in one request is flagged as
    /// an N+1 pattern.
    pub n_plus_one_threshold: u32,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            postgres: None,
            pool: SqlPoolConfig::default(),
            slow_query: Duration::from_millis(250),
            n_plus_one_threshold: 10,
        }
    }
}

/// `[sql.postgres]`: the database the runtime provisions plugins in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// An admin connection URL (a role that may create roles and schemas),
    /// e.g. `postgres://postgres@127.0.0.1:5432/app`. Plugins never use it.
    pub url: String,
    /// Prefix of everything the runtime creates: its own schema is
    /// `<namespace>`, each plugin's role and schema `<namespace>_<plugin>`.
    /// Roles are cluster-wide, so deployments sharing a cluster need
    /// different namespaces.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Read replicas: URLs of streaming standbys of this database (the same
    /// credentials as `url`). Reads marked `replica-ok` outside a
    /// transaction go to one that is close enough; everything else to `url`.
    #[serde(default)]
    pub replicas: Vec<String>,
    /// A replica more WAL bytes behind the primary than this is skipped.
    #[serde(default = "default_max_replica_lag_bytes")]
    pub max_replica_lag_bytes: ByteSize,
    /// A replica behind the primary whose last replayed transaction is
    /// older than this is skipped.
    #[serde(default = "default_max_replica_lag", with = "humantime_serde")]
    pub max_replica_lag: Duration,
    /// How long a read that must see an earlier write (a consistency token)
    /// waits for a replica to replay it before going to the primary.
    #[serde(default = "default_replica_wait", with = "humantime_serde")]
    pub replica_wait: Duration,
    /// How often replica lag is sampled.
    #[serde(default = "default_lag_sample_interval", with = "humantime_serde")]
    pub lag_sample_interval: Duration,
    /// For this long after a principal's write, its replica-ok reads see
    /// that write even without a consistency token (on any node, with
    /// Redis). `0s` turns it off.
    #[serde(default = "default_causal_window", with = "humantime_serde")]
    pub causal_window: Duration,
    /// The request header that names the principal (a gateway's identity
    /// header, or the bearer token itself); only a hash of its value is
    /// kept.
    #[serde(default = "default_principal_header")]
    pub principal_header: String,
}

fn default_causal_window() -> Duration {
    Duration::from_secs(10)
}

fn default_principal_header() -> String {
    "authorization".into()
}

fn default_namespace() -> String {
    "trellis".into()
}

fn default_max_replica_lag_bytes() -> ByteSize {
    ByteSize::mib(16)
}

fn default_max_replica_lag() -> Duration {
    Duration::from_secs(5)
}

fn default_replica_wait() -> Duration {
    Duration::from_millis(100)
}

fn default_lag_sample_interval() -> Duration {
    Duration::from_millis(250)
}

/// `[sql.pool]`: each plugin's connection pool and statement bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlPoolConfig {
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// Connections at most.
    pub max_connections: u32,
    /// Wait for a free connection before `unavailable`.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Close connections idle this long.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Longest a statement may run (`timeout` error).
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// Rows one query may return (`invalid` error beyond).
    pub max_rows: usize,
}

impl Default for SqlPoolConfig {
    fn default() -> Self {
        SqlPoolConfig {
            min_connections: 0,
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(600),
            statement_timeout: Duration::from_secs(5),
            max_rows: 10_000,
        }
    }
}

impl SqlConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.pool.validate()?;
        if self.n_plus_one_threshold < 2 {
            return invalid("sql.n_plus_one_threshold", "must be at least 2");
        }
        if self.pool.max_rows == 0 {
            return invalid("sql.pool.max_rows", "must be at least 1");
        }
        match &self.postgres {
            Some(pg) => pg.validate(),
            None => Ok(()),
        }
    }
}

impl SqlPoolConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 || self.min_connections > self.max_connections {
            return invalid(
                "sql.pool.max_connections",
                "must be at least 1 and at least min_connections",
            );
        }
        if self.statement_timeout.is_zero() || self.acquire_timeout.is_zero() {
            return invalid("sql.pool", "timeouts must be more than 0");
        }
        Ok(())
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl PostgresConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !is_postgres_url(&self.url) {
            return invalid("sql.postgres.url", "must be a postgres:// URL");
        }
        if let Some(bad) = self.replicas.iter().find(|u| !is_postgres_url(u)) {
            return invalid(
                "sql.postgres.replicas",
                &format!("`{bad}` is not a postgres:// URL"),
            );
        }
        if self.lag_sample_interval.is_zero() {
            return invalid("sql.postgres.lag_sample_interval", "must be more than 0");
        }
        let ns = self.namespace.as_bytes();
        let valid = !ns.is_empty()
            && ns.len() <= 24
            && ns[0].is_ascii_lowercase()
            && ns
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
        if !valid {
            return invalid(
                "sql.postgres.namespace",
                "1 to 24 of a-z, 0-9 and `_`, starting with a letter",
            );
        }
        Ok(())
    }
}
