//! Why a delivery failed.
//!
//! [`FailureReason`] is the single vocabulary shared by failure handlers,
//! statistics, the retry policy and the config file. [`FailureReason::as_str`]
//! yields exactly go-wsc's reason strings (`queue_full`, `timeout`, …), so
//! dashboards and handlers written against the seed keep working. A timeout
//! always carries its [`TimeoutKind`] (`ack_timeout`, `send_timeout`,
//! `connection_timeout`), which the seed passed separately as `timeoutType`.
//!
//! Every reason also has a *name* ([`FailureReason::name`]): the most specific
//! string for it. It equals `as_str()` except for timeouts, whose name is the
//! timeout type (`ack_timeout`). `Display`, `FromStr` and serde all use the
//! name, so every value round-trips; `as_str()` is the seed-compatible, coarser
//! view.
//!
//! # Names the seed recommends that wshub rejects
//!
//! The seed's "recommended classification" also lists `temporary` (go-wsc
//! matched it as a substring of free-form error text) and
//! `rate_limit_permanent`. wshub classifies typed reasons, not error text, so
//! neither names a reason. Both are rejected with an error that says what to
//! write instead (`rate_limited`, or the transient reasons spelled out), rather
//! than being silently mapped: a silent alias would make a config mean
//! something other than what it says.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which deadline expired for a [`FailureReason::Timeout`].
///
/// # Example
///
/// ```
/// # use wshub::reason::TimeoutKind;
/// assert_eq!(TimeoutKind::Ack.as_str(), "ack_timeout");
/// assert_eq!("send_timeout".parse::<TimeoutKind>(), Ok(TimeoutKind::Send));
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeoutKind {
    /// A `require_ack` message was written but the client never ACKed it.
    Ack,
    /// A message sat in a client's outbound queue past `send_timeout`.
    Send,
    /// The connection died of its idle timeout (heartbeats lost) with the
    /// message queued or unacknowledged. (A handshake that times out has no
    /// messages yet: it is never a failure of a delivery.)
    Connection,
}

impl TimeoutKind {
    /// Every timeout kind, in a stable order.
    ///
    /// ```
    /// # use wshub::reason::TimeoutKind;
    /// assert_eq!(TimeoutKind::ALL.len(), 3);
    /// ```
    pub const ALL: [TimeoutKind; 3] =
        [TimeoutKind::Ack, TimeoutKind::Send, TimeoutKind::Connection];

    /// The seed's `timeoutType` string: `ack_timeout`, `send_timeout` or
    /// `connection_timeout`.
    ///
    /// ```
    /// # use wshub::reason::TimeoutKind;
    /// assert_eq!(TimeoutKind::Connection.as_str(), "connection_timeout");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            TimeoutKind::Ack => "ack_timeout",
            TimeoutKind::Send => "send_timeout",
            TimeoutKind::Connection => "connection_timeout",
        }
    }
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TimeoutKind {
    type Err = ParseReasonError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TimeoutKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseReasonError::unknown(s, TIMEOUT_NAMES))
    }
}

impl Serialize for TimeoutKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TimeoutKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_via_from_str(deserializer, "a timeout type name")
    }
}

/// Why one delivery attempt failed.
///
/// Marked `#[non_exhaustive]` so that wshub can learn new failure modes
/// without a breaking release; match with a wildcard arm.
///
/// # Example
///
/// ```
/// # use wshub::reason::{FailureReason, TimeoutKind};
/// let r = FailureReason::Timeout(TimeoutKind::Ack);
/// assert_eq!(r.as_str(), "timeout"); // the seed's reason string
/// assert_eq!(r.timeout_kind(), Some(TimeoutKind::Ack));
/// assert_eq!(r.to_string(), "ack_timeout"); // the lossless name
/// assert_eq!("queue_full".parse(), Ok(FailureReason::QueueFull));
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureReason {
    /// The client's outbound ring queue was full.
    QueueFull,
    /// The user had no connected device.
    UserOffline,
    /// A deadline expired; the kind says which.
    Timeout(TimeoutKind),
    /// The connection broke (I/O error, reset, closed while messages were queued).
    ConnError,
    /// An internal channel to the target was closed (e.g. during shutdown).
    ChannelClosed,
    /// The peer's network could not be reached.
    NetworkUnreachable,
    /// The sender may not send to this target.
    Permission,
    /// The message was malformed or failed validation.
    Validation,
    /// The peer failed authentication.
    AuthenticationFailed,
    /// The encoded message exceeds `max_message_size`.
    MessageTooLarge,
    /// A rate limit or a cap (such as `max_pending_deliveries`) rejected
    /// the message.
    RateLimited,
    /// The offline store kept the message, then dropped it for a newer one
    /// (a per-user or hub-wide cap).
    OfflineEvicted,
    /// The offline store kept the message past `offline_ttl`.
    OfflineExpired,
    /// The device is on another hub of the cluster, and Redis (or that hub)
    /// could not be reached. Retryable by default: the hub reconnects.
    ClusterUnavailable,
}

/// Names accepted by [`TimeoutKind::from_str`], for error messages.
const TIMEOUT_NAMES: &[&str] = &["ack_timeout", "send_timeout", "connection_timeout"];

impl FailureReason {
    /// Every failure reason, one entry per timeout kind, in a stable order.
    ///
    /// The position of a reason in this array is its bit in
    /// [`ReasonSet`](crate::retry::ReasonSet).
    ///
    /// ```
    /// # use wshub::reason::FailureReason;
    /// assert!(FailureReason::ALL.contains(&FailureReason::RateLimited));
    /// ```
    pub const ALL: [FailureReason; 16] = [
        FailureReason::QueueFull,
        FailureReason::UserOffline,
        FailureReason::Timeout(TimeoutKind::Ack),
        FailureReason::Timeout(TimeoutKind::Send),
        FailureReason::Timeout(TimeoutKind::Connection),
        FailureReason::ConnError,
        FailureReason::ChannelClosed,
        FailureReason::NetworkUnreachable,
        FailureReason::Permission,
        FailureReason::Validation,
        FailureReason::AuthenticationFailed,
        FailureReason::MessageTooLarge,
        FailureReason::RateLimited,
        FailureReason::OfflineEvicted,
        FailureReason::OfflineExpired,
        FailureReason::ClusterUnavailable,
    ];

    /// Every name [`FailureReason::from_str`] accepts (the values of
    /// [`FailureReason::name`]), in the order of [`FailureReason::ALL`].
    ///
    /// ```
    /// # use wshub::reason::FailureReason;
    /// assert_eq!(FailureReason::NAMES[0], "queue_full");
    /// ```
    pub const NAMES: [&'static str; 16] = [
        "queue_full",
        "user_offline",
        "ack_timeout",
        "send_timeout",
        "connection_timeout",
        "conn_error",
        "channel_closed",
        "network_unreachable",
        "permission",
        "validation",
        "authentication_failed",
        "message_too_large",
        "rate_limited",
        "offline_evicted",
        "offline_expired",
        "cluster_unavailable",
    ];

    /// Every name a classification list in the config may use: the
    /// [`NAMES`](Self::NAMES) plus `timeout`, which stands for all three
    /// timeout kinds.
    ///
    /// ```
    /// # use wshub::reason::FailureReason;
    /// assert!(FailureReason::CLASSIFICATION_NAMES.contains(&"timeout"));
    /// ```
    pub const CLASSIFICATION_NAMES: [&'static str; 17] = [
        "queue_full",
        "user_offline",
        "timeout",
        "ack_timeout",
        "send_timeout",
        "connection_timeout",
        "conn_error",
        "channel_closed",
        "network_unreachable",
        "permission",
        "validation",
        "authentication_failed",
        "message_too_large",
        "rate_limited",
        "offline_evicted",
        "offline_expired",
        "cluster_unavailable",
    ];

    /// The seed's reason string; all timeouts map to `"timeout"`.
    ///
    /// ```
    /// # use wshub::reason::{FailureReason, TimeoutKind};
    /// assert_eq!(FailureReason::ConnError.as_str(), "conn_error");
    /// assert_eq!(FailureReason::Timeout(TimeoutKind::Send).as_str(), "timeout");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureReason::QueueFull => "queue_full",
            FailureReason::UserOffline => "user_offline",
            FailureReason::Timeout(_) => "timeout",
            FailureReason::ConnError => "conn_error",
            FailureReason::ChannelClosed => "channel_closed",
            FailureReason::NetworkUnreachable => "network_unreachable",
            FailureReason::Permission => "permission",
            FailureReason::Validation => "validation",
            FailureReason::AuthenticationFailed => "authentication_failed",
            FailureReason::MessageTooLarge => "message_too_large",
            FailureReason::RateLimited => "rate_limited",
            FailureReason::OfflineEvicted => "offline_evicted",
            FailureReason::OfflineExpired => "offline_expired",
            FailureReason::ClusterUnavailable => "cluster_unavailable",
        }
    }

    /// The most specific name: the timeout type for a timeout, otherwise
    /// [`as_str`](Self::as_str). This is what `Display`, `FromStr` and serde use.
    ///
    /// ```
    /// # use wshub::reason::{FailureReason, TimeoutKind};
    /// assert_eq!(FailureReason::Timeout(TimeoutKind::Ack).name(), "ack_timeout");
    /// assert_eq!(FailureReason::QueueFull.name(), "queue_full");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            FailureReason::Timeout(kind) => kind.as_str(),
            other => other.as_str(),
        }
    }

    /// The timeout type, if this is a timeout.
    ///
    /// ```
    /// # use wshub::reason::{FailureReason, TimeoutKind};
    /// assert_eq!(FailureReason::Timeout(TimeoutKind::Send).timeout_kind(), Some(TimeoutKind::Send));
    /// assert_eq!(FailureReason::QueueFull.timeout_kind(), None);
    /// ```
    pub const fn timeout_kind(self) -> Option<TimeoutKind> {
        match self {
            FailureReason::Timeout(kind) => Some(kind),
            _ => None,
        }
    }

    /// Position in [`FailureReason::ALL`]; the bit index used by `ReasonSet`.
    pub(crate) const fn index(self) -> u32 {
        match self {
            FailureReason::QueueFull => 0,
            FailureReason::UserOffline => 1,
            FailureReason::Timeout(TimeoutKind::Ack) => 2,
            FailureReason::Timeout(TimeoutKind::Send) => 3,
            FailureReason::Timeout(TimeoutKind::Connection) => 4,
            FailureReason::ConnError => 5,
            FailureReason::ChannelClosed => 6,
            FailureReason::NetworkUnreachable => 7,
            FailureReason::Permission => 8,
            FailureReason::Validation => 9,
            FailureReason::AuthenticationFailed => 10,
            FailureReason::MessageTooLarge => 11,
            FailureReason::RateLimited => 12,
            FailureReason::OfflineEvicted => 13,
            FailureReason::OfflineExpired => 14,
            FailureReason::ClusterUnavailable => 15,
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FailureReason {
    type Err = ParseReasonError;

    /// Parses a [`name`](FailureReason::name). The bare `timeout` is rejected:
    /// a single failure always has a timeout type.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "timeout" {
            return Err(ParseReasonError::TimeoutWithoutKind);
        }
        FailureReason::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| ParseReasonError::unknown(s, &FailureReason::NAMES))
    }
}

impl Serialize for FailureReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for FailureReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_via_from_str(deserializer, "a failure reason name")
    }
}

/// Deserializes a string through `FromStr`, so serde errors carry our message
/// (with the list of valid names) and the parser can add its line/column.
fn deserialize_via_from_str<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = ParseReasonError>,
{
    struct Visitor<T>(&'static str, std::marker::PhantomData<T>);

    impl<T: FromStr<Err = ParseReasonError>> serde::de::Visitor<'_> for Visitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            v.parse().map_err(E::custom)
        }
    }

    deserializer.deserialize_str(Visitor(expecting, std::marker::PhantomData))
}

/// A string that names no failure reason (or timeout type).
///
/// # Example
///
/// ```
/// # use wshub::reason::{FailureReason, ParseReasonError};
/// let err = "bogus".parse::<FailureReason>().unwrap_err();
/// assert!(matches!(err, ParseReasonError::Unknown { .. }));
/// assert!(err.to_string().contains("queue_full")); // lists the valid names
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseReasonError {
    /// The name is not one of `valid`.
    Unknown {
        /// The rejected input.
        name: String,
        /// The names that would have been accepted.
        valid: &'static [&'static str],
    },
    /// A go-wsc classification name with no typed equivalent
    /// (`temporary`, `rate_limit_permanent`); the message says what to use.
    NotAReason {
        /// The rejected go-wsc name.
        name: &'static str,
    },
    /// `timeout` was given where a single failure, which always has a timeout
    /// type, was expected.
    TimeoutWithoutKind,
}

impl ParseReasonError {
    pub(crate) fn unknown(name: &str, valid: &'static [&'static str]) -> Self {
        match name {
            "temporary" => ParseReasonError::NotAReason { name: "temporary" },
            "rate_limit_permanent" => ParseReasonError::NotAReason {
                name: "rate_limit_permanent",
            },
            _ => ParseReasonError::Unknown {
                name: name.to_owned(),
                valid,
            },
        }
    }
}

impl fmt::Display for ParseReasonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseReasonError::Unknown { name, valid } => {
                write!(f, "unknown failure reason `{name}`; valid names: {}", valid.join(", "))
            }
            ParseReasonError::NotAReason { name: "temporary" } => f.write_str(
                "`temporary` is a go-wsc substring match on error text, not a failure reason; \
                 list the transient reasons instead (queue_full, timeout, conn_error, \
                 channel_closed, network_unreachable)",
            ),
            ParseReasonError::NotAReason { name } => {
                write!(f, "`{name}` is not a failure reason; use `rate_limited`")
            }
            ParseReasonError::TimeoutWithoutKind => f.write_str(
                "`timeout` needs a timeout type here: ack_timeout, send_timeout or connection_timeout",
            ),
        }
    }
}

impl std::error::Error for ParseReasonError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_strings_are_exact() {
        let seed = [
            (FailureReason::QueueFull, "queue_full"),
            (FailureReason::UserOffline, "user_offline"),
            (FailureReason::Timeout(TimeoutKind::Ack), "timeout"),
            (FailureReason::ConnError, "conn_error"),
            (FailureReason::ChannelClosed, "channel_closed"),
            (FailureReason::NetworkUnreachable, "network_unreachable"),
            (FailureReason::Permission, "permission"),
            (FailureReason::Validation, "validation"),
            (FailureReason::AuthenticationFailed, "authentication_failed"),
            (FailureReason::MessageTooLarge, "message_too_large"),
            (FailureReason::RateLimited, "rate_limited"),
            (FailureReason::OfflineEvicted, "offline_evicted"),
            (FailureReason::OfflineExpired, "offline_expired"),
        ];
        for (r, s) in seed {
            assert_eq!(r.as_str(), s);
        }
        assert_eq!(TimeoutKind::Ack.as_str(), "ack_timeout");
        assert_eq!(TimeoutKind::Send.as_str(), "send_timeout");
        assert_eq!(TimeoutKind::Connection.as_str(), "connection_timeout");
    }

    #[test]
    fn tables_agree_with_functions() {
        for (i, r) in FailureReason::ALL.into_iter().enumerate() {
            assert_eq!(r.index() as usize, i);
            assert_eq!(FailureReason::NAMES[i], r.name());
            assert!(FailureReason::CLASSIFICATION_NAMES.contains(&r.name()));
        }
    }

    #[test]
    fn display_from_str_and_serde_round_trip() {
        for r in FailureReason::ALL {
            assert_eq!(r.to_string().parse::<FailureReason>(), Ok(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.name()));
            assert_eq!(serde_json::from_str::<FailureReason>(&json).unwrap(), r);
        }
        for k in TimeoutKind::ALL {
            assert_eq!(k.to_string().parse::<TimeoutKind>(), Ok(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<TimeoutKind>(&json).unwrap(), k);
        }
    }

    #[test]
    fn parse_errors_explain_themselves() {
        let err = "nope".parse::<FailureReason>().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`nope`") && msg.contains("rate_limited"),
            "{msg}"
        );
        assert_eq!(
            "timeout".parse::<FailureReason>(),
            Err(ParseReasonError::TimeoutWithoutKind)
        );
        assert!(
            "rate_limit_permanent"
                .parse::<FailureReason>()
                .unwrap_err()
                .to_string()
                .contains("rate_limited")
        );
        assert!(matches!(
            "temporary".parse::<FailureReason>(),
            Err(ParseReasonError::NotAReason { name: "temporary" })
        ));
        let msg = "ack".parse::<TimeoutKind>().unwrap_err().to_string();
        assert!(msg.contains("connection_timeout"), "{msg}");
        let msg = serde_json::from_str::<FailureReason>("\"x\"")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("valid names"), "{msg}");
    }
}
