//! What the hub tells its host: connections coming and going, and the
//! application messages clients send.

use std::fmt;

use crate::auth::Identity;
use crate::message::{Message, Payload};
use crate::ws::CloseCode;

/// Names one connection. A `ConnId` goes stale when its connection closes: a
/// later connection that reuses the slot gets a different id, so a send or
/// kick through a stale id is refused instead of reaching someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl ConnId {
    /// The slab index (also the mio token) behind this id; reused over time.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}.{}", self.index, self.generation)
    }
}

/// Why a connection ended.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The client sent a close frame with this code
    /// ([`CloseCode::STATUS`], 1005, when it gave none).
    ClientClosed(CloseCode),
    /// The TCP connection ended without a close handshake.
    ConnectionLost,
    /// Reading or writing failed with this I/O error kind.
    Io(std::io::ErrorKind),
    /// The client broke the protocol; the hub closed with this code
    /// ([`CloseCode::PROTOCOL`], [`CloseCode::INVALID`] for invalid UTF-8,
    /// [`CloseCode::SIZE`] for a message too large).
    ProtocolError(CloseCode),
    /// Nothing arrived within the client timeout (the heartbeat was lost).
    IdleTimeout,
    /// The host kicked the connection.
    Kicked,
    /// A newer connection with the same user and client id took its place.
    Replaced,
    /// The hub is shutting down.
    Shutdown,
    /// The connection's token expired (closed with 4001).
    TokenExpired,
    /// The hub's buffered-bytes budget ran out and this connection held the
    /// most (closed with 1008).
    MemoryLimit,
}

impl DisconnectReason {
    /// A short stable name, for logs and metrics.
    ///
    /// ```
    /// assert_eq!(wshub::DisconnectReason::IdleTimeout.as_str(), "idle_timeout");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ClientClosed(_) => "client_closed",
            DisconnectReason::ConnectionLost => "connection_lost",
            DisconnectReason::Io(_) => "io_error",
            DisconnectReason::ProtocolError(_) => "protocol_error",
            DisconnectReason::IdleTimeout => "idle_timeout",
            DisconnectReason::Kicked => "kicked",
            DisconnectReason::Replaced => "replaced",
            DisconnectReason::Shutdown => "shutdown",
            DisconnectReason::TokenExpired => "token_expired",
            DisconnectReason::MemoryLimit => "memory_limit",
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::ClientClosed(code) => write!(f, "client closed ({code})"),
            DisconnectReason::Io(kind) => write!(f, "I/O error: {kind}"),
            DisconnectReason::ProtocolError(code) => write!(f, "protocol error (closed {code})"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// An event for the host, drained with [`Hub::next_event`](crate::Hub::next_event).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum HubEvent {
    /// A client finished its handshake.
    Connected {
        /// The new connection.
        conn: ConnId,
        /// Who it is.
        identity: Identity,
    },
    /// A connection ended; messages still queued for it have been failed.
    Disconnected {
        /// The connection that ended.
        conn: ConnId,
        /// Who it was.
        identity: Identity,
        /// Why it ended.
        reason: DisconnectReason,
    },
    /// A client sent an application message. `sender` and `sender_type` are
    /// already stamped from the connection's identity.
    ///
    /// This event allocates (the decoded `Message`, its strings, the box):
    /// for an allocation-free path use the built-in relay
    /// ([`HubConfig::relay`](crate::HubConfig::relay)), whose filter sees
    /// each message borrowed ([`RelayView`](crate::RelayView)), or turn the
    /// JSON protocol off and take [`HubEvent::Text`].
    Message {
        /// The sending connection.
        conn: ConnId,
        /// Who sent it.
        identity: Identity,
        /// The message (boxed: it is large, and events wait in a queue).
        message: Box<Message>,
    },
    /// A client sent a text frame while the hub's JSON protocol is off
    /// ([`Hub::set_json_protocol`](crate::Hub::set_json_protocol)).
    Text {
        /// The sending connection.
        conn: ConnId,
        /// Who sent it.
        identity: Identity,
        /// The text, already framed for sending: pass it to
        /// [`Hub::send`](crate::Hub::send) to echo or forward it without a
        /// copy; [`Payload::as_str`](crate::Payload::as_str) reads it. Its
        /// buffer comes from the hub's frame pool (up to 8 KiB) and goes
        /// back once every ring and the host have dropped it: handling it
        /// allocates nothing. Keeping it for long keeps a pool slot busy.
        text: Payload,
    },
    /// A client sent a binary frame (the JSON protocol has no meaning for it;
    /// the host decides).
    Binary {
        /// The sending connection.
        conn: ConnId,
        /// Who sent it.
        identity: Identity,
        /// The bytes, already framed for sending and pooled (see `Text`);
        /// [`Payload::body`](crate::Payload::body) reads them.
        data: Payload,
    },
}
