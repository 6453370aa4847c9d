//! The `sql` capability's phases: its service, a plugin's database
//! (provisioned and migrated when the plugin loads), and what it does
//! around a guest call — the consistency position reads must see (the
//! client's token, or the last write of the principal the request names),
//! an atomic batch's transaction handed to the call and back, and the
//! response headers after writes.

use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;
use wasmtime::component::{HasSelf, Linker};

use super::{Ambient, AmbientSlot, CONSISTENCY_HEADER};
use crate::backend::cache::CacheService;
use crate::backend::lock::{LockError, LockService};
use crate::backend::sql::{Migration, PluginDb, QueryCache, SqlService, format_lsn, parse_lsn};
use crate::capability::bindings::migrations::Migration as GuestMigration;
use crate::capability::bindings::{GuestRequest, GuestResponse, sql};
use crate::capability::{Call, Capability, HostState, PluginContext, PluginSetup, Runtime};
use crate::config::Limits;

/// How long one node may hold a plugin's migration lock, and how long
/// another waits for it.
const MIGRATION_LOCK_TTL: Duration = Duration::from_secs(120);

/// The `sql` capability, over the node's SQL backend.
#[derive(Debug)]
pub struct Sql {
    service: SqlService,
    locks: LockService,
    plugin: SqlPlugin,
}

/// Thresholds for SQL diagnostics (from `[sql]` and `[log]`).
#[derive(Debug, Clone, Copy)]
pub struct SqlWatch {
    /// Statements slower than this are logged with their plan.
    pub slow_query: Duration,
    /// Repeats of one shape in one request that count as N+1.
    pub n_plus_one_threshold: u32,
    /// Report N+1 in a response header.
    pub debug_headers: bool,
}

/// A plugin's view of SQL.
#[derive(Debug, Clone)]
pub struct SqlPlugin {
    /// Its database, when it uses `sql`.
    pub db: Option<PluginDb>,
    /// How its SQL is watched: slow queries, N+1 patterns.
    pub watch: SqlWatch,
    /// The query result cache (shared by all plugins, keyed by plugin).
    pub query_cache: Arc<QueryCache>,
    /// Where a principal's last write position is kept.
    cache: CacheService,
}

/// Per-instance SQL bookkeeping.
#[derive(Debug, Default)]
pub struct SqlInstance {
    /// Statements by shape, the N+1 found, the consistency position.
    pub(crate) seen: SqlSeen,
    /// Inside an atomic batch: its transaction, which every statement of
    /// this call runs in.
    pub(crate) ambient: Option<Ambient>,
    /// The principal the request names (its cache key and window), when
    /// causal reads by principal are on.
    principal: Option<(String, Duration)>,
}

/// Statements by shape, the N+1 found, and the consistency position reads
/// must see (the client's token, raised by this request's own writes).
#[derive(Debug, Default)]
pub(crate) struct SqlSeen {
    pub(crate) shapes: std::collections::HashMap<String, u32>,
    pub(crate) n_plus_one: Option<String>,
    pub(crate) min_lsn: Option<u64>,
    pub(crate) wrote: bool,
}

impl Capability for Sql {
    const NAME: &'static str = "sql";
    type Plugin = SqlPlugin;
    type Instance = SqlInstance;

    async fn start(runtime: &Runtime<'_>) -> Result<Self, String> {
        let config = runtime.config;
        let backends = runtime.backends;
        Ok(Sql {
            service: backends.sql.clone(),
            locks: backends.locks.clone(),
            plugin: SqlPlugin {
                db: None,
                watch: SqlWatch {
                    slow_query: config.sql.slow_query,
                    n_plus_one_threshold: config.sql.n_plus_one_threshold,
                    debug_headers: config.log.debug_headers,
                },
                query_cache: backends.query_cache.clone(),
                cache: backends.cache.clone(),
            },
        })
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        sql::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
    }

    /// Provisions the plugin's database when it uses `sql`, and applies
    /// the migrations its database has not seen.
    async fn configure(&self, plugin: &PluginSetup<'_>) -> Result<SqlPlugin, String> {
        let migrations = match &plugin.migrations {
            None => Vec::new(),
            Some(Ok(list)) => list.clone(),
            Some(Err(err)) => {
                return Err(format!(
                    "migration failed: listing migrations failed: {err}"
                ));
            }
        };
        let mut state = self.plugin.clone();
        if plugin.uses(Self::NAME) {
            let mut db = self
                .service
                .provision(plugin.name)
                .await
                .map_err(|e| format!("its database is unavailable: {e}"))?;
            db.limit_rows(plugin.limits.max_rows as usize);
            state.db = Some(db);
        }
        if !migrations.is_empty() {
            let Some(db) = &state.db else {
                return Err(
                    "migration failed: the plugin has migrations but no database: grant it `sql`"
                        .into(),
                );
            };
            let applied = self
                .migrate(plugin.name, db, migrations)
                .await
                .map_err(|e| format!("migration failed: {e}"))?;
            if !applied.is_empty() {
                tracing::info!(plugin = plugin.name, migrations_applied = ?applied, "migrated");
            }
        }
        Ok(state)
    }

    fn unconfigured(&self, _plugin: &PluginSetup<'_>) -> SqlPlugin {
        self.plugin.clone()
    }

    fn prepare(&self, _plugin: &SqlPlugin, _limits: &Limits) -> SqlInstance {
        SqlInstance::default()
    }

    /// Reads of the call see the client's consistency token or, without
    /// one, the principal's last write; inside an atomic batch the call
    /// takes the batch's transaction.
    async fn before_call(
        &self,
        context: &PluginContext,
        instance: &mut SqlInstance,
        call: &Call<'_>,
    ) {
        let sql = &context.capabilities.sql;
        instance.principal = principal(sql, call.request);
        instance.seen.min_lsn = match call.request.and_then(consistency_token) {
            Some(token) => Some(token),
            None => principal_lsn(sql, &context.name, instance.principal.as_ref()).await,
        };
        if let Some(slot) = call.extensions.get::<AmbientSlot>() {
            let taken = std::mem::take(&mut *slot.lock().unwrap_or_else(|e| e.into_inner()));
            instance.ambient = Some(taken);
        }
    }

    /// A call that answered remembers its principal's write and hands the
    /// batch's transaction back; one that trapped or ran out of time drops
    /// it mid-statement (it rolls back).
    async fn after_call(
        &self,
        context: &PluginContext,
        instance: &mut SqlInstance,
        call: &Call<'_>,
        answered: bool,
    ) {
        if !answered {
            return;
        }
        if let Some(principal) = &instance.principal {
            remember_write(
                &context.capabilities.sql,
                &context.name,
                principal,
                &instance.seen,
            )
            .await;
        }
        if let Some(slot) = call.extensions.get::<AmbientSlot>()
            && let Some(back) = instance.ambient.take()
        {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = back;
        }
    }

    /// Adds the consistency token after writes, and the N+1 found when
    /// `log.debug_headers` is on.
    fn annotate(
        &self,
        context: &PluginContext,
        instance: &SqlInstance,
        response: &mut GuestResponse,
    ) {
        let seen = &instance.seen;
        if seen.wrote
            && let Some(lsn) = seen.min_lsn
        {
            response
                .headers
                .push((CONSISTENCY_HEADER.into(), format_lsn(lsn)));
        }
        if context.capabilities.sql.watch.debug_headers
            && let Some(shape) = &seen.n_plus_one
        {
            let printable: String = shape
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() || c == ' ' {
                        c
                    } else {
                        '?'
                    }
                })
                .collect();
            response
                .headers
                .push(("x-trellis-n-plus-one".into(), printable));
        }
    }
}

impl Sql {
    /// Applies `migrations` that `db` has not seen, one node at a time.
    async fn migrate(
        &self,
        plugin: &str,
        db: &PluginDb,
        migrations: Vec<GuestMigration>,
    ) -> Result<Vec<u32>, String> {
        // One node migrates a plugin at a time (across nodes with Redis);
        // the others then find the migrations applied. Without the lock
        // store the transactions still keep a failed migration out.
        let _lease = match self
            .locks
            .acquire_runtime(
                &format!("migrate:{plugin}"),
                MIGRATION_LOCK_TTL,
                MIGRATION_LOCK_TTL,
            )
            .await
        {
            Ok(lease) => Some(lease),
            Err(LockError::Unavailable(why)) => {
                tracing::warn!(%plugin, %why, "migrating without the migration lock");
                None
            }
            Err(err) => return Err(format!("cannot take the migration lock: {err}")),
        };
        let postgres = self.service.dialect() == "postgres";
        let migrations: Vec<Migration> = migrations
            .into_iter()
            .map(|m| Migration {
                id: m.id,
                sql: if postgres { m.postgres } else { m.sqlite },
                name: m.name,
            })
            .collect();
        db.migrate(&migrations).await.map_err(|e| e.to_string())
    }
}

/// After a commit made outside a guest call (an atomic batch): cached
/// query results over the tables `written` wrote are stale, and jobs
/// enqueued in it (`enqueued`) move from SQLite's outbox to the queue.
pub async fn committed(plugin: &Arc<PluginContext>, written: &[String], enqueued: bool) {
    plugin.forget_cached(written).await;
    if enqueued {
        crate::capability::jobs::forward_outbox(plugin.clone()).await;
    }
}

impl PluginContext {
    /// Cached query results over the tables `statements` write are stale:
    /// the query cache forgets them (on every node, through its tags).
    pub(crate) async fn forget_cached(&self, statements: &[String]) {
        for statement in statements {
            self.capabilities
                .sql
                .query_cache
                .wrote(&self.name, statement)
                .await;
        }
    }

    /// Its database, when it uses `sql`.
    pub fn database(&self) -> Option<&PluginDb> {
        self.capabilities.sql.db.as_ref()
    }
}

/// The cache key of the principal a request names, when causal reads by
/// principal are on (PostgreSQL with replicas) and it names one: a hash of
/// the header's value, never the value.
fn principal(sql: &SqlPlugin, request: Option<&GuestRequest>) -> Option<(String, Duration)> {
    let (header, window) = sql.db.as_ref()?.causal()?;
    let value = request?
        .headers
        .iter()
        .find(|(name, _)| name == header)
        .map(|(_, value)| value)?;
    let digest = sha2::Sha256::digest(value.as_bytes());
    Some((format!("\u{0}principal-lsn:{digest:x}"), window))
}

/// The WAL position of the principal's last write within the window.
async fn principal_lsn(
    sql: &SqlPlugin,
    plugin: &str,
    principal: Option<&(String, Duration)>,
) -> Option<u64> {
    let (key, _) = principal?;
    let bytes = sql.cache.get_internal(plugin, key).await??;
    Some(u64::from_be_bytes(bytes.as_ref().try_into().ok()?))
}

/// After a call that wrote: its principal's reads for the window must see
/// this.
async fn remember_write(
    sql: &SqlPlugin,
    plugin: &str,
    principal: &(String, Duration),
    seen: &SqlSeen,
) {
    let (key, window) = principal;
    if let (true, Some(lsn)) = (seen.wrote, seen.min_lsn) {
        // A full cache only costs this principal its read-your-writes.
        let _ = sql
            .cache
            .set_internal(
                plugin,
                key,
                bytes::Bytes::copy_from_slice(&lsn.to_be_bytes()),
                *window,
                &[],
            )
            .await;
    }
}

/// The consistency token the client sent back, if any and well-formed.
fn consistency_token(request: &GuestRequest) -> Option<u64> {
    request
        .headers
        .iter()
        .find(|(name, _)| name == CONSISTENCY_HEADER)
        .and_then(|(_, value)| parse_lsn(value))
}
