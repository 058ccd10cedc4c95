//! The wire message: go-wsc's `HubMessage` as JSON, and the encoded frame that
//! carries it.
//!
//! Field names follow go-wsc exactly so its clients interoperate; empty fields
//! are omitted on output. A [`Payload`] is a complete WebSocket frame (header
//! and body) behind an `Arc`: server frames are never masked, so the same bytes
//! go to every recipient and a broadcast is one encode.

use std::fmt;

use serde::{Deserialize, Serialize};

mod payload;
pub(crate) mod relay;
mod time;

pub(crate) use payload::FramePool;
pub use payload::Payload;
#[cfg(test)]
pub(crate) use time::Stamp as TimeStamp;
pub(crate) use time::StampCache;
pub use time::rfc3339_now;

/// Well-known values of [`Message::message_type`].
///
/// The field stays a string so that applications can define their own types;
/// these are the ones the hub itself reads or writes.
pub mod kind {
    /// A client's keep-alive request; the hub answers with [`PONG`].
    pub const PING: &str = "ping";
    /// The hub's answer to [`PING`].
    pub const PONG: &str = "pong";
    /// A client acknowledges `message_id` (see `require_ack`).
    pub const ACK: &str = "ack";
    /// Sent by the hub before it closes a connection on purpose.
    pub const KICK_OUT: &str = "kick_out";
    /// Sent by the hub when a client's message was malformed or invalid.
    pub const ERROR: &str = "error";
    /// Plain text chat message (go-wsc's default type).
    pub const TEXT: &str = "text";

    /// A client asks to join the group `data.group` (if the host's group
    /// policy allows); the hub answers [`JOINED`] or an `error`.
    pub const JOIN: &str = "join";
    /// A client leaves the group `data.group`; the hub answers [`LEFT`] or
    /// an `error`.
    pub const LEAVE: &str = "leave";
    /// The hub's answer to [`JOIN`]: `data.group` names the group.
    pub const JOINED: &str = "joined";
    /// The hub's answer to [`LEAVE`]: `data.group` names the group.
    pub const LEFT: &str = "left";
    /// A delivery-result notice to the sender (the demo server's).
    pub const SEND_RESULT: &str = "send_result";
    /// Types only the hub may send: a client message of one of these is
    /// refused with a `validation` error and relayed to no one.
    pub const RESERVED: &[&str] = &[PONG, KICK_OUT, ERROR, SEND_RESULT, JOINED, LEFT];

    /// Whether `message_type` is one only the hub may send.
    ///
    /// ```
    /// assert!(wshub::message::kind::is_reserved("kick_out"));
    /// assert!(!wshub::message::kind::is_reserved("text"));
    /// ```
    pub fn is_reserved(message_type: &str) -> bool {
        RESERVED.contains(&message_type)
    }
}

/// The [`Message::receiver_type`] of a message for a group:
/// [`Message::receiver`] names the group.
pub const RECEIVER_TYPE_GROUP: &str = "group";

/// Message priority, as go-wsc spells it on the wire.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// `low`
    Low,
    /// `normal` (the default)
    #[default]
    Normal,
    /// `high`
    High,
    /// `urgent`
    Urgent,
    /// `critical`
    Critical,
}

impl Priority {
    /// The wire spelling.
    ///
    /// ```
    /// assert_eq!(wshub::Priority::Urgent.as_str(), "urgent");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
            Priority::Critical => "critical",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A hub message in go-wsc's JSON shape.
///
/// Unknown fields are ignored on input so that newer clients keep working.
///
/// ```
/// use wshub::Message;
/// let m: Message = serde_json::from_str(
///     r#"{"message_type":"text","receiver":"bob","content":"hi","require_ack":true}"#,
/// ).unwrap();
/// assert_eq!(m.receiver, "bob");
/// assert!(m.require_ack);
/// // Empty fields are left out when encoding.
/// assert_eq!(
///     serde_json::to_string(&Message::text("bob", "hi")).unwrap(),
///     r#"{"message_type":"text","receiver":"bob","content":"hi"}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    /// Application-level id of the message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Delivery id: ACKs name it, and a resend carries the same one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message_id: String,
    /// What kind of message this is (see [`kind`]).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message_type: String,
    /// The sending user; stamped by the hub from the authenticated identity.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sender: String,
    /// The sending user's type; stamped by the hub.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sender_type: String,
    /// The user the message is for.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub receiver: String,
    /// What `receiver` names: empty for a user (go-wsc's default), or
    /// [`RECEIVER_TYPE_GROUP`] for a group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub receiver_type: String,
    /// One device of the receiver (its client id); empty means every device.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub receiver_client: String,
    /// Text content.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub content: String,
    /// Structured content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Creation time, RFC 3339.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub create_at: String,
    /// Priority; absent means normal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// The receiver must ACK `message_id`; until then the delivery is not done.
    #[serde(skip_serializing_if = "is_false")]
    pub require_ack: bool,
    /// Sender-side sequence number.
    #[serde(skip_serializing_if = "is_zero")]
    pub seq_no: u64,
    /// Tracing id carried through unchanged.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    /// Where the message came from (`"offline"` for replayed offline messages).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
}

impl Message {
    /// A `text` message for `receiver`.
    ///
    /// ```
    /// let m = wshub::Message::text("alice", "hello");
    /// assert_eq!(m.message_type, "text");
    /// ```
    pub fn text(receiver: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            message_type: kind::TEXT.to_owned(),
            receiver: receiver.into(),
            content: content.into(),
            ..Message::default()
        }
    }

    /// A message of the given type with a `data` object (used for `error`,
    /// `kick_out` and other hub notices).
    ///
    /// ```
    /// let m = wshub::Message::notice("kick_out", serde_json::json!({"reason": "replaced"}));
    /// assert_eq!(m.data.unwrap()["reason"], "replaced");
    /// ```
    pub fn notice(message_type: &str, data: serde_json::Value) -> Self {
        Message {
            message_type: message_type.to_owned(),
            data: Some(data),
            create_at: rfc3339_now(),
            ..Message::default()
        }
    }

    /// Decodes one inbound text frame and checks what the hub relies on.
    ///
    /// ```
    /// use wshub::{Message, message::DecodeError};
    /// assert!(Message::decode(r#"{"message_type":"ping"}"#).is_ok());
    /// assert!(matches!(Message::decode("{"), Err(DecodeError::Json(_))));
    /// assert_eq!(Message::decode("{}"), Err(DecodeError::MissingType));
    /// ```
    pub fn decode(text: &str) -> Result<Message, DecodeError> {
        let msg: Message =
            serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
        if msg.message_type.is_empty() {
            return Err(DecodeError::MissingType);
        }
        if msg.message_type == kind::ACK && msg.message_id.is_empty() {
            return Err(DecodeError::AckWithoutId);
        }
        Ok(msg)
    }
}

/// What the hub answers itself, read without allocating: `ping` and `ack`
/// frames whose strings need no unescaping are recognised by borrowing from
/// the frame (anything else goes through [`Message::decode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control<'a> {
    /// `{"message_type":"ping"}`.
    Ping,
    /// `{"message_type":"ack","message_id":"X"}`.
    Ack(&'a str),
}

impl<'a> Control<'a> {
    /// The control message `text` is, if it is one and reads without
    /// allocating; `None` sends the caller to the full decoder.
    pub(crate) fn probe(text: &'a str) -> Option<Control<'a>> {
        #[derive(Deserialize)]
        struct Probe<'a> {
            #[serde(borrow, default)]
            message_type: Option<&'a str>,
            #[serde(borrow, default)]
            message_id: Option<&'a str>,
        }
        // Other messages skip the probe (a cheap scan, no second parse).
        if !text.contains("\"ack\"") && !text.contains("\"ping\"") {
            return None;
        }
        let probe: Probe<'a> = serde_json::from_str(text).ok()?;
        match (probe.message_type?, probe.message_id) {
            (kind::PING, _) => Some(Control::Ping),
            (kind::ACK, Some(id)) if !id.is_empty() => Some(Control::Ack(id)),
            _ => None,
        }
    }
}

/// Why an inbound text frame is not a valid message. The client gets an
/// `error` message with `reason: "validation"` and this text; the connection
/// stays open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON, or a field of the wrong type (serde's explanation).
    Json(String),
    /// `message_type` is missing or empty.
    MissingType,
    /// An `ack` without the `message_id` it acknowledges.
    AckWithoutId,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Json(e) => write!(f, "invalid message JSON: {e}"),
            DecodeError::MissingType => f.write_str("message_type is required"),
            DecodeError::AckWithoutId => f.write_str("an ack needs the message_id it acknowledges"),
        }
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        let at = |s, ms| TimeStamp::at(s, ms).as_str().to_owned();
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_618_245, 999), "2026-11-25T14:50:45.999Z");
    }

    #[test]
    fn decode_keeps_go_wsc_fields() {
        let m = Message::decode(
            r#"{"id":"1","message_id":"m1","message_type":"text","sender":"spoof","receiver":"bob",
                "receiver_client":"phone","content":"c","data":{"k":1},"create_at":"2026-01-01T00:00:00Z",
                "priority":"urgent","require_ack":true,"seq_no":7,"trace_id":"t","source":"s","extra":1}"#,
        )
        .unwrap();
        assert_eq!(m.priority, Some(Priority::Urgent));
        assert_eq!(m.seq_no, 7);
        assert_eq!(m.receiver_client, "phone");
        let back: Message = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn decode_rejects_bad_input() {
        assert!(matches!(Message::decode("[1]"), Err(DecodeError::Json(_))));
        assert!(matches!(
            Message::decode(r#"{"message_type":"text","priority":"meh"}"#),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(
            Message::decode(r#"{"message_type":"ack"}"#),
            Err(DecodeError::AckWithoutId)
        );
    }

    #[test]
    fn payload_headers_for_each_length_class() {
        for len in [0usize, 125, 126, 65_535, 65_536] {
            let p = Payload::binary(&vec![7u8; len]);
            assert_eq!(p.len(), len);
            assert_eq!(p.frame()[0], 0x82);
            let expect_header = match len {
                0..=125 => 2,
                126..=65_535 => 4,
                _ => 10,
            };
            assert_eq!(p.frame().len(), len + expect_header);
        }
    }

    #[test]
    fn control_messages_are_probed_without_the_full_decode() {
        assert_eq!(
            Control::probe(r#"{"message_type":"ping"}"#),
            Some(Control::Ping)
        );
        assert_eq!(
            Control::probe(
                r#"{ "message_type" : "ack", "message_id": "m1", "x": [1, {"y": "z"}] }"#
            ),
            Some(Control::Ack("m1"))
        );
        // Escapes, missing ids and other types go to the full decoder.
        assert_eq!(
            Control::probe(r#"{"message_type":"ack","message_id":"a\"b"}"#),
            None
        );
        assert_eq!(Control::probe(r#"{"message_type":"ack"}"#), None);
        assert_eq!(
            Control::probe(r#"{"message_type":"text","content":"ack"}"#),
            None
        );
        assert_eq!(
            Control::probe(r#"{"message_type":"ack","message_id":7}"#),
            None
        );
        assert_eq!(Control::probe("not json \"ping\""), None);
    }
}
