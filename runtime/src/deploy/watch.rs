//! Watching component files: `notify` (inotify on Linux) behind
//! `notify-debouncer-mini`, which reports a path once it has been quiet for
//! the debounce time, so a file still being written is read when complete
//! (a half-written one fails to compile, is refused, and the write's last
//! event brings it back). Each file's directory is watched rather than the
//! file, so a replacement by rename (`mv new.wasm hello.wasm`) is seen too.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::mpsc;

/// Keeps watching while alive.
pub(super) struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher>,
}

impl Watcher {
    /// Watches the directories of `files`; the receiver gets the changed
    /// paths, after `debounce` of quiet.
    pub(super) fn start(
        files: &[PathBuf],
        debounce: Duration,
    ) -> Result<(Watcher, mpsc::UnboundedReceiver<Vec<PathBuf>>), String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut debouncer =
            new_debouncer(debounce, move |result: DebounceEventResult| match result {
                Ok(events) => {
                    let _ = tx.send(events.into_iter().map(|e| e.path).collect());
                }
                Err(err) => tracing::warn!(%err, "watching plugin files"),
            })
            .map_err(|e| e.to_string())?;
        let dirs: BTreeSet<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(PathBuf::from))
            .collect();
        for dir in &dirs {
            debouncer
                .watcher()
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        }
        tracing::info!(
            directories = dirs.len(),
            "watching plugin files for changes"
        );
        Ok((
            Watcher {
                _debouncer: debouncer,
            },
            rx,
        ))
    }
}
