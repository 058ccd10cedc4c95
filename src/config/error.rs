//! [`ConfigError`]: a configuration that could not be read, parsed or
//! accepted. Every message names the offending key.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::ConfigFormat;
use crate::retry::{MAX_DURATION, PolicyError};

/// A configuration that could not be read, parsed or accepted.
///
/// Every variant's message names the offending key.
///
/// ```
/// # use wshub::config::{ConfigError, HubConfig};
/// let err = HubConfig::from_yaml_str("wsc:\n  base_delay: -5ms\n").unwrap_err();
/// assert!(matches!(err, ConfigError::Parse { key: Some("base_delay"), line: Some(2), .. }));
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
    /// Malformed text, an unknown key, or a value that cannot be read: of
    /// the wrong type, a malformed duration, size or address, an unknown
    /// failure reason.
    #[non_exhaustive]
    Parse {
        /// The format being parsed.
        format: ConfigFormat,
        /// The key (under `wsc`) whose value was being read, when the
        /// error is in a value; an unknown key is named in `message`.
        key: Option<&'static str>,
        /// 1-based line, when the parser knows it.
        line: Option<u64>,
        /// 1-based column, when the parser knows it.
        column: Option<u64>,
        /// The parser's explanation (for YAML, with a source snippet).
        message: String,
    },
    /// A timeout or interval of zero.
    ZeroDuration {
        /// The key, relative to `wsc`.
        key: &'static str,
    },
    /// A duration longer than [`MAX_DURATION`] (365 days).
    DurationTooLong {
        /// The key, relative to `wsc`.
        key: &'static str,
        /// The rejected duration.
        value: Duration,
    },
    /// A capacity or size of zero.
    Zero {
        /// The key, relative to `wsc`.
        key: &'static str,
    },
    /// A count above its limit.
    TooLarge {
        /// The key, relative to `wsc`.
        key: &'static str,
        /// The configured value.
        value: usize,
        /// The largest value accepted.
        max: usize,
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
    /// The retry settings are incoherent.
    Retry(PolicyError),
    /// A `compression:` value the hub cannot honour.
    Compression {
        /// The key, relative to `wsc` (`compression.server_max_window_bits`, ...).
        key: &'static str,
        /// What is wrong and what to set.
        message: String,
    },
    /// The `auth:` section is incomplete or inconsistent, or its key file
    /// cannot be used.
    Auth {
        /// The key, relative to `wsc` (`auth.jwt.secret`, ...).
        key: &'static str,
        /// What is wrong and what to set.
        message: String,
    },
    /// The `cluster:` section cannot be used.
    Cluster {
        /// The key, relative to `wsc` (`cluster.redis_url`, ...).
        key: &'static str,
        /// What is wrong.
        message: String,
    },
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
                format,
                key: Some(key),
                message,
                ..
            } => write!(f, "invalid {format} config: `{key}`: {message}"),
            ConfigError::Parse {
                format, message, ..
            } => write!(f, "invalid {format} config: {message}"),
            ConfigError::ZeroDuration { key } => write!(f, "`{key}` must be greater than zero"),
            ConfigError::DurationTooLong { key, value } => write!(
                f,
                "`{key}` ({}) must be at most {} days",
                human(*value),
                MAX_DURATION.as_secs() / 86_400
            ),
            ConfigError::Zero { key } => write!(f, "`{key}` must be at least 1"),
            ConfigError::TooLarge { key, value, max } => {
                write!(f, "`{key}` ({value}) must be at most {max}")
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
            ConfigError::Retry(e) => e.fmt(f),
            ConfigError::Auth { key, message }
            | ConfigError::Cluster { key, message }
            | ConfigError::Compression { key, message } => {
                write!(f, "`{key}`: {message}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
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
