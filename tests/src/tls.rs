//! A test CA made at test time (rcgen), the certificates it issues, and
//! clients that trust it: for the TLS tests of the listener, PostgreSQL,
//! Redis and the OTLP and webhook clients. Everything is written under a
//! directory of the test's own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA: its certificate on disk, and the key it signs with.
#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
    name: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its files under a fresh directory.
    pub fn new(name: &str) -> TestCa {
        let dir = std::env::temp_dir().join(format!(
            "trellis-tls-{}-{name}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir).expect("create the CA's directory");
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Trellis test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("a self-signed CA");
        std::fs::write(dir.join("ca.pem"), cert.pem()).expect("write ca.pem");
        TestCa {
            dir,
            name: name.to_string(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The directory its files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A server certificate for `127.0.0.1` and `localhost`, written as
    /// `<file>.pem` and `<file>-key.pem`.
    pub fn server(&self, file: &str) -> Issued {
        self.issue(
            file,
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate named `file`.
    pub fn client(&self, file: &str) -> Issued {
        self.issue(file, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, file: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{file} ({})", self.name));
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().expect("a leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        let issued = Issued {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}-key.pem")),
        };
        std::fs::write(&issued.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&issued.key, key.serialize_pem()).expect("write the key");
        issued
    }

    /// A rustls client configuration trusting only this CA, offering
    /// `alpn`, with `client` as its certificate when given.
    pub fn client_config(&self, alpn: &[&[u8]], client: Option<&Issued>) -> rustls::ClientConfig {
        let provider = trellis::tls::provider();
        let mut roots = rustls::RootCertStore::empty();
        for cert in trellis::tls::read_certs(&self.cert(), "CA file").expect("CA read") {
            roots.add(cert).expect("CA added");
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots);
        let mut config = match client {
            Some(issued) => builder
                .with_client_auth_cert(
                    trellis::tls::read_certs(&issued.cert, "certificate").expect("client cert"),
                    trellis::tls::read_key(&issued.key).expect("client key"),
                )
                .expect("client auth"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server-side acceptor serving `issued`, offering `alpn` (none: the
/// client's HTTP/1.1 is assumed).
pub fn acceptor(issued: &Issued, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let provider = trellis::tls::provider();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            trellis::tls::read_certs(&issued.cert, "certificate").expect("certificate"),
            trellis::tls::read_key(&issued.key).expect("key"),
        )
        .expect("a server config");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn unique() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
