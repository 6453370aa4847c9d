//! Admin authentication: `Authorization: Bearer <token>` checked against the
//! configured tokens in constant time (both sides hashed first, so neither
//! content nor length leaks through timing).
//!
//! Safe by default: with no `admin.tokens`, the node makes a token of its
//! own ([`node_token`]: kept in `<data_dir>/admin-token`, mode 0600, its
//! path logged), so nothing unauthenticated can deploy code or change
//! state. Reads (`GET`, `HEAD`) stay open while the server listens on
//! loopback only.
//! Layer: inside `http` (`http::api` checks each endpoint's access with
//! it), above `config`.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use http::{HeaderMap, Method};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::AdminConfig;
use crate::error::ApiError;

/// Who may call admin endpoints.
#[derive(Clone)]
pub struct AdminAuth {
    /// SHA-256 of each accepted token.
    tokens: Vec<[u8; 32]>,
    /// No tokens configured and listening on loopback: reads are open.
    open_reads: bool,
    /// `/metrics` needs no token.
    pub public_metrics: bool,
    /// Health endpoints need no token.
    pub public_health: bool,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("tokens", &self.tokens.len())
            .field("open_reads", &self.open_reads)
            .finish_non_exhaustive()
    }
}

impl AdminAuth {
    /// From `[admin]`; `loopback` says whether the server listens only on a
    /// loopback address; `node_token` is the node's own token, used when
    /// none is configured.
    pub fn new(config: &AdminConfig, loopback: bool, node_token: Option<&str>) -> AdminAuth {
        let configured = config.tokens.iter().map(|t| t.trim());
        AdminAuth {
            tokens: configured.chain(node_token).map(digest).collect(),
            open_reads: config.tokens.is_empty() && loopback,
            public_metrics: config.public_metrics,
            public_health: config.public_health,
        }
    }

    /// Ok when the request carries an accepted token, or is a read while
    /// reads are open.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.open_reads && (method == Method::GET || method == Method::HEAD) {
            return Ok(());
        }
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| digest(t.trim()));
        let Some(presented) = presented else {
            return Err(ApiError::Unauthorized);
        };
        // Compare against every token, without stopping at a match.
        let accepted = self
            .tokens
            .iter()
            .fold(subtle::Choice::from(0), |any, t| any | t.ct_eq(&presented));
        if bool::from(accepted) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// Where a node keeps its own admin token.
pub fn node_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

/// The node's own admin token, for when `admin.tokens` is empty: the one in
/// `<data_dir>/admin-token` (so nodes and tools sharing the directory agree),
/// else a new random one written there with mode 0600.
pub fn node_token(data_dir: &Path) -> io::Result<String> {
    let path = node_token_path(data_dir);
    std::fs::create_dir_all(data_dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            let token = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            file.write_all(token.as_bytes())?;
            Ok(token)
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            let mut token = String::new();
            std::fs::File::open(&path)?.read_to_string(&mut token)?;
            let token = token.trim().to_string();
            if token.len() < 16 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} holds no admin token (at least 16 characters); delete it to make a new one",
                        path.display()
                    ),
                ));
            }
            Ok(token)
        }
        Err(err) => Err(err),
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            value.parse().expect("valid header"),
        );
        headers
    }

    #[test]
    fn accepts_any_configured_token_and_nothing_else() {
        let config = AdminConfig {
            tokens: vec!["old-token-0123456789".into(), "new-token-0123456789".into()],
            ..AdminConfig::default()
        };
        let auth = AdminAuth::new(&config, true, None);
        let get = &Method::GET;
        assert!(
            auth.check(get, &headers("Bearer old-token-0123456789"))
                .is_ok()
        );
        assert!(
            auth.check(get, &headers("Bearer new-token-0123456789"))
                .is_ok()
        );
        assert!(
            auth.check(get, &headers("Bearer new-token-012345678"))
                .is_err()
        );
        assert!(auth.check(get, &headers("new-token-0123456789")).is_err());
        assert!(auth.check(get, &HeaderMap::new()).is_err());
    }

    #[test]
    fn without_tokens_writes_need_the_node_token_and_reads_are_open_on_loopback_only() {
        let config = AdminConfig::default();
        let token = "node-token-0123456789abcdef";
        let loopback = AdminAuth::new(&config, true, Some(token));
        let anyone = HeaderMap::new();
        let holder = headers(&format!("Bearer {token}"));
        assert!(loopback.check(&Method::GET, &anyone).is_ok());
        assert!(loopback.check(&Method::HEAD, &anyone).is_ok());
        for write in [Method::PUT, Method::POST, Method::DELETE, Method::PATCH] {
            assert!(loopback.check(&write, &anyone).is_err(), "{write}");
            assert!(loopback.check(&write, &holder).is_ok(), "{write}");
        }
        let exposed = AdminAuth::new(&config, false, Some(token));
        assert!(exposed.check(&Method::GET, &anyone).is_err());
        assert!(exposed.check(&Method::GET, &holder).is_ok());
    }

    #[test]
    fn the_node_token_is_made_once_private_and_shared() {
        let dir = std::env::temp_dir().join(format!("trellis-admin-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = node_token(&dir).expect("a new token");
        assert!(first.len() >= 32);
        assert_eq!(node_token(&dir).expect("the same token"), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(node_token_path(&dir))
                .expect("the file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(node_token_path(&dir), "short").expect("overwritten");
        assert!(node_token(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
