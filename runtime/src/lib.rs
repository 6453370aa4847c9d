//! Trellis: an HTTP runtime whose endpoint logic lives in sandboxed
//! WebAssembly components.
//!
//! The layers, top to bottom (arrows point down only):
//!
//! - [`server`]: hyper connections, connection limits, timeouts, shutdown.
//! - [`http`]: the per-request pipeline: request id, body limits, routing,
//!   the plugin call, problem+json errors.
//! - [`jobs`]: the job queue's workers, scheduler and maintenance (they run
//!   jobs in plugins, like `http` runs requests).
//! - [`deploy`]: the live set of plugins and every change to it (uploads,
//!   reloads, rollbacks, file changes, other nodes' changes).
//! - [`router`]: method + path pattern → plugin route, built from manifests.
//! - [`plugin`]: the wasmtime engine, loading, limits and the guest call.
//! - [`capability`]: the host side of the WIT imports (`log`, `config`,
//!   `sql`, `cache`, `lock`, `jobs`, `trace`).
//! - [`backend`]: the storage engines capabilities run on (SQLite,
//!   PostgreSQL, Redis, the job queue's tables).
//!
//! Cross-cutting: [`config`], [`telemetry`] (logs), [`monitor`] (metrics),
//! [`error`], [`tls`] (the one TLS stack).

#![deny(missing_docs)]
// The connection task's future (hyper's connection over TLS, the tower
// stack, the pipeline) nests deeper than the default allows.
#![recursion_limit = "256"]

pub mod alerts;
pub mod backend;
pub mod capability;
pub mod clock;
pub mod config;
pub mod deploy;
pub mod error;
pub mod examples;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod jobs;
pub mod monitor;
pub mod plugin;
pub mod router;
pub mod server;
pub mod telemetry;
pub mod tls;

pub use config::Config;
pub use server::{Server, ServerHandle};
