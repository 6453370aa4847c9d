//! `[server]`, `[admin]`, `[compression]` and `[batch]`: the listener,
//! who may use the admin endpoints, and the bounds of what the HTTP layer
//! does for every plugin; their defaults and checks.
//!
//! Layer: config, the bottom. It uses nothing of the crate but the config
//! module's own error type.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[server]`: the listener and the HTTP connection limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Connections served at once; further ones wait in the accept backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (slowloris guard).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Largest request head (HTTP/1) or header list (HTTP/2); larger is 431.
    pub max_header_bytes: ByteSize,
    /// Time in-flight requests get to finish on shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// On SIGTERM, how long the node keeps accepting connections while
    /// `/readyz` answers 503, so load balancers take it out of rotation
    /// before new connections are refused. Default 0 s.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// A connection with no request in flight for this long is closed
    /// (HTTP/2 gets GOAWAY); idle HTTP/1.1 connections are also closed
    /// after `header_read_timeout`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A response that makes no progress for this long is given up: an
    /// HTTP/1.1 connection whose client takes no bytes is closed, an
    /// HTTP/2 stream whose flow-control window stays shut is reset.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// How often an HTTP/2 connection is pinged to see that the client is
    /// still there; `0s` sends no pings.
    #[serde(with = "humantime_serde")]
    pub http2_keep_alive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[serde(with = "humantime_serde")]
    pub http2_keep_alive_timeout: Duration,
    /// Streams (requests) one HTTP/2 connection may have open at once.
    pub http2_max_concurrent_streams: u32,
    /// Streams a client may open and reset before the server accepted them,
    /// before the connection is closed (the rapid-reset guard).
    pub http2_max_pending_accept_reset_streams: usize,
    /// `[server.tls]`: serve HTTPS. Absent: cleartext HTTP/1.1 and h2c.
    pub tls: Option<ServerTlsConfig>,
}

/// `[server.tls]`: the listener's certificate, reloaded when its files
/// change, and optional client certificate verification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// The certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates, PEM: when set, every client must present a
    /// certificate they issued (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: ByteSize::kib(16),
            shutdown_grace: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            http2_keep_alive_interval: Duration::from_secs(20),
            http2_keep_alive_timeout: Duration::from_secs(20),
            http2_max_concurrent_streams: 256,
            http2_max_pending_accept_reset_streams: 20,
            tls: None,
        }
    }
}

/// `[admin]`: who may use `/admin/*` and `/api/v1/monitoring/*`.
///
/// Requests carry `Authorization: Bearer <token>`; any listed token is
/// accepted (list the new one beside the old to rotate). With no tokens,
/// admin endpoints are open only while the server listens on a loopback
/// address, and refused otherwise.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Accepted bearer tokens, at least 16 characters each.
    /// `TRELLIS_ADMIN__TOKENS='["..."]'` sets them from the environment.
    pub tokens: Vec<String>,
    /// Serve `/metrics` without a token.
    pub public_metrics: bool,
    /// Serve `/healthz`, `/readyz` and `/api/v1/monitoring/health` without
    /// a token.
    pub public_health: bool,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("public_metrics", &self.public_metrics)
            .field("public_health", &self.public_health)
            .finish()
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            tokens: Vec::new(),
            public_metrics: true,
            public_health: true,
        }
    }
}

/// `[compression]`: response bodies compressed with gzip, brotli or zstd,
/// as the client's `Accept-Encoding` prefers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// Compress responses at all.
    pub enabled: bool,
    /// Smaller bodies are sent as they are (at most 64 KiB).
    pub min_size: ByteSize,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            min_size: ByteSize::kib(1),
        }
    }
}

/// `[batch]`: bounds of `POST /api/v1/batch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most operations in one batch (more is a 413).
    pub max_operations: usize,
    /// Operations running at once.
    pub concurrency: usize,
    /// Largest batch body.
    pub max_body: ByteSize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_operations: 100,
            concurrency: 8,
            max_body: ByteSize::mib(4),
        }
    }
}

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return invalid("server.max_connections", "must be at least 1");
        }
        if self.max_header_bytes.as_u64() < 8192 {
            return invalid("server.max_header_bytes", "must be at least 8 KiB");
        }
        if self.header_read_timeout.is_zero() {
            return invalid("server.header_read_timeout", "must be more than 0");
        }
        if self.idle_timeout.is_zero() {
            return invalid("server.idle_timeout", "must be more than 0");
        }
        if self.send_timeout.is_zero() {
            return invalid("server.send_timeout", "must be more than 0");
        }
        if self.http2_keep_alive_timeout.is_zero() {
            return invalid("server.http2_keep_alive_timeout", "must be more than 0");
        }
        if self.http2_max_concurrent_streams == 0 {
            return invalid("server.http2_max_concurrent_streams", "must be at least 1");
        }
        Ok(())
    }
}

impl AdminConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(short) = self.tokens.iter().position(|t| t.trim().len() < 16) {
            return invalid(
                &format!("admin.tokens[{short}]"),
                "an admin token is at least 16 characters",
            );
        }
        Ok(())
    }
}

impl CompressionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.min_size.as_u64() > u64::from(u16::MAX) {
            return invalid("compression.min_size", "at most 64 KiB");
        }
        Ok(())
    }
}

impl BatchConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_operations == 0 || self.concurrency == 0 {
            return invalid("batch", "max_operations and concurrency must be at least 1");
        }
        Ok(())
    }
}
