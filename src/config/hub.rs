//! [`HubConfig`] and [`HealthConfig`]: every setting, its default, and its
//! spelling in a file.
//!
//! A key is a field: its doc, its `serde` attribute (how it is spelled, when
//! not a plain number, bool or string) and its line in `Default` are all a
//! new key needs, plus a check in `validate.rs` when not every value makes
//! sense.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::TlsConfig;
use super::security::AuthConfig;
use super::{ClusterConfig, CompressionConfig, values};
use crate::retry::RetryPolicy;

/// Built-in HTTP endpoints served on the hub's own port.
///
/// `#[non_exhaustive]`: start from [`Default`] and assign fields.
///
/// ```
/// # use wshub::config::HealthConfig;
/// let health = HealthConfig::default();
/// assert!(health.enabled);
/// assert_eq!(health.metrics_path, "/metrics");
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Serve the endpoints at all. Default: true.
    pub enabled: bool,
    /// JSON failure statistics (the seed's `/health/failure-stats`).
    pub failure_stats_path: String,
    /// JSON retry settings (the seed's `/health/retry-config`).
    pub retry_config_path: String,
    /// Prometheus text metrics. Default: `/metrics`.
    pub metrics_path: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            failure_stats_path: "/health/failure-stats".to_owned(),
            retry_config_path: "/health/retry-config".to_owned(),
            metrics_path: "/metrics".to_owned(),
        }
    }
}

/// Everything a hub is configured with.
///
/// Build it from a file ([`from_file`](Self::from_file)), a string
/// ([`from_yaml_str`](Self::from_yaml_str), [`from_json_str`](Self::from_json_str)),
/// or in code from [`Default`] followed by [`validate`](Self::validate).
///
/// `#[non_exhaustive]`: start from [`Default`] and assign fields. Keys are
/// added often (this release added seven), and `non_exhaustive` keeps each
/// addition from breaking code built against the previous one; the price is
/// that code outside the crate cannot use struct-update syntax
/// (`HubConfig { x, ..Default::default() }`), which no test, example or
/// bench relies on.
///
/// Its `Deserialize` follows the struct, so a `HubConfig` can sit inside an
/// embedder's own config: the retry keys go under `retry`. Config files
/// follow the seed instead, with the retry keys beside the others under
/// `wsc:` (see [the module docs](crate::config)).
///
/// ```
/// # use std::time::Duration;
/// # use wshub::config::HubConfig;
/// let cfg = HubConfig::from_yaml_str("wsc:\n  max_retries: 5\n  base_delay: 1.5s\n").unwrap();
/// assert_eq!(cfg.retry.max_retries, 5);
/// assert_eq!(cfg.retry.base_delay, Duration::from_millis(1500));
/// assert_eq!(cfg.max_connections, 10_000); // default
///
/// let mut in_code = HubConfig::default();
/// in_code.handler_workers = 4;
/// assert!(in_code.validate().is_ok());
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Classification, backoff and budget (the seed's retry keys and more).
    pub retry: RetryPolicy,
    /// How long a `require_ack` message waits for its ACK. Default: 5s.
    #[serde(deserialize_with = "values::duration")]
    pub ack_timeout: Duration,
    /// How long a message may sit in a client's queue before `send_timeout`.
    /// Default: 10s.
    #[serde(deserialize_with = "values::duration")]
    pub send_timeout: Duration,
    /// Interval between server pings. Default: 30s.
    #[serde(deserialize_with = "values::duration")]
    pub heartbeat_interval: Duration,
    /// A client silent this long is disconnected (idle timeout). Default:
    /// 90s, three heartbeats, so one lost pong does not drop a client.
    #[serde(deserialize_with = "values::duration")]
    pub client_timeout: Duration,
    /// Deadline for the WebSocket handshake. Default: 5s.
    #[serde(deserialize_with = "values::duration")]
    pub handshake_timeout: Duration,
    /// How long a graceful shutdown may flush before it drops connections.
    /// Default: 5s.
    #[serde(deserialize_with = "values::duration")]
    pub shutdown_timeout: Duration,
    /// Largest accepted message, in bytes (a size: `64KiB`). Default: 64 KiB.
    #[serde(deserialize_with = "values::size")]
    pub max_message_size: usize,
    /// Largest accepted frame, in bytes; `None` means `max_message_size`.
    #[serde(deserialize_with = "values::optional_size")]
    pub max_frame_size: Option<usize>,
    /// Connection limit; also the preallocated connection slab size.
    /// Default: 10,000.
    pub max_connections: usize,
    /// Devices one user may connect at once; at most 65,535. Default: 8.
    pub max_connections_per_user: usize,
    /// Threads running failure handlers. Default: 2.
    pub handler_workers: usize,
    /// Bound of the channel feeding the handler workers. Default: 1024.
    pub handler_queue_capacity: usize,
    /// Bound of the channel carrying `HubHandle` commands to the hub thread.
    /// Default: 4096.
    pub command_queue_capacity: usize,
    /// Keep a client's own `message_id` instead of assigning one.
    ///
    /// Default: false. The hub then gives every client message an ID of its
    /// own, unique and not guessable, so ACKs and de-duplication cannot be
    /// confused or forged by a client choosing colliding IDs. Set it only
    /// when every client is trusted and relies on its own IDs end to end (as
    /// some go-wsc deployments do); a message without an ID still gets one.
    pub trust_client_message_ids: bool,
    /// Route client messages in the hub itself, as go-wsc's hub does: by
    /// `receiver` (and `receiver_client`), stamped with `sender`,
    /// `sender_type`, `create_at` and a hub-assigned `message_id`;
    /// `require_ack` ones through the delivery engine with retry. The host
    /// sees them only if its relay filter asks (`Hub::set_relay_filter`).
    /// Default: false (client messages go to the host as `HubEvent::Message`).
    pub relay: bool,
    /// With `relay`, let a client send to `receiver: "*"`: every other
    /// connected user. Default: false (a validation error to the sender),
    /// since one client could otherwise flood everyone.
    pub client_broadcast: bool,
    /// Written `require_ack` messages one connection may have unacknowledged
    /// at once; more wait until ACKs free a place. Between 1 and 65,535.
    ///
    /// Default: 256, as MQTT 5's Receive Maximum bounds a session's unacked
    /// messages: enough to keep a link busy at any realistic round trip,
    /// small enough that a client which never ACKs holds a bounded amount.
    /// The upper bound lets the hub count them in 16 bits per connection.
    pub max_inflight_acks: usize,
    /// Bytes of with-retry deliveries one connection may hold waiting for
    /// ring space (a size: `1MiB`, `512KiB`, `1048576`); past it the
    /// delivery fails as `queue_full` (as does, once the ring is full, a
    /// message larger than the whole backlog). At least 1.
    ///
    /// Default: 1 MiB. A full ring is back-pressure, not failure: this
    /// backlog absorbs a burst of sixteen maximum-size messages while the
    /// client catches up, and bounds what one slow client costs.
    #[serde(deserialize_with = "values::size")]
    pub pending_per_conn: usize,
    /// Deliveries not yet final (waiting for space, an ACK or a retry) across
    /// the hub; a new with-retry send past it is refused at once.
    ///
    /// Default: 65,536: far above what a healthy hub has in flight, and
    /// small enough that a failure storm cannot grow the delivery table
    /// without bound.
    pub max_pending_deliveries: usize,
    /// Messages kept per offline user for replay on reconnect; 0 disables
    /// the in-memory offline queue. Default: 0 (the offline handlers get
    /// every such message either way).
    pub offline_queue_per_user: usize,
    /// Messages the offline queue keeps across all users; the oldest go
    /// first. At least 1.
    ///
    /// Default: 100,000, so that many users each under their own limit
    /// still cannot fill memory.
    pub offline_max_messages: usize,
    /// Bytes the offline queue keeps across all users (a size: `64MiB`); the
    /// oldest go first. At least 1.
    ///
    /// Default: 64 MiB, the byte counterpart of `offline_max_messages`.
    #[serde(deserialize_with = "values::size")]
    pub offline_max_bytes: usize,
    /// How long an offline message is kept for replay before it is dropped
    /// (and counted).
    ///
    /// Default: 24h: a device offline for a day is better served by the
    /// offline handlers' durable store than by a stale in-memory replay.
    #[serde(deserialize_with = "values::duration")]
    pub offline_ttl: Duration,
    /// Groups that may exist at once (a group exists while it has a
    /// member); a join that would create one more is refused with
    /// `TooManyGroups`. At least 1.
    ///
    /// Default: 10,000: a room per connection at the default connection
    /// limit, and a bound on the names a hub keeps.
    pub max_groups: usize,
    /// Groups one connection may be in at once; a join past it is refused
    /// with `TooManyForConnection`. Also the cap of one user's standing
    /// memberships (`join_user` with `sticky`). At least 1.
    ///
    /// Default: 16. Joining and leaving walk a connection's own groups,
    /// so this keeps them O(1); a device in more rooms than that is rare.
    pub max_groups_per_connection: usize,
    /// Address the hub listens on (alias `addr`). Default: 127.0.0.1:8080.
    #[serde(alias = "addr", deserialize_with = "values::socket_addr")]
    pub listen: SocketAddr,
    /// HTTP path of the WebSocket endpoint; `*` upgrades on any path (plain
    /// `GET`s still reach the pages and health endpoints). Default: `/ws`.
    pub ws_path: String,
    /// Health and metrics endpoints.
    pub health: HealthConfig,
    /// Certificate and key of the `wss://` listener; `None` (the default)
    /// serves plain `ws://` only. See the README's TLS section.
    pub tls: Option<TlsConfig>,
    /// Address of the `wss://` listener, bound only when `tls` is set; the
    /// plain `listen` stays open beside it (bind it to loopback for health
    /// and metrics). Default: 127.0.0.1:8443.
    #[serde(deserialize_with = "values::socket_addr")]
    pub tls_listen: SocketAddr,
    /// Who a connection is: `auth: {mode: jwt, jwt: {...}}` or
    /// `auth: {mode: query}`. Default: query-string identities, refused by
    /// `bind` on a non-loopback address (see [`AuthConfig`]).
    pub auth: AuthConfig,
    /// Origins a browser may upgrade from (`https://app.example.com`,
    /// compared without case); a request with another `Origin` gets 403.
    /// Empty (the default): any origin. Clients that send no `Origin`
    /// (non-browsers) are not affected.
    pub allowed_origins: Vec<String>,
    /// A second listener (`HOST:PORT`, same loop) for the health and metrics
    /// endpoints; the public port then answers 404 for them. Without it
    /// (the default) they are served on the public port to loopback peers
    /// only (403 otherwise).
    #[serde(deserialize_with = "values::optional_socket_addr")]
    pub admin_listen: Option<SocketAddr>,
    /// Connections (handshaking or open) one IP address may hold; more get
    /// 503. 0 disables the check. Default: 256.
    pub max_connections_per_ip: usize,
    /// Bytes the hub may hold across all connections in partial HTTP heads,
    /// partial frames and partial messages (a size: `64MiB`). Past it the
    /// connection holding the most is closed (1008) and counted.
    ///
    /// Default (`null`): 4 KiB per allowed connection, and at least sixteen
    /// maximum-size messages, so that a full hub of slow but honest clients
    /// fits while a trickle attack cannot grow memory without bound.
    #[serde(deserialize_with = "values::optional_size")]
    pub max_buffered_bytes: Option<usize>,
    /// permessage-deflate.
    pub compression: CompressionConfig,
    /// Hubs sharing users through Redis; `None` (the default): this hub
    /// alone, with no thread or socket for it. See the README's cluster
    /// section.
    pub cluster: Option<ClusterConfig>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            retry: RetryPolicy::default(),
            ack_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(30),
            client_timeout: Duration::from_secs(90),
            handshake_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
            max_message_size: 64 * 1024,
            max_frame_size: None,
            max_connections: 10_000,
            max_connections_per_user: 8,
            handler_workers: 2,
            handler_queue_capacity: 1024,
            command_queue_capacity: 4096,
            trust_client_message_ids: false,
            relay: false,
            client_broadcast: false,
            max_inflight_acks: 256,
            pending_per_conn: 1 << 20,
            max_pending_deliveries: 65_536,
            offline_queue_per_user: 0,
            offline_max_messages: 100_000,
            offline_max_bytes: 64 << 20,
            offline_ttl: Duration::from_secs(24 * 60 * 60),
            max_groups: 10_000,
            max_groups_per_connection: 16,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ws_path: "/ws".to_owned(),
            health: HealthConfig::default(),
            tls: None,
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            auth: AuthConfig::default(),
            allowed_origins: Vec::new(),
            admin_listen: None,
            max_connections_per_ip: 256,
            max_buffered_bytes: None,
            compression: CompressionConfig::default(),
            cluster: None,
        }
    }
}

impl HubConfig {
    /// The buffered-bytes budget in force: `max_buffered_bytes`, or its
    /// default sized from `max_connections` and `max_message_size`.
    ///
    /// ```
    /// let cfg = wshub::HubConfig::default();
    /// assert_eq!(cfg.buffered_budget(), 10_000 * 4096);
    /// ```
    pub fn buffered_budget(&self) -> usize {
        self.max_buffered_bytes.unwrap_or_else(|| {
            let per_conn = self.max_connections.saturating_mul(4096);
            per_conn.max(self.max_message_size.saturating_mul(16))
        })
    }
}
