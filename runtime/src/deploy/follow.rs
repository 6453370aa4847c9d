//! Following changes made elsewhere: versions other nodes made live
//! (announced by the store, or polled), and component files that changed
//! on disk (`deploy.watch`, through `watch.rs`).
//!
//! Layer: deploy, beside `jobs`, above `router` and `plugin`; it may call
//! those, `backend` (the runtime store), `config` and the clock.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::status::Failure;
use super::{Deployer, Entry, now_ms, watch};
use crate::backend::runtime_store::Live;
use crate::config::DeployConfig;

/// How often a node renews what it reports.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// File changes, by directory, as the watcher reports them.
type Changes = tokio::sync::mpsc::UnboundedReceiver<Vec<PathBuf>>;

impl Deployer {
    /// Follows changes for as long as the returned task runs: other nodes'
    /// (announced or polled), and component files (when `deploy.watch`).
    pub fn follow(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let deployer = self.clone();
        tokio::spawn(async move {
            let files = deployer.watched_files();
            let deploy = &deployer.config.deploy;
            let (_watcher, mut changes) = watch_files(&files, deploy);
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

/// Watches the directories of `files` when `deploy.watch` is on; a
/// watcher that cannot start is logged, and reloads go through the admin
/// API alone.
fn watch_files(
    files: &[(String, PathBuf)],
    deploy: &DeployConfig,
) -> (Option<watch::Watcher>, Option<Changes>) {
    if !deploy.watch || files.is_empty() {
        return (None, None);
    }
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
