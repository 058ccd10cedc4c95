//! [`ClusterConfig`]: hubs that share users through Redis, the `cluster:`
//! section.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, values};

/// Shortest `presence_ttl`: heartbeats go out every third of it, and a
/// shorter one would mistake a busy Redis for a dead hub.
const MIN_PRESENCE_TTL: Duration = Duration::from_millis(300);
/// Longest `presence_ttl`: a dead hub's users count as online this long.
const MAX_PRESENCE_TTL: Duration = Duration::from_secs(3600);
/// Longest `node_id`: it is part of Redis keys and of every message.
const MAX_NODE_ID: usize = 64;

/// Hubs that share users through Redis: a user's devices may sit on
/// different hubs, and a send, a retry, an ACK or a kick reaches them
/// wherever they are.
///
/// Without this section (the default) nothing changes: no thread, no socket.
///
/// `#[non_exhaustive]`: build it with [`ClusterConfig::new`] and assign fields.
///
/// ```
/// # use wshub::config::HubConfig;
/// let cfg = HubConfig::from_yaml_str(
///     "wsc:\n  cluster: {redis_url: \"redis://127.0.0.1:6379/0\", node_id: hub-1, presence_ttl: 5s}\n",
/// ).unwrap();
/// let cluster = cfg.cluster.unwrap();
/// assert_eq!(cluster.node_id, "hub-1");
/// assert_eq!(cluster.redis().unwrap().port, 6379);
/// assert!(HubConfig::from_yaml_str("wsc:\n  cluster: {redis_url: \"http://x\"}\n").is_err());
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[[user]:password@]host[:port][/db]` (port 6379 and db 0 by
    /// default). `rediss://` (TLS to Redis) is not supported: keep Redis on
    /// a private network or loopback.
    pub redis_url: String,
    /// This hub's name in the cluster: letters, digits, `-`, `_`, `.` and
    /// `:`, at most 64. Default: unique per process (host name, process id
    /// and a random suffix), so a restarted hub is a new node.
    #[serde(default = "default_node_id")]
    pub node_id: String,
    /// How long a hub's presence outlives its last heartbeat (heartbeats go
    /// out every third of it): a hub killed without a goodbye has its users
    /// counted offline by the others within this, plus one heartbeat.
    ///
    /// Default: 10s. Between 300ms and 1h.
    #[serde(
        default = "default_presence_ttl",
        deserialize_with = "values::duration"
    )]
    pub presence_ttl: Duration,
}

fn default_presence_ttl() -> Duration {
    Duration::from_secs(10)
}

fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && valid_node_id(h))
        .unwrap_or_else(|| "hub".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let mut id = format!("{host}-{}-{nanos:08x}", std::process::id());
    // Long host names are cut, keeping the process id and the suffix.
    if id.len() > MAX_NODE_ID {
        id.drain(..id.len() - MAX_NODE_ID);
    }
    id
}

fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NODE_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Where Redis is, read from [`ClusterConfig::redis_url`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisAddr {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database number (`SELECT`).
    pub db: u32,
    /// ACL user name (`AUTH user password`), if any.
    pub user: Option<String>,
    /// Password (`AUTH`), if any.
    pub password: Option<String>,
}

impl ClusterConfig {
    /// A cluster through the Redis at `redis_url`, with a unique node id and
    /// the default `presence_ttl`.
    ///
    /// ```
    /// let c = wshub::config::ClusterConfig::new("redis://127.0.0.1:6379");
    /// assert!(!c.node_id.is_empty());
    /// ```
    pub fn new(redis_url: impl Into<String>) -> Self {
        ClusterConfig {
            redis_url: redis_url.into(),
            node_id: default_node_id(),
            presence_ttl: default_presence_ttl(),
        }
    }

    /// The parts of `redis_url`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Cluster`] saying what is wrong with the URL.
    ///
    /// ```
    /// let c = wshub::config::ClusterConfig::new("redis://:s3cret@10.0.0.5/2");
    /// let r = c.redis().unwrap();
    /// assert_eq!((r.host.as_str(), r.port, r.db), ("10.0.0.5", 6379, 2));
    /// assert_eq!(r.password.as_deref(), Some("s3cret"));
    /// ```
    pub fn redis(&self) -> Result<RedisAddr, ConfigError> {
        parse_redis_url(&self.redis_url).map_err(|message| ConfigError::Cluster {
            key: "cluster.redis_url",
            message,
        })
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.redis()?;
        if !valid_node_id(&self.node_id) {
            return Err(ConfigError::Cluster {
                key: "cluster.node_id",
                message: format!(
                    "{:?} must be 1 to {MAX_NODE_ID} letters, digits, '-', '_', '.' or ':'",
                    self.node_id
                ),
            });
        }
        if !(MIN_PRESENCE_TTL..=MAX_PRESENCE_TTL).contains(&self.presence_ttl) {
            return Err(ConfigError::Cluster {
                key: "cluster.presence_ttl",
                message: format!(
                    "{} must be between 300ms and 1h",
                    humantime::format_duration(self.presence_ttl)
                ),
            });
        }
        Ok(())
    }
}

fn parse_redis_url(url: &str) -> Result<RedisAddr, String> {
    let rest = match url.split_once("://") {
        Some(("redis", rest)) => rest,
        Some(("rediss", _)) => {
            return Err("rediss:// (TLS to Redis) is not supported; use redis://".into());
        }
        _ => return Err(format!("{url:?} must start with redis://")),
    };
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (Some(auth), rest),
        None => (None, rest),
    };
    let (hostport, db) = match rest.split_once('/') {
        Some((h, "")) => (h, 0),
        Some((h, db)) => (
            h,
            db.parse()
                .map_err(|_| format!("database {db:?} is not a number"))?,
        ),
        None => (rest, 0),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        // An IPv6 address in brackets has colons of its own.
        Some((h, p)) if !p.contains(']') => (
            h,
            p.parse()
                .map_err(|_| format!("port {p:?} is not a number from 1 to 65535"))?,
        ),
        _ => (hostport, 6379),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(format!("{url:?} names no host and port"));
    }
    let (user, password) = match auth {
        Some(a) => match a.split_once(':') {
            Some((u, p)) => ((!u.is_empty()).then(|| u.to_owned()), Some(p.to_owned())),
            None => (None, Some(a.to_owned())),
        },
        None => (None, None),
    };
    Ok(RedisAddr {
        host: host.to_owned(),
        port,
        db,
        user,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_or_refused_with_a_reason() {
        let r = parse_redis_url("redis://u:p@h:1/3").unwrap();
        assert_eq!((r.host.as_str(), r.port, r.db), ("h", 1, 3));
        assert_eq!(
            (r.user.as_deref(), r.password.as_deref()),
            (Some("u"), Some("p"))
        );
        let r = parse_redis_url("redis://[::1]:7000").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 7000));
        assert_eq!(parse_redis_url("redis://[::1]").unwrap().port, 6379);
        for bad in [
            "",
            "redis://",
            "redis://h:0",
            "redis://h:x",
            "redis://h/x",
            "http://h",
        ] {
            assert!(parse_redis_url(bad).is_err(), "{bad}");
        }
        assert!(parse_redis_url("rediss://h").unwrap_err().contains("TLS"));
    }

    #[test]
    fn node_ids_and_ttls_are_checked() {
        let mut c = ClusterConfig::new("redis://127.0.0.1");
        assert!(c.validate().is_ok(), "{}", c.node_id);
        c.node_id = "a b".into();
        assert!(c.validate().is_err());
        c.node_id = "x".repeat(65);
        assert!(c.validate().is_err());
        c.node_id = "hub-1".into();
        c.presence_ttl = Duration::from_millis(100);
        assert!(c.validate().unwrap_err().to_string().contains("300ms"));
    }
}
