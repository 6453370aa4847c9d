//! `[plugins.<name>]`: one plugin's component, grants, limits, settings
//! and mount; where its component comes from, and the checks of each.
//!
//! Layer: config, the bottom. It uses the embedded examples (a leaf) for
//! `builtin` plugins, and its siblings: `engine` (limits) and `paths`
//! (the paths a mount may not claim).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::outbound::{AllowedHost, OutboundConfig};
use super::{ConfigError, LimitOverrides, Limits, invalid, paths};
use crate::examples;

/// Capabilities a plugin may be granted.
pub const CAPABILITIES: &[&str] = &[
    "log",
    "config",
    "sql",
    "cache",
    "lock",
    "jobs",
    "outbound-http",
    "keyvalue",
];

/// `[plugins.<name>]`: one plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// A component file. Exactly one of `path` and `builtin`.
    pub path: Option<PathBuf>,
    /// An example plugin embedded in the binary (`hello`, `echo`).
    pub builtin: Option<String>,
    /// Capabilities granted to the plugin.
    #[serde(default = "default_grants")]
    pub grants: Vec<String>,
    /// Limit overrides.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Settings the plugin reads through the `config` capability.
    #[serde(default)]
    pub config: BTreeMap<String, SettingValue>,
    /// For a `wasi:http` component: the path prefix it serves under
    /// (default `/<name>`). It sees paths below the prefix.
    #[serde(default)]
    pub mount: Option<String>,
    /// With the `outbound-http` grant: the hosts its outgoing requests may
    /// reach (`https://api.example.com`, `http://127.0.0.1:9000`,
    /// `https://*.internal.example`); see [`super::outbound`].
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Bounds of its outgoing requests.
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// Environment variables its component sees (`wasi:cli/environment`);
    /// it sees no other.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// With the `keyvalue` grant: the `wasi:keyvalue` buckets it may open
    /// besides `default`.
    #[serde(default)]
    pub keyvalue_stores: Vec<String>,
    /// Requests one instance may serve, one after another, before it is
    /// dropped: 0 (the default) is a fresh instance per request, the
    /// isolation guarantee. See docs/configuration.md for what a warm
    /// instance keeps between requests.
    #[serde(default)]
    pub reuse: u32,
    /// How long a warm instance may wait for its next request before it is
    /// dropped.
    #[serde(default = "default_reuse_idle", with = "humantime_serde")]
    pub reuse_idle: std::time::Duration,
}

fn default_reuse_idle() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

/// A plugin setting: any TOML scalar, handed to the plugin as a string.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl std::fmt::Display for SettingValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingValue::String(s) => f.write_str(s),
            SettingValue::Integer(i) => write!(f, "{i}"),
            SettingValue::Float(x) => write!(f, "{x}"),
            SettingValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

fn default_grants() -> Vec<String> {
    vec!["log".into(), "config".into()]
}

impl PluginConfig {
    /// A plugin uploaded through the admin API that trellis.toml does not
    /// configure: `grants`, default limits, no settings.
    pub fn uploaded(grants: Vec<String>) -> Self {
        PluginConfig {
            path: None,
            builtin: None,
            grants,
            limits: LimitOverrides::default(),
            config: BTreeMap::new(),
            mount: None,
            allowed_outbound_hosts: Vec::new(),
            outbound: OutboundConfig::default(),
            env: BTreeMap::new(),
            keyvalue_stores: Vec::new(),
            reuse: 0,
            reuse_idle: default_reuse_idle(),
        }
    }

    /// A plugin config serving the embedded example `name`, granted every
    /// capability (the examples are ours).
    pub fn builtin(name: &str) -> Self {
        PluginConfig {
            path: None,
            builtin: Some(name.to_string()),
            grants: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            limits: LimitOverrides::default(),
            config: BTreeMap::new(),
            mount: None,
            allowed_outbound_hosts: Vec::new(),
            outbound: OutboundConfig::default(),
            env: BTreeMap::new(),
            keyvalue_stores: Vec::new(),
            reuse: 0,
            reuse_idle: default_reuse_idle(),
        }
    }

    /// Its `allowed_outbound_hosts`, parsed (checked at load).
    pub fn allowed_hosts(&self) -> Vec<AllowedHost> {
        self.allowed_outbound_hosts
            .iter()
            .filter_map(|entry| AllowedHost::parse(entry).ok())
            .collect()
    }
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone)]
pub enum PluginSource {
    /// A file on disk.
    File(PathBuf),
    /// An example embedded in the binary.
    Builtin(&'static [u8]),
}

impl PluginConfig {
    /// The path prefix a `wasi:http` component serves under.
    pub fn mount(&self, name: &str) -> String {
        self.mount.clone().unwrap_or_else(|| format!("/{name}"))
    }

    /// Where the component comes from, for messages: its path or
    /// `builtin:<name>`.
    pub fn source_name(&self) -> String {
        match (&self.builtin, &self.path) {
            (Some(builtin), _) => format!("builtin:{builtin}"),
            (None, Some(path)) => path.display().to_string(),
            (None, None) => String::new(),
        }
    }

    /// Where the component comes from; an error says why it is unusable.
    pub fn source(&self) -> Result<PluginSource, String> {
        match (&self.path, &self.builtin) {
            (Some(path), None) => {
                if path.is_file() {
                    Ok(PluginSource::File(path.clone()))
                } else {
                    Err(format!("{} is not a readable file", path.display()))
                }
            }
            (None, Some(name)) => examples::example(name)
                .map(PluginSource::Builtin)
                .ok_or_else(|| {
                    let known: Vec<&str> = examples::EXAMPLES.iter().map(|(n, _)| *n).collect();
                    format!("no builtin plugin `{name}`; builtins: {}", known.join(", "))
                }),
            _ => Err("set exactly one of `path` and `builtin`".into()),
        }
    }
}

impl PluginConfig {
    /// Checks of the plugin called `name`, whose limits are `defaults`
    /// with its overrides.
    pub(super) fn validate(&self, name: &str, defaults: &Limits) -> Result<(), ConfigError> {
        let key = |field: &str| format!("plugins.{name}.{field}");
        if !valid_name(name) {
            return invalid(
                &format!("plugins.{name}"),
                "a plugin name is 1 to 64 of a-z, 0-9, `-` and `_`",
            );
        }
        self.source().map_err(|message| ConfigError::Invalid {
            key: key("path"),
            message,
        })?;
        for grant in &self.grants {
            if !CAPABILITIES.contains(&grant.as_str()) {
                return invalid(
                    &key("grants"),
                    &format!(
                        "unknown capability `{grant}`; known: {}",
                        CAPABILITIES.join(", ")
                    ),
                );
            }
        }
        for (i, entry) in self.allowed_outbound_hosts.iter().enumerate() {
            AllowedHost::parse(entry).map_err(|message| ConfigError::Invalid {
                key: format!("plugins.{name}.allowed_outbound_hosts[{i}]"),
                message,
            })?;
        }
        if !self.allowed_outbound_hosts.is_empty()
            && !self.grants.iter().any(|g| g == "outbound-http")
        {
            return invalid(
                &key("allowed_outbound_hosts"),
                "outgoing requests need the `outbound-http` grant too",
            );
        }
        self.outbound
            .validate(&key("outbound"))
            .map_err(|message| ConfigError::Invalid {
                key: key("outbound"),
                message,
            })?;
        if let Some(bad) = self
            .env
            .keys()
            .find(|k| k.is_empty() || k.contains(['=', '\0']))
        {
            return invalid(
                &key("env"),
                &format!("`{bad}` is not an environment variable name"),
            );
        }
        for (i, store) in self.keyvalue_stores.iter().enumerate() {
            if !valid_name(store) {
                return invalid(
                    &format!("plugins.{name}.keyvalue_stores[{i}]"),
                    "a store name is 1 to 64 of a-z, 0-9, `-` and `_`",
                );
            }
        }
        if !self.keyvalue_stores.is_empty() && !self.grants.iter().any(|g| g == "keyvalue") {
            return invalid(
                &key("keyvalue_stores"),
                "key-value stores need the `keyvalue` grant too",
            );
        }
        if let Some(mount) = &self.mount {
            validate_mount(mount).map_err(|message| ConfigError::Invalid {
                key: key("mount"),
                message,
            })?;
        }
        defaults
            .with(&self.limits)
            .validate(&format!("plugins.{name}.limits"))
    }
}

/// Plugin names: 1 to 64 of a-z, 0-9, `-` and `_`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A mount is a plain path prefix that the runtime does not serve itself.
fn validate_mount(mount: &str) -> Result<(), String> {
    let plain = mount.len() > 1
        && mount.starts_with('/')
        && !mount.ends_with('/')
        && !mount.contains(['{', '}', '*', '?', '#', ' ']);
    if !plain {
        return Err(
            "a mount is a path prefix such as `/wasi`: it starts with `/`, does not end \
             with one, and has no `{`, `}`, `*`, `?`, `#` or spaces"
                .to_string(),
        );
    }
    if paths::is_reserved(mount) {
        return Err(format!(
            "`{mount}` is served by the runtime itself (reserved: {})",
            paths::RESERVED.join(", ")
        ));
    }
    Ok(())
}
