//! One client connection and the phases it goes through.
//!
//! ```text
//!  accept ─► Handshake ──101──► Open ──close sent/received──► Closing ─► removed
//!               │                                                ▲
//!               └── HTTP response (page, health, rejection) ─────┘
//! ```

pub(crate) mod outbox;
pub(crate) mod registry;
pub(crate) mod transport;

use std::time::Instant;

use mio::net::TcpStream;

use crate::auth::Identity;
use crate::conn::outbox::Outbox;
use crate::event::{ConnId, DisconnectReason};
use crate::util::timer::TimerKey;
use crate::ws::Decoder;
use crate::ws::deflate::Negotiated;

/// Where a connection is in its life.
#[derive(Debug)]
pub(crate) enum Phase {
    /// Reading the HTTP request head; the bytes so far.
    Handshake { head: Vec<u8> },
    /// Upgraded: WebSocket frames both ways.
    Open,
    /// Our last bytes (close frame or HTTP response) are queued or sent; the
    /// socket is kept until the peer closes or the linger timer fires, so
    /// that those bytes are not lost to a reset.
    Closing {
        /// What to report when it ends (nothing for plain HTTP requests).
        reason: Option<DisconnectReason>,
        /// The peer has sent its close frame (or we answer an HTTP request).
        peer_closed: bool,
    },
}

/// The timers a connection may hold, kept so that removal cancels them.
#[derive(Debug, Default)]
pub(crate) struct ConnTimers {
    /// Handshake deadline, then the close linger deadline.
    pub phase: Option<TimerKey>,
    /// Idle (client timeout) check.
    pub idle: Option<TimerKey>,
    /// Next server ping.
    pub heartbeat: Option<TimerKey>,
    /// The close when the connection's token expires.
    pub expiry: Option<TimerKey>,
    /// `send_timeout` check of the oldest queued frame.
    pub send: Option<TimerKey>,
}

pub(crate) struct Conn<const Q: usize> {
    pub stream: TcpStream,
    /// The TLS session of a `wss://` connection (see `transport`).
    pub tls: Option<transport::TlsSession>,
    pub id: ConnId,
    pub phase: Phase,
    /// Set once the handshake has authenticated the client.
    pub identity: Option<Identity>,
    pub decoder: Decoder,
    /// permessage-deflate as negotiated in the handshake; no compression
    /// state lives here (the hub's codec is shared).
    pub deflate: Option<Negotiated>,
    pub outbox: Outbox<Q>,
    /// Last time any byte arrived, for the idle timeout.
    pub last_seen: Instant,
    pub timers: ConnTimers,
    /// Listed in the hub's dirty list: has frames to flush this turn.
    pub dirty: bool,
    /// The socket returned WouldBlock on write: wait for writable readiness.
    pub write_blocked: bool,
    /// Registered for writable readiness (only while writes are blocked).
    pub write_interest: bool,
    /// We stopped reading before WouldBlock (fairness): listed for another turn.
    pub read_pending: bool,
    /// The peer's address, for `max_connections_per_ip` and the loopback
    /// check of the health endpoints.
    pub peer: std::net::IpAddr,
    /// Accepted on the admin listener: health and metrics only.
    pub admin: bool,
    /// Bytes held in partial input at the last count (see the hub's
    /// buffered-bytes budget).
    pub held: usize,
}

impl<const Q: usize> Conn<Q> {
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }
}
