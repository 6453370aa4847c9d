//! Trellis: an HTTP runtime whose endpoint logic lives in sandboxed
//! WebAssembly components.
//!
//! The layers, top to bottom (arrows point down only):
//!
//! - [`server`]: hyper connections, connection limits, timeouts, shutdown.
//! - [`http`]: the per-request pipeline: request id, body limits, routing,
//!   the plugin call, problem+json errors.
//! - [`router`]: method + path pattern → plugin route, built from manifests.
//! - [`plugin`]: the wasmtime engine, loading, limits and the guest call.
//! - [`capability`]: the host side of the WIT imports (`log`, `config`, `sql`).
//! - [`backend`]: the storage engines capabilities run on (SQLite, PostgreSQL).
//!
//! Cross-cutting: [`config`], [`telemetry`] (logs), [`monitor`] (metrics),
//! [`error`].

#![deny(missing_docs)]

pub mod backend;
pub mod capability;
pub mod config;
pub mod error;
pub mod examples;
pub mod http;
pub mod monitor;
pub mod plugin;
pub mod router;
pub mod server;
pub mod telemetry;

pub use config::Config;
pub use server::{Server, ServerHandle};
