//! Admin authentication: `Authorization: Bearer <token>` checked against the
//! configured tokens in constant time (both sides hashed first, so neither
//! content nor length leaks through timing).
//! Layer: inside `http` (`http::api` checks each endpoint's access with
//! it), above `config`.

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::AdminConfig;
use crate::error::ApiError;

/// Who may call admin endpoints.
#[derive(Clone)]
pub struct AdminAuth {
    /// SHA-256 of each accepted token.
    tokens: Vec<[u8; 32]>,
    /// No tokens configured and listening on loopback: open.
    open: bool,
    /// `/metrics` needs no token.
    pub public_metrics: bool,
    /// Health endpoints need no token.
    pub public_health: bool,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("tokens", &self.tokens.len())
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl AdminAuth {
    /// From `[admin]`; `loopback` says whether the server listens only on a
    /// loopback address.
    pub fn new(config: &AdminConfig, loopback: bool) -> AdminAuth {
        let open = config.tokens.is_empty() && loopback;
        if config.tokens.is_empty() && !loopback {
            tracing::warn!(
                "no admin.tokens configured: admin and monitoring endpoints are refused"
            );
        }
        AdminAuth {
            tokens: config.tokens.iter().map(|t| digest(t.trim())).collect(),
            open,
            public_metrics: config.public_metrics,
            public_health: config.public_health,
        }
    }

    /// Ok when the request carries an accepted token (or admin is open).
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.open {
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
        let auth = AdminAuth::new(&config, true);
        assert!(auth.check(&headers("Bearer old-token-0123456789")).is_ok());
        assert!(auth.check(&headers("Bearer new-token-0123456789")).is_ok());
        assert!(auth.check(&headers("Bearer new-token-012345678")).is_err());
        assert!(auth.check(&headers("new-token-0123456789")).is_err());
        assert!(auth.check(&HeaderMap::new()).is_err());
    }

    #[test]
    fn no_tokens_is_open_on_loopback_only() {
        let config = AdminConfig::default();
        assert!(
            AdminAuth::new(&config, true)
                .check(&HeaderMap::new())
                .is_ok()
        );
        assert!(
            AdminAuth::new(&config, false)
                .check(&HeaderMap::new())
                .is_err()
        );
    }
}
