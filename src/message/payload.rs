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
///
/// For clients that negotiated permessage-deflate the hub makes, once per
/// send, a compressed twin: its [`frame`](Payload::frame) is the compressed
/// frame, its [`body`](Payload::body) still the plain message.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    // An `Arc<Vec>` rather than an `Arc<[u8]>`: one word in every ring
    // entry instead of two, no copy of the encoded bytes into the `Arc`, and
    // a buffer the hub can reuse once every recipient has written it (see
    // `FramePool`).
    frame: Arc<Vec<u8>>,
    /// Length of the compressed frame at the start of the frame; 0 when
    /// plain. (A compressed twin is the compressed frame followed by the
    /// plain one it was made from.) 32 bits keep a ring entry at 32 bytes.
    deflated: u32,
    /// Where the frame starts in the buffer (pooled buffers keep room for
    /// the longest header in front of the body).
    offset: u8,
    /// Header length of the plain frame.
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
            deflated: 0,
            offset: 0,
            frame: Arc::new(frame),
        }
    }

    /// Bytes that go on the wire as they are, with no WebSocket framing (the
    /// HTTP responses of the handshake phase share the write path).
    pub(crate) fn raw(bytes: Vec<u8>) -> Payload {
        Payload {
            frame: Arc::new(bytes),
            deflated: 0,
            offset: 0,
            header_len: 0,
        }
    }

    /// The compressed twin of this plain data frame: `header` and
    /// `compressed` (its RSV1 frame) followed by this frame, in one
    /// allocation. `None` when the compressed frame does not fit the 32-bit
    /// length (then the plain frame is sent).
    pub(crate) fn deflated(&self, header: &[u8], compressed: &[u8]) -> Option<Payload> {
        let wire = u32::try_from(header.len() + compressed.len()).ok()?;
        let plain = self.frame();
        let mut bytes = Vec::with_capacity(header.len() + compressed.len() + plain.len());
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(compressed);
        bytes.extend_from_slice(plain);
        Some(Payload {
            frame: Arc::new(bytes),
            deflated: wire,
            offset: 0,
            header_len: self.header_len,
        })
    }

    /// Whether this is a compressed twin.
    pub(crate) fn is_deflated(&self) -> bool {
        self.deflated != 0
    }

    /// Whether both are the same shared frame (not merely equal bytes).
    pub(crate) fn same(&self, other: &Payload) -> bool {
        Arc::ptr_eq(&self.frame, &other.frame) && self.offset == other.offset
    }

    /// The opcode of a plain text or binary frame (`None` for raw bytes,
    /// control frames and compressed twins: nothing to compress).
    pub(crate) fn data_opcode(&self) -> Option<OpCode> {
        if self.header_len == 0 || self.is_deflated() {
            return None;
        }
        match OpCode::try_from(self.frame()[0] & 0x0F) {
            Ok(op @ (OpCode::Text | OpCode::Binary)) => Some(op),
            _ => None,
        }
    }

    /// The whole frame as it goes on the wire.
    pub fn frame(&self) -> &[u8] {
        let start = usize::from(self.offset);
        match self.deflated {
            0 => &self.frame[start..],
            wire => &self.frame[start..start + wire as usize],
        }
    }

    /// The frame's body (the message bytes).
    pub fn body(&self) -> &[u8] {
        &self.frame
            [usize::from(self.offset) + self.deflated as usize + usize::from(self.header_len)..]
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
        self.frame.len()
            - usize::from(self.offset)
            - self.deflated as usize
            - usize::from(self.header_len)
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

/// Room kept in front of a pooled frame's body for its header (the longest
/// server header, RFC 6455 §5.2).
const HEAD_ROOM: usize = 10;

/// Buffers for frames the hub builds on its own thread (relayed messages),
/// reused once every ring that held one has written it: after warm-up a
/// relayed message allocates no frame.
///
/// Invariant: a slot is free when the pool holds its only reference. The
/// pool looks at a few slots from a cursor (frames leave rings roughly in
/// the order they were made, so the next slot is usually free); when none of
/// them is, a new buffer is made, up to `max_slots`, then frames are made
/// unpooled (counted as misses).
#[derive(Debug)]
pub(crate) struct FramePool {
    slots: Vec<Arc<Vec<u8>>>,
    cursor: usize,
    max_slots: usize,
    /// Largest buffer kept for reuse: a rare huge message does not pin its
    /// memory in the pool.
    max_keep: usize,
    misses: u64,
}

/// Slots looked at before a pool grows.
const PROBES: usize = 4;

impl FramePool {
    pub(crate) fn new(max_slots: usize, max_keep: usize) -> FramePool {
        FramePool {
            slots: Vec::with_capacity(max_slots),
            cursor: 0,
            max_slots,
            max_keep,
            misses: 0,
        }
    }

    /// A text frame whose body `write` appends to the given buffer.
    pub(crate) fn text(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Payload {
        self.frame(OpCode::Text, 0, write)
    }

    /// A frame carrying `body` as it is (a received text or binary message
    /// handed to the host, a pong).
    pub(crate) fn copy(&mut self, opcode: OpCode, body: &[u8]) -> Payload {
        if HEAD_ROOM + body.len() > self.max_keep {
            // Too long to keep: encoded as an unpooled `Payload` is, the
            // frame at the start of its buffer (built with head room in
            // front, a 16 KiB echo measured 25-30 % slower).
            self.misses += 1;
            return Payload::encode(opcode, body);
        }
        self.frame(opcode, body.len(), |out| out.extend_from_slice(body))
    }

    /// A frame of `opcode` whose body `write` appends to the given buffer
    /// (`size`: the body's length when known, for a new buffer's capacity).
    fn frame(&mut self, opcode: OpCode, size: usize, write: impl FnOnce(&mut Vec<u8>)) -> Payload {
        if HEAD_ROOM + size > self.max_keep {
            // Too long to keep: made to measure, outside the pool.
            self.misses += 1;
            return unpooled(opcode, size, write);
        }
        if let Some(i) = self.free_slot() {
            let slot = &mut self.slots[i];
            let (offset, header_len) = match Arc::get_mut(slot) {
                Some(buf) => fill(buf, opcode, write),
                None => unreachable!("a free slot has no other reference"),
            };
            return Payload {
                frame: slot.clone(),
                deflated: 0,
                offset,
                header_len,
            };
        }
        let mut buf = Vec::with_capacity((HEAD_ROOM + size).max(256));
        let (offset, header_len) = fill(&mut buf, opcode, write);
        let frame = Arc::new(buf);
        if self.slots.len() < self.max_slots && frame.capacity() <= self.max_keep {
            self.slots.push(frame.clone());
        } else {
            self.misses += 1;
        }
        Payload {
            frame,
            deflated: 0,
            offset,
            header_len,
        }
    }

    /// A slot no ring holds any more, looked for from the cursor.
    fn free_slot(&mut self) -> Option<usize> {
        let n = self.slots.len();
        for i in 0..PROBES.min(n) {
            let at = (self.cursor + i) % n;
            if Arc::strong_count(&self.slots[at]) == 1 {
                if self.slots[at].capacity() > self.max_keep {
                    // A rare huge message grew it: let it go.
                    self.slots[at] = Arc::new(Vec::with_capacity(256));
                }
                self.cursor = (at + 1) % n;
                return Some(at);
            }
        }
        None
    }

    /// Frames built unpooled because every slot was busy.
    pub(crate) fn misses(&self) -> u64 {
        self.misses
    }
}

/// A frame in a buffer of its own, of the capacity it needs.
fn unpooled(opcode: OpCode, size: usize, write: impl FnOnce(&mut Vec<u8>)) -> Payload {
    let mut buf = Vec::with_capacity(HEAD_ROOM + size);
    let (offset, header_len) = fill(&mut buf, opcode, write);
    Payload {
        frame: Arc::new(buf),
        deflated: 0,
        offset,
        header_len,
    }
}

/// Writes a frame into `buf`: the body by `write`, then the header right in
/// front of it. Returns where the frame starts and its header size.
fn fill(buf: &mut Vec<u8>, opcode: OpCode, write: impl FnOnce(&mut Vec<u8>)) -> (u8, u8) {
    buf.clear();
    buf.resize(HEAD_ROOM, 0);
    write(buf);
    let mut head = [0u8; HEAD_ROOM];
    let header_len = ws::encode_header(opcode, true, buf.len() - HEAD_ROOM, &mut head);
    let start = HEAD_ROOM - header_len;
    buf[start..HEAD_ROOM].copy_from_slice(&head[..header_len]);
    (start as u8, header_len as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_reuses_free_frames_and_keeps_no_more_than_its_caps() {
        let mut pool = FramePool::new(2, 256);
        let a = pool.text(|out| out.extend_from_slice(b"first"));
        assert_eq!(a.body(), b"first");
        assert_eq!(a.frame()[0], 0x81);
        let b = pool.text(|out| out.extend_from_slice(b"second"));
        // Both slots are in use: a third frame is made outside the pool.
        let c = pool.text(|out| out.extend_from_slice(b"third"));
        assert_eq!((pool.slots.len(), pool.misses()), (2, 1));
        assert_eq!(c.body(), b"third");
        // Once the rings let go, a slot's buffer is written again.
        let first_buffer = Arc::as_ptr(&a.frame);
        drop(a);
        let d = pool.text(|out| out.extend_from_slice(b"fourth"));
        assert_eq!(Arc::as_ptr(&d.frame), first_buffer);
        assert_eq!(d.body(), b"fourth");
        assert_eq!(b.body(), b"second", "a frame in use is never overwritten");
        // A frame longer than the pool keeps is not kept.
        drop((b, c, d));
        let mut small = FramePool::new(4, 64);
        let big = small.text(|out| out.extend(std::iter::repeat_n(b'x', 1000)));
        assert_eq!(big.len(), 1000);
        assert!(small.slots.is_empty(), "a large buffer is not pooled");
    }

    #[test]
    fn pooled_frames_of_any_opcode_match_the_plain_encoding() {
        let mut pool = FramePool::new(4, 1 << 20);
        // Control frames carry at most 125 bytes (RFC 6455 §5.5).
        let cases: [(OpCode, &[usize]); 3] = [
            (OpCode::Text, &[0, 125, 126, 70_000]),
            (OpCode::Binary, &[0, 126, 70_000]),
            (OpCode::Pong, &[0, 125]),
        ];
        for (op, lens) in cases {
            for &len in lens {
                let body = vec![7u8; len];
                let pooled = pool.copy(op, &body);
                let plain = Payload::encode(op, &body);
                assert_eq!(pooled.frame(), plain.frame(), "{op:?} {len}");
                assert_eq!(pooled.body(), &body[..]);
            }
        }
    }
}
