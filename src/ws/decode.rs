//! The decoder: frames out of the bytes one connection reads, with
//! fragmented messages reassembled (RFC 6455 §5.4) and every rule a server
//! can check enforced.

use std::fmt;
use std::ops::Range;
use std::str;

use super::deflate::Inflater;
use super::header::{Header, Parsed, parse_header};
use super::utf8::Utf8Validator;
use super::{CloseCode, CloseFrame, Frame, OpCode, ProtocolError, apply_mask};

/// Size limits enforced by a [`Decoder`].
///
/// Both are checked as soon as a frame header has been parsed, before any of
/// its payload is buffered, so a peer cannot make the decoder hold more than
/// the limits (plus one header) by announcing a large frame.
///
/// # Example
///
/// ```
/// use wshub::__private::ws::{Decoder, Limits};
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

/// Decodes the frames a client sends on one connection.
///
/// See [`Decoder::feed`] for the calling contract.
///
/// # Example
///
/// ```
/// use wshub::__private::ws::{Decoder, Limits};
///
/// let decoder = Decoder::new(Limits::default());
/// assert_eq!(decoder.buffered_capacity(), 0);
/// ```
pub struct Decoder {
    limits: Limits,
    /// permessage-deflate was negotiated: RSV1 marks compressed messages.
    deflate: bool,
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
    /// use wshub::__private::ws::{Decoder, Limits};
    ///
    /// let decoder = Decoder::new(Limits { max_frame_size: 4096, max_message_size: 65536 });
    /// assert_eq!(decoder.buffered_capacity(), 0);
    /// ```
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            deflate: false,
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
    /// * After `Ok(Some(Frame::Close(_)))` or `Err(_)` the decoder is closed:
    ///   the rest of the input and everything fed later is ignored, and
    ///   `next_frame` returns `Ok(None)`.
    ///   A close reply (or [`ProtocolError::close_code`]) is up to the caller.
    /// * Dropping the `Feed` early loses nothing: unread input is copied into
    ///   the decoder and decoded first by the next `feed`, which may be given
    ///   an empty slice to drain it.
    ///
    /// # Example
    ///
    /// ```
    /// use wshub::__private::ws::{Decoder, Frame};
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
            inflater: None,
        }
    }

    /// Like [`feed`](Decoder::feed), with the (shared) decompressor that
    /// inflates compressed messages; each is delivered from its buffer,
    /// inflated and checked against [`Limits::max_message_size`].
    ///
    /// # Example
    ///
    /// ```
    /// use wshub::__private::ws::deflate::{Deflater, Inflater};
    /// use wshub::__private::ws::{Decoder, Frame};
    ///
    /// let mut body = Vec::new();
    /// Deflater::new(6).compress(b"Hello", &mut body);
    /// // A masked (zero key) text frame with RSV1 set.
    /// let mut wire = [&[0xc1, 0x80 | body.len() as u8, 0, 0, 0, 0][..], &body].concat();
    /// let mut decoder = Decoder::default();
    /// decoder.set_deflate(true);
    /// let mut inflater = Inflater::new();
    /// let mut feed = decoder.feed_inflating(&mut wire, &mut inflater);
    /// assert_eq!(feed.next_frame(), Ok(Some(Frame::Text("Hello"))));
    /// ```
    pub fn feed_inflating<'a>(
        &'a mut self,
        input: &'a mut [u8],
        inflater: &'a mut Inflater,
    ) -> Feed<'a> {
        Feed {
            dec: self,
            input,
            pos: 0,
            inflater: Some(inflater),
        }
    }

    /// Accepts compressed messages (RSV1) from now on: permessage-deflate
    /// was negotiated. Without it RSV1 is a protocol error.
    pub fn set_deflate(&mut self, on: bool) {
        self.deflate = on;
    }

    /// Heap bytes currently owned by the decoder, for memory accounting.
    /// Zero for an idle decoder.
    ///
    /// # Example
    ///
    /// ```
    /// use wshub::__private::ws::Decoder;
    ///
    /// let mut decoder = Decoder::default();
    /// let mut half_a_header = [0x81];
    /// decoder.feed(&mut half_a_header).next_frame().unwrap();
    /// assert!(decoder.buffered_capacity() >= 1);
    /// ```
    pub fn buffered_capacity(&self) -> usize {
        self.saved.capacity() + self.msg.buf.capacity()
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

    /// Slow path: continues the frame carried over from earlier reads,
    /// appending only the bytes it still lacks from `input[*pos..]`.
    fn step_saved(&mut self, input: &[u8], pos: &mut usize) -> Result<Step, ProtocolError> {
        let have = self.saved.len() - self.start;
        let h = match parse_header(&self.saved[self.start..], self.deflate)? {
            Parsed::Complete(h) => h,
            Parsed::Incomplete(_) if *pos == input.len() => return Ok(Step::Done),
            Parsed::Incomplete(needed) => {
                take(&mut self.saved, input, pos, needed - have);
                return Ok(Step::Again);
            }
        };
        self.check(&h)?;
        if have < h.frame_len {
            take(&mut self.saved, input, pos, h.frame_len - have);
        }
        let payload_start = self.start + h.header_len;
        let end = self.saved.len().min(self.start + h.frame_len);
        let fresh = payload_start + self.unmasked;
        if fresh < end {
            let bytes = &mut self.saved[fresh..end];
            apply_mask(bytes, h.mask, self.unmasked);
            // Checking text as it trickles in rejects a bad frame before the
            // rest of it has been buffered.
            if self.msg.is_text(&h) {
                self.msg.utf8.feed(bytes)?;
            }
            self.unmasked = end - payload_start;
        }
        if end < self.start + h.frame_len {
            return Ok(Step::Done); // input used up mid-frame
        }
        self.start = end;
        self.unmasked = 0;
        let range = payload_start..end;
        let deliver = self.msg.complete(&h, &self.saved[range.clone()], true)?;
        Ok(Step::Frame(deliver, Source::Saved, range))
    }

    /// Fast path: a frame complete within `input[*pos..]` is unmasked in
    /// place and delivered from there; an incomplete one is carried over.
    fn step_input(&mut self, input: &mut [u8], pos: &mut usize) -> Result<Step, ProtocolError> {
        let rest = &mut input[*pos..];
        let h = match parse_header(rest, self.deflate)? {
            Parsed::Complete(h) if h.frame_len <= rest.len() => h,
            parsed => {
                // Vet the header before buffering anything behind it.
                if let Parsed::Complete(h) = parsed {
                    self.check(&h)?;
                }
                self.saved.extend_from_slice(rest);
                *pos = input.len();
                return Ok(Step::Again); // the slow path unmasks and checks it
            }
        };
        self.check(&h)?;
        let range = *pos + h.header_len..*pos + h.frame_len;
        *pos += h.frame_len;
        let payload = &mut input[range.clone()];
        apply_mask(payload, h.mask, 0);
        let deliver = self.msg.complete(&h, payload, false)?;
        Ok(Step::Frame(deliver, Source::Input, range))
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
/// use wshub::__private::ws::{Decoder, Frame};
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
/// # Ok::<(), wshub::__private::ws::ProtocolError>(())
/// ```
#[must_use = "input is only decoded by calling `next_frame`"]
pub struct Feed<'a> {
    dec: &'a mut Decoder,
    input: &'a mut [u8],
    /// First byte of `input` not yet consumed.
    pos: usize,
    /// Inflates compressed messages; without it one is a protocol error.
    inflater: Option<&'a mut Inflater>,
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
    /// use wshub::CloseCode;
    /// use wshub::__private::ws::{Decoder, ProtocolError};
    ///
    /// let mut decoder = Decoder::default();
    /// // Masked text frame whose payload is not UTF-8.
    /// let mut input = *b"\x81\x81\0\0\0\0\xff";
    /// let mut feed = decoder.feed(&mut input);
    /// let err = feed.next_frame().unwrap_err();
    /// assert_eq!(err, ProtocolError::InvalidUtf8);
    /// assert_eq!(err.close_code(), CloseCode::INVALID);
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
        let payload = match (event.compressed, self.inflater.as_deref_mut()) {
            (false, _) => Ok(payload),
            (true, None) => Err(ProtocolError::ReservedBits),
            (true, Some(inflater)) => inflater
                .inflate(payload, self.dec.limits.max_message_size)
                .map_err(ProtocolError::from),
        };
        let payload = match payload {
            Ok(payload) => payload,
            Err(e) => {
                self.dec.closed = true;
                return Err(e);
            }
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
        let Feed {
            dec, input, pos, ..
        } = self;
        let dec: &mut Decoder = dec;
        let input: &mut [u8] = input;
        loop {
            dec.reclaim();
            if dec.closed {
                *pos = input.len();
                return Ok(None);
            }
            let step = if dec.start < dec.saved.len() {
                dec.step_saved(input, pos)?
            } else if *pos < input.len() {
                dec.step_input(input, pos)?
            } else {
                Step::Done
            };
            let (deliver, source, range) = match step {
                Step::Frame(deliver, source, range) => (deliver, source, range),
                Step::Again => continue,
                Step::Done => return Ok(None),
            };
            let event = match deliver {
                Deliver::Nothing => continue,
                Deliver::Payload(opcode, compressed) => {
                    dec.closed = opcode == OpCode::Close;
                    Event {
                        opcode,
                        source,
                        range,
                        compressed,
                    }
                }
                Deliver::Message(opcode, compressed) => Event {
                    opcode,
                    source: Source::Message,
                    range: 0..0,
                    compressed,
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

/// What one step of decoding did.
enum Step {
    /// Consumed a complete frame, which produces this.
    Frame(Deliver, Source, Range<usize>),
    /// Moved input into the decoder's buffer: step again.
    Again,
    /// Used up the input.
    Done,
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
    /// The payload is deflated (RSV1 on the message's first frame).
    compressed: bool,
}

/// What a completed frame produces.
enum Deliver {
    /// A fragment that was added to the message in progress.
    Nothing,
    /// The frame's own payload, as a frame of this opcode; compressed or not.
    Payload(OpCode, bool),
    /// The reassembled message, of this opcode; compressed or not.
    Message(OpCode, bool),
}

/// State of the fragmented message in progress, if any.
#[derive(Default)]
struct Assembly {
    /// `Text` or `Binary` while a fragmented message is in progress.
    kind: Option<OpCode>,
    /// The message in progress is compressed: its text is checked once
    /// inflated, not fragment by fragment.
    compressed: bool,
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
            OpCode::Text => !h.rsv1,
            OpCode::Continuation => self.kind == Some(OpCode::Text) && !self.compressed,
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
            opcode if opcode.is_control() => Ok(Deliver::Payload(opcode, false)),
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
                let compressed = std::mem::take(&mut self.compressed);
                kind.map(|k| Deliver::Message(k, compressed))
                    .ok_or(ProtocolError::UnexpectedContinuation)
            }
            opcode if h.fin => {
                self.utf8 = Utf8Validator::default();
                Ok(Deliver::Payload(opcode, h.rsv1))
            }
            opcode => {
                self.kind = Some(opcode);
                self.compressed = h.rsv1;
                self.append(payload, prechecked)?;
                Ok(Deliver::Nothing)
            }
        }
    }

    fn append(&mut self, payload: &[u8], prechecked: bool) -> Result<(), ProtocolError> {
        if !prechecked && self.kind == Some(OpCode::Text) && !self.compressed {
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
                let code = CloseCode::from(u16::from_be_bytes([*hi, *lo]));
                if !code.is_valid() {
                    return Err(ProtocolError::InvalidCloseCode(code.into()));
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

#[cfg(test)]
mod tests;
