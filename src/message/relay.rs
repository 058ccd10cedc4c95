//! The built-in relay's view of a client message: read by borrowing from
//! the frame (no allocation unless a routing string needs unescaping), and
//! the outgoing message spliced from the client's raw JSON values with the
//! hub's own fields, so nothing is re-serialised.

use std::borrow::Cow;
use std::io::Write;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Priority, kind};

/// A client's application message, borrowed from its frame. Only the
/// fields go-wsc defines are kept; `sender`, `sender_type`, `create_at` and
/// `source` are the hub's to set, and unknown fields are dropped.
#[derive(Debug, Deserialize)]
pub(crate) struct ClientMessage<'a> {
    #[serde(borrow)]
    pub(crate) message_type: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) message_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) receiver: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) receiver_client: Cow<'a, str>,
    #[serde(borrow, default)]
    receiver_type: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default)]
    pub(crate) require_ack: bool,
    #[serde(default)]
    seq_no: u64,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    trace_id: Option<Cow<'a, str>>,
}

/// An optional string borrowed from the frame when it needs no unescaping:
/// serde borrows a `Cow<str>` field only when it is not inside an
/// `Option`, so without this every `message_id`, `id` or `trace_id` (and
/// every relayed ACK) allocated.
fn borrowed<'de, D>(d: D) -> Result<Option<Cow<'de, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'de>>::deserialize(d)?.map(|b| b.0))
}

/// Why a client message cannot be relayed as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unrelayable {
    /// Not this shape: let the full decoder explain.
    Malformed,
    /// No `receiver`.
    NoReceiver,
}

impl<'a> ClientMessage<'a> {
    /// Reads `text` for relaying. `content` must be a string (go-wsc's type).
    pub(crate) fn parse(text: &'a str) -> Result<ClientMessage<'a>, Unrelayable> {
        let m: ClientMessage<'a> =
            serde_json::from_str(text).map_err(|_| Unrelayable::Malformed)?;
        if m.message_type.is_empty() || m.content.is_some_and(|c| !c.get().starts_with('"')) {
            return Err(Unrelayable::Malformed);
        }
        // Pings, ACKs, joins and leaves name no receiver.
        if m.receiver.is_empty() && !m.is_control() {
            return Err(Unrelayable::NoReceiver);
        }
        Ok(m)
    }

    /// Whether it is for a group (`receiver_type: "group"`).
    pub(crate) fn to_group(&self) -> bool {
        self.receiver_type == super::RECEIVER_TYPE_GROUP
    }

    /// Whether this is one of the messages the hub answers itself.
    pub(crate) fn is_control(&self) -> bool {
        matches!(
            &*self.message_type,
            kind::PING | kind::ACK | kind::JOIN | kind::LEAVE
        )
    }
}

/// What the hub stamps on a relayed message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp<'s> {
    /// The `message_id` it travels under.
    pub(crate) message_id: &'s str,
    /// The client's own id, when the hub named the message (`id`).
    pub(crate) client_id: Option<&'s str>,
    pub(crate) sender: &'s str,
    pub(crate) sender_type: &'s str,
    pub(crate) create_at: &'s str,
}

/// Writes the relayed message's JSON into `out`: the hub's fields, then the
/// client's values as they came (field order as `Message` serialises).
pub(crate) fn write_relayed(out: &mut Vec<u8>, m: &ClientMessage<'_>, s: &Stamp<'_>) {
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, name: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
    };
    if let Some(id) = s.client_id.filter(|id| !id.is_empty()) {
        key(out, "id");
        json_str(out, id);
    }
    key(out, "message_id");
    json_str(out, s.message_id);
    key(out, "message_type");
    json_str(out, &m.message_type);
    key(out, "sender");
    json_str(out, s.sender);
    if !s.sender_type.is_empty() {
        key(out, "sender_type");
        json_str(out, s.sender_type);
    }
    key(out, "receiver");
    json_str(out, &m.receiver);
    if !m.receiver_client.is_empty() {
        key(out, "receiver_client");
        json_str(out, &m.receiver_client);
    }
    if !m.receiver_type.is_empty() {
        key(out, "receiver_type");
        json_str(out, &m.receiver_type);
    }
    if let Some(c) = m.content {
        key(out, "content");
        out.extend_from_slice(c.get().as_bytes());
    }
    if let Some(d) = m.data.filter(|d| d.get() != "null") {
        key(out, "data");
        out.extend_from_slice(d.get().as_bytes());
    }
    key(out, "create_at");
    json_str(out, s.create_at);
    if let Some(p) = m.priority {
        key(out, "priority");
        json_str(out, p.as_str());
    }
    if m.require_ack {
        key(out, "require_ack");
        out.extend_from_slice(b"true");
    }
    if m.seq_no != 0 {
        key(out, "seq_no");
        let _ = write!(out, "{}", m.seq_no);
    }
    if let Some(t) = m.trace_id.as_deref().filter(|t| !t.is_empty()) {
        key(out, "trace_id");
        json_str(out, t);
    }
    out.push(b'}');
}

/// `s` as a JSON string (RFC 8259 escapes), appended to `out`.
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Ids, names and timestamps rarely need escaping: one scan, one copy
    // (the byte-by-byte loop below was an eighth of the relay's own work).
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{b:04x}");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn relayed(text: &str, client_id: Option<&str>) -> Message {
        let m = ClientMessage::parse(text).unwrap();
        let mut out = Vec::new();
        let stamp = Stamp {
            message_id: "0123456789abcdef01234567",
            client_id,
            sender: "al\"ice\n",
            sender_type: "user",
            create_at: "2026-11-30T12:00:00.000Z",
        };
        write_relayed(&mut out, &m, &stamp);
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn the_hub_stamps_and_the_client_values_pass_through() {
        let m = relayed(
            r#"{"message_type":"text","receiver":"b\u0062","content":"hi \"there\"","data":{"k":[1,2]},"priority":"high","require_ack":true,"seq_no":7,"trace_id":"t","sender":"mallory","source":"offline","create_at":"1999","extra":1}"#,
            Some("mine"),
        );
        assert_eq!(m.receiver, "bb");
        assert_eq!(m.content, "hi \"there\"");
        assert_eq!(m.data, Some(serde_json::json!({"k": [1, 2]})));
        assert_eq!(m.priority, Some(Priority::High));
        assert!(m.require_ack);
        assert_eq!((m.seq_no, m.trace_id.as_str()), (7, "t"));
        // The hub's fields, whatever the client wrote.
        assert_eq!(m.sender, "al\"ice\n");
        assert_eq!(m.sender_type, "user");
        assert_eq!(m.source, "");
        assert_eq!(m.create_at, "2026-11-30T12:00:00.000Z");
        assert_eq!(m.message_id, "0123456789abcdef01234567");
        assert_eq!(m.id, "mine");
    }

    #[test]
    fn ids_are_borrowed_from_the_frame_unless_escaped() {
        let text = r#"{"message_type":"ack","message_id":"m1","id":"c\u0031","trace_id":"t"}"#;
        let m = ClientMessage::parse(text).unwrap();
        assert!(matches!(m.message_id, Some(Cow::Borrowed("m1"))));
        assert!(matches!(m.trace_id, Some(Cow::Borrowed("t"))));
        assert_eq!(m.id.as_deref(), Some("c1"));
        assert!(matches!(m.id, Some(Cow::Owned(_))), "unescaped: owned");
    }

    #[test]
    fn shapes_the_relay_does_not_take() {
        assert_eq!(
            ClientMessage::parse(r#"{"message_type":"text"}"#).unwrap_err(),
            Unrelayable::NoReceiver
        );
        for bad in [
            "{",
            r#"{"receiver":"b"}"#,
            r#"{"message_type":"text","receiver":"b","content":5}"#,
            r#"{"message_type":"text","receiver":"b","priority":"nope"}"#,
            r#"{"message_type":"","receiver":"b"}"#,
        ] {
            assert_eq!(
                ClientMessage::parse(bad).unwrap_err(),
                Unrelayable::Malformed,
                "{bad}"
            );
        }
    }
}
