//! Builds the guest plugins in `plugins/` into wasm32-wasip2 components, so a
//! plain `cargo build` or `cargo test` of the host needs no extra step.
//!
//! As wasmtime's test-program artifacts do, it drives a nested cargo with its
//! own target directory (sharing the outer one would deadlock on cargo's
//! lock) and writes `guests.rs` into `OUT_DIR`: the example plugins embedded
//! as bytes, and the path of every built guest for tests and benches.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

/// Guests built for tests only (and the `trellis new` template), or that
/// need an operator's settings to serve (`proxy` its upstream): never
/// embedded as examples.
const TEST_ONLY: &[&str] = &[
    "misbehave",
    "kv",
    "tasks",
    "hello_next",
    "template",
    "proxy",
    "wasi_config",
    "wasi_keyvalue",
    "hello_v010",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.parent().expect("runtime/ has a parent");
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    watch(root, &plugins);
    let guests = guest_crates(&plugins);
    let target_dir = guest_target_dir(&out_dir);
    build_guests(&plugins, &target_dir);

    let release = target_dir.join("wasm32-wasip2").join("release");
    let mut code = String::from(
        "/// Example plugins embedded in the binary: (name, component bytes).\n\
         pub const EXAMPLES: &[(&str, &[u8])] = &[\n",
    );
    for name in guests.iter().filter(|g| !TEST_ONLY.contains(&g.as_str())) {
        let path = wasm_path(&release, name);
        code.push_str(&format!("    ({name:?}, include_bytes!({path:?})),\n"));
    }
    code.push_str(
        "];\n\n/// Every guest built from `plugins/`: (name, path of its component).\n\
         pub const GUESTS: &[(&str, &str)] = &[\n",
    );
    for name in &guests {
        let path = wasm_path(&release, name);
        code.push_str(&format!("    ({name:?}, {path:?}),\n"));
    }
    code.push_str("];\n");
    fs::write(out_dir.join("guests.rs"), code).expect("write guests.rs");
}

/// Rebuild when the WIT or any guest source changes: the workspace files
/// and the Rust guest crates (not the guest target dir, nor the Python and
/// JavaScript guests, which their own scripts build).
fn watch(root: &Path, plugins: &Path) {
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    // The standard WIT the host links, which guests also build against.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("runtime/wit").display()
    );
    for entry in fs::read_dir(plugins).expect("read plugins/") {
        let path = entry.expect("plugins/ entry").path();
        let rust_guest = path.join("Cargo.toml").is_file();
        if path.is_file() || (rust_guest && path.file_name().is_some_and(|n| n != "target")) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// The guest crates that build a component: members with a `cdylib` target.
fn guest_crates(plugins: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in fs::read_dir(plugins).expect("read plugins/") {
        let dir = entry.expect("plugins/ entry").path();
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        if manifest.contains("cdylib") {
            let name = dir.file_name().expect("dir name").to_string_lossy();
            names.push(name.replace('-', "_"));
        }
    }
    names.sort();
    names
}

/// `<target>/guests`, found from `OUT_DIR` = `<target>/<profile>/build/<pkg>/out`,
/// so debug, release and bench builds share one guest build.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map(|target| target.join("guests"))
        .unwrap_or_else(|| out_dir.join("guests"))
}

fn build_guests(plugins: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(plugins)
        .args([
            "build",
            "--release",
            "--workspace",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--target-dir")
        .arg(target_dir)
        // Flags and wrappers meant for the host build (clippy's included)
        // must not reach the wasm build; CI lints the guests on their own.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("run cargo for the guest plugins");
    if !status.success() {
        panic!(
            "building the guest plugins in {} failed (see above). If the wasm target is \
             missing, run: rustup target add wasm32-wasip2",
            plugins.display()
        );
    }
}

fn wasm_path(release: &Path, name: &str) -> String {
    release.join(format!("{name}.wasm")).display().to_string()
}
