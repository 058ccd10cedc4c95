//! TLS (`wss://`): loading the certificate and key into a rustls server
//! configuration, and the errors that names the file at fault.
//!
//! rustls is sans-IO: the hub drives each connection's `ServerConnection`
//! from its own mio loop (see `conn/transport.rs`), as rustls' mio server
//! example does. The crypto provider is `ring`: it builds in seconds with
//! only a C compiler for its few assembly files, and runs on the small
//! targets (ARMv7, AArch64, RISC-V) this crate is for; `aws-lc-rs` needs
//! cmake and a much longer build on a 2-core machine.

mod error;
#[cfg(feature = "tls")]
mod load;

pub use error::TlsError;
#[cfg(feature = "tls")]
pub(crate) use load::server_config;
