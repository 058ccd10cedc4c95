//! Errors returned to the host by the hub's own calls.

use std::fmt;

/// Why a send was not (fully) queued.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The user has no open connection (go-wsc's `user_offline`).
    UserOffline,
    /// The named connection or device does not exist (any more).
    NoSuchClient,
    /// Some recipients' rings were full (`queue_full`): the message was
    /// queued for `queued` devices and not for `full` devices.
    QueueFull {
        /// Devices that took the message.
        queued: usize,
        /// Devices whose ring was full.
        full: usize,
    },
    /// The message is larger than `max_message_size`.
    MessageTooLarge {
        /// Its size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The message could not be encoded as JSON.
    Encode(String),
    /// The hub is shutting down and takes no new messages.
    ShuttingDown,
    /// `max_pending_deliveries` deliveries are already under way.
    TooManyPending {
        /// The configured cap.
        limit: usize,
    },
    /// The user's devices are on other hubs of the cluster, and Redis
    /// cannot be reached right now.
    ClusterUnavailable,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::UserOffline => f.write_str("user is offline"),
            SendError::NoSuchClient => f.write_str("no such client"),
            SendError::QueueFull { queued, full } => {
                write!(f, "queue full for {full} device(s) (queued for {queued})")
            }
            SendError::MessageTooLarge { size, limit } => {
                write!(f, "message of {size} bytes exceeds the {limit}-byte limit")
            }
            SendError::Encode(e) => write!(f, "message could not be encoded: {e}"),
            SendError::ShuttingDown => f.write_str("hub is shutting down"),
            SendError::TooManyPending { limit } => {
                write!(
                    f,
                    "{limit} deliveries already pending (max_pending_deliveries)"
                )
            }
            SendError::ClusterUnavailable => {
                f.write_str("the user is on another hub and the cluster is unreachable")
            }
        }
    }
}

impl std::error::Error for SendError {}

/// Why the hub could not be built.
#[non_exhaustive]
#[derive(Debug)]
pub enum BuildError {
    /// Binding the listener or creating the poller failed.
    Io(std::io::Error),
    /// The configuration is invalid.
    Config(crate::config::ConfigError),
    /// The `tls` files could not be loaded (the error names the file).
    Tls(crate::TlsError),
    /// Query-string identities (the default `auth`) on an address other
    /// than loopback: anyone who can reach it could claim any user.
    UnsafeAuth {
        /// The address the hub would listen on.
        addr: std::net::SocketAddr,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Io(e) => write!(f, "cannot start hub: {e}"),
            BuildError::Config(e) => write!(f, "invalid hub config: {e}"),
            BuildError::Tls(e) => write!(f, "cannot start hub: {e}"),
            BuildError::UnsafeAuth { addr } => write!(
                f,
                "refusing to listen on {addr} with unauthenticated query-string identities: \
                 set `auth.mode: jwt` (with `auth.jwt.secret` or `auth.jwt.public_key_file`), \
                 or say `auth.mode: query` explicitly for a trusted network"
            ),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Io(e) => Some(e),
            BuildError::Config(e) => Some(e),
            BuildError::Tls(e) => Some(e),
            BuildError::UnsafeAuth { .. } => None,
        }
    }
}

impl From<std::io::Error> for BuildError {
    fn from(e: std::io::Error) -> Self {
        BuildError::Io(e)
    }
}
