//! The guest components built from `plugins/` by `build.rs`: the example
//! plugins embedded in the binary, and the paths of every built guest (tests
//! and benches load `misbehave` from there).

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The embedded example plugin called `name`.
pub fn example(name: &str) -> Option<&'static [u8]> {
    EXAMPLES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The path of the built guest component called `name`.
pub fn guest_path(name: &str) -> Option<&'static str> {
    GUESTS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}
