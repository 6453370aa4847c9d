//! The live set of plugins on this node and every change to it: startup,
//! uploads, reloads, rollbacks and removals (the admin API), a component
//! file that changed (`watch.rs`), and changes other nodes made (read from
//! the shared [`RuntimeStore`]).
//!
//! Layer: beside `jobs`, above `router` and `plugin`. A change loads the new
//! version completely — compiled, checked against its grants and the world,
//! manifest validated, routes checked against the other plugins', migrated —
//! before anything is swapped; then the plugin registry and the routing table
//! are replaced atomically (`ArcSwap`). Requests and jobs in flight hold the
//! `Arc` of the version they started on and finish there. A version that
//! fails any step is refused with the reason, and the old one keeps serving.
//! Changes are serialised by one lock, so two never interleave.
//!
//! The files: `load.rs` (what loading a version takes, and loading it),
//! `swap.rs` (loading with routes checked, then the registry and routing
//! swap), `changes.rs` (uploads, reloads, rollbacks, removals),
//! `follow.rs` (other nodes' changes and component files, with
//! `watch.rs`), `status.rs` (what `GET /admin/plugins` shows and what this
//! node reports). This file holds the [`Deployer`], its start and its
//! record of each plugin.

mod changes;
mod follow;
mod load;
mod status;
mod swap;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{Mutex, Notify};

use load::load_all;
pub use load::load_configured;
pub use status::{Failure, PluginView};

use crate::backend::runtime_store::{Live, RuntimeStore};
use crate::backend::sql::SqlError;
use crate::config::{Config, PluginConfig};
use crate::plugin::{LoadError, LoadedPlugin, PluginHost};
use crate::router::{RouteConflict, Router};

/// The plugins live on this node, by name: what requests route to, what
/// workers run jobs in and the leader reads schedules from. Swapped whole
/// when plugins change.
pub type Registry = Arc<ArcSwap<BTreeMap<String, Arc<LoadedPlugin>>>>;

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The version did not load (or its routes conflict); the old one serves.
    #[error("{0}")]
    Refused(String),
    /// No such plugin on this node.
    #[error("no plugin named `{0}` is deployed")]
    NotFound(String),
    /// A rollback with nothing to return to.
    #[error("plugin `{0}` has no previous version to roll back to")]
    NoPrevious(String),
    /// The request is malformed (bad name, grants).
    #[error("{0}")]
    Invalid(String),
    /// The shared store did not answer; nothing changed.
    #[error("the plugin store is unavailable: {0}")]
    Store(#[from] SqlError),
}

/// This node's record of one plugin.
#[derive(Debug, Clone)]
struct Entry {
    live: Live,
    /// The store's `changed_at` this entry follows (0: trellis.toml).
    changed_at: i64,
    source: Option<String>,
    loaded_at: Option<i64>,
    load_ms: Option<u64>,
    error: Option<Failure>,
}

/// The plugins live on this node and the machinery that changes them.
pub struct Deployer {
    host: PluginHost,
    config: Arc<Config>,
    /// What trellis.toml names (or the embedded examples), read once.
    configured: BTreeMap<String, PluginConfig>,
    /// Whether this node serves plugin routes (role `api`).
    serve_routes: bool,
    routes: ArcSwap<Router>,
    registry: Registry,
    store: RuntimeStore,
    node: String,
    book: Mutex<BTreeMap<String, Entry>>,
    /// Woken when another node announces a change.
    changed: Arc<Notify>,
}

impl std::fmt::Debug for Deployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployer")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Why startup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// A plugin did not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Two plugins' routes conflict.
    #[error(transparent)]
    Routes(#[from] RouteConflict),
    /// The plugin store did not answer.
    #[error("the plugin store is unavailable: {0}")]
    Store(#[from] SqlError),
    /// A live version could not be read.
    #[error(transparent)]
    Version(#[from] DeployError),
}

impl Deployer {
    /// Loads what is live (trellis.toml, overridden by what was uploaded,
    /// rolled back or removed through the admin API), all plugins at once,
    /// and builds the routing table (only when `serve_routes`).
    pub async fn start(
        host: PluginHost,
        config: Arc<Config>,
        serve_routes: bool,
    ) -> Result<Arc<Deployer>, StartupError> {
        let store = host.sql().runtime_store().await?;
        let rows = store.live().await?;
        let configured = config.plugins();
        let mut book: BTreeMap<String, Entry> = configured
            .keys()
            .map(|name| (name.clone(), Entry::new(Live::Config, 0)))
            .collect();
        for row in &rows {
            book.insert(
                row.name.clone(),
                Entry::new(row.live.clone(), row.changed_at),
            );
        }
        let deployer = Deployer {
            node: config.deploy.node.clone().unwrap_or_else(default_node),
            host,
            serve_routes,
            routes: ArcSwap::default(),
            registry: Registry::default(),
            store,
            book: Mutex::new(BTreeMap::new()),
            changed: Arc::default(),
            configured,
            config,
        };
        let mut loads = Vec::new();
        for (name, entry) in &book {
            loads.extend(deployer.prepare(name, &entry.live).await?);
        }
        let mut plugins = BTreeMap::new();
        for (name, (plugin, source, load_ms)) in load_all(loads).await? {
            if let Some(entry) = book.get_mut(&name) {
                entry.loaded(&source, load_ms);
            }
            plugins.insert(name, plugin);
        }
        let list: Vec<_> = plugins.values().cloned().collect();
        let router = Router::build(if serve_routes { &list } else { &[] })?;
        deployer.registry.store(Arc::new(plugins));
        deployer.routes.store(Arc::new(router));
        *deployer.book.lock().await = book;
        let deployer = Arc::new(deployer);
        deployer.report().await;
        Ok(deployer)
    }

    /// The current routing table (a request keeps the one it started with).
    pub fn routes(&self) -> Arc<Router> {
        self.routes.load_full()
    }

    /// The plugins live on this node, by name.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The largest upload accepted, in bytes.
    pub fn max_upload(&self) -> u64 {
        self.config.deploy.max_upload.as_u64()
    }

    /// The runtime store the plugin versions are kept in.
    pub fn store(&self) -> &RuntimeStore {
        &self.store
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Takes this node out of `GET /admin/plugins` (it is stopping).
    pub async fn leave(&self) {
        if let Err(err) = self.store.forget(&self.node).await {
            tracing::debug!(%err, "cannot remove this node from the plugin store");
        }
    }
}

impl Entry {
    fn new(live: Live, changed_at: i64) -> Self {
        Entry {
            live,
            changed_at,
            source: None,
            loaded_at: None,
            load_ms: None,
            error: None,
        }
    }

    fn loaded(&mut self, source: &str, load_ms: u64) {
        self.source = Some(source.to_string());
        self.loaded_at = Some(now_ms());
        self.load_ms = Some(load_ms);
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn now_ms() -> i64 {
    crate::clock::now_ms() as i64
}

/// `<hostname>-<pid>`.
fn default_node() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}-{}", std::process::id())
}
