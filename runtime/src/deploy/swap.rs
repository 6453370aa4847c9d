//! Making a loaded version live: its routes checked against the other
//! live plugins' while it loads, then the plugin registry and the routing
//! table replaced at once (`ArcSwap`), and the book updated. A refusal is
//! recorded; nothing is swapped.
//!
//! Layer: deploy, beside `jobs`, above `router` and `plugin`; it may call
//! those, `backend` (the runtime store), `config` and the clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::load::{Load, Loaded};
use super::status::Failure;
use super::{DeployError, Deployer, Entry, now_ms, short};
use crate::backend::runtime_store::Live;
use crate::router::Router;

impl Deployer {
    /// Loads `load` (when there is one) with its routes checked against
    /// the other live plugins'. A failure is recorded in `book`; nothing
    /// is swapped either way.
    pub(super) async fn load(
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
    pub(super) async fn replace(
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
    pub(super) fn swap(
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
}
