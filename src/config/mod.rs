//! Hub configuration: the seed's `wsc:` YAML (or the same shape in JSON),
//! validated into a plain [`HubConfig`].
//!
//! Every key lives under the root key `wsc:`; an absent key takes its
//! default, an unknown key is an error naming it. The seed's five keys
//! (`max_retries`, `base_delay`, `backoff_factor`, `retryable_errors`,
//! `non_retryable_errors`) keep their meaning and defaults exactly.
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
//!   retry_budget: {max_tokens: 1000, token_ratio: 0.1}   # or false / null to disable
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
//!   offline_queue_per_user: 0    # 0: no in-memory offline queue
//!   listen: 127.0.0.1:8080       # alias: addr
//!   ws_path: /ws
//!   health:
//!     enabled: true
//!     failure_stats_path: /health/failure-stats
//!     retry_config_path: /health/retry-config
//!     metrics_path: /metrics
//! ```
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

use std::fmt;
use std::net::{AddrParseError, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::failure::reason::ParseReasonError;
use crate::retry::{BudgetConfig, Jitter, PolicyError, ReasonSet, RetryPolicy};

/// The file formats [`HubConfig`] reads.
///
/// ```
/// # use std::path::Path;
/// # use wshub::config::ConfigFormat;
/// assert_eq!(ConfigFormat::from_path(Path::new("hub.yml")), Some(ConfigFormat::Yaml));
/// assert_eq!(ConfigFormat::from_path(Path::new("hub.toml")), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigFormat {
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
}

impl ConfigFormat {
    /// The format for a file name's extension (case-insensitive).
    ///
    /// ```
    /// # use std::path::Path;
    /// # use wshub::config::ConfigFormat;
    /// assert_eq!(ConfigFormat::from_path(Path::new("/etc/HUB.JSON")), Some(ConfigFormat::Json));
    /// ```
    pub fn from_path(path: &Path) -> Option<ConfigFormat> {
        let ext = path.extension()?.to_str()?;
        if ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml") {
            Some(ConfigFormat::Yaml)
        } else if ext.eq_ignore_ascii_case("json") {
            Some(ConfigFormat::Json)
        } else {
            None
        }
    }
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigFormat::Yaml => "YAML",
            ConfigFormat::Json => "JSON",
        })
    }
}

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// Serve the endpoints at all.
    pub enabled: bool,
    /// JSON failure statistics (the seed's `/health/failure-stats`).
    pub failure_stats_path: String,
    /// JSON retry settings (the seed's `/health/retry-config`).
    pub retry_config_path: String,
    /// Prometheus text metrics.
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
/// `#[non_exhaustive]`: start from [`Default`] and assign fields.
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
#[derive(Clone, Debug, PartialEq)]
pub struct HubConfig {
    /// Classification, backoff and budget (the seed's retry keys and more).
    pub retry: RetryPolicy,
    /// How long a `require_ack` message waits for its ACK.
    pub ack_timeout: Duration,
    /// How long a message may sit in a client's queue before `send_timeout`.
    pub send_timeout: Duration,
    /// Interval between server pings.
    pub heartbeat_interval: Duration,
    /// A client silent this long is disconnected (idle timeout).
    pub client_timeout: Duration,
    /// Deadline for the WebSocket handshake.
    pub handshake_timeout: Duration,
    /// How long a graceful shutdown may flush before it drops connections.
    pub shutdown_timeout: Duration,
    /// Largest accepted message, in bytes.
    pub max_message_size: usize,
    /// Largest accepted frame, in bytes; `None` means `max_message_size`.
    pub max_frame_size: Option<usize>,
    /// Connection limit; also the preallocated connection slab size.
    pub max_connections: usize,
    /// Devices one user may connect at once.
    pub max_connections_per_user: usize,
    /// Threads running failure handlers.
    pub handler_workers: usize,
    /// Bound of the channel feeding the handler workers.
    pub handler_queue_capacity: usize,
    /// Bound of the channel carrying `HubHandle` commands to the hub thread.
    pub command_queue_capacity: usize,
    /// Messages kept per offline user for replay on reconnect; 0 disables it.
    pub offline_queue_per_user: usize,
    /// Address the hub listens on.
    pub listen: SocketAddr,
    /// HTTP path of the WebSocket endpoint; `*` upgrades on any path (plain
    /// `GET`s still reach the pages and health endpoints).
    pub ws_path: String,
    /// Health and metrics endpoints.
    pub health: HealthConfig,
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
            offline_queue_per_user: 0,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ws_path: "/ws".to_owned(),
            health: HealthConfig::default(),
        }
    }
}

impl HubConfig {
    /// Reads and validates a `.yaml`, `.yml` or `.json` file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownExtension`] or [`ConfigError::Io`] for the file
    /// itself, then everything [`from_str_as`](Self::from_str_as) reports.
    ///
    /// ```
    /// # use wshub::config::{ConfigError, HubConfig};
    /// let dir = std::env::temp_dir().join(format!("wshub-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("hub.json");
    /// std::fs::write(&path, r#"{"wsc": {"max_retries": 1}}"#).unwrap();
    /// assert_eq!(HubConfig::from_file(&path).unwrap().retry.max_retries, 1);
    /// assert!(matches!(
    ///     HubConfig::from_file(dir.join("hub.ini")),
    ///     Err(ConfigError::UnknownExtension { .. })
    /// ));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<HubConfig, ConfigError> {
        let path = path.as_ref();
        let format =
            ConfigFormat::from_path(path).ok_or_else(|| ConfigError::UnknownExtension {
                path: path.to_owned(),
            })?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        HubConfig::from_str_as(&text, format)
    }

    /// Parses and validates YAML text. An empty document gives the defaults.
    ///
    /// # Errors
    ///
    /// As [`from_str_as`](Self::from_str_as).
    ///
    /// ```
    /// # use wshub::config::HubConfig;
    /// assert_eq!(HubConfig::from_yaml_str("").unwrap(), HubConfig::default());
    /// ```
    pub fn from_yaml_str(text: &str) -> Result<HubConfig, ConfigError> {
        HubConfig::from_str_as(text, ConfigFormat::Yaml)
    }

    /// Parses and validates JSON text.
    ///
    /// # Errors
    ///
    /// As [`from_str_as`](Self::from_str_as).
    ///
    /// ```
    /// # use wshub::config::HubConfig;
    /// let cfg = HubConfig::from_json_str(r#"{"wsc": {"jitter": "full"}}"#).unwrap();
    /// assert_eq!(cfg.retry.jitter, wshub::retry::Jitter::Full);
    /// ```
    pub fn from_json_str(text: &str) -> Result<HubConfig, ConfigError> {
        HubConfig::from_str_as(text, ConfigFormat::Json)
    }

    /// Parses and validates text in the given format.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] for malformed text, wrong types and unknown keys
    /// (with line and column); [`ConfigError::UnknownReason`],
    /// [`ConfigError::InvalidDuration`], [`ConfigError::NegativeDuration`],
    /// [`ConfigError::InvalidSize`] and [`ConfigError::InvalidAddress`] for
    /// values; then everything [`validate`](Self::validate) reports.
    ///
    /// ```
    /// # use wshub::config::{ConfigFormat, HubConfig};
    /// let cfg = HubConfig::from_str_as("{}", ConfigFormat::Json).unwrap();
    /// assert_eq!(cfg, HubConfig::default());
    /// ```
    pub fn from_str_as(text: &str, format: ConfigFormat) -> Result<HubConfig, ConfigError> {
        let raw: RawFile = match format {
            ConfigFormat::Yaml => serde_saphyr::from_str(text).map_err(|e| {
                let loc = e.location();
                ConfigError::Parse {
                    format,
                    line: loc.map(|l| l.line()),
                    column: loc.map(|l| l.column()),
                    // Our Display already says it is an error.
                    message: e.to_string().trim_start_matches("error: ").to_owned(),
                }
            })?,
            ConfigFormat::Json => serde_json::from_str(text).map_err(|e| {
                // serde_json reports line 0 when it has no position.
                let located = e.line() > 0;
                ConfigError::Parse {
                    format,
                    line: located.then_some(e.line() as u64),
                    column: located.then_some(e.column() as u64),
                    message: e.to_string(),
                }
            })?,
        };
        let config = raw.wsc.unwrap_or_default().into_config()?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the whole configuration, including one built in code.
    ///
    /// # Errors
    ///
    /// The first problem found: [`ConfigError::Retry`] for the retry policy,
    /// then zero timeouts, `client_timeout` not above `heartbeat_interval`,
    /// zero capacities, `max_frame_size` above `max_message_size`, and
    /// malformed or shared HTTP paths.
    ///
    /// ```
    /// # use wshub::config::{ConfigError, HubConfig};
    /// let mut cfg = HubConfig::default();
    /// cfg.max_connections = 0;
    /// assert!(matches!(cfg.validate(), Err(ConfigError::Zero { key: "max_connections" })));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.retry.validate()?;
        for (key, value) in [
            ("ack_timeout", self.ack_timeout),
            ("send_timeout", self.send_timeout),
            ("heartbeat_interval", self.heartbeat_interval),
            ("client_timeout", self.client_timeout),
            ("handshake_timeout", self.handshake_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroDuration { key });
            }
        }
        // Otherwise an idle but healthy client is dropped before it is pinged.
        if self.client_timeout <= self.heartbeat_interval {
            return Err(ConfigError::ClientTimeoutNotAboveHeartbeat {
                client_timeout: self.client_timeout,
                heartbeat_interval: self.heartbeat_interval,
            });
        }
        for (key, value) in [
            ("max_message_size", self.max_message_size),
            ("max_frame_size", self.max_frame_size.unwrap_or(1)),
            ("max_connections", self.max_connections),
            ("max_connections_per_user", self.max_connections_per_user),
            ("handler_workers", self.handler_workers),
            ("handler_queue_capacity", self.handler_queue_capacity),
            ("command_queue_capacity", self.command_queue_capacity),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { key });
            }
        }
        // A delivery numbers a user's devices with 16 bits.
        if self.max_connections_per_user > usize::from(u16::MAX) {
            return Err(ConfigError::TooManyPerUser {
                value: self.max_connections_per_user,
            });
        }
        if let Some(frame) = self.max_frame_size
            && frame > self.max_message_size
        {
            return Err(ConfigError::FrameLargerThanMessage {
                max_frame_size: frame,
                max_message_size: self.max_message_size,
            });
        }
        // `*` is the any-path wildcard the hub matches before the literal
        // paths, so it is neither malformed nor shared with them.
        let mut paths = Vec::with_capacity(4);
        if self.ws_path != "*" {
            paths.push(("ws_path", self.ws_path.as_str()));
        }
        if self.health.enabled {
            paths.extend([
                (
                    "health.failure_stats_path",
                    self.health.failure_stats_path.as_str(),
                ),
                (
                    "health.retry_config_path",
                    self.health.retry_config_path.as_str(),
                ),
                ("health.metrics_path", self.health.metrics_path.as_str()),
            ]);
        }
        for (i, &(key, path)) in paths.iter().enumerate() {
            // The hub matches the request path literally, so a query or
            // fragment here could never match.
            if !path.starts_with('/')
                || path.contains(|c: char| c.is_whitespace() || c == '?' || c == '#')
            {
                return Err(ConfigError::InvalidPath {
                    key,
                    value: path.to_owned(),
                });
            }
            if let Some(&(first, _)) = paths[..i].iter().find(|(_, p)| *p == path) {
                return Err(ConfigError::DuplicatePath {
                    first,
                    second: key,
                    path: path.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The `/health/retry-config` document for this configuration.
    ///
    /// ```
    /// # use wshub::config::HubConfig;
    /// let json = serde_json::to_value(HubConfig::default().retry_config_view()).unwrap();
    /// assert_eq!(json["base_delay"], "100ms");
    /// ```
    pub fn retry_config_view(&self) -> RetryConfigView<'_> {
        RetryConfigView::new(&self.retry)
    }
}

/// Serializes a [`RetryPolicy`] as the seed's `/health/retry-config` JSON,
/// extended with the keys wshub adds. Keys and value spellings are exactly
/// those of the config file, so the document parses back (under `wsc:`) to
/// the same policy.
///
/// ```
/// # use wshub::config::RetryConfigView;
/// # use wshub::retry::RetryPolicy;
/// let json = serde_json::to_string(&RetryConfigView::new(&RetryPolicy::default())).unwrap();
/// assert!(json.starts_with(r#"{"max_retries":3,"base_delay":"100ms","backoff_factor":2.0,"retryable_errors":["queue_full","timeout""#));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RetryConfigView<'a> {
    policy: &'a RetryPolicy,
}

impl<'a> RetryConfigView<'a> {
    /// A view of `policy`.
    ///
    /// ```
    /// # use wshub::config::RetryConfigView;
    /// # use wshub::retry::RetryPolicy;
    /// let policy = RetryPolicy::default();
    /// let _view = RetryConfigView::new(&policy);
    /// ```
    pub fn new(policy: &'a RetryPolicy) -> Self {
        RetryConfigView { policy }
    }
}

/// A duration in humantime spelling (`100ms`, `1s 500ms`), without allocating.
struct HumanDuration(Duration);

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(self.0))
    }
}

impl Serialize for RetryConfigView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Budget {
            max_tokens: u32,
            token_ratio: f64,
        }

        let p = self.policy;
        let mut map = serializer.serialize_map(Some(9))?;
        map.serialize_entry("max_retries", &p.max_retries)?;
        map.serialize_entry("base_delay", &HumanDuration(p.base_delay))?;
        map.serialize_entry("backoff_factor", &p.backoff_factor)?;
        map.serialize_entry("retryable_errors", &p.retryable)?;
        map.serialize_entry("non_retryable_errors", &p.non_retryable)?;
        map.serialize_entry("max_delay", &HumanDuration(p.max_delay))?;
        map.serialize_entry("jitter", &p.jitter)?;
        map.serialize_entry("max_total_time", &p.max_total_time.map(HumanDuration))?;
        map.serialize_entry(
            "retry_budget",
            &p.budget.map(|b| Budget {
                max_tokens: b.max_tokens,
                token_ratio: b.token_ratio,
            }),
        )?;
        map.end()
    }
}

/// A configuration that could not be read, parsed or accepted.
///
/// Every variant's message names the offending key.
///
/// ```
/// # use wshub::config::{ConfigError, HubConfig};
/// let err = HubConfig::from_yaml_str("wsc:\n  base_delay: -5ms\n").unwrap_err();
/// assert!(matches!(err, ConfigError::NegativeDuration { key: "base_delay", .. }));
/// assert!(err.to_string().contains("base_delay"));
/// ```
#[non_exhaustive]
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file name ends in neither `.yaml`, `.yml` nor `.json`.
    UnknownExtension {
        /// The file.
        path: PathBuf,
    },
    /// Malformed text, a value of the wrong type, or an unknown key.
    Parse {
        /// The format being parsed.
        format: ConfigFormat,
        /// 1-based line, when the parser knows it.
        line: Option<u64>,
        /// 1-based column, when the parser knows it.
        column: Option<u64>,
        /// The parser's explanation (for YAML, with a source snippet).
        message: String,
    },
    /// A duration that humantime cannot read.
    InvalidDuration {
        /// The key, relative to `wsc`.
        key: &'static str,
        /// The rejected text.
        value: String,
        /// Why it was rejected.
        source: humantime::DurationError,
    },
    /// A negative duration.
    NegativeDuration {
        /// The key, relative to `wsc`.
        key: &'static str,
        /// The rejected text.
        value: String,
    },
    /// A timeout or interval of zero.
    ZeroDuration {
        /// The key, relative to `wsc`.
        key: &'static str,
    },
    /// A byte size that is neither a non-negative integer nor a number with a
    /// unit (`B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`).
    InvalidSize {
        /// The key, relative to `wsc`.
        key: &'static str,
        /// The rejected text.
        value: String,
    },
    /// A capacity or size of zero.
    Zero {
        /// The key, relative to `wsc`.
        key: &'static str,
    },
    /// `listen` is not an `IP:port` socket address.
    InvalidAddress {
        /// The rejected text.
        value: String,
        /// Why it was rejected.
        source: AddrParseError,
    },
    /// An HTTP path that does not start with `/` or holds whitespace, `?` or `#`.
    InvalidPath {
        /// The key, relative to `wsc`.
        key: &'static str,
        /// The rejected path.
        value: String,
    },
    /// Two endpoints share a path.
    DuplicatePath {
        /// The first key using it.
        first: &'static str,
        /// The second key using it.
        second: &'static str,
        /// The shared path.
        path: String,
    },
    /// `max_connections_per_user` is above 65,535.
    TooManyPerUser {
        /// The configured value.
        value: usize,
    },
    /// `max_frame_size` exceeds `max_message_size`.
    FrameLargerThanMessage {
        /// The configured frame limit.
        max_frame_size: usize,
        /// The configured message limit.
        max_message_size: usize,
    },
    /// `client_timeout` is not longer than `heartbeat_interval`.
    ClientTimeoutNotAboveHeartbeat {
        /// The configured idle timeout.
        client_timeout: Duration,
        /// The configured ping interval.
        heartbeat_interval: Duration,
    },
    /// A classification list names no failure reason.
    UnknownReason {
        /// `retryable_errors` or `non_retryable_errors`.
        key: &'static str,
        /// 0-based position in the list.
        index: usize,
        /// The parse error, which lists the valid names.
        source: ParseReasonError,
    },
    /// The retry settings are incoherent.
    Retry(PolicyError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let human = humantime::format_duration;
        match self {
            ConfigError::Io { path, source } => {
                write!(f, "cannot read config {}: {source}", path.display())
            }
            ConfigError::UnknownExtension { path } => write!(
                f,
                "config file {} must end in .yaml, .yml or .json",
                path.display()
            ),
            ConfigError::Parse {
                format, message, ..
            } => write!(f, "invalid {format} config: {message}"),
            ConfigError::InvalidDuration { key, value, source } => {
                write!(f, "`{key}`: invalid duration {value:?}: {source}")
            }
            ConfigError::NegativeDuration { key, value } => {
                write!(f, "`{key}`: duration {value:?} is negative")
            }
            ConfigError::ZeroDuration { key } => write!(f, "`{key}` must be greater than zero"),
            ConfigError::InvalidSize { key, value } => write!(
                f,
                "`{key}`: invalid size {value:?}; use bytes or a number with B, KB, KiB, MB, MiB, GB or GiB"
            ),
            ConfigError::Zero { key } => write!(f, "`{key}` must be at least 1"),
            ConfigError::InvalidAddress { value, source } => {
                write!(f, "`listen`: {value:?} is not an IP:port address: {source}")
            }
            ConfigError::InvalidPath { key, value } => write!(
                f,
                "`{key}`: {value:?} must start with '/' and contain no whitespace, '?' or '#'"
            ),
            ConfigError::DuplicatePath {
                first,
                second,
                path,
            } => {
                write!(f, "`{second}` reuses {path:?}, already used by `{first}`")
            }
            ConfigError::TooManyPerUser { value } => write!(
                f,
                "`max_connections_per_user` ({value}) must be at most 65535"
            ),
            ConfigError::FrameLargerThanMessage {
                max_frame_size,
                max_message_size,
            } => write!(
                f,
                "`max_frame_size` ({max_frame_size}) must not exceed `max_message_size` ({max_message_size})"
            ),
            ConfigError::ClientTimeoutNotAboveHeartbeat {
                client_timeout,
                heartbeat_interval,
            } => write!(
                f,
                "`client_timeout` ({}) must be longer than `heartbeat_interval` ({})",
                human(*client_timeout),
                human(*heartbeat_interval),
            ),
            ConfigError::UnknownReason { key, index, source } => {
                write!(f, "`{key}[{index}]`: {source}")
            }
            ConfigError::Retry(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            ConfigError::InvalidDuration { source, .. } => Some(source),
            ConfigError::InvalidAddress { source, .. } => Some(source),
            ConfigError::UnknownReason { source, .. } => Some(source),
            ConfigError::Retry(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PolicyError> for ConfigError {
    fn from(e: PolicyError) -> Self {
        ConfigError::Retry(e)
    }
}

// ---------------------------------------------------------------------------
// Raw (serde) representation
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    // `Option` so that an empty document, or `wsc:` with every key commented
    // out (a YAML null), means "all defaults".
    #[serde(default)]
    wsc: Option<RawWsc>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWsc {
    max_retries: Option<u32>,
    base_delay: Option<RawDuration>,
    backoff_factor: Option<f64>,
    retryable_errors: Option<Vec<String>>,
    non_retryable_errors: Option<Vec<String>>,
    max_delay: Option<RawDuration>,
    jitter: Option<Jitter>,
    max_total_time: Option<RawDuration>,
    // Outer `None`: key absent (default budget); `Some(None)`: null (disabled).
    #[serde(default, deserialize_with = "present")]
    retry_budget: Option<Option<RawBudget>>,
    ack_timeout: Option<RawDuration>,
    send_timeout: Option<RawDuration>,
    heartbeat_interval: Option<RawDuration>,
    client_timeout: Option<RawDuration>,
    handshake_timeout: Option<RawDuration>,
    shutdown_timeout: Option<RawDuration>,
    max_message_size: Option<RawSize>,
    max_frame_size: Option<RawSize>,
    max_connections: Option<usize>,
    max_connections_per_user: Option<usize>,
    handler_workers: Option<usize>,
    handler_queue_capacity: Option<usize>,
    command_queue_capacity: Option<usize>,
    offline_queue_per_user: Option<usize>,
    #[serde(alias = "addr")]
    listen: Option<String>,
    ws_path: Option<String>,
    health: Option<RawHealth>,
}

/// Marks a key as present, keeping a null distinguishable from an absence.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    enabled: Option<bool>,
    failure_stats_path: Option<String>,
    retry_config_path: Option<String>,
    metrics_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudgetMap {
    max_tokens: Option<u32>,
    token_ratio: Option<f64>,
}

/// `retry_budget`: `true` (defaults), `false` (disabled) or a map.
enum RawBudget {
    Switch(bool),
    Map(RawBudgetMap),
}

impl<'de> Deserialize<'de> for RawBudget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A hand-written visitor instead of `#[serde(untagged)]`, which would
        // replace an unknown key inside the map by "did not match any variant".
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = RawBudget;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, null or a map with max_tokens and token_ratio")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawBudget, E> {
                Ok(RawBudget::Switch(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawBudget, A::Error> {
                RawBudgetMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawBudget::Map)
            }
        }

        d.deserialize_any(V)
    }
}

/// A duration as written; parsed in `into_config` so errors name the key.
struct RawDuration(String);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl Visitor<'_> for V {
            type Value = RawDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration string such as "100ms", "1.5s" or "2m""#)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_owned()))
            }
        }

        d.deserialize_str(V)
    }
}

/// A byte size as written: an integer, or text with a unit.
enum RawSize {
    Bytes(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl Visitor<'_> for V {
            type Value = RawSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a size in bytes, or a string such as "64KiB""#)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
                // Negative sizes go through the text path, which rejects them
                // with an error naming the key.
                Ok(u64::try_from(v).map_or_else(|_| RawSize::Text(v.to_string()), RawSize::Bytes))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_owned()))
            }
        }

        d.deserialize_any(V)
    }
}

fn parse_duration(key: &'static str, raw: RawDuration) -> Result<Duration, ConfigError> {
    let text = raw.0.trim();
    if text.starts_with('-') {
        return Err(ConfigError::NegativeDuration { key, value: raw.0 });
    }
    humantime::parse_duration(text).map_err(|source| ConfigError::InvalidDuration {
        key,
        value: raw.0.clone(),
        source,
    })
}

fn parse_size(key: &'static str, raw: RawSize) -> Result<usize, ConfigError> {
    let text = match raw {
        RawSize::Bytes(n) => {
            return usize::try_from(n).map_err(|_| ConfigError::InvalidSize {
                key,
                value: n.to_string(),
            });
        }
        RawSize::Text(text) => text,
    };
    let invalid = || ConfigError::InvalidSize {
        key,
        value: text.clone(),
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(multiplier)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(invalid)
}

/// Parses a classification list into (name as written, reasons) pairs.
fn parse_list(
    key: &'static str,
    names: &[String],
) -> Result<Vec<(&'static str, ReasonSet)>, ConfigError> {
    names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            ReasonSet::lookup_classification_name(name)
                .map_err(|source| ConfigError::UnknownReason { key, index, source })
        })
        .collect()
}

impl RawWsc {
    fn into_config(self) -> Result<HubConfig, ConfigError> {
        let mut c = HubConfig::default();
        let r = &mut c.retry;

        if let Some(v) = self.max_retries {
            r.max_retries = v;
        }
        if let Some(v) = self.base_delay {
            r.base_delay = parse_duration("base_delay", v)?;
        }
        if let Some(v) = self.backoff_factor {
            r.backoff_factor = v;
        }
        r.max_delay = match self.max_delay {
            Some(v) => parse_duration("max_delay", v)?,
            // max_delay is not a seed key: a seed config with a long
            // base_delay must not fail on a cap it never set.
            None => r.max_delay.max(r.base_delay),
        };
        if let Some(v) = self.jitter {
            r.jitter = v;
        }
        r.max_total_time = self
            .max_total_time
            .map(|v| parse_duration("max_total_time", v))
            .transpose()?;
        r.budget = match self.retry_budget {
            None | Some(Some(RawBudget::Switch(true))) => Some(BudgetConfig::default()),
            Some(None | Some(RawBudget::Switch(false))) => None,
            Some(Some(RawBudget::Map(m))) => {
                let d = BudgetConfig::default();
                Some(BudgetConfig {
                    max_tokens: m.max_tokens.unwrap_or(d.max_tokens),
                    token_ratio: m.token_ratio.unwrap_or(d.token_ratio),
                })
            }
        };

        // Overlap is checked on the lists as written, so the error can say
        // `timeout` overlaps `ack_timeout` rather than name an internal bit.
        let retryable = self
            .retryable_errors
            .as_deref()
            .map(|v| parse_list("retryable_errors", v))
            .transpose()?;
        let non_retryable = self
            .non_retryable_errors
            .as_deref()
            .map(|v| parse_list("non_retryable_errors", v))
            .transpose()?;
        let union = |list: &[(&str, ReasonSet)]| {
            list.iter()
                .fold(ReasonSet::EMPTY, |acc, &(_, s)| acc.union(s))
        };
        match (&retryable, &non_retryable) {
            (Some(yes), Some(no)) => {
                for &(rn, rs) in yes {
                    if let Some(&(nn, _)) =
                        no.iter().find(|(_, ns)| !rs.intersection(*ns).is_empty())
                    {
                        return Err(PolicyError::ReasonInBothLists {
                            retryable: rn,
                            non_retryable: nn,
                        }
                        .into());
                    }
                }
                r.retryable = union(yes);
                r.non_retryable = union(no);
            }
            // With one list written, its entries leave the other list's
            // default, so `retryable_errors: [user_offline]` alone works.
            (Some(yes), None) => {
                r.retryable = union(yes);
                r.non_retryable = ReasonSet::DEFAULT_NON_RETRYABLE.difference(r.retryable);
            }
            (None, Some(no)) => {
                r.non_retryable = union(no);
                r.retryable = ReasonSet::DEFAULT_RETRYABLE.difference(r.non_retryable);
            }
            (None, None) => {}
        }

        for (key, slot, value) in [
            ("ack_timeout", &mut c.ack_timeout, self.ack_timeout),
            ("send_timeout", &mut c.send_timeout, self.send_timeout),
            (
                "heartbeat_interval",
                &mut c.heartbeat_interval,
                self.heartbeat_interval,
            ),
            ("client_timeout", &mut c.client_timeout, self.client_timeout),
            (
                "handshake_timeout",
                &mut c.handshake_timeout,
                self.handshake_timeout,
            ),
            (
                "shutdown_timeout",
                &mut c.shutdown_timeout,
                self.shutdown_timeout,
            ),
        ] {
            if let Some(v) = value {
                *slot = parse_duration(key, v)?;
            }
        }
        if let Some(v) = self.max_message_size {
            c.max_message_size = parse_size("max_message_size", v)?;
        }
        c.max_frame_size = self
            .max_frame_size
            .map(|v| parse_size("max_frame_size", v))
            .transpose()?;
        for (slot, value) in [
            (&mut c.max_connections, self.max_connections),
            (
                &mut c.max_connections_per_user,
                self.max_connections_per_user,
            ),
            (&mut c.handler_workers, self.handler_workers),
            (&mut c.handler_queue_capacity, self.handler_queue_capacity),
            (&mut c.command_queue_capacity, self.command_queue_capacity),
            (&mut c.offline_queue_per_user, self.offline_queue_per_user),
        ] {
            if let Some(v) = value {
                *slot = v;
            }
        }
        if let Some(v) = self.listen {
            c.listen = v
                .trim()
                .parse()
                .map_err(|source| ConfigError::InvalidAddress {
                    value: v.clone(),
                    source,
                })?;
        }
        if let Some(v) = self.ws_path {
            c.ws_path = v;
        }
        if let Some(h) = self.health {
            let health = &mut c.health;
            if let Some(v) = h.enabled {
                health.enabled = v;
            }
            for (slot, value) in [
                (&mut health.failure_stats_path, h.failure_stats_path),
                (&mut health.retry_config_path, h.retry_config_path),
                (&mut health.metrics_path, h.metrics_path),
            ] {
                if let Some(v) = value {
                    *slot = v;
                }
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::reason::{FailureReason, TimeoutKind};

    const SEED_YAML: &str = r#"
# config.yaml
wsc:
  max_retries: 3
  base_delay: 100ms
  backoff_factor: 2.0
  retryable_errors:
    - "queue_full"
    - "timeout"
    - "conn_error"
    - "channel_closed"
    - "network_unreachable"
  non_retryable_errors:
    - "user_offline"
    - "permission"
    - "validation"
    - "authentication_failed"
    - "message_too_large"
"#;

    fn yaml(body: &str) -> Result<HubConfig, ConfigError> {
        HubConfig::from_yaml_str(&format!("wsc:\n{body}"))
    }

    fn yaml_err(body: &str) -> ConfigError {
        yaml(body).expect_err(body)
    }

    #[test]
    fn per_user_limit_fits_the_delivery_device_index() {
        let mut c = HubConfig {
            max_connections_per_user: 65_535,
            ..HubConfig::default()
        };
        assert!(c.validate().is_ok());
        c.max_connections_per_user = 65_536;
        let e = c.validate().unwrap_err();
        assert!(matches!(e, ConfigError::TooManyPerUser { value: 65_536 }));
        assert!(e.to_string().contains("max_connections_per_user"));
    }

    #[test]
    fn seed_block_equals_defaults() {
        assert_eq!(
            HubConfig::from_yaml_str(SEED_YAML).unwrap(),
            HubConfig::default()
        );
    }

    #[test]
    fn seed_environment_snippets() {
        let cases = [
            (
                "max_retries: 2\n  base_delay: 50ms\n  backoff_factor: 1.5",
                2,
                50,
                1.5,
            ),
            (
                "max_retries: 5\n  base_delay: 200ms\n  backoff_factor: 2.0",
                5,
                200,
                2.0,
            ),
            (
                "max_retries: 10\n  base_delay: 100ms\n  backoff_factor: 1.2  # 较小的退避因子，更快重试",
                10,
                100,
                1.2,
            ),
        ];
        for (body, retries, ms, factor) in cases {
            let c = yaml(&format!("  {body}\n")).unwrap();
            assert_eq!(c.retry.max_retries, retries);
            assert_eq!(c.retry.base_delay, Duration::from_millis(ms));
            assert_eq!(c.retry.backoff_factor, factor);
            assert_eq!(c.retry.retryable, ReasonSet::DEFAULT_RETRYABLE);
        }
    }

    #[test]
    fn json_equivalent() {
        let json = r#"{"wsc": {"max_retries": 3, "base_delay": "100ms", "backoff_factor": 2.0,
            "retryable_errors": ["queue_full", "timeout", "conn_error", "channel_closed", "network_unreachable"],
            "non_retryable_errors": ["user_offline", "permission", "validation", "authentication_failed", "message_too_large"]}}"#;
        assert_eq!(
            HubConfig::from_json_str(json).unwrap(),
            HubConfig::default()
        );
    }

    #[test]
    fn empty_inputs_give_defaults() {
        for text in ["", "# nothing\n", "wsc:\n", "wsc: {}\n"] {
            assert_eq!(
                HubConfig::from_yaml_str(text).unwrap(),
                HubConfig::default(),
                "{text:?}"
            );
        }
        assert_eq!(
            HubConfig::from_json_str(r#"{"wsc": null}"#).unwrap(),
            HubConfig::default()
        );
    }

    #[test]
    fn every_extra_key() {
        let c = yaml(
            "  max_delay: 2m\n  jitter: equal\n  max_total_time: 1.5s\n  retry_budget: {max_tokens: 20, token_ratio: 0.5}\n  \
             ack_timeout: 1s\n  send_timeout: 2s\n  heartbeat_interval: 10s\n  client_timeout: 25s\n  handshake_timeout: 3s\n  \
             max_message_size: 1MiB\n  max_frame_size: 16384\n  max_connections: 100\n  max_connections_per_user: 2\n  \
             handler_workers: 4\n  handler_queue_capacity: 64\n  offline_queue_per_user: 10\n  addr: 0.0.0.0:9000\n  \
             ws_path: /socket\n  health:\n    enabled: false\n    metrics_path: /m\n",
        )
        .unwrap();
        assert_eq!(c.retry.max_delay, Duration::from_secs(120));
        assert_eq!(c.retry.jitter, Jitter::Equal);
        assert_eq!(c.retry.max_total_time, Some(Duration::from_millis(1500)));
        assert_eq!(
            c.retry.budget,
            Some(BudgetConfig {
                max_tokens: 20,
                token_ratio: 0.5
            })
        );
        assert_eq!(
            (
                c.ack_timeout,
                c.send_timeout,
                c.heartbeat_interval,
                c.client_timeout,
                c.handshake_timeout
            ),
            (
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(10),
                Duration::from_secs(25),
                Duration::from_secs(3)
            )
        );
        assert_eq!(
            (c.max_message_size, c.max_frame_size),
            (1 << 20, Some(16384))
        );
        assert_eq!(
            (
                c.max_connections,
                c.max_connections_per_user,
                c.handler_workers,
                c.handler_queue_capacity,
                c.offline_queue_per_user
            ),
            (100, 2, 4, 64, 10)
        );
        assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(c.ws_path, "/socket");
        assert!(!c.health.enabled);
        assert_eq!(c.health.metrics_path, "/m");
        assert_eq!(c.health.retry_config_path, "/health/retry-config");
    }

    #[test]
    fn durations() {
        let base = |s: &str| yaml(&format!("  base_delay: {s}\n")).map(|c| c.retry.base_delay);
        assert_eq!(base("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(base("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(base("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(base("0ms").unwrap(), Duration::ZERO);
        // Without an explicit max_delay the cap follows a long base_delay.
        let c = yaml("  base_delay: 1h 30m\n").unwrap();
        assert_eq!(c.retry.max_delay, Duration::from_secs(5400));
        let err = base("-5ms").unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::NegativeDuration {
                    key: "base_delay",
                    ..
                }
            ),
            "{err}"
        );
        for bad in ["100", "fast", "5 parsecs"] {
            let err = base(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::InvalidDuration {
                        key: "base_delay",
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("base_delay"), "{err}");
        }
        // A non-string in JSON is a parse error with a position.
        let err = HubConfig::from_json_str(r#"{"wsc": {"base_delay": 100}}"#).unwrap_err();
        assert!(
            matches!(err, ConfigError::Parse { line: Some(1), .. })
                && err.to_string().contains("duration"),
            "{err}"
        );
    }

    #[test]
    fn sizes() {
        let size =
            |s: &str| yaml(&format!("  max_message_size: {s}\n")).map(|c| c.max_message_size);
        assert_eq!(size("65536").unwrap(), 65536);
        assert_eq!(size("64KiB").unwrap(), 65536);
        assert_eq!(size("\"64 kb\"").unwrap(), 64_000);
        assert_eq!(size("2MB").unwrap(), 2_000_000);
        for bad in ["-1", "12XB", "KiB", "99999999999GiB"] {
            let err = size(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::InvalidSize {
                        key: "max_message_size",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
        assert!(matches!(
            size("0"),
            Err(ConfigError::Zero {
                key: "max_message_size"
            })
        ));
    }

    #[test]
    fn budget_forms() {
        let budget = |s: &str| yaml(&format!("  retry_budget: {s}\n")).map(|c| c.retry.budget);
        assert_eq!(budget("false").unwrap(), None);
        assert_eq!(budget("null").unwrap(), None);
        assert_eq!(budget("true").unwrap(), Some(BudgetConfig::default()));
        assert_eq!(
            budget("{max_tokens: 7}").unwrap(),
            Some(BudgetConfig {
                max_tokens: 7,
                token_ratio: 0.1
            })
        );
        let err = budget("{max_tokens: 7, burst: 1}").unwrap_err();
        assert!(err.to_string().contains("burst"), "{err}");
        let err = budget("{token_ratio: 0}").unwrap_err();
        assert!(
            err.to_string().contains("retry_budget.token_ratio"),
            "{err}"
        );
        let err = budget("{max_tokens: 0}").unwrap_err();
        assert!(err.to_string().contains("retry_budget.max_tokens"), "{err}");
        assert_eq!(
            HubConfig::from_json_str(r#"{"wsc": {"retry_budget": null}}"#)
                .unwrap()
                .retry
                .budget,
            None
        );
        assert!(HubConfig::from_json_str(r#"{"wsc": {"retry_budget": 3}}"#).is_err());
    }

    #[test]
    fn unknown_key_is_named_with_position() {
        let err = yaml_err("  max_retries: 3\n  max_retry: 4\n");
        match &err {
            ConfigError::Parse {
                format: ConfigFormat::Yaml,
                line: Some(3),
                column: Some(3),
                ..
            } => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("max_retry"), "{err}");
        let err = HubConfig::from_yaml_str("wsc: {}\nother: 1\n").unwrap_err();
        assert!(err.to_string().contains("other"), "{err}");
        let err = yaml_err("  health: {enabled: true, path: /x}\n");
        assert!(err.to_string().contains("path"), "{err}");
        let err = HubConfig::from_json_str("{\"wsc\": {\n  \"jitter\": \"some\"}}").unwrap_err();
        assert!(
            matches!(err, ConfigError::Parse { line: Some(2), .. }),
            "{err}"
        );
        assert!(err.to_string().contains("equal"), "{err}");
    }

    #[test]
    fn unknown_reason_lists_valid_names() {
        let err = yaml_err("  retryable_errors: [queue_full, disk_full]\n");
        assert!(
            matches!(
                &err,
                ConfigError::UnknownReason {
                    key: "retryable_errors",
                    index: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        for name in FailureReason::CLASSIFICATION_NAMES {
            assert!(msg.contains(name), "{msg} lacks {name}");
        }
        let msg = yaml_err("  non_retryable_errors: [rate_limit_permanent]\n").to_string();
        assert!(msg.contains("rate_limited"), "{msg}");
        let msg = yaml_err("  retryable_errors: [temporary]\n").to_string();
        assert!(
            msg.contains("temporary") && msg.contains("network_unreachable"),
            "{msg}"
        );
    }

    #[test]
    fn timeout_kinds_classify_separately() {
        let c = yaml(
            "  retryable_errors: [send_timeout, connection_timeout]\n  non_retryable_errors: [ack_timeout, user_offline]\n",
        )
        .unwrap();
        assert!(
            c.retry
                .is_retryable(FailureReason::Timeout(TimeoutKind::Send))
        );
        assert!(
            !c.retry
                .is_retryable(FailureReason::Timeout(TimeoutKind::Ack))
        );
        // `timeout` covers ack_timeout, so this is an overlap.
        let err =
            yaml_err("  retryable_errors: [timeout]\n  non_retryable_errors: [ack_timeout]\n");
        assert!(matches!(
            err,
            ConfigError::Retry(PolicyError::ReasonInBothLists {
                retryable: "timeout",
                non_retryable: "ack_timeout"
            })
        ));
        assert!(err.to_string().contains("retryable_errors"), "{err}");
        // One list alone overrides the other list's default.
        let c = yaml("  retryable_errors: [user_offline]\n").unwrap();
        assert!(c.retry.is_retryable(FailureReason::UserOffline));
        assert!(!c.retry.is_retryable(FailureReason::QueueFull));
        assert_eq!(c.retry.non_retryable.len(), 4);
        let c = yaml("  non_retryable_errors: [timeout]\n").unwrap();
        assert!(
            !c.retry
                .is_retryable(FailureReason::Timeout(TimeoutKind::Send))
        );
        assert!(c.retry.is_retryable(FailureReason::QueueFull));
        assert!(!c.retry.is_retryable(FailureReason::UserOffline));
    }

    #[test]
    fn validation_errors_name_their_key() {
        let cases: &[(&str, &str)] = &[
            ("  backoff_factor: 0.5\n", "backoff_factor"),
            ("  backoff_factor: .nan\n", "backoff_factor"),
            ("  backoff_factor: .inf\n", "backoff_factor"),
            ("  max_delay: 50ms\n", "max_delay"),
            ("  max_total_time: 0s\n", "max_total_time"),
            ("  max_delay: soon\n", "max_delay"),
            ("  ack_timeout: 0s\n", "ack_timeout"),
            ("  send_timeout: 0s\n", "send_timeout"),
            ("  handshake_timeout: 0ms\n", "handshake_timeout"),
            ("  heartbeat_interval: 0s\n", "heartbeat_interval"),
            ("  client_timeout: 30s\n", "client_timeout"),
            ("  max_connections: 0\n", "max_connections"),
            (
                "  max_connections_per_user: 0\n",
                "max_connections_per_user",
            ),
            ("  handler_workers: 0\n", "handler_workers"),
            ("  handler_queue_capacity: 0\n", "handler_queue_capacity"),
            ("  max_frame_size: 0\n", "max_frame_size"),
            ("  max_frame_size: 1MiB\n", "max_frame_size"),
            ("  listen: localhost\n", "listen"),
            ("  ws_path: ws\n", "ws_path"),
            ("  ws_path: /metrics\n", "health.metrics_path"),
            (
                "  health: {retry_config_path: /x?y}\n",
                "health.retry_config_path",
            ),
            (
                "  retryable_errors: [queue_full]\n  non_retryable_errors: [queue_full]\n",
                "queue_full",
            ),
            ("  max_retries: -1\n", "max_retries"),
        ];
        for (body, key) in cases {
            let err = yaml_err(body);
            assert!(err.to_string().contains(key), "{body:?}: {err}");
        }
        // A disabled health endpoint frees its path.
        assert!(yaml("  ws_path: /metrics\n  health: {enabled: false}\n").is_ok());
        // `*` (any path) is the wildcard the hub understands, not a bad path.
        assert!(yaml("  ws_path: \"*\"\n").is_ok());
        assert!(
            yaml_err("  ws_path: \"*x\"\n")
                .to_string()
                .contains("ws_path")
        );
    }

    #[test]
    fn code_built_config_validates() {
        let mut c = HubConfig::default();
        c.retry.non_retryable.insert(FailureReason::ConnError);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Retry(PolicyError::ReasonInBothLists {
                retryable: "conn_error",
                non_retryable: "conn_error"
            }))
        ));
    }

    #[test]
    fn files_by_extension() {
        let dir = std::env::temp_dir().join(format!("wshub-cfg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in [
            ("a.yaml", SEED_YAML),
            ("b.YML", SEED_YAML),
            ("c.json", r#"{"wsc": {}}"#),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            assert_eq!(
                HubConfig::from_file(&path).unwrap(),
                HubConfig::default(),
                "{name}"
            );
        }
        let missing = HubConfig::from_file(dir.join("missing.yaml")).unwrap_err();
        assert!(matches!(missing, ConfigError::Io { .. }), "{missing}");
        assert!(missing.to_string().contains("missing.yaml"));
        // YAML text in a .json file is read as JSON and rejected.
        let path = dir.join("d.json");
        std::fs::write(&path, SEED_YAML).unwrap();
        assert!(matches!(
            HubConfig::from_file(&path),
            Err(ConfigError::Parse {
                format: ConfigFormat::Json,
                ..
            })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retry_config_view_matches_seed_and_round_trips() {
        let json = serde_json::to_string(&HubConfig::default().retry_config_view()).unwrap();
        assert_eq!(
            json,
            r#"{"max_retries":3,"base_delay":"100ms","backoff_factor":2.0,"retryable_errors":["queue_full","timeout","conn_error","channel_closed","network_unreachable"],"non_retryable_errors":["user_offline","permission","validation","authentication_failed","message_too_large"],"max_delay":"30s","jitter":"equal","max_total_time":null,"retry_budget":{"max_tokens":1000,"token_ratio":0.1}}"#
        );

        let mut policy = RetryPolicy {
            max_retries: 7,
            base_delay: Duration::from_millis(1500),
            backoff_factor: 1.25,
            max_delay: Duration::from_secs(3723),
            jitter: Jitter::Full,
            max_total_time: Some(Duration::from_micros(2_000_500)),
            retryable: ReasonSet::of(&[
                FailureReason::Timeout(TimeoutKind::Send),
                FailureReason::RateLimited,
            ]),
            non_retryable: ReasonSet::of(&[FailureReason::Timeout(TimeoutKind::Ack)]),
            budget: None,
        };
        for budget in [
            None,
            Some(BudgetConfig {
                max_tokens: 9,
                token_ratio: 0.25,
            }),
        ] {
            policy.budget = budget;
            let view = serde_json::to_string(&RetryConfigView::new(&policy)).unwrap();
            let back = HubConfig::from_json_str(&format!(r#"{{"wsc": {view}}}"#)).unwrap();
            assert_eq!(back.retry, policy, "{view}");
        }
    }
}
