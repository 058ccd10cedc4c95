//! The `wss://` listener: binding it beside the plain one, a rustls session
//! for each connection it accepts, and certificate reloads.
//!
//! Everything after accept is shared with plain connections: the session
//! sits in `Conn::tls` and `conn/transport.rs` reads and writes through
//! it. The handshake deadline set at accept covers the TLS handshake too.

use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Interest, Registry, Token};
use rustls::{ServerConfig, ServerConnection};

use super::{Hub, Listener};
use crate::config::TlsConfig;
use crate::conn::transport::TlsSession;
use crate::error::BuildError;
use crate::tls::TlsError;

/// Bytes of encrypted records one connection's rustls session may hold
/// before the outbox waits for the socket: one full record and its
/// overhead. rustls' default (64 KiB) would let every slow TLS client hold
/// 64 KiB more than a plain one.
const TLS_SEND_LIMIT: usize = 16 * 1024 + 256;

/// The `wss://` listener and the configuration new sessions start from.
#[derive(Debug)]
pub(super) struct TlsListener {
    /// Taken (and deregistered) at shutdown.
    listener: Option<TcpListener>,
    pub(super) addr: SocketAddr,
    /// Replaced on a reload; open sessions keep the one they started with.
    config: Arc<ServerConfig>,
}

impl TlsListener {
    /// Loads the files of `cfg` (the error names the file at fault), binds
    /// `addr` and registers it under `token`.
    pub(super) fn bind(
        cfg: &TlsConfig,
        addr: SocketAddr,
        registry: &Registry,
        token: Token,
    ) -> Result<Self, BuildError> {
        let config = crate::tls::server_config(cfg).map_err(BuildError::Tls)?;
        let mut listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        registry.register(&mut listener, token, Interest::READABLE)?;
        log::info!("wss:// listening on {addr}");
        Ok(TlsListener {
            listener: Some(listener),
            addr,
            config,
        })
    }

    /// A server session for a freshly accepted socket.
    pub(super) fn session(&self) -> Result<TlsSession, rustls::Error> {
        let mut conn = ServerConnection::new(self.config.clone())?;
        conn.set_buffer_limit(Some(TLS_SEND_LIMIT));
        Ok(Box::new(conn))
    }
}

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// The plain listener, or the `wss://` one.
    pub(super) fn listener_for(&self, which: Listener) -> Option<&TcpListener> {
        match which {
            Listener::Public => self.listener.as_ref(),
            Listener::Tls => self.tls.as_ref()?.listener.as_ref(),
            Listener::Admin => self.admin_listener.as_ref(),
        }
    }

    /// A session for a socket accepted on the `wss://` listener (`None`
    /// for the plain one); `Err` when rustls cannot start one.
    pub(super) fn tls_session(&mut self, tls: bool) -> Result<Option<TlsSession>, ()> {
        let Some(listener) = self.tls.as_ref().filter(|_| tls) else {
            return Ok(None);
        };
        listener.session().map(Some).map_err(|e| {
            self.stats.tls_errors += 1;
            log::warn!("cannot start a TLS session: {e}");
        })
    }

    /// Stops accepting on the `wss://` listener (shutdown).
    pub(super) fn close_tls_listener(&mut self) {
        if let Some(mut l) = self.tls.as_mut().and_then(|t| t.listener.take()) {
            let _ = self.poll.registry().deregister(&mut l);
        }
    }

    /// The address of the `wss://` listener, when `tls` is configured.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|t| t.addr)
    }

    /// Reads the certificate, key and client CA files again and uses them
    /// for every TLS connection from now on; open connections keep theirs.
    /// On an error the old certificate stays in force.
    ///
    /// # Errors
    ///
    /// [`TlsError`] naming the file at fault; [`TlsError::NotConfigured`]
    /// when the hub has no `wss://` listener.
    pub fn reload_tls(&mut self) -> Result<(), TlsError> {
        let (Some(cfg), Some(listener)) = (&self.config.tls, &mut self.tls) else {
            return Err(TlsError::NotConfigured);
        };
        match crate::tls::server_config(cfg) {
            Ok(config) => {
                listener.config = config;
                self.stats.tls_reloads += 1;
                log::info!("TLS certificate reloaded from {}", cfg.cert_file.display());
                Ok(())
            }
            Err(e) => {
                self.stats.tls_reload_errors += 1;
                log::warn!("TLS reload failed, keeping the old certificate: {e}");
                Err(e)
            }
        }
    }
}
