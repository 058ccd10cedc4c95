//! [`HubConfig::validate`]: the checks a configuration must pass, whether
//! read from a file or built in code.

use super::{AuthMode, ConfigError, HubConfig, MAX_LEEWAY};
use crate::retry::MAX_DURATION;

/// The most `require_ack` messages one connection may have in flight: the
/// hub counts them in 16 bits, as MQTT's Receive Maximum does.
const MAX_INFLIGHT_ACKS: usize = u16::MAX as usize;

impl HubConfig {
    /// Checks the whole configuration, including one built in code.
    ///
    /// # Errors
    ///
    /// The first problem found: [`ConfigError::Retry`] for the retry policy,
    /// then zero timeouts, durations above
    /// [`MAX_DURATION`](crate::retry::MAX_DURATION), `client_timeout` not
    /// above `heartbeat_interval`, zero or too large capacities,
    /// `max_frame_size` above `max_message_size`, and malformed or shared
    /// HTTP paths.
    ///
    /// ```
    /// # use wshub::config::{ConfigError, HubConfig};
    /// let mut cfg = HubConfig::default();
    /// cfg.max_connections = 0;
    /// assert!(matches!(cfg.validate(), Err(ConfigError::Zero { key: "max_connections" })));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.retry.validate()?;
        self.check_durations()?;
        self.check_counts()?;
        self.check_frame_size()?;
        self.check_paths()?;
        self.compression.validate()?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        self.check_auth()
    }

    fn check_auth(&self) -> Result<(), ConfigError> {
        let jwt = &self.auth.jwt;
        let err = |key, message: &str| {
            Err(ConfigError::Auth {
                key,
                message: message.to_owned(),
            })
        };
        if jwt.leeway > MAX_LEEWAY {
            return err("auth.jwt.leeway", "must be at most 10m");
        }
        if self.max_buffered_bytes == Some(0) {
            return Err(ConfigError::Zero {
                key: "max_buffered_bytes",
            });
        }
        if self.auth.effective_mode() != AuthMode::Jwt {
            return Ok(());
        }
        match (&jwt.secret, &jwt.public_key_file) {
            (None, None) => err(
                "auth.jwt",
                "mode jwt needs `secret` (HS256/384/512) or `public_key_file` (RS*, PS*, ES*, EdDSA)",
            ),
            (Some(_), Some(_)) => err(
                "auth.jwt",
                "set one of `secret` and `public_key_file`, not both",
            ),
            // RFC 7518 3.2: a key at least as long as the hash output.
            (Some(s), None) if s.len() < 32 => err(
                "auth.jwt.secret",
                "must be at least 32 bytes (RFC 7518 3.2); use a random string",
            ),
            _ => Ok(()),
        }
    }

    fn check_durations(&self) -> Result<(), ConfigError> {
        // (key, value, whether zero means something: a shutdown that does
        // not wait). Every other zero would fire at once, every time.
        for (key, value, zero_ok) in [
            ("ack_timeout", self.ack_timeout, false),
            ("send_timeout", self.send_timeout, false),
            ("heartbeat_interval", self.heartbeat_interval, false),
            ("client_timeout", self.client_timeout, false),
            ("handshake_timeout", self.handshake_timeout, false),
            ("shutdown_timeout", self.shutdown_timeout, true),
            ("offline_ttl", self.offline_ttl, false),
        ] {
            if value.is_zero() && !zero_ok {
                return Err(ConfigError::ZeroDuration { key });
            }
            if value > MAX_DURATION {
                return Err(ConfigError::DurationTooLong { key, value });
            }
        }
        // Otherwise an idle but healthy client is dropped before it is pinged.
        if self.client_timeout <= self.heartbeat_interval {
            return Err(ConfigError::ClientTimeoutNotAboveHeartbeat {
                client_timeout: self.client_timeout,
                heartbeat_interval: self.heartbeat_interval,
            });
        }
        Ok(())
    }

    fn check_counts(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("max_message_size", self.max_message_size),
            ("max_frame_size", self.max_frame_size.unwrap_or(1)),
            ("max_connections", self.max_connections),
            ("max_connections_per_user", self.max_connections_per_user),
            ("handler_workers", self.handler_workers),
            ("handler_queue_capacity", self.handler_queue_capacity),
            ("command_queue_capacity", self.command_queue_capacity),
            ("max_inflight_acks", self.max_inflight_acks),
            ("pending_per_conn", self.pending_per_conn),
            ("max_pending_deliveries", self.max_pending_deliveries),
            ("offline_max_messages", self.offline_max_messages),
            ("offline_max_bytes", self.offline_max_bytes),
            ("max_groups", self.max_groups),
            ("max_groups_per_connection", self.max_groups_per_connection),
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
        if self.max_inflight_acks > MAX_INFLIGHT_ACKS {
            return Err(ConfigError::TooLarge {
                key: "max_inflight_acks",
                value: self.max_inflight_acks,
                max: MAX_INFLIGHT_ACKS,
            });
        }
        Ok(())
    }

    fn check_frame_size(&self) -> Result<(), ConfigError> {
        if let Some(frame) = self.max_frame_size
            && frame > self.max_message_size
        {
            return Err(ConfigError::FrameLargerThanMessage {
                max_frame_size: frame,
                max_message_size: self.max_message_size,
            });
        }
        Ok(())
    }

    fn check_paths(&self) -> Result<(), ConfigError> {
        // `*` is the any-path wildcard the hub matches before the literal
        // paths, so it is neither malformed nor shared with them.
        let mut paths = Vec::with_capacity(4);
        if self.ws_path != "*" {
            paths.push(("ws_path", self.ws_path.as_str()));
        }
        let health = &self.health;
        if health.enabled {
            paths.extend([
                ("health.failure_stats_path", &*health.failure_stats_path),
                ("health.retry_config_path", &*health.retry_config_path),
                ("health.metrics_path", &*health.metrics_path),
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
}

#[cfg(test)]
mod tests;
