//! Counters the hub keeps as it runs. Plain integers owned by the hub thread:
//! counting costs an add, never a lock or an atomic.

use serde::Serialize;

/// A snapshot of the hub's counters.
///
/// ```
/// let s = wshub::Stats::default();
/// assert_eq!(s.connections, 0);
/// ```
#[non_exhaustive]
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
    /// Every failure reported (each failed device of each attempt, and each
    /// failed plain send), as the seed counts `total_failures`.
    pub total_failures: u64,
    /// `queue_full` failures: a recipient's ring was full.
    pub queue_full_count: u64,
    /// `user_offline` failures.
    pub offline_count: u64,
    /// Timeouts of every kind (`ack_timeout`, `send_timeout`, `connection_timeout`).
    pub timeout_count: u64,
    /// `conn_error` failures: the connection broke with the message pending.
    pub conn_error_count: u64,
    /// `ack_timeout` failures.
    pub ack_timeouts: u64,
    /// `send_timeout` failures.
    pub send_timeouts: u64,
    /// `connection_timeout` failures (heartbeat lost with messages pending).
    pub connection_timeouts: u64,
    /// Failures of any other reason (`message_too_large`, …).
    pub other_failures: u64,
    /// Retries scheduled.
    pub retries: u64,
    /// Deliveries that succeeded after at least one retry.
    pub retry_successes: u64,
    /// Deliveries that succeeded.
    pub deliveries_succeeded: u64,
    /// Deliveries that finally failed.
    pub final_failures: u64,
    /// Deliveries not yet final.
    pub pending_deliveries: u64,
    /// Failures not handed to the handlers because their queue was full.
    pub handler_dropped: u64,
    /// Handler calls that panicked (caught).
    pub handler_panics: u64,
    /// Failures handled by the worker pool.
    pub handler_handled: u64,
    /// Failures waiting for a handler worker now.
    pub handler_backlog: u64,
    /// Messages kept for offline users.
    pub offline_stored: u64,
    /// Offline messages replayed on reconnect.
    pub offline_replayed: u64,
    /// Offline messages dropped unreplayed (evicted or expired).
    pub offline_dropped: u64,
    /// Offline messages evicted by a cap (per user, hub-wide count or bytes).
    pub offline_evicted: u64,
    /// Offline messages that outlived `offline_ttl`.
    pub offline_expired: u64,
    /// Offline messages held now.
    pub offline_held: u64,
    /// Bytes of offline messages held now.
    pub offline_bytes: u64,
    /// With-retry deliveries that waited in a connection's backlog for ring
    /// space or ACK window (back-pressure, not failure).
    pub backlog_waits: u64,
    /// Of those, the ones that waited for the ACK window (`max_inflight_acks`).
    pub inflight_window_full: u64,
    /// `require_ack` frames queued or written and not yet ACKed now.
    pub acks_in_flight: u64,
    /// ACKs that matched no message in flight on their connection.
    pub unknown_acks: u64,
    /// Deliveries refused because `max_pending_deliveries` were under way.
    pub pending_cap_refusals: u64,
    /// Messages refused because the same id was already in flight to the
    /// device (client-chosen ids only).
    pub duplicate_ids: u64,
    /// Queued frames failed because their connection closed.
    pub dropped_on_close: u64,
    /// Inbound messages answered with a validation error.
    pub invalid_messages: u64,
    /// `HubHandle` sends that failed for a reason no failure handler sees
    /// (unknown device or connection, too large, shutting down); logged too.
    pub command_errors: u64,
    /// Control frames and hub notices (pongs, pings, `error`, `kick_out`)
    /// not queued because a connection's control lane was full.
    pub control_dropped: u64,
    /// Connections closed for a protocol violation.
    pub protocol_errors: u64,
    /// Connections closed by the idle timeout.
    pub idle_timeouts: u64,
    /// Accept calls that failed (for example out of file descriptors).
    pub accept_errors: u64,
    /// TLS connections dropped for a TLS error: plain HTTP or garbage on
    /// the `wss://` port, an untrusted client certificate, a broken record.
    /// (A handshake that stalls counts as `rejected`, as a plain one does.)
    pub tls_errors: u64,
    /// Successful TLS certificate reloads.
    pub tls_reloads: u64,
    /// TLS reloads that failed (the old certificate stayed in force).
    pub tls_reload_errors: u64,
    /// Client messages the built-in relay routed.
    pub relayed: u64,
    /// Client messages the relay filter dropped.
    pub relay_dropped: u64,
    /// Frames made outside the hub's frame pool (relayed messages, raw
    /// text and binary events, pongs) because every pooled one was still
    /// in use or the frame was longer than the pool keeps (8 KiB): an
    /// allocation each.
    pub relay_pool_misses: u64,
    /// 1 while this hub is linked to its cluster's Redis (0 when not, or
    /// without a cluster).
    pub cluster_up: u64,
    /// Other hubs of the cluster heard from now.
    pub cluster_nodes: u64,
    /// Devices on other hubs this hub knows of now.
    pub cluster_remote_devices: u64,
    /// Messages published to other hubs.
    pub cluster_sent: u64,
    /// Messages heard from other hubs.
    pub cluster_received: u64,
    /// Failures for `cluster_unavailable` (also in `other_failures`): a
    /// device on another hub that Redis or that hub did not reach.
    pub cluster_unavailable: u64,
    /// Publishes lost when the link to Redis broke under them (their
    /// tracked deliveries fail by deadline and are retried), and presence
    /// changes dropped because the bridge's queue was full.
    pub cluster_lost: u64,
    /// Messages to another hub that nobody received (that hub had gone
    /// without a goodbye): failed at once as `cluster_unavailable`.
    pub cluster_unheard: u64,
    /// Unreadable messages heard on this hub's channels.
    pub cluster_malformed: u64,
    /// Times the link to Redis went down.
    pub cluster_link_downs: u64,
    /// Devices of other hubs not tracked: past the cap of four per local
    /// connection slot.
    pub cluster_refused_devices: u64,
    /// Data frames waiting in all rings now.
    pub queued: u64,
    /// Groups with at least one member now.
    pub groups: u64,
    /// (group, connection) memberships now.
    pub memberships: u64,
    /// Standing user memberships (`join_user` with `sticky`) now.
    pub sticky_memberships: u64,
    /// Sends to a group (plain and with retry), each counted once.
    pub group_sends: u64,
    /// Joins and leaves refused: by the group policy, a limit or a bad name.
    pub group_refusals: u64,
    /// Upgrades refused by the authenticator (401 and the like).
    pub auth_failures: u64,
    /// Upgrades refused for an `Origin` not in `allowed_origins` (403).
    pub origin_rejected: u64,
    /// Connections refused by `max_connections_per_ip` (503).
    pub per_ip_rejected: u64,
    /// Health or metrics requests refused on the public port (403).
    pub admin_forbidden: u64,
    /// Connections closed (1008) because the hub's buffered bytes passed
    /// `max_buffered_bytes` and they held the most.
    pub buffer_evictions: u64,
    /// Connections closed (4001) because their token expired.
    pub tokens_expired: u64,
    /// Client messages refused for a type only the hub may send.
    pub reserved_types: u64,
    /// Bytes held now in partial HTTP heads, frames and messages.
    pub buffered_bytes: u64,
    /// Upgrades that negotiated permessage-deflate.
    pub deflate_negotiated: u64,
    /// Outbound messages compressed: one per send however many of its
    /// recipients negotiated compression (a broadcast counts once).
    pub deflate_compressed: u64,
}
