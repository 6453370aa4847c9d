//! The binary's one TLS stack: rustls on the `ring` provider, for the
//! listener (`server`), PostgreSQL (sqlx), Redis (fred), OTLP export and
//! alert webhooks. Clients trust the system's roots (rustls-native-certs)
//! plus, where the config names one, a CA file of their own.
//!
//! Layer: the bottom, beside `clock` and `error`; it uses nothing of the
//! crate.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};

/// A certificate, key or CA file that cannot be used, named.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        /// `certificate`, `key`, `CA file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file holds nothing usable of its kind.
    #[error("the {what} {path} holds no PEM {what}: {detail}")]
    Pem {
        /// `certificate`, `key`, `CA file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        detail: String,
    },
    /// The key is not the certificate's, or rustls refuses it.
    #[error("the key {key} cannot serve the certificate {cert}: {detail}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        detail: String,
    },
    /// rustls refused a configuration built from valid files.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The provider every TLS configuration of the binary is built with.
///
/// ring, because sqlx (`tls-rustls-ring-native-roots`) and fred
/// (`enable-rustls-ring`) are built on it and one binary should carry one
/// provider. rustls 0.23.48 deprecates it for lacking post-quantum key
/// exchange; moving all three to aws-lc-rs is a feature switch.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes [`provider`] the process's default, for the libraries that build
/// their own configurations (sqlx, fred). Idempotent.
pub fn install_default_provider() {
    let _ = CryptoProvider::install_default(Arc::unwrap_or_clone(provider()));
}

/// The certificates (a chain, leaf first) in the PEM file `path`.
pub fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem(path, what, &err))?;
    if certs.is_empty() {
        return Err(pem(path, what, &"no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The private key (PKCS#8, PKCS#1 or SEC1) in the PEM file `path`.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, "key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|err| pem(path, "key", &err))
}

/// The certificate chain of `cert` with the key of `key`, checked to
/// belong together.
pub fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs(cert, "certificate")?;
    let der = read_key(key)?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|err| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        detail: err.to_string(),
    })
}

/// The roots a client trusts: the system's, plus those of `ca_file`.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(system.certs);
    if added == 0 && ca_file.is_none() {
        tracing::warn!(
            errors = ?system.errors,
            "no system root certificates found: TLS connections need a CA file"
        );
    }
    if let Some(path) = ca_file {
        for cert in read_certs(path, "CA file")? {
            roots.add(cert).map_err(|err| pem(path, "CA file", &err))?;
        }
    }
    Ok(roots)
}

/// A client configuration trusting [`roots`].
pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Config(err.to_string()))?;
    Ok(builder
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth())
}

/// A hyper connector for `http://` and `https://` URLs, the latter
/// trusting [`roots`] (OTLP export, alert webhooks).
pub fn https_connector(ca_file: Option<&Path>) -> Result<HttpsConnector<HttpConnector>, TlsError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config(ca_file)?)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http))
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn pem(path: &Path, what: &'static str, detail: &dyn std::fmt::Display) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}
