//! The changes the admin API asks for: uploads, reloads, rollbacks and
//! removals. Each is made under the book's lock, stored and announced
//! before it goes live here, and reported to the store after.
//!
//! Layer: deploy, beside `jobs`, above `router` and `plugin`; it may call
//! those, `backend` (the runtime store), `config` and the clock.

use sha2::{Digest, Sha256};

use super::status::PluginView;
use super::{DeployError, Deployer, now_ms};
use crate::backend::runtime_store::{Live, LiveRow, StoredVersion};
use crate::config::CAPABILITIES;

impl Deployer {
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
