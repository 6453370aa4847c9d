//! `trellis:plugin/config`: the plugin's own settings from
//! `[plugins.<name>.config]`, read-only; and the same settings through the
//! standard `wasi:config/store` (`wasmtime-wasi-config`, the version
//! wasmtime ships), for components written for `wasmtime serve -S config`
//! or Spin. Either needs the `config` grant.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

use super::bindings::config::{self, Host};
use super::{Capability, HostState, PluginSetup, Runtime};
use crate::config::Limits;

/// The `config` capability: each plugin's settings.
#[derive(Debug)]
pub struct Settings;

/// A plugin's settings, for both interfaces.
pub struct PluginSettings {
    map: BTreeMap<String, String>,
    wasi: WasiConfigVariables,
}

impl std::fmt::Debug for PluginSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(&self.map).finish()
    }
}

impl std::ops::Deref for PluginSettings {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl Capability for Settings {
    const NAME: &'static str = "config";
    type Plugin = Arc<PluginSettings>;
    type Instance = ();

    async fn start(_runtime: &Runtime<'_>) -> Result<Self, String> {
        Ok(Settings)
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        config::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
        wasmtime_wasi_config::add_to_linker(linker, |state: &mut HostState| {
            WasiConfig::from(&state.plugin.capabilities.config.wasi)
        })
    }

    async fn configure(&self, plugin: &PluginSetup<'_>) -> Result<Self::Plugin, String> {
        Ok(self.unconfigured(plugin))
    }

    /// Its settings are in its config: the manifest reader sees them too.
    fn unconfigured(&self, plugin: &PluginSetup<'_>) -> Self::Plugin {
        let map: BTreeMap<String, String> = plugin
            .config
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        let wasi = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Arc::new(PluginSettings { map, wasi })
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
