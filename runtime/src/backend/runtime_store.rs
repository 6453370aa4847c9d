//! What the runtime keeps for itself where every node sharing the database
//! sees it, and a restarted node finds it again: `<data_dir>/runtime.db` on
//! SQLite, the runtime's schema on PostgreSQL.
//!
//! Deploy (hot reload): `plugin_versions` (component bytes by plugin and
//! SHA-256, the grants they were uploaded with), `plugin_live` (per plugin:
//! what is live and what was live before — a [`Live`]), `plugin_nodes` (per
//! node and plugin: the version that node serves, for `GET /admin/plugins`).
//! A change of what is live is announced with `NOTIFY` on PostgreSQL, and
//! nodes poll in case a notification was missed.
//!
//! Alerting: `runtime_state` (named JSON documents: the alert states the
//! evaluating node writes, so the node that takes over continues from them)
//! and `alert_silences` (one JSON document per silence, with its end).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Row};

use crate::backend::sql::{SqlError, postgres_error as pg_error, sqlite_error};

/// What is live for one plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Live {
    /// What `[plugins.<name>]` in trellis.toml names (nothing if absent).
    Config,
    /// An uploaded version, by the SHA-256 of its bytes.
    Upload {
        /// Hex SHA-256.
        hash: String,
    },
    /// Taken down through the admin API.
    Removed,
}

impl Live {
    fn encode(&self) -> String {
        match self {
            Live::Config => "config".into(),
            Live::Removed => "removed".into(),
            Live::Upload { hash } => hash.clone(),
        }
    }

    fn decode(text: &str) -> Live {
        match text {
            "config" => Live::Config,
            "removed" => Live::Removed,
            hash => Live::Upload { hash: hash.into() },
        }
    }
}

/// One plugin's row in `plugin_live`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRow {
    /// The plugin.
    pub name: String,
    /// What is live.
    pub live: Live,
    /// What was live before the last change (what a rollback returns to).
    pub previous: Option<Live>,
    /// When it changed (ms since the epoch).
    pub changed_at: i64,
}

/// An uploaded version.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// The component.
    pub component: Vec<u8>,
    /// The capabilities it was granted at upload.
    pub grants: Vec<String>,
}

/// What one node serves of one plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRow {
    /// The node.
    pub node: String,
    /// The plugin.
    pub name: String,
    /// Hex SHA-256 of the live component (none when not serving).
    pub hash: Option<String>,
    /// The manifest's version.
    pub version: Option<String>,
    /// `live`, `removed` or `failed`.
    pub state: String,
    /// Why the last change failed, when it did.
    pub detail: Option<String>,
    /// When this node last reported (ms since the epoch).
    pub seen_at: i64,
}

/// The store on one engine. Cheap to clone.
#[derive(Debug, Clone)]
pub enum RuntimeStore {
    /// `<data_dir>/runtime.db`.
    Sqlite(Arc<Tables<SqlitePool>>),
    /// The runtime's schema; changes announced on a channel.
    Postgres(Arc<Tables<PgPool>>),
}

/// A pool and the qualified names of the tables.
#[derive(Debug)]
pub struct Tables<P> {
    pool: P,
    versions: String,
    live: String,
    nodes: String,
    state: String,
    silences: String,
    /// The `NOTIFY` channel (PostgreSQL).
    channel: String,
}

/// The DDL of the tables (`blob` is the engine's byte-string type).
pub(crate) fn ddl(prefix: &str, blob: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {prefix}plugin_versions (name TEXT NOT NULL, \
             hash TEXT NOT NULL, component {blob} NOT NULL, grants TEXT NOT NULL, \
             uploaded_at BIGINT NOT NULL, PRIMARY KEY (name, hash))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {prefix}plugin_live (name TEXT PRIMARY KEY, \
             live TEXT NOT NULL, previous TEXT, changed_at BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {prefix}plugin_nodes (node TEXT NOT NULL, \
             name TEXT NOT NULL, hash TEXT, version TEXT, state TEXT NOT NULL, detail TEXT, \
             seen_at BIGINT NOT NULL, PRIMARY KEY (node, name))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {prefix}runtime_state (key TEXT PRIMARY KEY, \
             value TEXT NOT NULL, updated_at BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {prefix}alert_silences (id TEXT PRIMARY KEY, \
             ends_at BIGINT NOT NULL, body TEXT NOT NULL)"
        ),
    ]
}

impl<P> Tables<P> {
    fn new(pool: P, prefix: &str, channel: String) -> Self {
        Tables {
            pool,
            versions: format!("{prefix}plugin_versions"),
            live: format!("{prefix}plugin_live"),
            nodes: format!("{prefix}plugin_nodes"),
            state: format!("{prefix}runtime_state"),
            silences: format!("{prefix}alert_silences"),
            channel,
        }
    }
}

/// Runs `$body` with `$t` bound to the engine's [`Tables`] and `$map` to its
/// error mapping: the statements are portable, so they are written once.
macro_rules! on_both {
    ($self:ident, $t:ident, $map:ident => $body:expr) => {
        match $self {
            RuntimeStore::Sqlite($t) => {
                let $map = sqlite_error;
                $body
            }
            RuntimeStore::Postgres($t) => {
                let $map = pg_error;
                $body
            }
        }
    };
}

impl RuntimeStore {
    /// The store in `<dir>/runtime.db`, created if new.
    pub async fn sqlite(dir: &std::path::Path, busy: Duration) -> Result<Self, SqlError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SqlError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join("runtime.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(busy);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(sqlite_error)?;
        for statement in ddl("", "BLOB") {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&pool)
                .await
                .map_err(sqlite_error)?;
        }
        Ok(RuntimeStore::Sqlite(Arc::new(Tables::new(
            pool,
            "",
            String::new(),
        ))))
    }

    /// The store in the runtime's PostgreSQL schema `ns` (its tables made
    /// by the sql backend's startup), on a small pool of its own.
    pub fn postgres(options: PgConnectOptions, ns: &str, acquire_timeout: Duration) -> Self {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .min_connections(0)
            .acquire_timeout(acquire_timeout)
            .connect_lazy_with(options);
        RuntimeStore::Postgres(Arc::new(Tables::new(
            pool,
            &format!("{ns}."),
            format!("{ns}_plugins"),
        )))
    }

    /// Keeps an uploaded version (again: its upload time is renewed), and
    /// forgets the oldest of `name` beyond `keep` that are neither live nor
    /// previous.
    pub async fn save_version(
        &self,
        name: &str,
        hash: &str,
        version: &StoredVersion,
        keep: u32,
        now: i64,
    ) -> Result<(), SqlError> {
        on_both!(self, t, map => {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {} (name, hash, component, grants, uploaded_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, hash) DO UPDATE \
                 SET uploaded_at = excluded.uploaded_at, grants = excluded.grants",
                t.versions
            )))
            .bind(name)
            .bind(hash)
            .bind(&version.component)
            .bind(version.grants.join(","))
            .bind(now)
            .execute(&t.pool)
            .await
            .map_err(map)?;
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {v} WHERE name = $1 \
                 AND hash NOT IN (SELECT hash FROM {v} WHERE name = $1 \
                   ORDER BY uploaded_at DESC LIMIT $2) \
                 AND hash NOT IN (SELECT live FROM {l} WHERE name = $1) \
                 AND hash NOT IN (SELECT previous FROM {l} WHERE name = $1 \
                   AND previous IS NOT NULL)",
                v = t.versions,
                l = t.live
            )))
            .bind(name)
            .bind(i64::from(keep))
            .execute(&t.pool)
            .await
            .map_err(map)?;
            Ok(())
        })
    }

    /// An uploaded version of `name`.
    pub async fn version(&self, name: &str, hash: &str) -> Result<Option<StoredVersion>, SqlError> {
        on_both!(self, t, map => {
            let row: Option<(Vec<u8>, String)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT component, grants FROM {} WHERE name = $1 AND hash = $2",
                t.versions
            )))
            .bind(name)
            .bind(hash)
            .fetch_optional(&t.pool)
            .await
            .map_err(map)?;
            Ok(row.map(|(component, grants)| StoredVersion {
                component,
                grants: grants
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect(),
            }))
        })
    }

    /// Every plugin that was changed through the admin API.
    pub async fn live(&self) -> Result<Vec<LiveRow>, SqlError> {
        on_both!(self, t, map => {
            let rows: Vec<(String, String, Option<String>, i64)> =
                sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT name, live, previous, changed_at FROM {} ORDER BY name",
                    t.live
                )))
                .fetch_all(&t.pool)
                .await
                .map_err(map)?;
            Ok(rows
                .into_iter()
                .map(|(name, live, previous, changed_at)| LiveRow {
                    name,
                    live: Live::decode(&live),
                    previous: previous.as_deref().map(Live::decode),
                    changed_at,
                })
                .collect())
        })
    }

    /// Makes `live` what `name` serves everywhere, remembering `previous`,
    /// and announces it.
    pub async fn set_live(
        &self,
        name: &str,
        live: &Live,
        previous: Option<&Live>,
        now: i64,
    ) -> Result<(), SqlError> {
        on_both!(self, t, map => {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {} (name, live, previous, changed_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET live = excluded.live, \
                 previous = excluded.previous, changed_at = excluded.changed_at",
                t.live
            )))
            .bind(name)
            .bind(live.encode())
            .bind(previous.map(Live::encode))
            .bind(now)
            .execute(&t.pool)
            .await
            .map_err(map)?;
            Ok(())
        })?;
        if let RuntimeStore::Postgres(t) = self {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&t.channel)
                .bind(name)
                .execute(&t.pool)
                .await
                .map_err(pg_error)?;
        }
        Ok(())
    }

    /// Replaces what `node` reports it serves.
    pub async fn report(&self, node: &str, rows: &[NodeRow]) -> Result<(), SqlError> {
        on_both!(self, t, map => {
            let mut tx = t.pool.begin().await.map_err(map)?;
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {} WHERE node = $1", t.nodes)))
                .bind(node)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            for row in rows {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {} (node, name, hash, version, state, detail, seen_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    t.nodes
                )))
                .bind(node)
                .bind(&row.name)
                .bind(&row.hash)
                .bind(&row.version)
                .bind(&row.state)
                .bind(&row.detail)
                .bind(row.seen_at)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            }
            tx.commit().await.map_err(map)?;
            Ok(())
        })
    }

    /// What every node seen since `since` serves.
    pub async fn nodes(&self, since: i64) -> Result<Vec<NodeRow>, SqlError> {
        on_both!(self, t, map => {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT node, name, hash, version, state, detail, seen_at FROM {} \
                 WHERE seen_at >= $1 ORDER BY name, node",
                t.nodes
            )))
            .bind(since)
            .fetch_all(&t.pool)
            .await
            .map_err(map)?;
            rows.iter()
                .map(|r| {
                    Ok(NodeRow {
                        node: r.try_get(0)?,
                        name: r.try_get(1)?,
                        hash: r.try_get(2)?,
                        version: r.try_get(3)?,
                        state: r.try_get(4)?,
                        detail: r.try_get(5)?,
                        seen_at: r.try_get(6)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(map)
        })
    }

    /// Drops what `node` reported (it is stopping).
    pub async fn forget(&self, node: &str) -> Result<(), SqlError> {
        on_both!(self, t, map => {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {} WHERE node = $1", t.nodes)))
                .bind(node)
                .execute(&t.pool)
                .await
                .map_err(map)?;
            Ok(())
        })
    }

    /// The document stored under `key`.
    pub async fn state(&self, key: &str) -> Result<Option<String>, SqlError> {
        on_both!(self, t, map => {
            let row: Option<(String,)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT value FROM {} WHERE key = $1",
                t.state
            )))
            .bind(key)
            .fetch_optional(&t.pool)
            .await
            .map_err(map)?;
            Ok(row.map(|(value,)| value))
        })
    }

    /// Stores `value` under `key`.
    pub async fn set_state(&self, key: &str, value: &str, now: i64) -> Result<(), SqlError> {
        on_both!(self, t, map => {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {} (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
                t.state
            )))
            .bind(key)
            .bind(value)
            .bind(now)
            .execute(&t.pool)
            .await
            .map_err(map)?;
            Ok(())
        })
    }

    /// Keeps a silence (`body`, JSON) until `ends_at`, and forgets the
    /// silences that ended before `now`.
    pub async fn add_silence(
        &self,
        id: &str,
        ends_at: i64,
        body: &str,
        now: i64,
    ) -> Result<(), SqlError> {
        on_both!(self, t, map => {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {} WHERE ends_at <= $1",
                t.silences
            )))
            .bind(now)
            .execute(&t.pool)
            .await
            .map_err(map)?;
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {} (id, ends_at, body) VALUES ($1, $2, $3)",
                t.silences
            )))
            .bind(id)
            .bind(ends_at)
            .bind(body)
            .execute(&t.pool)
            .await
            .map_err(map)?;
            Ok(())
        })
    }

    /// Ends the silence `id`; false when there is none in force at `now`.
    pub async fn remove_silence(&self, id: &str, now: i64) -> Result<bool, SqlError> {
        on_both!(self, t, map => {
            let done = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {} WHERE id = $1 AND ends_at > $2",
                t.silences
            )))
            .bind(id)
            .bind(now)
            .execute(&t.pool)
            .await
            .map_err(map)?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// The silences that have not ended by `now`, oldest first.
    pub async fn silences(&self, now: i64) -> Result<Vec<String>, SqlError> {
        on_both!(self, t, map => {
            let rows: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT body FROM {} WHERE ends_at > $1 ORDER BY id",
                t.silences
            )))
            .bind(now)
            .fetch_all(&t.pool)
            .await
            .map_err(map)?;
            Ok(rows.into_iter().map(|(body,)| body).collect())
        })
    }

    /// Wakes `wake` whenever another node announces a change (PostgreSQL);
    /// on SQLite never completes (nodes poll).
    pub async fn listen(&self, wake: Arc<tokio::sync::Notify>) {
        let RuntimeStore::Postgres(t) = self else {
            return std::future::pending().await;
        };
        loop {
            let listened = async {
                let mut listener = PgListener::connect_with(&t.pool).await?;
                listener.listen(&t.channel).await?;
                loop {
                    listener.recv().await?;
                    wake.notify_one();
                }
            };
            let Err::<std::convert::Infallible, sqlx::Error>(err) = listened.await;
            tracing::debug!(%err, "plugin change notifications lost; polling until they return");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
