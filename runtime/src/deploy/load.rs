//! Loading a version: what it takes (the component's bytes with the
//! plugin's grants, limits, settings and schedules, owned so it can run on
//! a task), and running it, alone or all at once at startup.
//!
//! Layer: deploy, beside `jobs`, above `router` and `plugin`; it may call
//! those, `backend` (the runtime store), `config` and the clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::{DeployError, Deployer, short};
use crate::backend::runtime_store::{Live, StoredVersion};
use crate::config::{Config, PluginConfig};
use crate::plugin::{LoadError, LoadedPlugin, PluginHost};

impl Deployer {
    /// Whether `live` names a version for `name` (a config entry exists).
    pub(super) fn exists(&self, live: &Live, name: &str) -> bool {
        match live {
            Live::Config => self.configured.contains_key(name),
            Live::Upload { .. } => true,
            Live::Removed => false,
        }
    }

    /// What loading `live` of `name` takes: `None` when nothing is to be
    /// served (removed, or trellis.toml does not name it).
    pub(super) async fn prepare(
        &self,
        name: &str,
        live: &Live,
    ) -> Result<Option<Load>, DeployError> {
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
    pub(super) fn load_version(&self, name: &str, version: &StoredVersion, hash: &str) -> Load {
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
}

/// Everything needed to load one version, owned so it can run on a task.
pub(super) struct Load {
    host: PluginHost,
    name: String,
    plugin: PluginConfig,
    limits: crate::config::Limits,
    schedules: Vec<crate::config::ScheduleConfig>,
    source: String,
    bytes: Vec<u8>,
}

/// A loaded version, where it came from, and how long loading took (ms).
pub(super) type Loaded = (Arc<LoadedPlugin>, String, u64);

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

    pub(super) fn hash(&self) -> String {
        format!("{:x}", Sha256::digest(&self.bytes))
    }

    pub(super) async fn run(
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

/// Runs `loads` at once (compilation on the blocking pool); the loaded
/// versions by name, or the first failure.
pub(super) async fn load_all(loads: Vec<Load>) -> Result<BTreeMap<String, Loaded>, LoadError> {
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
