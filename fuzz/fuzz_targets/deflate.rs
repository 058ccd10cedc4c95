//! Compressed input (permessage-deflate, RFC 7692): frames with RSV1 through
//! a decoder that negotiated compression and the hub-wide [`Inflater`],
//! under a message size limit.
//!
//! Byte 0 picks the case:
//! * even: the rest is wire bytes, fed whole and in two pieces (split at
//!   byte 1): both must decode the same frames and the same error;
//! * odd: the rest is a message, repeated `1 + byte 1 % 64` times (a small
//!   frame that inflates far past the limit is a zip bomb), compressed by
//!   the hub's [`Deflater`] (level and window from byte 2) into a masked
//!   binary frame or two fragments (byte 3), with one byte flipped where
//!   byte 4 says (0: none). Untouched, it must come back exactly, or fail
//!   as too large when it is (never corrupt); flipped, anything but a panic.
//!
//! Always: the inflater's buffer never grows past the limit (plus the one
//! byte that tells "exactly the limit" from "larger"), and a decoder hands
//! out nothing after an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wshub::__private::ws::deflate::{Deflater, Inflater};
use wshub::__private::ws::{Decoder, Frame, Limits, ProtocolError};

/// Small limits, so that the size checks are reached with small inputs.
const LIMITS: Limits = Limits {
    max_frame_size: 3000,
    max_message_size: 4000,
};

#[derive(Debug, PartialEq)]
enum Event {
    Data(Vec<u8>),
    Control,
    Error(ProtocolError),
}

/// Decodes `pieces` one feed each; stops at the first error.
fn decode(pieces: &mut [Vec<u8>], inflater: &mut Inflater) -> Vec<Event> {
    let mut dec = Decoder::new(LIMITS);
    dec.set_deflate(true);
    let mut out = Vec::new();
    for piece in pieces.iter_mut() {
        let mut feed = dec.feed_inflating(piece, inflater);
        loop {
            match feed.next_frame() {
                Ok(Some(Frame::Text(t))) => out.push(Event::Data(t.as_bytes().to_vec())),
                Ok(Some(Frame::Binary(b))) => out.push(Event::Data(b.to_vec())),
                Ok(Some(_)) => out.push(Event::Control),
                Ok(None) => break,
                Err(e) => {
                    out.push(Event::Error(e));
                    return out;
                }
            }
        }
        drop(feed);
        assert!(
            inflater.buffered_capacity() <= LIMITS.max_message_size + 1,
            "inflater holds {} bytes",
            inflater.buffered_capacity()
        );
    }
    out
}

/// A masked client frame (zero key: the payload goes as is).
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![first];
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n @ 126..=65535 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(payload);
    f
}

fn wire_case(split: u8, wire: &[u8]) {
    let mut inflater = Inflater::new();
    let whole = decode(&mut [wire.to_vec()], &mut inflater);
    let at = usize::from(split).min(wire.len());
    let (a, b) = wire.split_at(at);
    let pieces = decode(&mut [a.to_vec(), b.to_vec()], &mut inflater);
    assert_eq!(whole, pieces, "split decoding differs from whole decoding");
}

fn message_case(params: [u8; 4], body: &[u8]) {
    let [repeat, codec, shape, flip] = params;
    let message = body.repeat(1 + usize::from(repeat % 64));
    let mut compressed = Vec::new();
    Deflater::new(u32::from(codec % 10)).compress_windowed(
        &message,
        8 + (codec / 10) % 8,
        &mut compressed,
    );
    let mut wire = if shape % 2 == 0 || compressed.len() < 2 {
        frame(0xC2, &compressed)
    } else {
        let (a, b) = compressed.split_at(compressed.len() / 2);
        [frame(0x42, a), frame(0x80, b)].concat()
    };
    let flipped = flip != 0 && !wire.is_empty();
    if flipped {
        let at = usize::from(flip) % wire.len();
        wire[at] ^= 0x5a;
    }
    let events = decode(&mut [wire], &mut Inflater::new());
    if flipped {
        return;
    }
    // Within both limits (inflated and on the wire) it must come back.
    let fits = message.len() <= LIMITS.max_message_size && compressed.len() <= LIMITS.max_frame_size;
    match events.as_slice() {
        [Event::Data(got)] => assert_eq!(got, &message, "round trip"),
        [Event::Error(ProtocolError::MessageTooLarge | ProtocolError::FrameTooLarge)] => {
            assert!(!fits, "{} bytes refused as too large", message.len())
        }
        other => panic!("{} bytes, {} compressed: {other:?}", message.len(), compressed.len()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&case, rest)) = data.split_first() else {
        return;
    };
    if case % 2 == 0 {
        let Some((&split, wire)) = rest.split_first() else {
            return;
        };
        wire_case(split, wire);
    } else if rest.len() >= 4 {
        let (params, body) = rest.split_at(4);
        message_case([params[0], params[1], params[2], params[3]], body);
    }
});
