//! `trellis:plugin/config`: the plugin's own settings from
//! `[plugins.<name>.config]`, read-only.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::config::{self, Host};
use super::{Capability, HostState, PluginSetup, Runtime};
use crate::config::Limits;

/// The `config` capability: each plugin's settings.
#[derive(Debug)]
pub struct Settings;

impl Capability for Settings {
    const NAME: &'static str = "config";
    type Plugin = Arc<BTreeMap<String, String>>;
    type Instance = ();

    async fn start(_runtime: &Runtime<'_>) -> Result<Self, String> {
        Ok(Settings)
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        config::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
    }

    async fn configure(&self, plugin: &PluginSetup<'_>) -> Result<Self::Plugin, String> {
        Ok(self.unconfigured(plugin))
    }

    /// Its settings are in its config: the manifest reader sees them too.
    fn unconfigured(&self, plugin: &PluginSetup<'_>) -> Self::Plugin {
        Arc::new(
            plugin
                .config
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        )
    }

    fn prepare(&self, _plugin: &Self::Plugin, _limits: &Limits) {}
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.plugin.capabilities.config.get(&key).cloned()
    }

    async fn get_all(&mut self) -> Vec<(String, String)> {
        self.plugin
            .capabilities
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
