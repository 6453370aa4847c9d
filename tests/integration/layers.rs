//! The runtime's layer rule, enforced: every `crate::<module>` reference
//! between the top-level modules of `runtime/src` points down the list
//! below, and every top-level module has a place in it. An import that
//! points up (or a new module nobody placed) fails here, naming the file.
//! `docs/ARCHITECTURE.md` draws the same list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top to bottom. A module may use the modules of the layers
/// below its own, never those of its own layer or above.
const LAYERS: &[&[&str]] = &[
    // The fuzz targets' entry points (feature `fuzzing`): they may call
    // into any layer.
    &["fuzz"],
    // Listener, connections, start-up and shutdown.
    &["server"],
    // The per-request pipeline and the built-in endpoints.
    &["http"],
    // Job workers and the leader's maintenance.
    &["jobs"],
    // The live plugins and every change to them.
    &["deploy"],
    // Method + path → plugin route.
    &["router"],
    // Engine, loading, limits and the guest call.
    &["plugin"],
    // The capability seam: WIT bindings, the store state, one module per
    // capability.
    &["capability"],
    // Alert rules over the runtime's figures, kept in the runtime store.
    &["alerts"],
    // Storage: SQLite, PostgreSQL, Redis, the job tables, the cache tiers.
    &["backend"],
    // Metrics, traces, error groups.
    &["monitor"],
    // Logs.
    &["telemetry"],
    // Configuration and the checks of its values.
    &["config"],
    // Leaves: no `crate::` imports at all.
    &["clock", "error", "examples", "tls"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a file under `src` belongs to (`None` for the
/// crate roots).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source tree") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules `text` names as `crate::<module>` or in
/// `use crate::{a, b::c}`, unit tests (`#[cfg(test)] mod tests`) left out.
fn references(text: &str) -> BTreeSet<String> {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn runtime_modules_only_import_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut modules = BTreeSet::new();
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = top_module(&src, file) else {
            continue;
        };
        modules.insert(from.clone());
        let text = std::fs::read_to_string(file).expect("readable source");
        for to in references(&text) {
            if to != from {
                let shown = file.strip_prefix(&src).unwrap_or(file).display();
                edges
                    .entry((from.clone(), to))
                    .or_default()
                    .push(shown.to_string());
            }
        }
    }
    let unplaced: Vec<&String> = modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "top-level modules without a layer: {unplaced:?}; add each to LAYERS in \
         tests/integration/layers.rs and to docs/ARCHITECTURE.md"
    );
    let mut upward = Vec::new();
    for ((from, to), files) in &edges {
        let (Some(a), Some(b)) = (layer_of(from), layer_of(to)) else {
            continue;
        };
        if b <= a {
            upward.push(format!("{from} -> {to} (in {})", files.join(", ")));
        }
    }
    assert!(
        upward.is_empty(),
        "imports that do not point down the layers:\n  {}",
        upward.join("\n  ")
    );
    // The rule is not vacuous: the layers above do use the ones below.
    assert!(edges.contains_key(&("plugin".to_string(), "capability".to_string())));
}

#[test]
fn the_reference_scanner_sees_paths_and_groups() {
    let text = "use crate::plugin::X;\nuse crate::{config, backend::sql};\n\
                fn f() { crate::clock::now_ms(); } // notcrate::jobs\n\
                #[cfg(test)]\nmod tests { use crate::server; }";
    let found: Vec<String> = references(text).into_iter().collect();
    assert_eq!(found, ["backend", "clock", "config", "plugin"]);
}
