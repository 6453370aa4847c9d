//! One integration-test binary, a module per area. Every test starts a real
//! server on an ephemeral loopback port and talks HTTP to it.

/// The `trellis` binary's allocator (runtime/cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod alerts;
mod batch;
mod cache;
mod chaos;
mod compression;
mod config;
mod dashboard;
mod deploy;
mod dev;
mod docs;
mod examples;
mod fields;
mod guests;
mod jobs;
mod keyvalue;
mod layers;
mod limits;
mod locks;
mod malformed;
mod monitoring;
mod openapi;
mod outbound;
mod pagination;
mod reload;
mod replica;
mod response_cache;
mod reuse;
mod roundtrip;
mod shutdown;
mod soak;
mod sql;
mod startup;
mod stress;
mod template;
mod tls;
mod traces;
mod wasi_http;
