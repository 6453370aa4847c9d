//! Backends: the storage engines capabilities run on. Layer: below
//! `capability` and `alerts`, above `monitor` (each backend records its
//! own figures there) and `config`; knows sqlx, fred and moka, not WIT or
//! hyper.

pub mod cache;
pub mod jobs;
pub mod keyvalue;
pub mod lock;
pub mod redis;
pub mod runtime_store;
pub mod sql;

use std::sync::Arc;

use crate::config::Config;
use crate::monitor::Metrics;

/// Every storage engine of a node, started once from the config and
/// shared: the capabilities, the response cache, the job queue, the
/// deployer and alerting all run on these.
#[derive(Debug, Clone)]
pub struct Backends {
    /// Plugin databases, the job tables and the runtime store.
    pub sql: sql::SqlService,
    /// The two-tier cache (in process, and Redis when configured).
    pub cache: cache::CacheService,
    /// Leases (in process, or on Redis).
    pub locks: lock::LockService,
    /// `wasi:keyvalue` buckets (in process, or on Redis).
    pub keyvalue: keyvalue::KeyValueService,
    /// SQL query results, kept in `cache`.
    pub query_cache: Arc<sql::QueryCache>,
}

/// Why a backend did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The SQL backend could not be reached or prepared.
    #[error("cannot start the sql backend: {0}")]
    Sql(sql::SqlError),
    /// The Redis configuration is unusable.
    #[error("cannot use Redis: {0}")]
    Redis(String),
}

impl Backends {
    /// Starts every backend `config` asks for; their figures go to
    /// `metrics`.
    pub async fn start(config: &Config, metrics: &Metrics) -> Result<Backends, BackendError> {
        let sql = sql::SqlService::start(&config.sql, &config.data_dir)
            .await
            .map_err(BackendError::Sql)?;
        let redis = match &config.redis {
            Some(redis) => Some(
                redis::Redis::connect(redis)
                    .await
                    .map_err(BackendError::Redis)?,
            ),
            None => None,
        };
        let cache =
            cache::CacheService::start(&config.cache, redis.clone(), metrics.cache_stats()).await;
        let keyvalue = keyvalue::KeyValueService::new(&config.cache, redis.clone());
        let locks = lock::LockService::new(&config.lock, redis, metrics.lock_stats());
        let query_cache = Arc::new(sql::QueryCache::new(cache.clone()));
        Ok(Backends {
            sql,
            cache,
            locks,
            keyvalue,
            query_cache,
        })
    }
}
