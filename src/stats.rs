//! Counters the hub keeps as it runs. Plain integers owned by the hub thread:
//! counting costs an add, never a lock or an atomic.

use serde::Serialize;

/// A snapshot of the hub's counters.
///
/// ```
/// let s = wshub::Stats::default();
/// assert_eq!(s.connections, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Open WebSocket connections now.
    pub connections: u64,
    /// Users with at least one open connection now.
    pub users: u64,
    /// TCP connections accepted since start.
    pub accepted: u64,
    /// Handshakes that ended in an upgrade.
    pub upgraded: u64,
    /// Handshakes refused (bad request, authentication, limits, timeouts).
    pub rejected: u64,
    /// Connections refused at accept because the hub was full.
    pub refused_full: u64,
    /// Plain HTTP requests answered (pages, health, 404s).
    pub http_requests: u64,
    /// Inbound application messages handed to the host.
    pub messages_in: u64,
    /// Data frames written completely to a socket.
    pub messages_out: u64,
    /// Sends refused because a recipient's ring was full.
    pub queue_full_count: u64,
    /// Queued frames abandoned because their connection closed.
    pub dropped_on_close: u64,
    /// Inbound messages answered with a validation error.
    pub invalid_messages: u64,
    /// Connections closed for a protocol violation.
    pub protocol_errors: u64,
    /// Connections closed by the idle timeout.
    pub idle_timeouts: u64,
    /// Accept calls that failed (for example out of file descriptors).
    pub accept_errors: u64,
    /// Data frames waiting in all rings now.
    pub queued: u64,
}
