//! The `wss://` runs: a throwaway CA and server certificate made at run
//! time (never committed), the rustls configurations both TLS servers and
//! the load client use, and where the server processes find the files.
//!
//! Both servers get the same certificate (ECDSA P-256, the CA's chain), the
//! same provider (`ring`) and rustls' default protocol versions and cipher
//! suites, so the handshake and the record cipher cost them the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The environment variable that tells a server process where the files are.
pub const DIR_VAR: &str = "COMPARE_TLS_DIR";

/// The files of one run: `ca.pem`, `server.pem` (chain), `server.key`.
pub struct Files {
    pub dir: PathBuf,
}

impl Files {
    /// Makes a CA and a certificate for `localhost` / 127.0.0.1 in a fresh
    /// directory under the system's temp dir.
    pub fn generate() -> Files {
        let dir = std::env::temp_dir().join(format!("wshub-compare-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("TLS temp dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "wshub compare CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        let files = Files { dir };
        std::fs::write(files.ca(), ca_cert.pem()).expect("write ca.pem");
        std::fs::write(files.cert(), cert.pem() + &ca_cert.pem()).expect("write server.pem");
        std::fs::write(files.key(), key.serialize_pem()).expect("write server.key");
        files
    }

    /// The files a server process was told about, if any.
    pub fn from_env() -> Option<Files> {
        std::env::var_os(DIR_VAR).map(|d| Files { dir: d.into() })
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The peer's server configuration: what wshub builds from the same
    /// files (ring, default versions, ALPN `http/1.1`), rustls' defaults
    /// otherwise.
    pub fn server_config(&self) -> std::io::Result<Arc<ServerConfig>> {
        let certs = certs(&self.cert())?;
        let key = PrivateKeyDer::from_pem_file(self.key()).map_err(std::io::Error::other)?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(std::io::Error::other)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The load client's configuration, trusting this run's CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for ca in certs(&self.ca()).expect("ca.pem") {
            roots.add(ca).expect("CA certificate");
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        // Only the parent made the directory; the servers merely read it.
        if std::env::var_os(DIR_VAR).is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> std::io::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .map_err(std::io::Error::other)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(std::io::Error::other)
}
