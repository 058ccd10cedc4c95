//! Outbound permessage-deflate: the compressed twin of a payload, made once
//! per send and shared by every recipient that negotiated compression.
//!
//! Every frame a connection is given passes [`Twins::pick`] (from
//! `Conns::enqueue_key`, the one way into a ring). A send to many
//! connections offers the same shared [`Payload`] to each, so the twin is
//! looked up by the payload's identity in a few remembered pairs: a
//! broadcast to 10,000 clients compresses once, and a retry or a
//! multi-device send later in the same turn finds it too. The pairs are
//! forgotten at the start of each poll turn, so they never hold a message
//! (and its twin) longer than one turn.

use crate::config::CompressionConfig;
use crate::message::Payload;
use crate::ws::deflate::{Deflater, Negotiated};
use crate::ws::encode_header;

/// Sends remembered per turn: a broadcast, or a few sends in a row.
const REMEMBERED: usize = 4;
/// The compression buffer is kept at most this large between messages.
const KEEP_BUFFER: usize = 64 << 10;

/// A payload, the window it was compressed with, and its twin (`None`: too
/// large for a twin's 32-bit length).
type Pair = (Payload, u8, Option<Payload>);

/// The hub-wide compressor and the twins of this turn's sends.
pub(crate) struct Twins {
    deflater: Deflater,
    min_size: usize,
    enabled: bool,
    /// Reused for each compression.
    out: Vec<u8>,
    pairs: [Option<Pair>; REMEMBERED],
    next: usize,
    /// Twins made (messages compressed).
    pub(crate) compressed: u64,
}

impl Twins {
    pub(crate) fn new(config: &CompressionConfig) -> Twins {
        Twins {
            deflater: Deflater::new(config.level),
            min_size: config.min_size,
            enabled: config.enabled,
            out: Vec::new(),
            pairs: Default::default(),
            next: 0,
            compressed: 0,
        }
    }

    /// What goes into the ring of a connection that negotiated `deflate`:
    /// the shared twin of `payload` when it is a data frame of at least
    /// `min_size` bytes, else `payload` itself.
    ///
    /// A twin is sent even when compression did not shrink the message
    /// (deflate adds 5 bytes per 64 KiB stored block at worst): every
    /// message at least `min_size` long then goes the same way, which some
    /// clients (the Autobahn testsuite's kosoku among them) rely on.
    pub(crate) fn pick(&mut self, payload: &Payload, deflate: Option<Negotiated>) -> Payload {
        let Some(deflate) = deflate.filter(|_| self.enabled) else {
            return payload.clone();
        };
        let len = payload.len();
        if len < self.min_size || payload.data_opcode().is_none() {
            return payload.clone();
        }
        let window = deflate.window_for(len);
        let known = self.pairs.iter().flatten();
        if let Some((_, _, twin)) = known
            .clone()
            .find(|(p, w, _)| *w == window && p.same(payload))
        {
            return twin.as_ref().unwrap_or(payload).clone();
        }
        let twin = self.compress(payload, window);
        self.pairs[self.next] = Some((payload.clone(), window, twin.clone()));
        self.next = (self.next + 1) % REMEMBERED;
        twin.unwrap_or_else(|| payload.clone())
    }

    /// Forgets this turn's pairs (called once per poll turn).
    pub(crate) fn forget(&mut self) {
        self.pairs = Default::default();
    }

    fn compress(&mut self, payload: &Payload, window: u8) -> Option<Payload> {
        let opcode = payload.data_opcode()?;
        if self.out.capacity() > KEEP_BUFFER {
            self.out = Vec::new();
        }
        self.out.clear();
        self.deflater
            .compress_windowed(payload.body(), window, &mut self.out);
        let mut header = [0; 10];
        let n = encode_header(opcode, true, self.out.len(), &mut header);
        header[0] |= 0x40; // RSV1: compressed
        self.compressed += 1;
        payload.deflated(&header[..n], &self.out)
    }
}

impl std::fmt::Debug for Twins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twins")
            .field("min_size", &self.min_size)
            .field("compressed", &self.compressed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::deflate::Inflater;

    fn twins() -> Twins {
        Twins::new(&CompressionConfig::default())
    }

    const ON: Option<Negotiated> = Some(Negotiated {
        server_max_window_bits: None,
        server_no_context_takeover: false,
    });

    #[test]
    fn one_compression_per_payload_shared_by_every_recipient() {
        let mut t = twins();
        let p = Payload::text(&"{\"k\":\"value\"}".repeat(100));
        let a = t.pick(&p, ON);
        let b = t.pick(&p, ON);
        assert!(a.is_deflated() && a.same(&b));
        assert_eq!(t.compressed, 1);
        assert_eq!(a.body(), p.body()); // handlers still read the message
        assert_eq!(a.frame()[0], 0xC1); // FIN + RSV1 + text
        assert!(a.frame().len() < p.frame().len() / 10);
        let mut inflater = Inflater::new();
        let len = usize::from(a.frame()[1]);
        assert!(len < 126); // a 2-byte header
        let body = &a.frame()[2..];
        assert_eq!(body.len(), len);
        assert_eq!(inflater.inflate(body, 1 << 20).unwrap(), p.body());
        // A plain recipient gets the plain frame.
        assert!(t.pick(&p, None).same(&p));
        // Forgotten after the turn: the next send compresses again.
        t.forget();
        t.pick(&p, ON);
        assert_eq!(t.compressed, 2);
    }

    #[test]
    fn small_and_control_frames_stay_plain_narrow_windows_get_their_own_twin() {
        let mut t = twins();
        let small = Payload::text("{\"k\":1}");
        assert!(t.pick(&small, ON).same(&small));
        let narrow = Some(Negotiated {
            server_max_window_bits: Some(9),
            server_no_context_takeover: true,
        });
        // Within the narrow window: the same twin as for everyone.
        let fits = Payload::text(&"a".repeat(512));
        assert!(t.pick(&fits, narrow).same(&t.pick(&fits, ON)));
        assert_eq!(t.compressed, 1);
        // Beyond it: a twin in 512-byte pieces, made once for such clients.
        let big = Payload::text(&"abc".repeat(1000));
        let wide = t.pick(&big, ON);
        let pieces = t.pick(&big, narrow);
        assert!(!pieces.same(&wide) && pieces.same(&t.pick(&big, narrow)));
        assert_eq!(t.compressed, 3);
        let mut inflater = Inflater::new();
        let body = &pieces.frame()[2 + if pieces.frame()[1] == 126 { 2 } else { 0 }..];
        assert_eq!(inflater.inflate(body, 3000).unwrap(), big.body());
        let pong = Payload::encode(crate::ws::OpCode::Pong, &[b'a'; 120]);
        let mut t = Twins::new(&CompressionConfig {
            min_size: 0,
            ..CompressionConfig::default()
        });
        assert!(t.pick(&pong, ON).same(&pong));
    }
}
