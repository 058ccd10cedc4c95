//! WebSocket frame codec (RFC 6455), server side.
//!
//! Decoding is zero-copy on the fast path. The hub reads from a socket into
//! one shared scratch buffer and lends the fresh bytes to the connection's
//! [`Decoder`] with [`Decoder::feed`]. Complete frames are unmasked in place
//! and handed out as [`Frame`]s that borrow the scratch buffer, so a frame
//! that arrives in one read costs no allocation and no copy. A decoder keeps
//! bytes of its own only while a frame is incomplete or a fragmented message
//! is being assembled, and frees them as soon as they have been delivered: an
//! idle decoder owns no heap memory.
//!
//! Decoding is strict: every violation of RFC 6455 that a server can detect
//! (unmasked frames, reserved bits and opcodes, malformed control frames,
//! fragmentation errors, invalid UTF-8, invalid close codes, oversized
//! frames) is reported as a [`ProtocolError`] that knows which close code to
//! answer with. No extensions are supported.
//!
//! Encoding covers what a server sends: unmasked frames, built with
//! [`encode_header`], [`encode_frame`] and [`encode_close`].
//!
//! # Example
//!
//! ```
//! use wshub::codec::{Decoder, Frame, Limits, OpCode, apply_mask, encode_close, encode_frame, encode_header};
//!
//! // A frame as a client sends it: masked, here with a fixed key.
//! fn client_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
//!     let mut header = [0; 10];
//!     let n = encode_header(opcode, fin, payload.len(), &mut header);
//!     header[1] |= 0x80; // mask bit
//!     let mask = [0x37, 0xfa, 0x21, 0x3d];
//!     let mut frame = [&header[..n], &mask[..], payload].concat();
//!     apply_mask(&mut frame[n + 4..], mask, 0);
//!     frame
//! }
//!
//! let mut wire = [
//!     client_frame(OpCode::Text, true, br#"{"n":1}"#),
//!     client_frame(OpCode::Ping, true, b"are you there?"),
//!     client_frame(OpCode::Binary, false, &[1, 2]), // first fragment
//!     client_frame(OpCode::Continuation, true, &[3, 4]),
//!     client_frame(OpCode::Close, true, &[0x03, 0xe8]), // 1000
//!     client_frame(OpCode::Text, true, b"ignored: sent after close"),
//! ]
//! .concat();
//!
//! let mut decoder = Decoder::new(Limits::default());
//! let mut outbox: Vec<Vec<u8>> = Vec::new();
//! let mut texts = Vec::new();
//!
//! // Two socket reads that happen to cut the ping frame in half.
//! let (read1, read2) = wire.split_at_mut(15);
//! 'reads: for read in [read1, read2] {
//!     let mut feed = decoder.feed(read);
//!     loop {
//!         match feed.next_frame() {
//!             Ok(Some(Frame::Text(text))) => texts.push(text.to_owned()), // e.g. parse JSON
//!             Ok(Some(Frame::Binary(data))) => assert_eq!(data, [1, 2, 3, 4]),
//!             Ok(Some(Frame::Ping(payload))) => outbox.push(encode_frame(OpCode::Pong, payload)),
//!             Ok(Some(Frame::Pong(_))) => {}
//!             Ok(Some(Frame::Close(close))) => {
//!                 let code = close.map_or(1000, |c| c.code);
//!                 outbox.push(encode_close(code, ""));
//!                 break 'reads;
//!             }
//!             Ok(None) => break, // input used up: read more
//!             Err(e) => {
//!                 outbox.push(encode_close(e.close_code(), &e.to_string()));
//!                 break 'reads;
//!             }
//!         }
//!     }
//! }
//!
//! assert_eq!(texts, [r#"{"n":1}"#]);
//! assert_eq!(outbox.len(), 2); // pong + close
//! assert!(decoder.is_closed());
//! assert_eq!(decoder.buffered_capacity(), 0);
//! ```

use std::fmt;
use std::ops::Range;
use std::str;

/// Largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcode (RFC 6455 §5.2).
///
/// # Example
///
/// ```
/// use wshub::codec::OpCode;
///
/// assert_eq!(u8::from(OpCode::Ping), 0x9);
/// assert_eq!(OpCode::try_from(0x2), Ok(OpCode::Binary));
/// assert!(OpCode::try_from(0x3).is_err()); // reserved
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// Continuation of a fragmented message (`0x0`).
    Continuation,
    /// First frame of a text message (`0x1`).
    Text,
    /// First frame of a binary message (`0x2`).
    Binary,
    /// Connection close (`0x8`).
    Close,
    /// Ping (`0x9`).
    Ping,
    /// Pong (`0xA`).
    Pong,
}

impl OpCode {
    /// Returns `true` for close, ping and pong, which may not be fragmented
    /// and carry at most 125 bytes.
    ///
    /// # Example
    ///
    /// ```
    /// use wshub::codec::OpCode;
    ///
    /// assert!(OpCode::Pong.is_control());
    /// assert!(!OpCode::Text.is_control());
    /// ```
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

impl From<OpCode> for u8 {
    fn from(opcode: OpCode) -> u8 {
        match opcode {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }
}

impl TryFrom<u8> for OpCode {
    type Error = ProtocolError;

    fn try_from(value: u8) -> Result<OpCode, ProtocolError> {
        match value {
            0x0 => Ok(OpCode::Continuation),
            0x1 => Ok(OpCode::Text),
            0x2 => Ok(OpCode::Binary),
            0x8 => Ok(OpCode::Close),
            0x9 => Ok(OpCode::Ping),
            0xA => Ok(OpCode::Pong),
            other => Err(ProtocolError::ReservedOpcode(other)),
        }
    }
}

/// Size limits enforced by a [`Decoder`].
///
/// Both are checked as soon as a frame header has been parsed, before any of
/// its payload is buffered, so a peer cannot make the decoder hold more than
/// the limits (plus one header) by announcing a large frame.
///
/// # Example
///
/// ```
/// use wshub::codec::{Decoder, Limits};
///
/// let limits = Limits { max_frame_size: 64 << 10, max_message_size: 1 << 20 };
/// let decoder = Decoder::new(limits);
/// # let _ = decoder;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted frame payload, in bytes.
    pub max_frame_size: usize,
    /// Largest accepted message payload (all fragments together), in bytes.
    pub max_message_size: usize,
}

impl Default for Limits {
    /// 16 MiB frames and 64 MiB messages, the defaults of tungstenite.
    fn default() -> Limits {
        Limits {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
        }
    }
}

/// A decoded frame or, for fragmented messages, a whole reassembled message.
///
/// Payloads borrow from the [`Feed`] that produced them: either the caller's
/// input buffer or the decoder's own buffers.
///
/// # Example
///
/// ```
/// use wshub::codec::{CloseFrame, Frame};
///
/// fn describe(frame: Frame<'_>) -> String {
///     match frame {
///         Frame::Text(text) => format!("text: {text}"),
///         Frame::Binary(data) => format!("{} bytes", data.len()),
///         Frame::Ping(_) | Frame::Pong(_) => "heartbeat".to_owned(),
///         Frame::Close(Some(CloseFrame { code, reason })) => format!("close {code} {reason}"),
///         Frame::Close(None) => "close".to_owned(),
///     }
/// }
/// assert_eq!(describe(Frame::Text("hi")), "text: hi");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete text message, validated as UTF-8.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping; answer it with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// A close frame, with its status if the peer sent one.
    Close(Option<CloseFrame<'a>>),
}

/// Status carried by a close frame.
///
/// # Example
///
/// ```
/// use wshub::codec::CloseFrame;
///
/// let close = CloseFrame { code: 1001, reason: "going away" };
/// assert_eq!(close.code, 1001);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// Status code, already checked with [`is_valid_close_code`].
    pub code: u16,
    /// Reason, already checked to be UTF-8.
    pub reason: &'a str,
}

/// A violation of RFC 6455 by the peer.
///
/// The connection must be failed: send a close frame with
/// [`close_code`](ProtocolError::close_code) and drop the connection.
///
/// # Example
///
/// ```
/// use wshub::codec::{Decoder, ProtocolError};
///
/// let mut decoder = Decoder::default();
/// let mut unmasked_text = *b"\x81\x02hi";
/// let err = decoder.feed(&mut unmasked_text).next_frame().unwrap_err();
/// assert_eq!(err, ProtocolError::UnmaskedFrame);
/// assert_eq!(err.close_code(), 1002);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A client frame without a mask.
    UnmaskedFrame,
    /// RSV1, RSV2 or RSV3 set, though no extension was negotiated.
    ReservedBits,
    /// An opcode reserved for future use.
    ReservedOpcode(u8),
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLong,
    /// A control frame without FIN.
    FragmentedControlFrame,
    /// A continuation frame without a fragmented message in progress.
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message is in progress.
    ExpectedContinuation,
    /// A 64-bit payload length with the most significant bit set.
    InvalidPayloadLength,
    /// A frame payload larger than [`Limits::max_frame_size`].
    FrameTooLarge,
    /// A message larger than [`Limits::max_message_size`].
    MessageTooLarge,
    /// A text message or close reason that is not UTF-8.
    InvalidUtf8,
    /// A close code that may not be sent (see [`is_valid_close_code`]).
    InvalidCloseCode(u16),
    /// A close frame with a one-byte payload.
    InvalidClosePayload,
}

impl ProtocolError {
    /// The close code to fail the connection with: 1007 for invalid UTF-8,
    /// 1009 for oversized frames and messages, 1002 for everything else.
    ///
    /// # Example
    ///
    /// ```
    /// use wshub::codec::ProtocolError;
    ///
    /// assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
    /// assert_eq!(ProtocolError::MessageTooLarge.close_code(), 1009);
    /// assert_eq!(ProtocolError::ReservedBits.close_code(), 1002);
    /// ```
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8 => 1007,
            ProtocolError::FrameTooLarge | ProtocolError::MessageTooLarge => 1009,
            _ => 1002,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnmaskedFrame => f.write_str("client frame is not masked"),
            ProtocolError::ReservedBits => f.write_str("reserved bits set"),
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::ControlFrameTooLong => {
                f.write_str("control frame longer than 125 bytes")
            }
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new message while a fragmented message is in progress")
            }
            ProtocolError::InvalidPayloadLength => f.write_str("invalid 64-bit payload length"),
            ProtocolError::FrameTooLarge => f.write_str("frame too large"),
            ProtocolError::MessageTooLarge => f.write_str("message too large"),
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::InvalidClosePayload => f.write_str("close frame with a 1-byte payload"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Returns whether a peer may send `code` in a close frame.
///
/// Accepts 1000–1003, 1007–1014 and 3000–4999. Rejects codes that are
/// reserved for local use only (1005, 1006, 1015), unassigned (1004, 0–999,
/// 1016–2999) or out of range.
///
/// # Example
///
/// ```
/// use wshub::codec::is_valid_close_code;
///
/// assert!(is_valid_close_code(1000));
/// assert!(is_valid_close_code(4321));
/// assert!(!is_valid_close_code(1005));
/// ```
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Decodes the frames a client sends on one connection.
///
/// See [`Decoder::feed`] for the calling contract.
///
/// # Example
///
/// ```
/// use wshub::codec::{Decoder, Limits};
///
/// let decoder = Decoder::new(Limits::default());
/// assert_eq!(decoder.buffered_capacity(), 0);
/// ```
pub struct Decoder {
    limits: Limits,
    /// Set after a close frame or a protocol error: all input is discarded.
    closed: bool,
    /// Raw bytes carried over between feeds, starting with a frame header at
    /// `start`: the incomplete frame at the end of the last read, or input
    /// left unread because a [`Feed`] was dropped early.
    saved: Vec<u8>,
    start: usize,
    /// How many payload bytes of the frame at `saved[start..]` are already
    /// unmasked (and UTF-8 checked), so that topping up a large frame read
    /// by read only touches the new bytes.
    unmasked: usize,
    msg: Assembly,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Buffers can hold megabytes: show their sizes, not their bytes.
        f.debug_struct("Decoder")
            .field("limits", &self.limits)
            .field("closed", &self.closed)
            .field("saved_len", &(self.saved.len() - self.start))
            .field("message_kind", &self.msg.kind)
            .field("message_len", &self.msg.buf.len())
            .finish_non_exhaustive()
    }
}

impl Default for Decoder {
    /// A decoder with [`Limits::default`].
    fn default() -> Decoder {
        Decoder::new(Limits::default())
    }
}

impl Decoder {
    /// Creates a decoder. It allocates nothing until a frame spans reads or
    /// a message is fragmented.
    ///
    /// # Example
    ///
    /// ```
    /// use wshub::codec::{Decoder, Limits};
    ///
    /// let decoder = Decoder::new(Limits { max_frame_size: 4096, max_message_size: 65536 });
    /// assert!(!decoder.is_closed());
    /// ```
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            closed: false,
            saved: Vec::new(),
            start: 0,
            unmasked: 0,
            msg: Assembly::default(),
        }
    }

    /// Lends freshly read bytes to the decoder. Pull frames with
    /// [`Feed::next_frame`].
    ///
    /// Contract:
    ///
    /// * `input` is modified: payloads are unmasked in place. Its contents are
    ///   unspecified afterwards.
    /// * Each [`Frame`] borrows the `Feed` (and through it `input` or the
    ///   decoder's buffers), so it must be dropped before the next call to
    ///   `next_frame`. Copy out what must outlive it.
    /// * Call `next_frame` until it returns `Ok(None)`: by then every byte of
    ///   `input` has been used, and an incomplete frame at its end has been
    ///   copied into the decoder, to be completed by the next `feed`.
    /// * After `Ok(Some(Frame::Close(_)))` or `Err(_)` the decoder is closed
    ///   (see [`is_closed`](Decoder::is_closed)): the rest of the input and
    ///   everything fed later is ignored, and `next_frame` returns `Ok(None)`.
    ///   A close reply (or [`ProtocolError::close_code`]) is up to the caller.
    /// * Dropping the `Feed` early loses nothing: unread input is copied into
    ///   the decoder and decoded first by the next `feed`, which may be given
    ///   an empty slice to drain it.
    ///
    /// # Example
    ///
    /// ```
    /// use wshub::codec::{Decoder, Frame};
    ///
    /// // "Hello" from RFC 6455 §5.7, masked, arriving in two reads.
    /// let mut wire = *b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    /// let (read1, read2) = wire.split_at_mut(4);
    /// let mut decoder = Decoder::default();
    ///
    /// assert_eq!(decoder.feed(read1).next_frame(), Ok(None));
    /// assert!(decoder.buffered_capacity() > 0); // holds the partial frame
    ///
    /// let mut feed = decoder.feed(read2);
    /// assert_eq!(feed.next_frame(), Ok(Some(Frame::Text("Hello"))));
    /// assert_eq!(feed.next_frame(), Ok(None));
    /// drop(feed);
    /// assert_eq!(decoder.buffered_capacity(), 0); // released again
    /// ```
    pub fn feed<'a>(&'a mut self, input: &'a mut [u8]) -> Feed<'a> {
        Feed {
            dec: self,
            input,
            pos: 0,
        }
    }

    /// Heap bytes currently owned by the decoder, for memory accounting.
    /// Zero for an idle decoder.
    ///
    /// # Example
    ///
    /// ```
    /// use wshub::codec::Decoder;
    ///
    /// let mut decoder = Decoder::default();
    /// let mut half_a_header = [0x81];
    /// decoder.feed(&mut half_a_header).next_frame().unwrap();
    /// assert!(decoder.buffered_capacity() >= 1);
    /// ```
    pub fn buffered_capacity(&self) -> usize {
        self.saved.capacity() + self.msg.buf.capacity()
    }

    /// Returns `true` once a close frame has been delivered or a protocol
    /// error reported. A closed decoder discards all input.
    ///
    /// # Example
    ///
    /// ```
    /// use wshub::codec::Decoder;
    ///
    /// let mut decoder = Decoder::default();
    /// let mut close = *b"\x88\x80\x00\x00\x00\x00"; // masked, empty close
    /// decoder.feed(&mut close).next_frame().unwrap();
    /// assert!(decoder.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Checks what depends on decoder state, as soon as a header is known.
    fn check(&self, h: &Header) -> Result<(), ProtocolError> {
        let len = h.payload_len();
        if len > self.limits.max_frame_size {
            return Err(ProtocolError::FrameTooLarge);
        }
        let message_len = match (h.opcode, self.msg.kind) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, Some(_)) => self.msg.buf.len().saturating_add(len),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            (OpCode::Text | OpCode::Binary, None) => len,
            _ => return Ok(()),
        };
        if message_len > self.limits.max_message_size {
            return Err(ProtocolError::MessageTooLarge);
        }
        Ok(())
    }

    /// Frees buffers whose contents have been delivered.
    ///
    /// Memory is released outright rather than kept for reuse: idle
    /// connections vastly outnumber busy ones, and a frame spanning reads is
    /// the exception, so an allocation then is cheaper than pinning a buffer
    /// in every connection that once saw one.
    fn reclaim(&mut self) {
        if self.closed {
            self.saved = Vec::new();
            self.start = 0;
            self.unmasked = 0;
            self.msg = Assembly::default();
            return;
        }
        if self.start == self.saved.len() {
            self.saved = Vec::new();
            self.start = 0;
        }
        if self.msg.delivered {
            self.msg.buf = Vec::new();
            self.msg.delivered = false;
        }
    }
}

/// Decoding session over one read's worth of input; see [`Decoder::feed`].
///
/// # Example
///
/// ```
/// use wshub::codec::{Decoder, Frame};
///
/// let mut decoder = Decoder::default();
/// // Two masked pings (mask 0, so the payloads read as plain text).
/// let mut input = *b"\x89\x81\0\0\0\0a\x89\x81\0\0\0\0b";
/// let mut feed = decoder.feed(&mut input);
/// let mut pings = Vec::new();
/// while let Some(frame) = feed.next_frame()? {
///     if let Frame::Ping(payload) = frame {
///         pings.push(payload.to_vec());
///     }
/// }
/// assert_eq!(pings, [b"a", b"b"]);
/// # Ok::<(), wshub::codec::ProtocolError>(())
/// ```
#[must_use = "input is only decoded by calling `next_frame`"]
pub struct Feed<'a> {
    dec: &'a mut Decoder,
    input: &'a mut [u8],
    /// First byte of `input` not yet consumed.
    pos: usize,
}

impl Feed<'_> {
    /// Decodes the next frame or reassembled message.
    ///
    /// Returns `Ok(None)` once the input is used up (see [`Decoder::feed`]
    /// for the full contract). Data messages are only returned when
    /// complete; control frames are returned as they arrive, also between
    /// the fragments of a message.
    ///
    /// # Example
    ///
    /// ```
    /// use wshub::codec::{Decoder, ProtocolError};
    ///
    /// let mut decoder = Decoder::default();
    /// // Masked text frame whose payload is not UTF-8.
    /// let mut input = *b"\x81\x81\0\0\0\0\xff";
    /// let mut feed = decoder.feed(&mut input);
    /// let err = feed.next_frame().unwrap_err();
    /// assert_eq!(err, ProtocolError::InvalidUtf8);
    /// assert_eq!(err.close_code(), 1007);
    /// assert_eq!(feed.next_frame(), Ok(None)); // closed from now on
    /// ```
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, ProtocolError> {
        // `advance` returns where the payload is rather than a borrow of it,
        // so that the borrow checker accepts its loop; the one borrow is
        // taken here.
        let event = match self.advance() {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.dec.closed = true;
                self.dec.reclaim();
                return Err(e);
            }
        };
        let payload = match event.source {
            Source::Input => &self.input[event.range],
            Source::Saved => &self.dec.saved[event.range],
            Source::Message => &self.dec.msg.buf[..],
        };
        match to_frame(event.opcode, payload) {
            Ok(frame) => Ok(Some(frame)),
            Err(e) => {
                // `payload` is still borrowed: buffers are released by the
                // next call or when the feed is dropped.
                self.dec.closed = true;
                Err(e)
            }
        }
    }

    /// Consumes input until a frame is ready for delivery.
    fn advance(&mut self) -> Result<Option<Event>, ProtocolError> {
        let Feed { dec, input, pos } = self;
        let dec: &mut Decoder = dec;
        let input: &mut [u8] = input;
        loop {
            dec.reclaim();
            if dec.closed {
                *pos = input.len();
                return Ok(None);
            }
            let (deliver, source, range) = if dec.start < dec.saved.len() {
                // Slow path: continue the frame carried over from earlier
                // reads, appending only the bytes it still lacks.
                let have = dec.saved.len() - dec.start;
                let h = match parse_header(&dec.saved[dec.start..])? {
                    Parsed::Complete(h) => h,
                    Parsed::Incomplete(needed) => {
                        if *pos == input.len() {
                            return Ok(None);
                        }
                        take(&mut dec.saved, input, pos, needed - have);
                        continue;
                    }
                };
                dec.check(&h)?;
                if have < h.frame_len {
                    take(&mut dec.saved, input, pos, h.frame_len - have);
                }
                let payload_start = dec.start + h.header_len;
                let end = dec.saved.len().min(dec.start + h.frame_len);
                let fresh = payload_start + dec.unmasked;
                if fresh < end {
                    let bytes = &mut dec.saved[fresh..end];
                    apply_mask(bytes, h.mask, dec.unmasked);
                    // Checking text as it trickles in rejects a bad frame
                    // before the rest of it has been buffered.
                    if dec.msg.is_text(&h) {
                        dec.msg.utf8.feed(bytes)?;
                    }
                    dec.unmasked = end - payload_start;
                }
                if end < dec.start + h.frame_len {
                    return Ok(None); // input used up mid-frame
                }
                dec.start = end;
                dec.unmasked = 0;
                let range = payload_start..end;
                let deliver = dec.msg.complete(&h, &dec.saved[range.clone()], true)?;
                (deliver, Source::Saved, range)
            } else if *pos < input.len() {
                // Fast path: a frame complete within the input is unmasked
                // in place and delivered from there.
                let rest = &mut input[*pos..];
                let h = match parse_header(rest)? {
                    Parsed::Complete(h) if h.frame_len <= rest.len() => h,
                    parsed => {
                        // Vet the header before buffering anything behind it.
                        if let Parsed::Complete(h) = parsed {
                            dec.check(&h)?;
                        }
                        dec.saved.extend_from_slice(rest);
                        *pos = input.len();
                        continue; // the slow path unmasks and checks it
                    }
                };
                dec.check(&h)?;
                let range = *pos + h.header_len..*pos + h.frame_len;
                *pos += h.frame_len;
                let payload = &mut input[range.clone()];
                apply_mask(payload, h.mask, 0);
                let deliver = dec.msg.complete(&h, payload, false)?;
                (deliver, Source::Input, range)
            } else {
                return Ok(None);
            };
            let event = match deliver {
                Deliver::Nothing => continue,
                Deliver::Payload(opcode) => {
                    dec.closed = opcode == OpCode::Close;
                    Event {
                        opcode,
                        source,
                        range,
                    }
                }
                Deliver::Message(opcode) => Event {
                    opcode,
                    source: Source::Message,
                    range: 0..0,
                },
            };
            return Ok(Some(event));
        }
    }
}

impl fmt::Debug for Feed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("decoder", &self.dec)
            .field("unread", &(self.input.len() - self.pos))
            .finish()
    }
}

impl Drop for Feed<'_> {
    fn drop(&mut self) {
        let dec = &mut *self.dec;
        dec.reclaim();
        let rest = &self.input[self.pos..];
        if !dec.closed && !rest.is_empty() {
            // Stopped early. Keep the unread input; compact first so that a
            // caller that keeps doing this doesn't accumulate consumed bytes.
            dec.saved.drain(..dec.start);
            dec.start = 0;
            dec.saved.extend_from_slice(rest);
        }
    }
}

/// Where a delivered payload lives.
enum Source {
    Input,
    Saved,
    Message,
}

/// A frame ready for delivery, described without borrowing it.
struct Event {
    opcode: OpCode,
    source: Source,
    range: Range<usize>,
}

/// What a completed frame produces.
enum Deliver {
    /// A fragment that was added to the message in progress.
    Nothing,
    /// The frame's own payload, as a frame of this opcode.
    Payload(OpCode),
    /// The reassembled message, of this opcode.
    Message(OpCode),
}

/// State of the fragmented message in progress, if any.
#[derive(Default)]
struct Assembly {
    /// `Text` or `Binary` while a fragmented message is in progress.
    kind: Option<OpCode>,
    /// Unmasked payload received so far.
    buf: Vec<u8>,
    /// Lets invalid text fail on the fragment where it goes wrong instead of
    /// at the end of the message.
    utf8: Utf8Validator,
    /// `buf` holds a delivered message; drop it before decoding on.
    delivered: bool,
}

impl Assembly {
    /// Whether `h` carries (part of) a text message.
    fn is_text(&self, h: &Header) -> bool {
        match h.opcode {
            OpCode::Text => true,
            OpCode::Continuation => self.kind == Some(OpCode::Text),
            _ => false,
        }
    }

    /// Accounts for a complete, unmasked, [`Decoder::check`]ed frame whose
    /// payload, if `prechecked`, has already been fed to `utf8`.
    fn complete(
        &mut self,
        h: &Header,
        payload: &[u8],
        prechecked: bool,
    ) -> Result<Deliver, ProtocolError> {
        match h.opcode {
            opcode if opcode.is_control() => Ok(Deliver::Payload(opcode)),
            OpCode::Continuation => {
                self.append(payload, prechecked)?;
                if !h.fin {
                    return Ok(Deliver::Nothing);
                }
                // `to_frame` validates the message as a whole, which catches
                // a code point left incomplete at its end.
                self.utf8 = Utf8Validator::default();
                self.delivered = true;
                let kind = self.kind.take();
                kind.map(Deliver::Message)
                    .ok_or(ProtocolError::UnexpectedContinuation)
            }
            opcode if h.fin => {
                self.utf8 = Utf8Validator::default();
                Ok(Deliver::Payload(opcode))
            }
            opcode => {
                self.kind = Some(opcode);
                self.append(payload, prechecked)?;
                Ok(Deliver::Nothing)
            }
        }
    }

    fn append(&mut self, payload: &[u8], prechecked: bool) -> Result<(), ProtocolError> {
        if !prechecked && self.kind == Some(OpCode::Text) {
            self.utf8.feed(payload)?;
        }
        self.buf.extend_from_slice(payload);
        Ok(())
    }
}

/// Builds the frame to deliver, validating text and close payloads.
fn to_frame(opcode: OpCode, payload: &[u8]) -> Result<Frame<'_>, ProtocolError> {
    Ok(match opcode {
        OpCode::Text => {
            Frame::Text(str::from_utf8(payload).map_err(|_| ProtocolError::InvalidUtf8)?)
        }
        // A continuation is resolved to its message's opcode before getting
        // here.
        OpCode::Binary | OpCode::Continuation => Frame::Binary(payload),
        OpCode::Ping => Frame::Ping(payload),
        OpCode::Pong => Frame::Pong(payload),
        OpCode::Close => Frame::Close(match payload {
            [] => None,
            [_] => return Err(ProtocolError::InvalidClosePayload),
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                if !is_valid_close_code(code) {
                    return Err(ProtocolError::InvalidCloseCode(code));
                }
                let reason = str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
                Some(CloseFrame { code, reason })
            }
        }),
    })
}

/// Moves up to `n` unread input bytes into `saved`.
fn take(saved: &mut Vec<u8>, input: &[u8], pos: &mut usize, n: usize) {
    let end = *pos + n.min(input.len() - *pos);
    saved.extend_from_slice(&input[*pos..end]);
    *pos = end;
}

/// A parsed client frame header.
#[derive(Clone, Copy, Debug)]
struct Header {
    fin: bool,
    opcode: OpCode,
    mask: [u8; 4],
    header_len: usize,
    /// Header and payload.
    frame_len: usize,
}

impl Header {
    fn payload_len(&self) -> usize {
        self.frame_len - self.header_len
    }
}

enum Parsed {
    Complete(Header),
    /// Header length needed, as far as known from the bytes so far.
    Incomplete(usize),
}

/// Parses and checks the stateless rules of a client frame header.
///
/// Each byte is checked as soon as it is there, so garbage is rejected
/// before anything behind it is buffered.
fn parse_header(buf: &[u8]) -> Result<Parsed, ProtocolError> {
    let Some(&b0) = buf.first() else {
        return Ok(Parsed::Incomplete(2));
    };
    if b0 & 0x70 != 0 {
        return Err(ProtocolError::ReservedBits);
    }
    let opcode = OpCode::try_from(b0 & 0x0F)?;
    let fin = b0 & 0x80 != 0;
    if opcode.is_control() && !fin {
        return Err(ProtocolError::FragmentedControlFrame);
    }
    let Some(&b1) = buf.get(1) else {
        return Ok(Parsed::Incomplete(2));
    };
    if b1 & 0x80 == 0 {
        return Err(ProtocolError::UnmaskedFrame);
    }
    let len7 = b1 & 0x7F;
    if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
        return Err(ProtocolError::ControlFrameTooLong);
    }
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header_len = 2 + ext + 4;
    if buf.len() < header_len {
        return Ok(Parsed::Incomplete(header_len));
    }
    // Like most implementations, accept lengths that are not minimally
    // encoded: rejecting them protects nothing.
    let len = match ext {
        0 => u64::from(len7),
        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        _ => {
            let mut be = [0; 8];
            be.copy_from_slice(&buf[2..10]);
            u64::from_be_bytes(be)
        }
    };
    if len >> 63 != 0 {
        return Err(ProtocolError::InvalidPayloadLength);
    }
    let frame_len = usize::try_from(len)
        .ok()
        .and_then(|len| len.checked_add(header_len))
        .ok_or(ProtocolError::FrameTooLarge)?;
    let mut mask = [0; 4];
    mask.copy_from_slice(&buf[header_len - 4..header_len]);
    Ok(Parsed::Complete(Header {
        fin,
        opcode,
        mask,
        header_len,
        frame_len,
    }))
}

/// Incremental UTF-8 validation across arbitrary chunk boundaries.
///
/// Fails on the first chunk that makes the text invalid whatever follows
/// (`std` reports exactly that distinction through `Utf8Error::error_len`),
/// and carries an incomplete trailing code point over to the next chunk.
#[derive(Clone, Copy, Default)]
struct Utf8Validator {
    partial: [u8; 4],
    partial_len: usize,
}

impl Utf8Validator {
    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ProtocolError> {
        if self.partial_len > 0 {
            // Complete the carried-over code point first. Its lead byte is
            // valid, otherwise it would have failed already.
            let have = self.partial_len;
            let width = match self.partial[0] {
                0xF0.. => 4,
                0xE0.. => 3,
                _ => 2,
            };
            let n = (width - have).min(bytes.len());
            self.partial[have..have + n].copy_from_slice(&bytes[..n]);
            self.partial_len = 0;
            match str::from_utf8(&self.partial[..have + n]) {
                Ok(_) => bytes = &bytes[n..],
                Err(e) if e.error_len().is_none() => {
                    self.partial_len = have + n; // still short: `bytes` is used up
                    return Ok(());
                }
                Err(_) => return Err(ProtocolError::InvalidUtf8),
            }
        }
        match str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &bytes[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
            Err(_) => Err(ProtocolError::InvalidUtf8),
        }
    }
}

/// XORs `buf` with the masking key, as if `buf` started `offset` bytes into
/// the payload, so a payload can be unmasked piecewise as it arrives.
/// Masking and unmasking are the same operation.
///
/// # Example
///
/// ```
/// use wshub::codec::apply_mask;
///
/// let mask = [0x37, 0xfa, 0x21, 0x3d];
/// let mut payload = *b"Hello, world";
/// apply_mask(&mut payload, mask, 0);
/// // Unmasking in two pieces gives back the original.
/// let (a, b) = payload.split_at_mut(5);
/// apply_mask(a, mask, 0);
/// apply_mask(b, mask, 5);
/// assert_eq!(&payload, b"Hello, world");
/// ```
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset % 4);
    // Eight bytes at a time: the key repeats every four bytes, so each
    // 8-byte block starts at the same phase. The compiler vectorizes this.
    let [k0, k1, k2, k3] = key;
    let wide = u64::from_ne_bytes([k0, k1, k2, k3, k0, k1, k2, k3]);
    let mut blocks = buf.chunks_exact_mut(8);
    for block in &mut blocks {
        let mut word = [0; 8];
        word.copy_from_slice(block);
        block.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (byte, k) in blocks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// Writes the header of an unmasked (server) frame into `out` and returns
/// its length: 2, 4 or 10 bytes.
///
/// Lets the caller write header and payload without building a frame in
/// memory. Control frames must be final with at most 125 bytes of payload.
///
/// # Example
///
/// ```
/// use wshub::codec::{OpCode, encode_header};
///
/// let mut header = [0; 10];
/// let n = encode_header(OpCode::Binary, true, 300, &mut header);
/// assert_eq!(&header[..n], [0x82, 126, 0x01, 0x2c]);
/// ```
pub fn encode_header(opcode: OpCode, fin: bool, payload_len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = (u8::from(fin) << 7) | u8::from(opcode);
    if let Ok(len @ 0..=125) = u8::try_from(payload_len) {
        out[1] = len;
        2
    } else if let Ok(len) = u16::try_from(payload_len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    }
}

/// Encodes a final, unmasked frame: header and payload in one buffer, ready
/// to be shared by every recipient.
///
/// # Example
///
/// ```
/// use wshub::codec::{OpCode, encode_frame};
///
/// assert_eq!(encode_frame(OpCode::Text, b"hi"), b"\x81\x02hi");
/// assert_eq!(encode_frame(OpCode::Close, b""), b"\x88\x00"); // close without status
/// ```
pub fn encode_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    debug_assert!(!opcode.is_control() || payload.len() <= MAX_CONTROL_PAYLOAD);
    let mut header = [0; 10];
    let n = encode_header(opcode, true, payload.len(), &mut header);
    let mut frame = Vec::with_capacity(n + payload.len());
    frame.extend_from_slice(&header[..n]);
    frame.extend_from_slice(payload);
    frame
}

/// Encodes a close frame with a status code and reason.
///
/// The reason is truncated on a character boundary to fit the 125-byte
/// control frame limit. `code` is sent as given; it should pass
/// [`is_valid_close_code`]. For a close without status use
/// `encode_frame(OpCode::Close, b"")`.
///
/// # Example
///
/// ```
/// use wshub::codec::encode_close;
///
/// assert_eq!(encode_close(1000, "bye"), b"\x88\x05\x03\xe8bye");
/// assert_eq!(encode_close(1001, &"é".repeat(100)).len(), 2 + 2 + 122);
/// ```
pub fn encode_close(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut header = [0; 10];
    let n = encode_header(OpCode::Close, true, 2 + end, &mut header);
    let mut frame = Vec::with_capacity(n + 2 + end);
    frame.extend_from_slice(&header[..n]);
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(&reason.as_bytes()[..end]);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    const FIN: u8 = 0x80;
    const CONT: u8 = 0x0;
    const TEXT: u8 = 0x1;
    const BIN: u8 = 0x2;
    const CLOSE: u8 = 0x8;
    const PING: u8 = 0x9;
    const PONG: u8 = 0xA;

    /// Owned copy of a [`Frame`], so results outlive the feed.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Owned {
        Text(String),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<(u16, String)>),
    }

    impl From<Frame<'_>> for Owned {
        fn from(frame: Frame<'_>) -> Owned {
            match frame {
                Frame::Text(t) => Owned::Text(t.to_owned()),
                Frame::Binary(b) => Owned::Binary(b.to_vec()),
                Frame::Ping(b) => Owned::Ping(b.to_vec()),
                Frame::Pong(b) => Owned::Pong(b.to_vec()),
                Frame::Close(c) => Owned::Close(c.map(|c| (c.code, c.reason.to_owned()))),
            }
        }
    }

    fn text(s: &str) -> Owned {
        Owned::Text(s.to_owned())
    }

    /// Client frame with first byte `b0`, the given length encoding (0 =
    /// minimal, 2 = 16-bit, 8 = 64-bit) and mask (`None` = unmasked).
    fn frame_with(b0: u8, payload: &[u8], ext: usize, mask: Option<[u8; 4]>) -> Vec<u8> {
        let len = payload.len();
        let masked = if mask.is_some() { 0x80 } else { 0 };
        let ext = if ext == 0 {
            match len {
                0..=125 => 0,
                126..=0xFFFF => 2,
                _ => 8,
            }
        } else {
            ext
        };
        let mut out = vec![b0];
        match ext {
            0 => out.push(masked | len as u8),
            2 => {
                out.push(masked | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(masked | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if let Some(mask) = mask {
            out.extend_from_slice(&mask);
        }
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(mask) = mask {
            apply_mask(&mut out[start..], mask, 0);
        }
        out
    }

    /// Masked client frame with minimal length encoding.
    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        frame_with(b0, payload, 0, Some([0xA1, 0x5B, 0x07, 0xE3]))
    }

    /// Feeds `chunks` as separate reads, draining each.
    fn decode_with(dec: &mut Decoder, chunks: &[&[u8]]) -> Result<Vec<Owned>, ProtocolError> {
        let mut out = Vec::new();
        for chunk in chunks {
            let mut data = chunk.to_vec();
            let mut feed = dec.feed(&mut data);
            while let Some(frame) = feed.next_frame()? {
                out.push(frame.into());
            }
        }
        Ok(out)
    }

    fn decode(chunks: &[&[u8]]) -> Result<Vec<Owned>, ProtocolError> {
        decode_with(&mut Decoder::default(), chunks)
    }

    fn one_byte_at_a_time(bytes: &[u8]) -> Vec<&[u8]> {
        bytes.chunks(1).collect()
    }

    /// `bytes` fail with `expected`, whether read at once or byte by byte.
    fn assert_err(bytes: &[u8], expected: ProtocolError) {
        assert_eq!(decode(&[bytes]), Err(expected));
        let mut dec = Decoder::default();
        assert_eq!(
            decode_with(&mut dec, &one_byte_at_a_time(bytes)),
            Err(expected)
        );
        assert!(dec.is_closed());
        assert_eq!(dec.buffered_capacity(), 0);
    }

    #[test]
    fn unmasked_frame() {
        assert_err(
            &frame_with(FIN | TEXT, b"hi", 0, None),
            ProtocolError::UnmaskedFrame,
        );
        assert_eq!(ProtocolError::UnmaskedFrame.close_code(), 1002);
    }

    #[test]
    fn reserved_bits() {
        for rsv in [0x40, 0x20, 0x10, 0x70] {
            assert_err(&frame(FIN | rsv | TEXT, b"hi"), ProtocolError::ReservedBits);
            assert_err(&frame(FIN | rsv | PING, b""), ProtocolError::ReservedBits);
        }
    }

    #[test]
    fn reserved_opcodes() {
        for op in (3..=7).chain(0xB..=0xF) {
            assert_err(&frame(FIN | op, b""), ProtocolError::ReservedOpcode(op));
        }
    }

    #[test]
    fn control_frame_rules() {
        for op in [PING, PONG, CLOSE] {
            assert_err(
                &frame(FIN | op, &[0; 126]),
                ProtocolError::ControlFrameTooLong,
            );
            assert_err(&frame(op, b""), ProtocolError::FragmentedControlFrame);
        }
        assert_eq!(
            decode(&[&frame(FIN | PING, &[7; 125])]),
            Ok(vec![Owned::Ping(vec![7; 125])])
        );
    }

    #[test]
    fn fragmentation_rules() {
        assert_err(
            &frame(FIN | CONT, b"x"),
            ProtocolError::UnexpectedContinuation,
        );
        assert_err(&frame(CONT, b"x"), ProtocolError::UnexpectedContinuation);
        for op in [TEXT, BIN] {
            let wire = [frame(TEXT, b"a"), frame(FIN | op, b"b")].concat();
            assert_err(&wire, ProtocolError::ExpectedContinuation);
            let wire = [frame(BIN, b"a"), frame(op, b"b")].concat();
            assert_err(&wire, ProtocolError::ExpectedContinuation);
        }
        // A complete message ends the fragmentation; a stray continuation then fails.
        let wire = [
            frame(TEXT, b"a"),
            frame(FIN | CONT, b"b"),
            frame(FIN | CONT, b"c"),
        ]
        .concat();
        let mut dec = Decoder::default();
        assert_eq!(
            decode_with(&mut dec, &[&wire]),
            Err(ProtocolError::UnexpectedContinuation)
        );
    }

    #[test]
    fn fragmented_message_with_interleaved_control_frames() {
        let wire = [
            frame(TEXT, b"fra"),
            frame(FIN | PING, b"p1"),
            frame(CONT, b""),
            frame(CONT, b"gme"),
            frame(FIN | PONG, b"p2"),
            frame(FIN | CONT, b"nted"),
            frame(FIN | BIN, b"next"),
        ]
        .concat();
        let expected = vec![
            Owned::Ping(b"p1".to_vec()),
            Owned::Pong(b"p2".to_vec()),
            text("fragmented"),
            Owned::Binary(b"next".to_vec()),
        ];
        assert_eq!(decode(&[&wire]), Ok(expected.clone()));
        assert_eq!(decode(&one_byte_at_a_time(&wire)), Ok(expected));
    }

    #[test]
    fn invalid_utf8() {
        assert_err(&frame(FIN | TEXT, b"ok \xff"), ProtocolError::InvalidUtf8);
        // Surrogate, overlong, out of range, truncated.
        for bad in [
            &b"\xed\xa0\x80"[..],
            b"\xc0\xaf",
            b"\xf4\x90\x80\x80",
            b"\xe2\x82",
        ] {
            assert_err(&frame(FIN | TEXT, bad), ProtocolError::InvalidUtf8);
        }
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
    }

    #[test]
    fn utf8_split_across_fragments() {
        let s = "aκόσμε€😀z";
        let b = s.as_bytes();
        for i in 0..=b.len() {
            for j in i..=b.len() {
                let wire = [
                    frame(TEXT, &b[..i]),
                    frame(CONT, &b[i..j]),
                    frame(FIN | CONT, &b[j..]),
                ]
                .concat();
                assert_eq!(decode(&[&wire]), Ok(vec![text(s)]), "{i} {j}");
            }
        }
        // One fragment per byte, each arriving separately.
        let mut wire = frame(TEXT, b"");
        for byte in b {
            wire.extend(frame(CONT, &[*byte]));
        }
        wire.extend(frame(FIN | CONT, b""));
        assert_eq!(decode(&one_byte_at_a_time(&wire)), Ok(vec![text(s)]));
    }

    #[test]
    fn invalid_utf8_fails_fast() {
        // Fragment 2 makes the text invalid whatever follows: fail before FIN.
        let mut dec = Decoder::default();
        let first = frame(TEXT, "κόσμε\u{10FFFF}".as_bytes().split_last().unwrap().1);
        assert_eq!(decode_with(&mut dec, &[&first]), Ok(vec![]));
        let second = frame(CONT, b"A more"); // F4 8F BF 41: cannot become valid
        assert_eq!(
            decode_with(&mut dec, &[&second]),
            Err(ProtocolError::InvalidUtf8)
        );

        // Invalid bytes in the first part of a frame that has not fully arrived.
        for wire in [
            frame(FIN | TEXT, b"abc\xf5 and more"),
            frame(TEXT, b"abc\xc3\x28 more"),
        ] {
            let mut dec = Decoder::default();
            assert_eq!(
                decode_with(&mut dec, &[&wire[..12]]),
                Err(ProtocolError::InvalidUtf8)
            );
        }

        // A code point left incomplete at the end of the message.
        let wire = [frame(TEXT, b"\xe2\x82"), frame(FIN | CONT, b"")].concat();
        assert_err(&wire, ProtocolError::InvalidUtf8);
        let wire = [frame(TEXT, b"\xe2"), frame(FIN | CONT, b"\x82")].concat();
        assert_err(&wire, ProtocolError::InvalidUtf8);
    }

    #[test]
    fn invalid_payload_length() {
        let mut wire = frame_with(FIN | BIN, b"", 8, Some([0; 4]));
        wire[2] |= 0x80;
        assert_err(&wire, ProtocolError::InvalidPayloadLength);
    }

    #[test]
    fn length_encodings() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let expected = Ok(vec![Owned::Binary(payload.clone())]);
            for ext in [0, 2, 8] {
                if ext == 2 && len > 0xFFFF {
                    continue;
                }
                let wire = frame_with(FIN | BIN, &payload, ext, Some([1, 2, 3, 4]));
                assert_eq!(decode(&[&wire]), expected, "{len} {ext}");
                let (a, b) = wire.split_at(wire.len() / 2);
                assert_eq!(decode(&[a, b]), expected, "{len} {ext} split");
            }
        }
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_frame_size: 100,
            max_message_size: 150,
        };
        let run = |chunks: &[&[u8]]| decode_with(&mut Decoder::new(limits), chunks);
        assert_eq!(run(&[&frame(FIN | BIN, &[0; 100])]).map(|f| f.len()), Ok(1));
        assert_eq!(
            run(&[&frame(FIN | BIN, &[0; 101])]),
            Err(ProtocolError::FrameTooLarge)
        );
        // Fails on the header alone, before any payload is buffered.
        let huge = frame_with(FIN | TEXT, b"", 8, Some([0; 4]));
        let mut huge = huge[..14].to_vec();
        huge[2..10].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(decode(&[&huge]), Err(ProtocolError::FrameTooLarge));
        assert_eq!(ProtocolError::FrameTooLarge.close_code(), 1009);

        let limits = Limits {
            max_frame_size: 200,
            max_message_size: 150,
        };
        let run = |chunks: &[&[u8]]| decode_with(&mut Decoder::new(limits), chunks);
        assert_eq!(
            run(&[&frame(FIN | TEXT, &[b'a'; 151])]),
            Err(ProtocolError::MessageTooLarge)
        );
        let ok = [frame(TEXT, &[b'a'; 75]), frame(FIN | CONT, &[b'a'; 75])].concat();
        assert_eq!(run(&[&ok]).map(|f| f.len()), Ok(1));
        let wire = [
            frame(BIN, &[0; 60]),
            frame(CONT, &[0; 60]),
            frame(FIN | CONT, &[0; 60]),
        ]
        .concat();
        let header_of_third = wire.len() - 60;
        assert_eq!(
            run(&[&wire[..header_of_third]]),
            Err(ProtocolError::MessageTooLarge)
        );
        assert_eq!(ProtocolError::MessageTooLarge.close_code(), 1009);
    }

    #[test]
    fn close_frames() {
        let close = |payload: &[u8]| decode(&[&frame(FIN | CLOSE, payload)]);
        assert_eq!(close(b""), Ok(vec![Owned::Close(None)]));
        assert_eq!(close(b"\x03"), Err(ProtocolError::InvalidClosePayload));
        assert_eq!(ProtocolError::InvalidClosePayload.close_code(), 1002);
        assert_eq!(
            close(b"\x03\xe8bye"),
            Ok(vec![Owned::Close(Some((1000, "bye".to_owned())))])
        );
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            let expected = Ok(vec![Owned::Close(Some((code, String::new())))]);
            assert_eq!(close(&code.to_be_bytes()), expected, "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let err = Err(ProtocolError::InvalidCloseCode(code));
            assert_eq!(close(&code.to_be_bytes()), err, "{code}");
        }
        assert_eq!(close(b"\x03\xe8\xff"), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn input_after_close_is_ignored() {
        let mut dec = Decoder::default();
        let wire = [
            frame(FIN | TEXT, b"a"),
            frame(FIN | CLOSE, b""),
            frame(FIN | TEXT, b"b"),
        ]
        .concat();
        let expected = vec![text("a"), Owned::Close(None)];
        assert_eq!(decode_with(&mut dec, &[&wire]), Ok(expected));
        assert!(dec.is_closed());
        assert_eq!(
            decode_with(&mut dec, &[&frame(FIN | TEXT, b"c")]),
            Ok(vec![])
        );
        // Garbage too: nothing is parsed any more.
        assert_eq!(decode_with(&mut dec, &[b"\xff\xff"]), Ok(vec![]));
        assert_eq!(dec.buffered_capacity(), 0);

        // Same with the close frame arriving in pieces, mid-message.
        let mut dec = Decoder::default();
        let wire = [
            frame(TEXT, b"a"),
            frame(FIN | CLOSE, b"\x03\xe8"),
            frame(FIN | CONT, b"b"),
        ]
        .concat();
        let got = decode_with(&mut dec, &one_byte_at_a_time(&wire));
        assert_eq!(got, Ok(vec![Owned::Close(Some((1000, String::new())))]));
        assert_eq!(dec.buffered_capacity(), 0);
    }

    #[test]
    fn decoder_is_closed_after_error() {
        let mut dec = Decoder::default();
        let mut data = [frame(FIN | TEXT, b"\xff"), frame(FIN | TEXT, b"a")].concat();
        let mut feed = dec.feed(&mut data);
        assert_eq!(feed.next_frame(), Err(ProtocolError::InvalidUtf8));
        assert_eq!(feed.next_frame(), Ok(None));
        drop(feed);
        assert!(dec.is_closed());
        assert_eq!(
            decode_with(&mut dec, &[&frame(FIN | TEXT, b"b")]),
            Ok(vec![])
        );
    }

    #[test]
    fn several_frames_in_one_read() {
        let wire = [
            frame(FIN | TEXT, b"one"),
            frame(FIN | BIN, &[2; 300]),
            frame(FIN | PING, b""),
            frame(FIN | TEXT, b""),
        ]
        .concat();
        let expected = vec![
            text("one"),
            Owned::Binary(vec![2; 300]),
            Owned::Ping(vec![]),
            text(""),
        ];
        let mut dec = Decoder::default();
        assert_eq!(decode_with(&mut dec, &[&wire]), Ok(expected));
        assert_eq!(dec.buffered_capacity(), 0);
    }

    /// A stream exercising most paths, and the frames it decodes to.
    fn sample_stream() -> (Vec<u8>, Vec<Owned>) {
        let kosme = "κόσμε".as_bytes();
        let wire = [
            frame(FIN | TEXT, b"Hello"),
            frame(FIN | BIN, &[0xAB; 300]),
            frame(TEXT, &kosme[..3]),
            frame(FIN | PING, b"ping"),
            frame(CONT, &kosme[3..8]),
            frame(FIN | CONT, &kosme[8..]),
            frame(FIN | PONG, b""),
            frame(FIN | BIN, b""),
            frame_with(FIN | TEXT, b"long form", 8, Some([9, 8, 7, 6])),
            frame(FIN | CLOSE, b"\x03\xe8bye"),
        ]
        .concat();
        let expected = vec![
            text("Hello"),
            Owned::Binary(vec![0xAB; 300]),
            Owned::Ping(b"ping".to_vec()),
            text("κόσμε"),
            Owned::Pong(vec![]),
            Owned::Binary(vec![]),
            text("long form"),
            Owned::Close(Some((1000, "bye".to_owned()))),
        ];
        (wire, expected)
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let (wire, expected) = sample_stream();
        for split in 0..=wire.len() {
            let mut dec = Decoder::default();
            let (a, b) = wire.split_at(split);
            assert_eq!(
                decode_with(&mut dec, &[a, b]),
                Ok(expected.clone()),
                "split at {split}"
            );
            assert_eq!(dec.buffered_capacity(), 0);
        }
    }

    #[test]
    fn one_byte_per_read() {
        let (wire, expected) = sample_stream();
        let mut dec = Decoder::default();
        assert_eq!(
            decode_with(&mut dec, &one_byte_at_a_time(&wire)),
            Ok(expected)
        );
        assert_eq!(dec.buffered_capacity(), 0);
    }

    #[test]
    fn memory_is_released() {
        let mut dec = Decoder::default();
        assert_eq!(dec.buffered_capacity(), 0);

        let wire = frame(FIN | BIN, &[5; 10_000]);
        let (a, b) = wire.split_at(6000);
        assert_eq!(decode_with(&mut dec, &[a]), Ok(vec![]));
        assert!(dec.buffered_capacity() >= 6000);
        assert_eq!(
            decode_with(&mut dec, &[b]),
            Ok(vec![Owned::Binary(vec![5; 10_000])])
        );
        assert_eq!(dec.buffered_capacity(), 0);

        // A fragmented message, its buffer released once delivered.
        let wire = [frame(TEXT, b"ab"), frame(FIN | CONT, b"cd")].concat();
        assert_eq!(decode_with(&mut dec, &[&wire[..8]]), Ok(vec![]));
        assert!(dec.buffered_capacity() > 0);
        assert_eq!(decode_with(&mut dec, &[&wire[8..]]), Ok(vec![text("abcd")]));
        assert_eq!(dec.buffered_capacity(), 0);
    }

    #[test]
    fn dropping_a_feed_early_keeps_unread_input() {
        let (wire, expected) = sample_stream();
        let mut dec = Decoder::default();
        let mut got = Vec::new();
        // Take at most one frame per read, then drain with empty reads.
        for chunk in wire.chunks(40) {
            let mut data = chunk.to_vec();
            if let Some(frame) = dec.feed(&mut data).next_frame().unwrap() {
                got.push(Owned::from(frame));
            }
        }
        loop {
            let mut feed = dec.feed(&mut []);
            let Some(frame) = feed.next_frame().unwrap() else {
                break;
            };
            got.push(frame.into());
        }
        assert_eq!(got, expected);
        assert_eq!(dec.buffered_capacity(), 0);
    }

    #[test]
    fn mask_matches_naive() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2000 {
            let len = rng.index(100);
            let data = rng.bytes(len);
            let mask = rng.mask();
            let offset = rng.index(1 << 20);
            let naive: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[(offset + i) % 4])
                .collect();
            let mut fast = data.clone();
            apply_mask(&mut fast, mask, offset);
            assert_eq!(fast, naive);
            // Piecewise application continues the phase.
            let mut pieces = data.clone();
            let split = rng.index(data.len() + 1);
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, mask, offset);
            apply_mask(b, mask, offset + split);
            assert_eq!(pieces, naive);
        }
    }

    #[test]
    fn encoding() {
        let mut header = [0; 10];
        let cases: [(usize, &[u8]); 5] = [
            (0, &[0x81, 0]),
            (125, &[0x81, 125]),
            (126, &[0x81, 126, 0, 126]),
            (65535, &[0x81, 126, 0xFF, 0xFF]),
            (65536, &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for (len, expected) in cases {
            let n = encode_header(OpCode::Text, true, len, &mut header);
            assert_eq!(&header[..n], expected);
        }
        let n = encode_header(OpCode::Continuation, false, 3, &mut header);
        assert_eq!(&header[..n], [0x00, 3]);

        let big = encode_frame(OpCode::Binary, &[1; 300]);
        assert_eq!(big.len(), 304);
        assert_eq!(big[..4], [0x82, 126, 0x01, 0x2C]);

        let close = encode_close(1001, &"é".repeat(100));
        assert_eq!(close.len(), 2 + 125 - 1);
        assert_eq!(close[1] as usize, close.len() - 2);
        assert!(str::from_utf8(&close[4..]).is_ok());
        assert_eq!(encode_close(1000, ""), [0x88, 2, 0x03, 0xE8]);

        for op in [
            OpCode::Continuation,
            OpCode::Text,
            OpCode::Binary,
            OpCode::Close,
            OpCode::Ping,
            OpCode::Pong,
        ] {
            assert_eq!(OpCode::try_from(u8::from(op)), Ok(op));
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(
            ProtocolError::ReservedOpcode(0xB).to_string(),
            "reserved opcode 0xb"
        );
        assert_eq!(
            ProtocolError::InvalidCloseCode(1005).to_string(),
            "invalid close code 1005"
        );
    }

    /// Random valid UTF-8, rich in multi-byte code points.
    fn random_text(rng: &mut Rng, max_chars: usize) -> String {
        const CHARS: [char; 6] = ['a', 'Z', 'é', 'κ', '€', '😀'];
        (0..rng.index(max_chars + 1))
            .map(|_| CHARS[rng.index(CHARS.len())])
            .collect()
    }

    #[test]
    fn randomized_round_trip() {
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        for round in 0..300 {
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for _ in 0..rng.index(12) + 1 {
                let big = rng.index(20) == 0;
                let max = if big { 40_000 } else { 200 };
                let (opcode, payload, message) = if rng.index(2) == 0 {
                    let s = random_text(&mut rng, max / 4);
                    (TEXT, s.as_bytes().to_vec(), Owned::Text(s))
                } else {
                    let len = rng.index(max + 1);
                    let b = rng.bytes(len);
                    (BIN, b.clone(), Owned::Binary(b))
                };
                // Cut into fragments at arbitrary bytes, even inside code points.
                let mut cuts: Vec<usize> = (0..rng.index(4))
                    .map(|_| rng.index(payload.len() + 1))
                    .collect();
                cuts.push(0);
                cuts.push(payload.len());
                cuts.sort_unstable();
                let fragments = cuts.len() - 1;
                for (i, pair) in cuts.windows(2).enumerate() {
                    let op = if i == 0 { opcode } else { CONT };
                    let fin = if i + 1 == fragments { FIN } else { 0 };
                    wire.extend(frame_with(
                        fin | op,
                        &payload[pair[0]..pair[1]],
                        0,
                        Some(rng.mask()),
                    ));
                    if fin != 0 {
                        expected.push(message.clone());
                    }
                    if rng.index(4) == 0 {
                        let len = rng.index(126);
                        let ping = rng.bytes(len);
                        wire.extend(frame_with(FIN | PING, &ping, 0, Some(rng.mask())));
                        expected.push(Owned::Ping(ping));
                    }
                }
            }
            let mut splits: Vec<usize> = (0..rng.index(8))
                .map(|_| rng.index(wire.len() + 1))
                .collect();
            splits.push(0);
            splits.push(wire.len());
            splits.sort_unstable();
            let chunks: Vec<&[u8]> = splits.windows(2).map(|w| &wire[w[0]..w[1]]).collect();

            let mut dec = Decoder::default();
            let got = if round % 3 == 0 {
                // Sometimes stop early and drain later.
                let mut got = Vec::new();
                for chunk in &chunks {
                    let mut data = chunk.to_vec();
                    let mut feed = dec.feed(&mut data);
                    for _ in 0..rng.index(3) {
                        match feed.next_frame().unwrap() {
                            Some(frame) => got.push(Owned::from(frame)),
                            None => break,
                        }
                    }
                }
                got.extend(decode_with(&mut dec, &[&[]]).unwrap());
                got
            } else {
                decode_with(&mut dec, &chunks).unwrap()
            };
            assert_eq!(got, expected, "round {round}");
            assert_eq!(dec.buffered_capacity(), 0);
        }
    }
}
