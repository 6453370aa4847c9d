//! HTTPS on the listener (`[server.tls]`): rustls with ALPN `h2` and
//! `http/1.1`, the certificate reloaded when its files change, optional
//! client certificate verification.
//!
//! cert-manager and Kubernetes rotate a mounted Secret by swapping a
//! symlink under the mount, which file-event watchers see unreliably; the
//! files' metadata is therefore checked every [`RELOAD_CHECK`]. A changed
//! pair that loads replaces the served certificate for new handshakes; one
//! that does not (a key written before its certificate) is logged and the
//! old certificate stays until the pair is whole.
//!
//! Layer: inside `server`; uses `config` and `tls`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerTlsConfig;
use crate::tls::{self, TlsError};

/// How often the certificate and key files are looked at.
pub(super) const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// The listener's TLS: the acceptor and the certificate it serves.
#[derive(Clone)]
pub(super) struct Tls {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads `config`'s files; a missing file, bad PEM or a key that is not
    /// the certificate's is an error naming the file.
    pub(super) fn load(config: &ServerTlsConfig) -> Result<Tls, TlsError> {
        let key = tls::certified_key(&config.cert, &config.key)?;
        let current = Arc::new(Current {
            key: ArcSwap::from_pointee(key),
            config: config.clone(),
        });
        let builder = ServerConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::Config(err.to_string()))?;
        let builder = match &config.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in tls::read_certs(ca, "CA file")? {
                    roots.add(cert).map_err(|err| TlsError::Pem {
                        what: "CA file",
                        path: ca.clone(),
                        detail: err.to_string(),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::provider())
                        .build()
                        .map_err(|err| TlsError::Config(err.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut server = builder.with_cert_resolver(Arc::new(Resolver(current.clone())));
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            current,
        })
    }

    /// The acceptor for new connections.
    pub(super) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reloads the certificate whenever its files change, until dropped.
    pub(super) async fn follow(self) {
        let mut seen = stamp(&self.current.config);
        loop {
            tokio::time::sleep(RELOAD_CHECK).await;
            let now = stamp(&self.current.config);
            if now == seen {
                continue;
            }
            let config = &self.current.config;
            match tls::certified_key(&config.cert, &config.key) {
                Ok(key) => {
                    self.current.key.store(Arc::new(key));
                    seen = now;
                    tracing::info!(cert = %config.cert.display(), "reloaded the TLS certificate");
                }
                Err(err) => {
                    // Tried again at the next change of either file.
                    seen = now;
                    tracing::warn!(%err, "the changed TLS certificate cannot be used; serving the previous one");
                }
            }
        }
    }
}

/// The certificate being served, swapped on reload.
struct Current {
    key: ArcSwap<CertifiedKey>,
    config: ServerTlsConfig,
}

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Current")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Resolver(Arc<Current>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.key.load_full())
    }
}

/// What changes when either file is replaced.
type Stamp = [Option<(SystemTime, u64)>; 2];

fn stamp(config: &ServerTlsConfig) -> Stamp {
    let of = |path: &Path| {
        // Follows symlinks: a Secret's swap changes the target.
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    [of(&config.cert), of(&config.key)]
}
