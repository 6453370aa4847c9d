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

pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinSet;

use crate::backend::runtime_store::{Live, LiveRow, NodeRow, RuntimeStore, StoredVersion};
use crate::backend::sql::SqlError;
use crate::config::{CAPABILITIES, Config, PluginConfig};

use crate::plugin::{LoadError, LoadedPlugin, PluginHost};
use crate::router::{RouteConflict, Router};

/// The plugins live on this node, by name: what requests route to, what
/// workers run jobs in and the leader reads schedules from. Swapped whole
/// when plugins change.
pub type Registry = Arc<ArcSwap<BTreeMap<String, Arc<LoadedPlugin>>>>;

/// How long a node that stopped reporting still shows in `GET /admin/plugins`.
const NODE_STALE: Duration = Duration::from_secs(30);
/// How often a node renews what it reports.
const REPORT_EVERY: Duration = Duration::from_secs(5);

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

/// What this node knows of one plugin: what it serves and the last change.
#[derive(Debug, Clone, Serialize)]
pub struct PluginView {
    /// The operator's name.
    pub name: String,
    /// `live` (serving), `removed` or `failed` (never loaded; see `error`).
    pub state: &'static str,
    /// The manifest's version.
    pub version: Option<String>,
    /// Hex SHA-256 of the component.
    pub hash: Option<String>,
    /// Where it came from: a path, `builtin:<name>` or `upload`.
    pub source: Option<String>,
    /// What is live for it (trellis.toml, an upload, removed).
    pub live: Live,
    /// Its routes, as `METHOD /pattern`.
    pub routes: Vec<String>,
    /// When this version went live here (ms since the epoch).
    pub loaded_at: Option<i64>,
    /// How long loading it took, in milliseconds.
    pub load_ms: Option<u64>,
    /// The last refused change, if it is newer than the live version.
    pub error: Option<Failure>,
    /// What every node reports for it (nodes sharing the database).
    pub nodes: Vec<NodeRow>,
}

/// A refused change.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// When (ms since the epoch).
    pub at: i64,
    /// Why.
    pub reason: String,
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

    /// Follows changes for as long as the returned task runs: other nodes'
    /// (announced or polled), and component files (when `deploy.watch`).
    pub fn follow(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let deployer = self.clone();
        tokio::spawn(async move {
            let files = deployer.watched_files();
            let deploy = &deployer.config.deploy;
            let (_watcher, mut changes) = if deploy.watch && !files.is_empty() {
                let dirs: BTreeSet<PathBuf> = files
                    .iter()
                    .filter_map(|(_, file)| file.parent().map(PathBuf::from))
                    .collect();
                let dirs: Vec<_> = dirs
                    .into_iter()
                    .map(|dir| (dir, notify::RecursiveMode::NonRecursive))
                    .collect();
                match watch::Watcher::start(&dirs, deploy.debounce) {
                    Ok((watcher, changes)) => {
                        tracing::info!(
                            directories = dirs.len(),
                            "watching plugin files for changes"
                        );
                        (Some(watcher), Some(changes))
                    }
                    Err(err) => {
                        tracing::warn!(%err, "cannot watch plugin files; reload through the admin API");
                        (None, None)
                    }
                }
            } else {
                (None, None)
            };
            let listen = deployer.store.listen(deployer.changed.clone());
            tokio::pin!(listen);
            let mut poll = tokio::time::interval(deploy.poll_interval);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut report = tokio::time::interval(REPORT_EVERY);
            report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = &mut listen => {}
                    _ = poll.tick() => deployer.sync().await,
                    () = deployer.changed.notified() => deployer.sync().await,
                    _ = report.tick() => deployer.report().await,
                    Some(paths) = recv(&mut changes) => {
                        for (name, path) in &files {
                            if paths.contains(path) {
                                deployer.file_changed(name).await;
                            }
                        }
                    }
                }
            }
        })
    }

    /// Takes this node out of `GET /admin/plugins` (it is stopping).
    pub async fn leave(&self) {
        if let Err(err) = self.store.forget(&self.node).await {
            tracing::debug!(%err, "cannot remove this node from the plugin store");
        }
    }

    /// Every plugin this node knows, with what each node serves.
    pub async fn list(&self) -> Vec<PluginView> {
        let nodes = self.nodes().await;
        let book = self.book.lock().await;
        book.iter()
            .map(|(name, entry)| self.view(name, entry, &nodes))
            .collect()
    }

    /// One plugin, with what each node serves.
    pub async fn show(&self, name: &str) -> Result<PluginView, DeployError> {
        let nodes = self.nodes().await;
        let book = self.book.lock().await;
        book.get(name)
            .map(|entry| self.view(name, entry, &nodes))
            .ok_or_else(|| DeployError::NotFound(name.into()))
    }

    /// Makes `component` the live version of `name` on every node: loaded
    /// here, then stored and announced, then swapped in here. `grants` (for a
    /// plugin trellis.toml does not configure) are the capabilities it
    /// gets; configured plugins keep their configured grants.
    pub async fn upload(
        &self,
        name: &str,
        component: Vec<u8>,
        grants: Option<Vec<String>>,
    ) -> Result<PluginView, DeployError> {
        check_name(name)?;
        let configured = self.configured.contains_key(name);
        let grants = match (configured, grants) {
            (true, Some(_)) => {
                return Err(DeployError::Invalid(format!(
                    "plugin `{name}` is configured in trellis.toml, whose `grants` apply; \
                     leave out `grants`"
                )));
            }
            (true, None) => None,
            (false, grants) => Some(check_grants(grants)?),
        };
        let hash = format!("{:x}", Sha256::digest(&component));
        let mut book = self.book.lock().await;
        let (current, changed_at) = book
            .get(name)
            .map_or((Live::Config, 0), |e| (e.live.clone(), e.changed_at));
        let live = Live::Upload { hash: hash.clone() };
        let version = StoredVersion {
            grants: grants.clone().unwrap_or_default(),
            component,
        };
        let load = self.load_version(name, &version, &hash);
        let loaded = self
            .load(&mut book, name, Some(load), &live, changed_at)
            .await?;
        // Stored before it goes live here, so no node serves a version the
        // others cannot find.
        let now = now_ms();
        let keep = self.config.deploy.keep_versions;
        self.store
            .save_version(name, &hash, &version, keep, now)
            .await?;
        let changed_at = if current == live {
            changed_at
        } else {
            self.store
                .set_live(name, &live, Some(&current), now)
                .await?;
            now
        };
        self.swap(&mut book, name, loaded, live, changed_at)?;
        drop(book);
        self.report().await;
        self.show(name).await
    }

    /// Loads `name` again from what is live for it (its file, the stored
    /// upload), even if the bytes did not change.
    pub async fn reload(&self, name: &str) -> Result<PluginView, DeployError> {
        let mut book = self.book.lock().await;
        let Some(entry) = book.get(name) else {
            return Err(DeployError::NotFound(name.into()));
        };
        let live = entry.live.clone();
        let changed_at = entry.changed_at;
        if matches!(live, Live::Removed) || !self.exists(&live, name) {
            return Err(DeployError::NotFound(name.into()));
        }
        let load = self.prepare(name, &live).await?;
        self.replace(&mut book, name, load, live, changed_at)
            .await?;
        drop(book);
        self.report().await;
        self.show(name).await
    }

    /// Returns `name` to what was live before its last change, on every
    /// node. Rolling back twice returns to where it started.
    pub async fn rollback(&self, name: &str) -> Result<PluginView, DeployError> {
        let mut book = self.book.lock().await;
        let row = self
            .store
            .live()
            .await?
            .into_iter()
            .find(|r| r.name == name);
        let Some(LiveRow {
            live: current,
            previous: Some(previous),
            ..
        }) = row
        else {
            return Err(DeployError::NoPrevious(name.into()));
        };
        let load = self.prepare(name, &previous).await?;
        let loaded = self.load(&mut book, name, load, &previous, 0).await?;
        let now = now_ms();
        self.store
            .set_live(name, &previous, Some(&current), now)
            .await?;
        self.swap(&mut book, name, loaded, previous, now)?;
        drop(book);
        self.report().await;
        self.show(name).await
    }

    /// Takes `name` down on every node: its routes answer 404, its jobs
    /// wait (a later upload or rollback serves them).
    pub async fn remove(&self, name: &str) -> Result<(), DeployError> {
        let mut book = self.book.lock().await;
        // Only a version that serves can be taken down (not one that never
        // loaded).
        let current = match book.get(name) {
            Some(entry) if self.registry.load().contains_key(name) => entry.live.clone(),
            _ => return Err(DeployError::NotFound(name.into())),
        };
        let now = now_ms();
        self.store
            .set_live(name, &Live::Removed, Some(&current), now)
            .await?;
        self.swap(&mut book, name, None, Live::Removed, now)?;
        drop(book);
        self.report().await;
        Ok(())
    }

    /// Applies what other nodes changed since this node last looked.
    async fn sync(&self) {
        // Read under the lock, so a change this node makes meanwhile is not
        // undone by a stale read.
        let mut book = self.book.lock().await;
        let rows = match self.store.live().await {
            Ok(rows) => rows,
            Err(err) => {
                tracing::debug!(%err, "cannot read the plugin store");
                return;
            }
        };
        let mut changed = false;
        for row in rows {
            if book.get(&row.name).map(|e| e.changed_at) == Some(row.changed_at) {
                continue;
            }
            changed = true;
            tracing::info!(plugin = %row.name, live = ?row.live, "plugin changed on another node");
            let at = row.changed_at;
            let result = match self.prepare(&row.name, &row.live).await {
                Ok(load) => {
                    self.replace(&mut book, &row.name, load, row.live.clone(), at)
                        .await
                }
                Err(err) => Err(err),
            };
            if let Err(err) = result {
                // The old version keeps serving; not retried until it changes.
                let entry = book
                    .entry(row.name.clone())
                    .or_insert_with(|| Entry::new(Live::Config, 0));
                entry.changed_at = at;
                if entry.error.is_none() {
                    entry.error = Some(Failure {
                        at: now_ms(),
                        reason: err.to_string(),
                    });
                }
            }
        }
        drop(book);
        if changed {
            self.report().await;
        }
    }

    /// A component file changed: reload the plugin if that file is what it
    /// serves and the bytes differ from the live version's.
    async fn file_changed(&self, name: &str) {
        let mut book = self.book.lock().await;
        let Some(entry) = book.get(name) else {
            return;
        };
        if entry.live != Live::Config {
            tracing::info!(
                plugin = name,
                "its file changed, but an uploaded version is live; not reloading"
            );
            return;
        }
        let changed_at = entry.changed_at;
        let live_hash = self.registry.load().get(name).map(|p| p.hash().to_string());
        let result = match self.prepare(name, &Live::Config).await {
            Ok(Some(load)) if Some(load.hash()) == live_hash => return,
            Ok(load) => {
                self.replace(&mut book, name, load, Live::Config, changed_at)
                    .await
            }
            Err(err) => Err(err),
        };
        match result {
            Ok(_) => tracing::info!(plugin = name, "reloaded after its file changed"),
            Err(err) => {
                tracing::warn!(plugin = name, %err, "file change refused; the old version keeps serving")
            }
        }
        drop(book);
        self.report().await;
    }

    /// Whether `live` names a version for `name` (a config entry exists).
    fn exists(&self, live: &Live, name: &str) -> bool {
        match live {
            Live::Config => self.configured.contains_key(name),
            Live::Upload { .. } => true,
            Live::Removed => false,
        }
    }

    /// What loading `live` of `name` takes: `None` when nothing is to be
    /// served (removed, or trellis.toml does not name it).
    async fn prepare(&self, name: &str, live: &Live) -> Result<Option<Load>, DeployError> {
        match live {
            Live::Removed => Ok(None),
            Live::Config => match self.configured.get(name) {
                Some(plugin) => {
                    let load = Load::configured(&self.host, &self.config, name, plugin.clone())
                        .await
                        .map_err(|e| DeployError::Refused(e.to_string()))?;
                    Ok(Some(load))
                }
                None => Ok(None),
            },
            Live::Upload { hash } => {
                let version = self.store.version(name, hash).await?.ok_or_else(|| {
                    DeployError::Refused(format!(
                        "version {} of `{name}` is not in the plugin store",
                        short(hash)
                    ))
                })?;
                Ok(Some(self.load_version(name, &version, hash)))
            }
        }
    }

    /// A [`Load`] of an uploaded version: a configured plugin keeps its
    /// configured grants, limits and settings; another one gets the grants
    /// it was uploaded with.
    fn load_version(&self, name: &str, version: &StoredVersion, hash: &str) -> Load {
        let plugin = self
            .configured
            .get(name)
            .cloned()
            .unwrap_or_else(|| PluginConfig::uploaded(version.grants.clone()));
        Load::new(
            &self.host,
            &self.config,
            name,
            plugin,
            format!("upload:{}", short(hash)),
            version.component.clone(),
        )
    }

    /// Loads `load` (when there is one) with its routes checked against
    /// the other live plugins'. A failure is recorded in `book`; nothing
    /// is swapped either way.
    async fn load(
        &self,
        book: &mut BTreeMap<String, Entry>,
        name: &str,
        load: Option<Load>,
        live: &Live,
        changed_at: i64,
    ) -> Result<Option<Loaded>, DeployError> {
        let Some(load) = load else {
            return Ok(None);
        };
        let others: Vec<_> = self.registry.load().values().cloned().collect();
        let serve_routes = self.serve_routes;
        let check = move |routes: &[crate::plugin::Route]| {
            if serve_routes {
                Router::check(&others, name, routes).map_err(|e| e.to_string())
            } else {
                Ok(())
            }
        };
        match load.run(&check).await {
            Ok(loaded) => Ok(Some(loaded)),
            Err(err) => {
                let reason = err.to_string();
                tracing::warn!(plugin = name, %reason, "new version refused; the old one keeps serving");
                book.entry(name.to_string())
                    .or_insert_with(|| Entry::new(live.clone(), changed_at))
                    .error = Some(Failure {
                    at: now_ms(),
                    reason: reason.clone(),
                });
                Err(DeployError::Refused(reason))
            }
        }
    }

    /// [`Deployer::load`] then [`Deployer::swap`]: for changes that need
    /// no store write between the two.
    async fn replace(
        &self,
        book: &mut BTreeMap<String, Entry>,
        name: &str,
        load: Option<Load>,
        live: Live,
        changed_at: i64,
    ) -> Result<(), DeployError> {
        let loaded = self.load(book, name, load, &live, changed_at).await?;
        self.swap(book, name, loaded, live, changed_at)
    }

    /// Makes `loaded` the live version of `name` (`None`: takes it down):
    /// the registry and the routing table are replaced, and `book` records it.
    fn swap(
        &self,
        book: &mut BTreeMap<String, Entry>,
        name: &str,
        loaded: Option<Loaded>,
        live: Live,
        changed_at: i64,
    ) -> Result<(), DeployError> {
        let mut plugins = (**self.registry.load()).clone();
        match &loaded {
            Some((plugin, _, _)) => plugins.insert(name.to_string(), plugin.clone()),
            None => plugins.remove(name),
        };
        let list: Vec<_> = plugins.values().cloned().collect();
        let router = Router::build(if self.serve_routes { &list } else { &[] })
            .map_err(|e| DeployError::Refused(e.to_string()))?;
        self.registry.store(Arc::new(plugins));
        self.routes.store(Arc::new(router));
        let entry = book
            .entry(name.to_string())
            .or_insert_with(|| Entry::new(live.clone(), changed_at));
        entry.live = live;
        entry.changed_at = changed_at;
        entry.error = None;
        match &loaded {
            Some((plugin, source, load_ms)) => {
                entry.loaded(source, *load_ms);
                tracing::info!(
                    plugin = name,
                    version = %plugin.manifest().version,
                    hash = short(plugin.hash()),
                    source = %source,
                    "plugin version live"
                );
            }
            None => {
                entry.source = None;
                entry.loaded_at = None;
                entry.load_ms = None;
                tracing::info!(plugin = name, "plugin taken down");
            }
        }
        Ok(())
    }

    /// Tells the store what this node serves.
    async fn report(&self) {
        let now = now_ms();
        let plugins = self.registry.load();
        let rows: Vec<NodeRow> = self
            .book
            .lock()
            .await
            .iter()
            .map(|(name, entry)| {
                let plugin = plugins.get(name);
                NodeRow {
                    node: self.node.clone(),
                    name: name.clone(),
                    hash: plugin.map(|p| p.hash().to_string()),
                    version: plugin.map(|p| p.manifest().version.clone()),
                    state: state(plugin.is_some(), entry).into(),
                    detail: entry.error.as_ref().map(|f| f.reason.clone()),
                    seen_at: now,
                }
            })
            .collect();
        if let Err(err) = self.store.report(&self.node, &rows).await {
            tracing::debug!(%err, "cannot report this node's plugins");
        }
    }

    async fn nodes(&self) -> Vec<NodeRow> {
        let since = now_ms() - NODE_STALE.as_millis() as i64;
        self.store.nodes(since).await.unwrap_or_else(|err| {
            tracing::debug!(%err, "cannot read what other nodes serve");
            Vec::new()
        })
    }

    fn view(&self, name: &str, entry: &Entry, nodes: &[NodeRow]) -> PluginView {
        let plugins = self.registry.load();
        let plugin = plugins.get(name);
        PluginView {
            name: name.to_string(),
            state: state(plugin.is_some(), entry),
            version: plugin.map(|p| p.manifest().version.clone()),
            hash: plugin.map(|p| p.hash().to_string()),
            source: entry.source.clone(),
            live: entry.live.clone(),
            routes: plugin
                .map(|p| {
                    p.manifest()
                        .routes
                        .iter()
                        .map(|r| format!("{} {}", r.method, r.path))
                        .collect()
                })
                .unwrap_or_default(),
            loaded_at: entry.loaded_at,
            load_ms: entry.load_ms,
            error: entry.error.clone(),
            nodes: nodes.iter().filter(|n| n.name == name).cloned().collect(),
        }
    }

    /// (plugin, absolute path) of every configured plugin with a file.
    fn watched_files(&self) -> Vec<(String, std::path::PathBuf)> {
        self.configured
            .iter()
            .filter_map(|(name, p)| {
                let path = p.path.clone()?;
                let name = name.clone();
                Some((name, std::path::absolute(&path).unwrap_or(path)))
            })
            .collect()
    }
}

/// Everything needed to load one version, owned so it can run on a task.
struct Load {
    host: PluginHost,
    name: String,
    plugin: PluginConfig,
    limits: crate::config::Limits,
    schedules: Vec<crate::config::ScheduleConfig>,
    source: String,
    bytes: Vec<u8>,
}

/// A loaded version, where it came from, and how long loading took (ms).
type Loaded = (Arc<LoadedPlugin>, String, u64);

impl Load {
    /// `name` with `plugin`'s grants, limits (over the defaults) and
    /// settings, and the operator's schedules for it.
    fn new(
        host: &PluginHost,
        config: &Config,
        name: &str,
        plugin: PluginConfig,
        source: String,
        bytes: Vec<u8>,
    ) -> Load {
        Load {
            host: host.clone(),
            name: name.to_string(),
            limits: config.limits.with(&plugin.limits),
            schedules: config
                .jobs
                .schedules
                .iter()
                .filter(|s| s.plugin == name)
                .cloned()
                .collect(),
            plugin,
            source,
            bytes,
        }
    }

    /// `name` as trellis.toml configures it, its component read.
    async fn configured(
        host: &PluginHost,
        config: &Config,
        name: &str,
        plugin: PluginConfig,
    ) -> Result<Load, LoadError> {
        let source = plugin.source_name();
        let bytes = crate::plugin::read_component(&plugin)
            .await
            .map_err(|kind| LoadError {
                plugin: name.to_string(),
                source_name: source.clone(),
                kind,
            })?;
        Ok(Load::new(host, config, name, plugin, source, bytes))
    }

    fn hash(&self) -> String {
        format!("{:x}", Sha256::digest(&self.bytes))
    }

    async fn run(
        self,
        check_routes: &(dyn Fn(&[crate::plugin::Route]) -> Result<(), String> + Sync),
    ) -> Result<Loaded, LoadError> {
        let started = std::time::Instant::now();
        let plugin = self
            .host
            .load_bytes(
                &self.name,
                &self.source,
                self.bytes,
                &self.plugin,
                self.limits,
                &self.schedules,
                check_routes,
            )
            .await?;
        Ok((plugin, self.source, started.elapsed().as_millis() as u64))
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

fn state(serving: bool, entry: &Entry) -> &'static str {
    match (serving, &entry.live) {
        (true, _) => "live",
        (false, Live::Removed) => "removed",
        (false, _) if entry.error.is_some() => "failed",
        (false, _) => "removed",
    }
}

async fn recv(
    changes: &mut Option<tokio::sync::mpsc::UnboundedReceiver<Vec<std::path::PathBuf>>>,
) -> Option<Vec<std::path::PathBuf>> {
    match changes {
        Some(rx) => {
            let got = rx.recv().await;
            if got.is_none() {
                *changes = None;
            }
            got
        }
        None => std::future::pending().await,
    }
}

/// Plugin names: 1 to 64 of a-z, 0-9, `-` and `_`, starting with a letter.
fn check_name(name: &str) -> Result<(), DeployError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DeployError::Invalid(format!(
            "`{name}` is not a plugin name: 1 to 64 of a-z, 0-9, `-` and `_`, starting with a letter"
        )))
    }
}

/// The grants an upload asks for: known capabilities, `log` and `config`
/// when none are given.
fn check_grants(grants: Option<Vec<String>>) -> Result<Vec<String>, DeployError> {
    let grants = grants.unwrap_or_else(|| vec!["log".into(), "config".into()]);
    if let Some(unknown) = grants.iter().find(|g| !CAPABILITIES.contains(&g.as_str())) {
        return Err(DeployError::Invalid(format!(
            "unknown capability `{unknown}` in grants; this runtime offers: {}",
            CAPABILITIES.join(", ")
        )));
    }
    Ok(grants)
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

/// Runs `loads` at once (compilation on the blocking pool); the loaded
/// versions by name, or the first failure.
async fn load_all(loads: Vec<Load>) -> Result<BTreeMap<String, Loaded>, LoadError> {
    let mut tasks = JoinSet::new();
    for load in loads {
        tasks.spawn(async move { (load.name.clone(), load.run(&|_| Ok(())).await) });
    }
    let mut loaded = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((name, done)) => {
                loaded.insert(name, done?);
            }
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        }
    }
    Ok(loaded)
}

/// Loads every plugin trellis.toml names, at once, without the store: what
/// `trellis check` runs.
pub async fn load_configured(
    host: &PluginHost,
    config: &Config,
) -> Result<Vec<Arc<LoadedPlugin>>, LoadError> {
    let mut loads = Vec::new();
    for (name, plugin) in config.plugins() {
        loads.push(Load::configured(host, config, &name, plugin).await?);
    }
    Ok(load_all(loads)
        .await?
        .into_values()
        .map(|(plugin, _, _)| plugin)
        .collect())
}
