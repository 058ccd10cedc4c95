//! permessage-deflate (RFC 7692) without per-connection state: one
//! [`Deflater`] and one [`Inflater`] serve every connection of a hub.
//!
//! The usual design keeps a zlib stream per connection and direction (about
//! 256 KiB to deflate and 44 KiB to inflate with context takeover). Here
//! every message is a stream of its own in both directions, so no state
//! outlives a message and the codec can be shared:
//!
//! * **Outbound**: the server compresses each message from a reset
//!   compressor. That needs no promise from the client (its decoder may keep
//!   its window: nothing in our messages refers back to it), and it makes the
//!   compressed frame the same for every recipient, so a broadcast is
//!   compressed once. A client that limits our window to `2^N` bytes
//!   (`server_max_window_bits=N`) needs nothing else for messages of at most
//!   `2^N` bytes (no back-reference can reach further than the message's
//!   start); longer ones are compressed for it in `2^N`-byte pieces, each
//!   from a reset state, once per send and window size.
//! * **Inbound**: the answer always carries `client_no_context_takeover`,
//!   which every client must honour (RFC 7692 §7.1.1.2), so each message is
//!   inflated from a reset decompressor into the one hub-wide buffer, which
//!   never grows past `max_message_size` (a zip bomb fails with 1009 once its
//!   output passes the limit).
//!
//! Negotiation ([`negotiate`], [`Negotiated`]) picks the first acceptable
//! `permessage-deflate` offer; an offer with an unknown, repeated or
//! out-of-range parameter is declined (RFC 7692 §5.1) and the next one tried.
//!
//! Frame rules (checked by the decoder): RSV1 marks the first frame of a
//! compressed message; it is a protocol error (1002) on a control frame, on a
//! continuation frame, or when compression was not negotiated.

use std::fmt;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::ProtocolError;

/// The empty stored block every compressed message ends with; the sender
/// strips it and the receiver appends it again (RFC 7692 §7.2.1-2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The hub-wide inflate buffer is kept at most this large between messages;
/// a larger message's buffer is released after it (the rare large message
/// should not pin memory for good).
const KEEP_INFLATED: usize = 64 << 10;

/// What a connection agreed to, from the server's side.
///
/// # Example
///
/// ```
/// use wshub::__private::ws::deflate::{Negotiated, negotiate};
///
/// let n = negotiate(["permessage-deflate; client_max_window_bits"]).unwrap();
/// assert_eq!(n, Negotiated { server_max_window_bits: None, server_no_context_takeover: false });
/// assert_eq!(n.response(), "permessage-deflate; client_no_context_takeover");
/// assert_eq!(n.window_for(1 << 20), 15);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The LZ77 window the client allows our frames (`8..=15`), if it
    /// limited it.
    pub server_max_window_bits: Option<u8>,
    /// The client asked us not to take over context (echoed; we never do).
    pub server_no_context_takeover: bool,
}

impl Negotiated {
    /// The `Sec-WebSocket-Extensions` value that accepts the offer.
    ///
    /// It always says `client_no_context_takeover`: inbound messages are then
    /// independent streams, which one shared decompressor can inflate.
    pub fn response(&self) -> String {
        let mut out = String::from("permessage-deflate; client_no_context_takeover");
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            out.push_str("; server_max_window_bits=");
            out.push_str(&bits.to_string());
        }
        out
    }

    /// This answer with our window limited to `2^bits` bytes as well (the
    /// hub's `compression.server_max_window_bits`): the smaller of the
    /// client's limit and ours; 15 and above limit nothing.
    ///
    /// ```
    /// use wshub::__private::ws::deflate::negotiate;
    /// let n = negotiate(["permessage-deflate"]).unwrap().capped(10);
    /// assert_eq!(n.response(), "permessage-deflate; client_no_context_takeover; server_max_window_bits=10");
    /// let asked = negotiate(["permessage-deflate; server_max_window_bits=9"]).unwrap();
    /// assert_eq!(asked.capped(12).server_max_window_bits, Some(9));
    /// assert_eq!(asked.capped(15), asked);
    /// ```
    pub fn capped(mut self, bits: u8) -> Negotiated {
        if bits < 15 {
            let ours = bits.max(8);
            self.server_max_window_bits =
                Some(self.server_max_window_bits.map_or(ours, |b| b.min(ours)));
        }
        self
    }

    /// The window (in bits) to compress a message of `len` bytes with for
    /// this client: 15 unless it limited our window below the message's
    /// length (a message within the window compresses the same either way,
    /// so one compressed frame serves every such client).
    ///
    /// ```
    /// use wshub::__private::ws::deflate::Negotiated;
    /// let small = Negotiated { server_max_window_bits: Some(9), server_no_context_takeover: true };
    /// assert_eq!(small.window_for(512), 15);
    /// assert_eq!(small.window_for(513), 9);
    /// ```
    pub fn window_for(&self, len: usize) -> u8 {
        match self.server_max_window_bits {
            Some(bits @ ..15) if len > 1 << bits => bits,
            _ => 15,
        }
    }
}

/// Reads the `Sec-WebSocket-Extensions` header values a client sent (each
/// may list several extensions, comma-separated) and accepts the first valid
/// `permessage-deflate` offer. `None` declines compression.
///
/// ```
/// use wshub::__private::ws::deflate::negotiate;
///
/// // A bad offer is skipped; the next one is taken.
/// let n = negotiate(["x-other, permessage-deflate; server_max_window_bits=7",
///                    "permessage-deflate; server_max_window_bits=\"10\""]).unwrap();
/// assert_eq!(n.server_max_window_bits, Some(10));
/// assert_eq!(negotiate(["permessage-deflate; mystery"]), None);
/// assert_eq!(negotiate(["x-webkit-deflate-frame"]), None);
/// ```
pub fn negotiate<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Negotiated> {
    headers
        .into_iter()
        .flat_map(|value| value.split(','))
        .find_map(|offer| {
            let mut parts = offer.split(';').map(str::trim);
            if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
                return None;
            }
            accept_offer(parts)
        })
}

/// The answer to one `permessage-deflate` offer's parameters, or `None` when
/// one is unknown, repeated or invalid.
fn accept_offer<'a>(params: impl Iterator<Item = &'a str>) -> Option<Negotiated> {
    let mut n = Negotiated {
        server_max_window_bits: None,
        server_no_context_takeover: false,
    };
    let (mut seen_client_bits, mut seen_client_nct) = (false, false);
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim())?)),
            None => (param, None),
        };
        let name = name.to_ascii_lowercase();
        match (name.as_str(), value) {
            ("server_no_context_takeover", None) if !n.server_no_context_takeover => {
                n.server_no_context_takeover = true;
            }
            ("client_no_context_takeover", None) if !seen_client_nct => seen_client_nct = true,
            ("server_max_window_bits", Some(v)) if n.server_max_window_bits.is_none() => {
                n.server_max_window_bits = Some(window_bits(v)?);
            }
            // We never limit the client's window (its messages are inflated
            // by the shared decompressor, whose window is the largest), so
            // its value is only checked.
            ("client_max_window_bits", v) if !seen_client_bits => {
                seen_client_bits = true;
                if let Some(v) = v {
                    window_bits(v)?;
                }
            }
            _ => return None,
        }
    }
    Some(n)
}

fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"'),
        None => Some(value),
    }
}

/// A window size in `8..=15` written as plain digits (RFC 7692 §7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|b| (8..=15).contains(b))
}

/// Why an inbound compressed message could not be inflated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The deflate data is corrupt.
    Corrupt,
    /// The inflated message would pass the size limit.
    TooLarge,
}

impl From<InflateError> for ProtocolError {
    fn from(e: InflateError) -> ProtocolError {
        match e {
            InflateError::Corrupt => ProtocolError::InvalidCompressedData,
            InflateError::TooLarge => ProtocolError::MessageTooLarge,
        }
    }
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InflateError::Corrupt => "corrupt deflate data",
            InflateError::TooLarge => "inflated message too large",
        })
    }
}

impl std::error::Error for InflateError {}

/// The hub-wide decompressor: inflates one message at a time into a buffer
/// of its own, never past a limit.
///
/// # Example
///
/// ```
/// use wshub::__private::ws::deflate::{Deflater, InflateError, Inflater};
///
/// let mut deflater = Deflater::new(6);
/// let mut wire = Vec::new();
/// deflater.compress(&[b'a'; 10_000], &mut wire);
/// assert!(wire.len() < 100);
///
/// let mut inflater = Inflater::new();
/// assert_eq!(inflater.inflate(&wire, 10_000).unwrap(), &[b'a'; 10_000][..]);
/// // Past the limit: a zip bomb stops there.
/// assert_eq!(inflater.inflate(&wire, 9_999), Err(InflateError::TooLarge));
/// ```
pub struct Inflater {
    z: Decompress,
    out: Vec<u8>,
}

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("buffer_capacity", &self.out.capacity())
            .finish_non_exhaustive()
    }
}

impl Default for Inflater {
    fn default() -> Inflater {
        Inflater::new()
    }
}

impl Inflater {
    /// A decompressor for raw deflate streams (no zlib header).
    pub fn new() -> Inflater {
        Inflater {
            z: Decompress::new(false),
            out: Vec::new(),
        }
    }

    /// Inflates one message's payload (as received, without the tail) into
    /// the shared buffer and lends it; more than `limit` bytes of output is
    /// [`InflateError::TooLarge`]. The buffer grows with the output, so a
    /// small frame that would inflate to gigabytes costs at most about
    /// `limit` bytes before it is refused.
    pub fn inflate(&mut self, data: &[u8], limit: usize) -> Result<&[u8], InflateError> {
        if self.out.capacity() > KEEP_INFLATED {
            self.out = Vec::new();
        }
        self.out.clear();
        self.z.reset(false);
        self.run(data, limit)?;
        self.run(&TAIL, limit)?;
        Ok(&self.out)
    }

    /// Feeds `input` through, growing the buffer up to one byte past
    /// `limit` (that byte tells a message of exactly `limit` from a larger one).
    fn run(&mut self, mut input: &[u8], limit: usize) -> Result<(), InflateError> {
        loop {
            if self.out.len() == self.out.capacity() {
                if self.out.len() > limit {
                    return Err(InflateError::TooLarge);
                }
                let want = (self.out.len() * 2).max(256).min(limit.saturating_add(1));
                self.out.reserve_exact(want - self.out.len());
            }
            let before = self.z.total_in();
            let status = self
                .z
                .decompress_vec(input, &mut self.out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            let used = (self.z.total_in() - before) as usize;
            input = &input[used..];
            if self.out.len() > limit {
                return Err(InflateError::TooLarge);
            }
            let room = self.out.len() < self.out.capacity();
            match status {
                // A final block ends the stream; what follows is ignored.
                Status::StreamEnd => return Ok(()),
                _ if input.is_empty() && room => return Ok(()),
                Status::BufError if room => return Err(InflateError::Corrupt),
                _ => {}
            }
        }
    }

    /// Heap bytes the shared buffer holds (the decompressor's own state
    /// aside), for memory accounting.
    pub fn buffered_capacity(&self) -> usize {
        self.out.capacity()
    }
}

/// The hub-wide compressor: each message is compressed from a reset state,
/// so its output suits every client that negotiated compression.
///
/// # Example
///
/// ```
/// use wshub::__private::ws::deflate::Deflater;
///
/// let mut d = Deflater::new(1);
/// let mut out = Vec::new();
/// d.compress(b"Hello", &mut out);
/// // RFC 7692 §7.2.3.1: "Hello" compressed without context takeover.
/// assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
/// ```
pub struct Deflater {
    z: Compress,
}

impl fmt::Debug for Deflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deflater").finish_non_exhaustive()
    }
}

impl Deflater {
    /// A compressor at zlib `level` (0-9; higher is smaller and slower).
    pub fn new(level: u32) -> Deflater {
        Deflater {
            z: Compress::new(Compression::new(level.min(9)), false),
        }
    }

    /// Compresses `data` as one message and appends the frame payload (the
    /// stream without its 4-byte tail) to `out`.
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.compress_windowed(data, 15, out);
    }

    /// Like [`compress`](Deflater::compress), for a client that limited our
    /// window to `2^window_bits` bytes: the message is compressed in pieces
    /// of that size, each from a reset state, so no back-reference reaches
    /// further back than the window. Each piece ends byte-aligned (sync
    /// flush), so the pieces concatenate into one valid deflate stream.
    ///
    /// ```
    /// use wshub::__private::ws::deflate::{Deflater, Inflater};
    /// let mut out = Vec::new();
    /// Deflater::new(6).compress_windowed(&[7; 2000], 9, &mut out);
    /// assert_eq!(Inflater::new().inflate(&out, 2000).unwrap(), &[7; 2000][..]);
    /// ```
    pub fn compress_windowed(&mut self, data: &[u8], window_bits: u8, out: &mut Vec<u8>) {
        let start = out.len();
        let piece = 1usize << window_bits.clamp(8, 15);
        // Deflate can grow incompressible input by a few bytes per block.
        out.reserve(data.len() + data.len() / 256 + 32);
        self.piece(&data[..data.len().min(piece)], out);
        for chunk in data.chunks(piece).skip(1) {
            self.piece(chunk, out);
        }
        // A sync flush always ends with the empty stored block.
        debug_assert!(out[start..].ends_with(&TAIL));
        out.truncate(out.len() - TAIL.len());
    }

    /// Compresses `data` from a reset state and sync-flushes it.
    fn piece(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.z.reset();
        let mut input = data;
        loop {
            let before = self.z.total_in();
            let status = self.z.compress_vec(input, out, FlushCompress::Sync);
            input = &input[(self.z.total_in() - before) as usize..];
            let room = out.len() < out.capacity();
            if input.is_empty() && room && status.is_ok() {
                return;
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

#[cfg(test)]
mod tests;
