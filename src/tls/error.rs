//! [`TlsError`]: why the TLS configuration could not be loaded.

use std::fmt;
use std::path::PathBuf;

/// Why the `tls:` files could not be turned into a server configuration.
/// Each variant names the file at fault.
///
/// ```
/// let err = wshub::TlsError::NoCertificate { path: "chain.pem".into() };
/// assert_eq!(err.to_string(), "no PEM certificate in chain.pem");
/// ```
#[non_exhaustive]
#[derive(Debug)]
pub enum TlsError {
    /// The crate was built without the `tls` feature.
    NotCompiled,
    /// A reload was asked for, but the hub has no `tls` section.
    NotConfigured,
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file holds no (valid) PEM certificate.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no (valid) PEM private key (PKCS#8, PKCS#1 or SEC1).
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key cannot be used, or does not match the certificate.
    BadKey {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls found wrong.
        reason: String,
    },
    /// The client CA file holds no usable CA certificate.
    BadClientCa {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::NotCompiled => {
                f.write_str("`tls` is configured but wshub was built without its `tls` feature")
            }
            TlsError::NotConfigured => f.write_str("no `tls` section is configured"),
            TlsError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            TlsError::NoCertificate { path } => {
                write!(f, "no PEM certificate in {}", path.display())
            }
            TlsError::NoKey { path } => write!(
                f,
                "no PEM private key (PKCS#8, RSA or EC) in {}",
                path.display()
            ),
            TlsError::BadKey { cert, key, reason } => write!(
                f,
                "key {} does not fit certificate {}: {reason}",
                key.display(),
                cert.display()
            ),
            TlsError::BadClientCa { path, reason } => {
                write!(f, "client CA file {}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}
