//! [`TlsConfig`]: the certificate, key and optional client CA of the
//! `wss://` listener. The files are read at `bind` (and again on a reload),
//! not when the configuration is parsed, so that an error names the file
//! at the moment it matters.

use std::path::PathBuf;

use serde::Deserialize;

/// The `tls:` section: PEM files for the `wss://` listener at
/// [`HubConfig::tls_listen`](super::HubConfig::tls_listen).
///
/// `#[non_exhaustive]`: build it with [`TlsConfig::new`] and assign fields.
///
/// ```
/// # use wshub::config::{HubConfig, TlsConfig};
/// let cfg = HubConfig::from_yaml_str(
///     "wsc:\n  tls_listen: 0.0.0.0:8443\n  tls:\n    cert_file: /etc/hub/chain.pem\n    key_file: /etc/hub/key.pem\n",
/// ).unwrap();
/// assert_eq!(cfg.tls, Some(TlsConfig::new("/etc/hub/chain.pem", "/etc/hub/key.pem")));
/// assert_eq!(cfg.tls_listen.port(), 8443);
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, the server's own certificate first.
    pub cert_file: PathBuf,
    /// The private key, PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key_file: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to. Set,
    /// every TLS client must present a valid certificate (mutual TLS), and
    /// the authenticator sees it (see
    /// [`Authenticator::authenticate_with_cert`](crate::Authenticator::authenticate_with_cert)).
    /// Default: none.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

impl TlsConfig {
    /// A server certificate chain and key, no client authentication.
    ///
    /// ```
    /// let tls = wshub::config::TlsConfig::new("chain.pem", "key.pem");
    /// assert!(tls.client_ca_file.is_none());
    /// ```
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        TlsConfig {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            client_ca_file: None,
        }
    }
}
