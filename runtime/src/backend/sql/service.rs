//! The SQL service: provisions plugin databases on the configured engine
//! (SQLite files or PostgreSQL schemas), opens the runtime's own stores on
//! the same engine (the job queue, the plugin version store), answers
//! pings, and holds cluster roles (a [`Leader`] per role).
//!
//! Layer: `backend` (part of `backend::sql`); it may call `config` and the
//! other backends it opens (`backend::jobs`, `backend::runtime_store`),
//! nothing above `backend`.

use std::sync::Arc;
use std::time::Duration;

use super::{PluginDb, ReplicaStats, SqlError, postgres, sqlite};
use crate::config::SqlConfig;

/// A cluster-wide role held by this node (a PostgreSQL session advisory
/// lock on a connection of its own); dropping it lets another node lead.
#[derive(Debug)]
pub struct Leader(Option<sqlx::PgConnection>);

impl Leader {
    /// Whether the role is still held (the lock's connection answers).
    pub async fn still(&mut self) -> bool {
        match &mut self.0 {
            None => true,
            Some(conn) => sqlx::Connection::ping(conn).await.is_ok(),
        }
    }
}

/// Provisions plugin databases on the configured backend.
#[derive(Debug, Clone)]
pub enum SqlService {
    /// SQLite files under the data directory.
    Sqlite(Arc<sqlite::Service>),
    /// PostgreSQL through an admin connection.
    Postgres(Arc<postgres::Service>),
}

impl SqlService {
    /// Connects (PostgreSQL) or prepares the directory (SQLite).
    pub async fn start(config: &SqlConfig, data_dir: &std::path::Path) -> Result<Self, SqlError> {
        match &config.postgres {
            Some(pg) => Ok(SqlService::Postgres(Arc::new(
                postgres::Service::start(pg, &config.pool).await?,
            ))),
            None => Ok(SqlService::Sqlite(Arc::new(sqlite::Service::start(
                &data_dir.join("sql"),
                &config.pool,
            )?))),
        }
    }

    /// The job queue on the same engine: `<data_dir>/jobs.db` beside the
    /// plugin files, or the runtime's PostgreSQL schema.
    pub async fn job_store(
        &self,
        connections: u32,
    ) -> Result<crate::backend::jobs::JobStore, SqlError> {
        match self {
            SqlService::Sqlite(s) => s.job_store().await,
            SqlService::Postgres(s) => s.job_store(connections).await,
        }
    }

    /// Uploaded plugin versions and what is live, on the same engine:
    /// `<data_dir>/runtime.db`, or the runtime's PostgreSQL schema.
    pub async fn runtime_store(
        &self,
    ) -> Result<crate::backend::runtime_store::RuntimeStore, SqlError> {
        match self {
            SqlService::Sqlite(s) => s.runtime_store().await,
            SqlService::Postgres(s) => Ok(s.runtime_store()),
        }
    }

    /// The backend's name for migrations (`sqlite` or `postgres`).
    pub fn dialect(&self) -> &'static str {
        match self {
            SqlService::Sqlite(_) => "sqlite",
            SqlService::Postgres(_) => "postgres",
        }
    }

    /// Where replica-ok reads ran and how far each replica is behind
    /// (empty on SQLite and without replicas).
    pub fn replica_stats(&self) -> ReplicaStats {
        match self {
            SqlService::Sqlite(_) => (Vec::new(), Vec::new()),
            SqlService::Postgres(s) => s.replica_stats(),
        }
    }

    /// Tries to become the one node doing `role` (e.g. evaluating alerts)
    /// among the nodes sharing this database: `None` while another node
    /// is. With SQLite there is one node, and it always leads.
    pub async fn try_lead(&self, role: &str) -> Result<Option<Leader>, SqlError> {
        match self {
            SqlService::Sqlite(_) => Ok(Some(Leader(None))),
            SqlService::Postgres(s) => Ok(s.try_lead(role).await?.map(|c| Leader(Some(c)))),
        }
    }

    /// Keeps `held` while its connection answers, else tries to take
    /// `role`: true while this node holds it. Logs changes of hands.
    pub async fn hold_lead(&self, role: &str, held: &mut Option<Leader>) -> bool {
        if let Some(leader) = held
            && !leader.still().await
        {
            tracing::warn!(role, "lost a cluster role");
            *held = None;
        }
        if held.is_none() {
            match self.try_lead(role).await {
                Ok(Some(leader)) => {
                    tracing::info!(role, "this node holds a cluster role");
                    *held = Some(leader);
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(role, %err, "cannot take a cluster role"),
            }
        }
        held.is_some()
    }

    /// Checks the backend answers; returns the round trip.
    pub async fn ping(&self) -> Result<Duration, SqlError> {
        let started = std::time::Instant::now();
        match self {
            SqlService::Sqlite(s) => s.ping()?,
            SqlService::Postgres(s) => s.ping().await?,
        }
        Ok(started.elapsed())
    }

    /// The database of `plugin`, created if new.
    pub async fn provision(&self, plugin: &str) -> Result<PluginDb, SqlError> {
        match self {
            SqlService::Sqlite(s) => Ok(PluginDb::Sqlite(s.provision(plugin).await?)),
            SqlService::Postgres(s) => Ok(PluginDb::Postgres(s.provision(plugin).await?)),
        }
    }
}
