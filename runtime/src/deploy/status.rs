//! What a node knows of its plugins and tells the others: the views of
//! `GET /admin/plugins` (with what every node serves), and this node's
//! report to the shared store.
//!
//! Layer: deploy, beside `jobs`, above `router` and `plugin`; it may call
//! those, `backend` (the runtime store), `config` and the clock.

use std::time::Duration;

use serde::Serialize;

use super::{DeployError, Deployer, Entry, now_ms};
use crate::backend::runtime_store::{Live, NodeRow};

/// How long a node that stopped reporting still shows in `GET /admin/plugins`.
const NODE_STALE: Duration = Duration::from_secs(30);

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

impl Deployer {
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

    /// Tells the store what this node serves.
    pub(super) async fn report(&self) {
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
}

fn state(serving: bool, entry: &Entry) -> &'static str {
    match (serving, &entry.live) {
        (true, _) => "live",
        (false, Live::Removed) => "removed",
        (false, _) if entry.error.is_some() => "failed",
        (false, _) => "removed",
    }
}
