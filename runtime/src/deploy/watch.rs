//! Watching files for changes, for hot reload of component files and for
//! `trellis dev`: `notify` (inotify on Linux), with the events that change
//! nothing left out — opening or reading a file, and metadata changes (the
//! first read of a freshly written file updates its access time, which
//! inotify reports as IN_ATTRIB). Without that, reading a component to
//! reload it reported it changed again, and the reload repeated forever.
//!
//! Changes come in batches: once none has come for the quiet time, so a
//! file still being written is read when complete (a half-written one fails
//! to compile, is refused, and the write's last event brings it back).
//! Watching a file's directory rather than the file sees a replacement by
//! rename (`mv new.wasm hello.wasm`) too.
//!
//! Layer: deploy; it uses nothing of the crate (`dev` above uses it too).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use notify::event::ModifyKind;
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// Keeps watching while alive.
#[allow(missing_debug_implementations)]
pub struct Watcher {
    _watcher: RecommendedWatcher,
    batching: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.batching.abort();
    }
}

impl Watcher {
    /// Watches each directory (recursively when asked); the receiver gets
    /// the paths changed, a batch once `quiet` has passed without another
    /// change. Must be called inside the tokio runtime.
    pub fn start(
        dirs: &[(PathBuf, RecursiveMode)],
        quiet: Duration,
    ) -> Result<(Watcher, mpsc::UnboundedReceiver<Vec<PathBuf>>), String> {
        let (raw_tx, mut raw) = mpsc::unbounded_channel::<Vec<PathBuf>>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<Event>| match event {
                Ok(event) if changes_content(&event.kind) => {
                    let _ = raw_tx.send(event.paths);
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "watching files"),
            })
            .map_err(|e| e.to_string())?;
        for (dir, mode) in dirs {
            watcher
                .watch(dir, *mode)
                .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let batching = tokio::spawn(async move {
            while let Some(first) = raw.recv().await {
                let mut batch: BTreeSet<PathBuf> = first.into_iter().collect();
                loop {
                    match tokio::time::timeout(quiet, raw.recv()).await {
                        Ok(Some(paths)) => batch.extend(paths),
                        Ok(None) => return,
                        Err(_quiet) => break,
                    }
                }
                if tx.send(batch.into_iter().collect()).is_err() {
                    return;
                }
            }
        });
        Ok((
            Watcher {
                _watcher: watcher,
                batching,
            },
            rx,
        ))
    }
}

/// Whether an event can mean different bytes: not an access, not a
/// metadata change.
fn changes_content(kind: &EventKind) -> bool {
    !kind.is_access() && !matches!(kind, EventKind::Modify(ModifyKind::Metadata(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, DataChange, MetadataKind, RenameMode};

    #[test]
    fn reads_and_metadata_are_not_changes() {
        assert!(!changes_content(&EventKind::Access(AccessKind::Any)));
        assert!(!changes_content(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any
        ))));
        assert!(changes_content(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(changes_content(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(changes_content(&EventKind::Create(CreateKind::File)));
    }
}
