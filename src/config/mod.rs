//! Hub configuration: the seed's `wsc:` YAML (or the same shape in JSON),
//! validated into a plain [`HubConfig`].
//!
//! Every key lives under the root key `wsc:`; an absent key takes its
//! default, an unknown key is an error naming it, with its line and column.
//! The seed's five keys (`max_retries`, `base_delay`, `backoff_factor`,
//! `retryable_errors`, `non_retryable_errors`) keep their meaning and
//! defaults exactly. Each key is documented on its [`HubConfig`] field (the
//! retry keys on [`RetryPolicy`](crate::retry::RetryPolicy)).
//!
//! ```yaml
//! wsc:
//!   max_retries: 3
//!   base_delay: 100ms            # humantime: 100ms, 1.5s, 2m, 1h 30m
//!   backoff_factor: 2.0
//!   retryable_errors: [queue_full, timeout, conn_error, channel_closed, network_unreachable]
//!   non_retryable_errors: [user_offline, permission, validation, authentication_failed, message_too_large]
//!   max_delay: 30s               # default: the larger of 30s and base_delay
//!   jitter: equal                # none | full | equal (the seed has none)
//!   max_total_time: null         # a duration, or null for no cap
//!   retry_budget: {max_tokens: 1000, token_ratio: 0.1}   # per user; or false / null to disable
//!   ack_timeout: 5s
//!   send_timeout: 10s
//!   heartbeat_interval: 30s
//!   client_timeout: 90s          # idle timeout; must exceed heartbeat_interval
//!   handshake_timeout: 5s
//!   shutdown_timeout: 5s         # graceful shutdown: flush deadline
//!   max_message_size: 64KiB      # bytes, or a size with B/KB/KiB/MB/MiB/GB/GiB
//!   max_frame_size: null         # null: same as max_message_size
//!   max_connections: 10000
//!   max_connections_per_user: 8
//!   handler_workers: 2
//!   handler_queue_capacity: 1024
//!   command_queue_capacity: 4096 # HubHandle commands waiting for the hub thread
//!   trust_client_message_ids: false  # true: keep a client's own message_id
//!   max_inflight_acks: 256       # per connection: written, not yet ACKed
//!   pending_per_conn: 1MiB       # per connection: with-retry bytes waiting for ring space
//!   max_pending_deliveries: 65536  # hub-wide: deliveries not yet final
//!   offline_queue_per_user: 0    # 0: no in-memory offline queue
//!   offline_max_messages: 100000 # hub-wide caps of that queue
//!   offline_max_bytes: 64MiB
//!   offline_ttl: 24h
//!   max_groups: 10000            # groups (with a member) at once
//!   max_groups_per_connection: 16  # also a user's standing memberships
//!   listen: 127.0.0.1:8080       # alias: addr
//!   ws_path: /ws
//!   compression:               # permessage-deflate (RFC 7692)
//!     enabled: true
//!     min_size: 256B             # smaller messages go uncompressed
//!     level: 3                   # zlib level 0-9
//!     server_max_window_bits: 15 # 8-15; below 15 said to every client
//!     client_no_context_takeover: true  # must stay true (shared inflater)
//!   health:
//!     enabled: true
//!     failure_stats_path: /health/failure-stats
//!     retry_config_path: /health/retry-config
//!     metrics_path: /metrics
//!   auth:                        # absent: query-string identities, loopback only
//!     mode: jwt                  # jwt | query (query: go-wsc's ?user_id=, trusted networks)
//!     jwt:
//!       secret: change-me-to-32-or-more-bytes  # HS256/384/512; or:
//!       public_key_file: null    # PEM for RS*/PS*/ES256/ES384/EdDSA
//!       issuer: null             # required `iss` when set
//!       audience: null           # required in `aud` when set
//!       leeway: 0s               # clock skew for exp/nbf, at most 10m
//!   allowed_origins: []          # browser Origins allowed to upgrade; empty: any
//!   admin_listen: null           # HOST:PORT for /health/* and /metrics; null: public port, loopback peers only
//!   max_connections_per_ip: 256  # 0: no limit
//!   max_buffered_bytes: null     # partial heads/frames/messages, hub-wide; null: 4KiB x max_connections
//!   cluster: null                # {redis_url: redis://host:6379/0, node_id: hub-1, presence_ttl: 10s}
//! ```
//!
//! Every duration is at most [`MAX_DURATION`] (365 days), so no deadline
//! computed from one can overflow.
//!
//! Classification lists accept every [`FailureReason`](crate::failure::reason::FailureReason) name plus `timeout`
//! (all three timeout types). When both lists are written, a reason may
//! appear in only one, including through `timeout` (`timeout` retryable with
//! `ack_timeout` non-retryable is rejected: write the two other timeout types
//! instead), so a config never relies on a precedence rule to mean what it
//! says. When only one list is written, its entries are taken out of the
//! other list's default. A reason in neither list is not retried.
//!
//! YAML is read with `serde-saphyr`: serde_yaml is deprecated, and of its
//! maintained successors serde-saphyr is the pure-Rust one (serde_norway and
//! serde_yaml_ng wrap a machine translation of libyaml full of `unsafe`). It
//! is built to be panic-free on hostile input, honours `deny_unknown_fields`,
//! and reports line and column with a source snippet.
//!
//! | file | what it holds |
//! |---|---|
//! | `hub.rs` | [`HubConfig`] and [`HealthConfig`]: the keys, their docs and defaults |
//! | `security.rs` | [`AuthConfig`]: the `auth:` section |
//! | `cluster.rs` | [`ClusterConfig`], the `cluster:` section (Redis) |
//! | `compression.rs` | [`CompressionConfig`], the `compression:` section |
//! | `retry_keys.rs` | the retry policy's keys and their defaulting rules |
//! | `values.rs` | how durations, byte sizes and addresses are spelled |
//! | `file.rs` | [`ConfigFormat`] and reading a file's `wsc:` section |
//! | `validate.rs` | [`HubConfig::validate`] |
//! | `error.rs` | [`ConfigError`] |
//! | `view.rs` | [`RetryConfigView`], the `/health/retry-config` document |

mod cluster;
mod compression;
mod error;
mod file;
mod hub;
mod retry_keys;
mod security;
mod tls;
mod validate;
mod values;
mod view;

pub use cluster::{ClusterConfig, RedisAddr};
pub use compression::CompressionConfig;
pub use error::ConfigError;
pub use file::ConfigFormat;
pub use hub::{HealthConfig, HubConfig};
pub use security::{AuthConfig, AuthMode, JwtConfig, MAX_LEEWAY};
pub use tls::TlsConfig;
pub use view::RetryConfigView;

pub use crate::retry::MAX_DURATION;
