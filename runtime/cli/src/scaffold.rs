//! `trellis new <name>`: a plugin project ready to build and serve.
//!
//! Rust (the default): the code is `plugins/template/src/lib.rs` (a member
//! of the guest workspace, so it is compiled and linted with the other
//! plugins) with `template` renamed; the manifest, build settings, config
//! and README are written here, with the Rust SDK as a path dependency.
//!
//! Python and JavaScript (`--lang`): an app answering `GET /<name>` and
//! `GET /<name>/hello/{who}`, its world (importing `config`) with the
//! trellis:plugin WIT beside it, and a `build.sh` that fetches the tool
//! (componentize-py from PyPI into `.venv`, componentize-js from npm into
//! `node_modules`) at the versions the examples in `plugins/` use.

use std::path::{Path, PathBuf};

/// The template plugin's code.
const TEMPLATE: &str = include_str!("../../../plugins/template/src/lib.rs");

/// Where the SDK of this build lives (a path dependency of new plugins).
pub const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins/sdk");

/// The trellis:plugin WIT, copied into Python and JavaScript projects.
const WIT: &str = include_str!("../../../wit/world.wit");

/// The componentize-js driver the JavaScript examples are built with.
const COMPONENTIZE_JS: &str = include_str!("../../../plugins/js-tools/componentize.mjs");

/// The JavaScript SDK (`plugins/sdk-js`), written into JavaScript projects
/// as `trellis-sdk/`: componentize-js follows the app's relative imports
/// inside the project's directory.
macro_rules! js_sdk {
    ($($path:literal),* $(,)?) => {
        &[$((concat!("trellis-sdk/", $path), include_str!(concat!("../../../plugins/sdk-js/", $path)))),*]
    };
}
const JS_SDK: &[(&str, &str)] = js_sdk![
    "package.json",
    "README.md",
    "index.d.ts",
    "testing.d.ts",
    "src/index.js",
    "src/app.js",
    "src/bytes.js",
    "src/cache.js",
    "src/config.js",
    "src/errors.js",
    "src/http.js",
    "src/jobs.js",
    "src/lock.js",
    "src/log.js",
    "src/page.js",
    "src/request.js",
    "src/resource.js",
    "src/response.js",
    "src/router.js",
    "src/schema.js",
    "src/sql.js",
    "src/trace.js",
    "src/testing.js",
    "src/testing/fakes.js",
    "src/testing/host.js",
    "src/testing/loader.js",
    "src/testing/register.js",
    "src/testing/sqlite.js",
];

/// The Python SDK (`plugins/sdk-python/src/trellis_sdk`), written into
/// Python projects as `trellis_sdk/`, beside `app.py`.
macro_rules! py_sdk {
    ($($file:literal),* $(,)?) => {
        &[$((concat!("trellis_sdk/", $file), include_str!(concat!("../../../plugins/sdk-python/src/trellis_sdk/", $file)))),*]
    };
}
const PY_SDK: &[(&str, &str)] = py_sdk![
    "__init__.py",
    "_convert.py",
    "_fake_wit.py",
    "_host.py",
    "_json.py",
    "_router.py",
    "app.py",
    "cache.py",
    "config.py",
    "errors.py",
    "http.py",
    "jobs.py",
    "lock.py",
    "log.py",
    "page.py",
    "request.py",
    "response.py",
    "sql.py",
    "testing.py",
    "trace.py",
];

/// The tool versions the examples in `plugins/` are built and tested with
/// (`plugins/python-build.sh`, `plugins/js-tools/package.json`; a unit test
/// keeps them in step).
const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
const PREVIEW2_SHIM_VERSION: &str = "0.25.0";
/// The SQLite of the JavaScript SDK's tests where Node has no node:sqlite.
const SQL_JS_VERSION: &str = "1.17.0";

/// What a new plugin is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// Rust, with the SDK.
    #[default]
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    JavaScript,
}

impl std::str::FromStr for Language {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rust" | "rs" => Ok(Language::Rust),
            "python" | "py" => Ok(Language::Python),
            "javascript" | "js" => Ok(Language::JavaScript),
            other => Err(format!(
                "`{other}` is not a plugin language: rust, python or javascript"
            )),
        }
    }
}

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

/// Writes a new Rust plugin project `name` into `dir`, depending on the
/// SDK at `sdk`. Returns the files written, relative to `dir`.
pub fn new_plugin(name: &str, dir: &Path, sdk: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    new_project(Language::Rust, name, dir, sdk)
}

/// Writes a new plugin project `name` in `language` into `dir` (`sdk`, the
/// Rust SDK, is used by Rust projects only). Returns the files written,
/// relative to `dir`.
pub fn new_project(
    language: Language,
    name: &str,
    dir: &Path,
    sdk: &Path,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::BadName(name.to_string()));
    }
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
    }
    let files = match language {
        Language::Rust => rust_files(name, sdk)?,
        Language::Python | Language::JavaScript => component_files(language, name),
    };
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
        if file.ends_with(".sh") {
            make_executable(&path)?;
        }
        written.push(PathBuf::from(file));
    }
    Ok(written)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<(), ScaffoldError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|source| {
        ScaffoldError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<(), ScaffoldError> {
    Ok(())
}

fn rust_files(name: &str, sdk: &Path) -> Result<Vec<(&'static str, String)>, ScaffoldError> {
    let sdk = std::fs::canonicalize(sdk)
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| ScaffoldError::NoSdk(sdk.to_path_buf()))?;
    let wasm = format!("{}.wasm", name.replace('-', "_"));
    Ok(vec![
        ("Cargo.toml", manifest(name, &sdk)),
        (".cargo/config.toml", build_config()),
        ("src/lib.rs", TEMPLATE.replace("template", name)),
        ("trellis.toml", config(name, &wasm)),
        (".gitignore", "/target\n".to_string()),
        ("README.md", readme(name, &wasm)),
    ])
}

/// A Python or JavaScript project: the app, its world and the WIT it uses,
/// the build script, a config serving the built component, a README.
fn component_files(language: Language, name: &str) -> Vec<(&'static str, String)> {
    let version = trellis::plugin::WORLD_VERSION;
    let world = format!(
        "// What this plugin imports and exports of the trellis:plugin world\n\
         // (wit/deps/trellis-plugin). To use a capability, add its import, e.g.\n\
         // `import trellis:plugin/sql@{version};`, and grant it in trellis.toml.\n\
         package local:{name};\n\nworld {name} {{\n    \
         import trellis:plugin/config@{version};\n    \
         export trellis:plugin/manifest@{version};\n    \
         export trellis:plugin/http-handler@{version};\n}}\n"
    );
    let config = format!(
        "# `trellis dev` (or `./build.sh && trellis serve --config trellis.toml`)\n\
         # serves this plugin on the embedded defaults (SQLite in .trellis/).\n\
         data_dir = \".trellis\"\n\n[server]\nlisten = \"127.0.0.1:8080\"\n\n\
         [plugins.{name}]\npath = \"{name}.wasm\"\ngrants = [\"config\"]\n"
    );
    let mut files = vec![
        ("wit/world.wit", world),
        ("wit/deps/trellis-plugin/world.wit", WIT.to_string()),
        ("trellis.toml", config),
    ];
    let app = |template: &str| {
        template
            .replace("NAME", name)
            .replace("WORLD_VERSION", version)
    };
    if language == Language::Python {
        files.extend([
            ("app.py", app(PYTHON_APP)),
            ("test_app.py", app(PYTHON_APP_TEST)),
            ("build.sh", python_build(name)),
            (
                ".gitignore",
                "/.venv\n__pycache__/\n/*.wasm\n/.trellis\n".into(),
            ),
            (
                "README.md",
                component_readme(name, "Python", "app.py")
                    + "\nThe SDK is in `trellis_sdk/` (the Trellis Python SDK, standard library\n\
                       only). `python3 -m pytest` runs `test_app.py` natively against its fake\n\
                       host (`pip install pytest` first, e.g. into `.venv`).\n",
            ),
        ]);
        files.extend(PY_SDK.iter().map(|(path, text)| (*path, text.to_string())));
    } else {
        files.extend([
            ("app.js", app(JS_APP)),
            ("app.test.js", app(JS_APP_TEST)),
            ("componentize.mjs", COMPONENTIZE_JS.to_string()),
            ("package.json", js_package(name)),
            ("build.sh", js_build(name)),
            (".gitignore", "/node_modules\n/*.wasm\n/.trellis\n".into()),
            (
                "README.md",
                component_readme(name, "JavaScript", "app.js")
                    + "\nThe SDK is in `trellis-sdk/` (see its README.md). `npm test` runs\n\
                       `app.test.js` under Node against the SDK's fake host.\n",
            ),
        ]);
        files.extend(JS_SDK.iter().map(|(path, text)| (*path, text.to_string())));
    }
    files
}

const PYTHON_APP: &str = r#""""The NAME plugin: `GET /NAME` and `GET /NAME/hello/{who}`. The greeting
comes from `[plugins.NAME.config] greeting = "..."` in trellis.toml. The SDK
is in trellis_sdk/; `python3 -m pytest` runs test_app.py natively."""

from trellis_sdk import App, config

app = App("NAME", "0.1.0", capabilities=["config"])


@app.get("/NAME")
def index(req):
    return {"plugin": "NAME", "routes": [f"{r.method} {r.path}" for r in app.routes]}


@app.get("/NAME/hello/{who}")
def hello(req, who: str):
    return {"greeting": f"{config.get('greeting', default='Hello')}, {who}!"}


# The classes componentize-py calls, one per export of wit/world.wit.
Manifest, HttpHandler = app.exports()
"#;

const PYTHON_APP_TEST: &str = r#""""The NAME plugin's unit tests (`python3 -m pytest`), against the SDK's
fake host: no server, no WebAssembly."""

from pathlib import Path

from trellis_sdk import testing

from app import app

WORLD = Path(__file__).parent / "wit" / "world.wit"


def test_lists_its_routes():
    r = testing.Client(app, world=WORLD).get("/NAME")
    assert r.status == 200
    assert r.json() == {"plugin": "NAME", "routes": ["GET /NAME", "GET /NAME/hello/{who}"]}


def test_greets_with_the_configured_greeting_or_hello():
    client = testing.Client(app, config={"greeting": "Hi"}, world=WORLD)
    assert client.get("/NAME/hello/Ada%20L").json() == {"greeting": "Hi, Ada L!"}
    assert testing.Client(app).get("/NAME/hello/you").json() == {"greeting": "Hello, you!"}
"#;

const JS_APP: &str = r#"// The NAME plugin: `GET /NAME` and `GET /NAME/hello/{who}`. The greeting
// comes from `[plugins.NAME.config] greeting = "..."` in trellis.toml.
// The SDK is in trellis-sdk/ (its README says what it has); `npm test` runs
// app.test.js under Node.
import { App } from "./trellis-sdk/src/index.js";
import * as config from "trellis:plugin/config@WORLD_VERSION";

export const app = new App("NAME", "0.1.0", { config });

app.get("/NAME", (_req, app) => ({
  plugin: "NAME",
  routes: app.routes.map((r) => `${r.method} ${r.path}`),
}));

app.get("/NAME/hello/{who}", (req, { config }) => ({
  greeting: `${config.get("greeting") ?? "Hello"}, ${req.param("who")}!`,
}));

export const { manifest, httpHandler } = app.exports();
"#;

const JS_APP_TEST: &str = r#"// The NAME plugin's unit tests under Node (`npm test`), against the SDK's
// fake host: no server, no WebAssembly.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TestClient } from "./trellis-sdk/src/testing.js";

// After the testing module, which lets Node load the app's trellis:plugin imports.
const { app } = await import("./app.js");

test("lists its routes", async () => {
  const res = await new TestClient(app).get("/NAME");
  assert.equal(res.status, 200);
  assert.deepEqual(res.json(), { plugin: "NAME", routes: ["GET /NAME", "GET /NAME/hello/{who}"] });
});

test("greets with the configured greeting, or Hello", async () => {
  const client = new TestClient(app, { config: { greeting: "Hi" } });
  assert.deepEqual((await client.get("/NAME/hello/Ada%20L")).json(), { greeting: "Hi, Ada L!" });
  assert.deepEqual((await new TestClient(app).get("/NAME/hello/you")).json(), { greeting: "Hello, you!" });
});
"#;

fn python_build(name: &str) -> String {
    format!(
        r#"#!/usr/bin/env bash
# Builds {name}.wasm with componentize-py {COMPONENTIZE_PY_VERSION}, installed from PyPI
# into .venv the first time (or the virtual environment in TRELLIS_PYTHON_VENV).
# app.py imports the SDK from trellis_sdk/ here (`-p .`). Unit tests:
# `python3 -m pytest` (test_app.py; `.venv/bin/pip install pytest` first).
set -euo pipefail
cd "$(dirname "$0")"
venv=${{TRELLIS_PYTHON_VENV:-.venv}}
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q " {COMPONENTIZE_PY_VERSION}$"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py=={COMPONENTIZE_PY_VERSION}"
fi
"$venv/bin/componentize-py" -d wit -w {name} componentize -p . app -o {name}.wasm.part
mv {name}.wasm.part {name}.wasm
"#
    )
}

fn js_build(name: &str) -> String {
    format!(
        r#"#!/usr/bin/env bash
# Builds {name}.wasm with componentize-js {COMPONENTIZE_JS_VERSION}, installed from npm
# into node_modules the first time.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/@bytecodealliance/componentize-js ]; then
    npm install --silent --no-audit --no-fund
fi
node componentize.mjs app.js wit {name} {name}.wasm.part
mv {name}.wasm.part {name}.wasm
"#
    )
}

fn js_package(name: &str) -> String {
    format!(
        r#"{{
  "name": "{name}",
  "private": true,
  "type": "module",
  "scripts": {{
    "test": "node --test"
  }},
  "devDependencies": {{
    "@bytecodealliance/componentize-js": "{COMPONENTIZE_JS_VERSION}",
    "@bytecodealliance/preview2-shim": "{PREVIEW2_SHIM_VERSION}",
    "sql.js": "{SQL_JS_VERSION}"
  }}
}}
"#
    )
}

fn component_readme(name: &str, language: &str, app: &str) -> String {
    format!(
        r#"# {name}

A Trellis plugin in {language}.

```sh
trellis dev                                 # build, serve on http://127.0.0.1:8080, rebuild on save
curl 127.0.0.1:8080/{name}/hello/you
```

Edit `{app}`: its routes, its handler, the capabilities it asks for. A
capability is also an import in `wit/world.wit` and a grant in
`trellis.toml`. `./build.sh` builds `{name}.wasm` alone; `trellis serve
--config trellis.toml` serves it.
"#
    )
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
pub const HOST_TARGET: &str = env!("BUILD_HOST_TARGET");

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
    fn tool_versions_match_the_examples() {
        let python = include_str!("../../../plugins/python-build.sh");
        assert!(python.contains(&format!(
            "componentize_py_version={COMPONENTIZE_PY_VERSION}\n"
        )));
        let js = include_str!("../../../plugins/js-tools/package.json");
        assert!(js.contains(&format!(
            "\"@bytecodealliance/componentize-js\": \"{COMPONENTIZE_JS_VERSION}\""
        )));
        assert!(js.contains(&format!(
            "\"@bytecodealliance/preview2-shim\": \"{PREVIEW2_SHIM_VERSION}\""
        )));
        assert!(js.contains(&format!("\"sql.js\": \"{SQL_JS_VERSION}\"")));
        assert!("python".parse::<Language>() == Ok(Language::Python));
        assert!("js".parse::<Language>() == Ok(Language::JavaScript));
        assert!("go".parse::<Language>().is_err());
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
