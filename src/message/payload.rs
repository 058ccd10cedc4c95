//! `Payload`: one encoded WebSocket frame shared by reference count, and the
//! pool that recycles the buffers of frames the hub builds itself.

use std::fmt;
use std::sync::Arc;

use super::Message;
use crate::ws::{self, OpCode};

/// One encoded, complete WebSocket frame, shared by reference count.
///
/// Cloning is an atomic increment; the bytes are written to every recipient
/// as they are, so a message is encoded once however many clients get it.
///
/// ```
/// use wshub::{Message, Payload};
/// let p = Payload::json(&Message::text("bob", "hi")).unwrap();
/// assert_eq!(p.body(), br#"{"message_type":"text","receiver":"bob","content":"hi"}"#);
/// assert_eq!(p.frame()[0], 0x81); // FIN + text
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    // An `Arc<Vec>` rather than an `Arc<[u8]>`: one word in every ring
    // entry instead of two, and no copy of the encoded bytes into the `Arc`.
    frame: Arc<Vec<u8>>,
    header_len: u8,
}

impl Payload {
    /// Encodes a message as a JSON text frame.
    pub fn json(msg: &Message) -> Result<Payload, serde_json::Error> {
        let body = serde_json::to_vec(msg)?;
        Ok(Payload::encode(OpCode::Text, &body))
    }

    /// A text frame carrying `text` as it is.
    pub fn text(text: &str) -> Payload {
        Payload::encode(OpCode::Text, text.as_bytes())
    }

    /// A binary frame carrying `data`.
    pub fn binary(data: &[u8]) -> Payload {
        Payload::encode(OpCode::Binary, data)
    }

    pub(crate) fn encode(opcode: OpCode, body: &[u8]) -> Payload {
        let frame = ws::encode_frame(opcode, body);
        Payload {
            // At most 10 bytes (RFC 6455 §5.2).
            header_len: (frame.len() - body.len()) as u8,
            frame: Arc::new(frame),
        }
    }

    /// Bytes that go on the wire as they are, with no WebSocket framing (the
    /// HTTP responses of the handshake phase share the write path).
    pub(crate) fn raw(bytes: Vec<u8>) -> Payload {
        Payload {
            frame: Arc::new(bytes),
            header_len: 0,
        }
    }

    /// The whole frame as it goes on the wire.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// The frame's body (the message bytes).
    pub fn body(&self) -> &[u8] {
        &self.frame[usize::from(self.header_len)..]
    }

    /// The body as text, if it is valid UTF-8 (text frames always are).
    ///
    /// ```
    /// assert_eq!(wshub::Payload::text("hé").as_str(), Some("hé"));
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.body()).ok()
    }

    /// The body's length in bytes.
    pub fn len(&self) -> usize {
        self.frame.len() - usize::from(self.header_len)
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = self.body();
        let shown = &body[..body.len().min(64)];
        f.debug_struct("Payload")
            .field("len", &body.len())
            .field("body", &String::from_utf8_lossy(shown))
            .finish()
    }
}
