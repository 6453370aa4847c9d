//! The `TRELLIS_*` environment overrides, applied to the file's TOML table
//! before it is read into [`Config`]; a schema error names the variable
//! behind it.
//!
//! Which variables are overrides, so that a pod starts beside a Kubernetes
//! Service named `trellis` (which injects `TRELLIS_PORT`,
//! `TRELLIS_SERVICE_HOST`, ...) and a mistyped setting is still caught:
//!
//! - `TRELLIS_CONFIG`, `TRELLIS_LOG` and `TRELLIS_ROLE` are the command's
//!   own, not overrides.
//! - A name with `__` between levels (`TRELLIS_SERVER__LISTEN`), or one
//!   naming a top-level key (`TRELLIS_DATA_DIR`), is an override; a key that
//!   does not exist is an error naming the variable.
//! - Any other `TRELLIS_*` name is not a setting and is left alone, unless
//!   it spells a setting with single underscores (`TRELLIS_SERVER_LISTEN`):
//!   that is an error naming the right spelling.
//!
//! Layer: config, the bottom. It uses nothing of the crate but the config
//! module's own types.

use super::{Config, ConfigError};

/// Environment variables with the `TRELLIS_` prefix that are not overrides.
const NOT_OVERRIDES: &[&str] = &["TRELLIS_CONFIG", "TRELLIS_LOG", "TRELLIS_ROLE"];

/// The config of `text` with the override variables of `env` applied, or
/// `None` when `env` holds none. `parse_error` reports a file that is not
/// TOML.
pub(super) fn overridden(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
    parse_error: impl Fn(toml::de::Error) -> ConfigError,
) -> Result<Option<Config>, ConfigError> {
    let overrides = env_overrides(env)?;
    if overrides.is_empty() {
        return Ok(None);
    }
    let mut table: toml::Table = toml::from_str(text).map_err(parse_error)?;
    let keys: Vec<String> = overrides.iter().map(|(k, _)| k.join(".")).collect();
    for (key, value) in overrides {
        apply_override(&mut table, &key, value)?;
    }
    serde_path_to_error::deserialize(toml::Value::Table(table))
        .map(Some)
        .map_err(|err| ConfigError::Env {
            key: env_error_key(err.path().to_string(), &keys),
            message: err.into_inner().to_string(),
        })
}

/// `TRELLIS_A__B_C=v` → (["a", "b_c"], v), for every override variable
/// (the rule is in the module's documentation).
fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(Vec<String>, toml::Value)>, ConfigError> {
    let mut overrides = Vec::new();
    for (name, raw) in env {
        if NOT_OVERRIDES.contains(&name.as_str()) {
            continue;
        }
        let Some(rest) = name.strip_prefix("TRELLIS_") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        let value = parse_env_value(&raw);
        if path.len() > 1 || names_a_key(&path, &value) {
            overrides.push((path, value));
        } else if let Some(meant) = single_underscore_spelling(&path[0], &value) {
            return Err(ConfigError::Env {
                key: name,
                message: format!(
                    "is not a setting; levels are joined with `__`: did you mean \
                     TRELLIS_{}?",
                    meant.join("__").to_ascii_uppercase()
                ),
            });
        } else {
            tracing::debug!(variable = %name, "not a Trellis setting; ignored");
        }
    }
    overrides.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(overrides)
}

/// Whether `path` is a key of the config: a config with only it set to
/// `value` is refused for no unknown field (a wrong type is still a key).
fn names_a_key(path: &[String], value: &toml::Value) -> bool {
    let mut table = toml::Table::new();
    if apply_override(&mut table, path, value.clone()).is_err() {
        return false;
    }
    match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(table)) {
        Ok(_) => true,
        Err(err) => !err.inner().to_string().starts_with("unknown field"),
    }
}

/// The key `name` (single underscores, lower case) spells when some of its
/// underscores are level separators, if any: `server_listen` →
/// `server.listen`. Up to three levels.
fn single_underscore_spelling(name: &str, value: &toml::Value) -> Option<Vec<String>> {
    let parts: Vec<&str> = name.split('_').collect();
    let gaps = parts.len().checked_sub(1)?;
    if gaps == 0 || gaps > 8 {
        return None;
    }
    // Each bit of `cuts` says whether a gap between parts is a level break.
    (1u32..(1 << gaps))
        .filter(|cuts| cuts.count_ones() <= 2)
        .map(|cuts| {
            let mut path = vec![parts[0].to_string()];
            for (gap, part) in parts[1..].iter().enumerate() {
                if cuts & (1 << gap) != 0 {
                    path.push((*part).to_string());
                } else if let Some(last) = path.last_mut() {
                    last.push('_');
                    last.push_str(part);
                }
            }
            path
        })
        .find(|path| names_a_key(path, value))
}

/// The value of an override variable: a TOML value when `raw` is one
/// (number, boolean, quoted string, array, inline table), else `raw` as a
/// string.
pub(crate) fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn apply_override(
    table: &mut toml::Table,
    key: &[String],
    value: toml::Value,
) -> Result<(), ConfigError> {
    let (last, parents) = key.split_last().ok_or_else(|| ConfigError::Env {
        key: String::new(),
        message: "empty key".into(),
    })?;
    let mut current = table;
    for (i, part) in parents.iter().enumerate() {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| ConfigError::Env {
            key: key[..=i].join("."),
            message: "is not a table, so it has no keys to override".into(),
        })?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// Names the override behind a schema error: the variable whose key the
/// error path starts with, else the path itself.
fn env_error_key(path: String, keys: &[String]) -> String {
    keys.iter()
        .find(|k| path.starts_with(k.as_str()) || k.starts_with(path.as_str()))
        .map(|k| format!("TRELLIS_{}", k.to_ascii_uppercase().replace('.', "__")))
        .map(|var| format!("{var} → {path}"))
        .unwrap_or(path)
}
