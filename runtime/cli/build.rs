//! `trellis new` writes a `cargo test-native` alias for the machine that
//! built it: its host triple, as `BUILD_HOST_TARGET`. Not named
//! `TRELLIS_*`: `cargo run` also puts it in the binary's environment, where
//! `TRELLIS_*` names are config overrides and an unknown one stops the
//! server.

fn main() {
    let target = std::env::var("TARGET").expect("set by cargo");
    println!("cargo:rustc-env=BUILD_HOST_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
