//! `trellis new <name>`: a plugin project ready to build and serve. The
//! code is `plugins/template/src/lib.rs` (a member of the guest workspace,
//! so it is compiled and linted with the other plugins) with `template`
//! renamed; the manifest, build settings, config and README are written
//! here, with the Rust SDK as a path dependency.

use std::path::{Path, PathBuf};

/// The template plugin's code.
const TEMPLATE: &str = include_str!("../../plugins/template/src/lib.rs");

/// Where the SDK of this build lives (a path dependency of new plugins).
pub const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

/// Why a project was not made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The name cannot name a plugin.
    #[error(
        "`{0}` is not a plugin name: use 1 to 64 lower-case letters, digits and `-`, starting with a letter"
    )]
    BadName(String),
    /// The directory exists and holds something.
    #[error("{0} exists and is not empty; choose another --dir")]
    NotEmpty(PathBuf),
    /// The SDK is not where it should be.
    #[error("no Trellis SDK at {0} (its Cargo.toml is missing); pass --sdk <path to plugins/sdk>")]
    NoSdk(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Writes a new plugin project `name` into `dir`, depending on the SDK at
/// `sdk`. Returns the files written, relative to `dir`.
pub fn new_plugin(name: &str, dir: &Path, sdk: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::BadName(name.to_string()));
    }
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
    }
    let sdk = std::fs::canonicalize(sdk)
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| ScaffoldError::NoSdk(sdk.to_path_buf()))?;
    let wasm = format!("{}.wasm", name.replace('-', "_"));
    let files = [
        ("Cargo.toml", manifest(name, &sdk)),
        (".cargo/config.toml", build_config()),
        ("src/lib.rs", TEMPLATE.replace("template", name)),
        ("trellis.toml", config(name, &wasm)),
        (".gitignore", "/target\n".to_string()),
        ("README.md", readme(name, &wasm)),
    ];
    let mut written = Vec::with_capacity(files.len());
    for (file, text) in files {
        let path = dir.join(file);
        let write = |path: &Path| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, text.as_bytes())
        };
        write(&path).map_err(|source| ScaffoldError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(PathBuf::from(file));
    }
    Ok(written)
}

/// 1 to 64 of `a-z`, `0-9` and `-`, starting with a letter: a crate name
/// and a plugin name (a route prefix, a schema, a role) at once.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// The target this binary was built for: where a plugin's unit tests run.
pub const HOST_TARGET: &str = env!("TRELLIS_HOST_TARGET");

fn build_config() -> String {
    format!(
        r#"# Plugins are WebAssembly components.
[build]
target = "wasm32-wasip2"

# Handler unit tests (trellis_sdk::testing) run natively: `cargo test-native`.
[alias]
test-native = "test --target {HOST_TARGET}"
"#
    )
}

fn manifest(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
trellis-sdk = {{ path = {sdk:?} }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# A project of its own, not part of an enclosing workspace.
[workspace]
"#,
        sdk = sdk.display().to_string()
    )
}

fn config(name: &str, wasm: &str) -> String {
    format!(
        r#"# `trellis serve --config trellis.toml` serves this plugin (after
# `cargo build --release`) on the embedded defaults: SQLite in .trellis/,
# in-process cache and job queue.
data_dir = ".trellis"

[server]
listen = "127.0.0.1:8080"

[plugins.{name}]
path = "target/wasm32-wasip2/release/{wasm}"
# Capabilities the plugin asks for must be granted here, e.g.
# grants = ["sql", "cache"]
"#
    )
}

fn readme(name: &str, wasm: &str) -> String {
    format!(
        r#"# {name}

A Trellis plugin.

```sh
trellis dev                                 # build, serve on http://127.0.0.1:8080, rebuild on save
curl 127.0.0.1:8080/{name}/hello/you
curl -X POST 127.0.0.1:8080/{name}/echo -d '{{"text": "hi"}}'
cargo test-native                           # the handler unit tests, no server
```

Edit `src/lib.rs`: routes, handlers and the capabilities the plugin asks
for (each granted in `trellis.toml`). `trellis dev` rebuilds on every save
and reloads the plugin, printing build errors and load errors (a missing
grant names the config line that grants it); the previous version keeps
serving until a build loads.

Without `trellis dev`: `cargo build --release` makes
`target/wasm32-wasip2/release/{wasm}`, and `trellis serve --config
trellis.toml` serves it.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_the_template_renamed() {
        for bad in ["", "Hello", "1st", "a_b", "a-", "ünï", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
        for good in ["a", "my-plugin", "notes2"] {
            assert!(valid_name(good), "{good}");
        }
        let code = TEMPLATE.replace("template", "demo");
        assert!(code.contains("App::new(\"demo\""));
        assert!(code.contains("\"/demo/hello/{name}\""));
        assert!(!code.contains("template"));
    }

    #[test]
    fn a_project_is_written_once() {
        let dir = std::env::temp_dir().join(format!("trellis-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let written = new_plugin("demo", &dir, Path::new(SDK)).expect("written");
        assert!(written.contains(&PathBuf::from("src/lib.rs")));
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("manifest");
        assert!(manifest.contains("name = \"demo\""));
        let config = std::fs::read_to_string(dir.join("trellis.toml")).expect("config");
        assert!(config.contains("release/demo.wasm"));
        assert!(matches!(
            new_plugin("demo", &dir, Path::new(SDK)),
            Err(ScaffoldError::NotEmpty(_))
        ));
        assert!(matches!(
            new_plugin("x", &dir.join("other"), Path::new("/nowhere")),
            Err(ScaffoldError::NoSdk(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
