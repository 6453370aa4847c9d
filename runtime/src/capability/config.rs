//! `trellis:plugin/config`: the plugin's own settings from
//! `[plugins.<name>.config]`, read-only.

use crate::plugin::HostState;
use crate::plugin::bindings::config::Host;

impl Host for HostState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.plugin.settings.get(&key).cloned()
    }

    async fn get_all(&mut self) -> Vec<(String, String)> {
        self.plugin
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
