//! The inbound message path: the WebSocket `Decoder` fed the same bytes whole
//! and in arbitrary splits (with feeds sometimes dropped early) must decode
//! the same frames and the same error, and every text message goes through
//! `Message::decode` as the hub does.
//!
//! Input: byte 0 = number of split sizes `k` (mod 16), bytes 1..=k = split
//! sizes (0 means: drop the feed after one frame), the rest = the wire bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wshub::__private::ws::{Decoder, Frame, Limits};
use wshub::Message;

/// Small limits, so that the size checks are reached with small inputs.
const LIMITS: Limits = Limits {
    max_frame_size: 300,
    max_message_size: 1000,
};

#[derive(Debug, PartialEq)]
enum Event {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    Error(String),
}

fn own(frame: Frame<'_>) -> Event {
    match frame {
        Frame::Text(t) => {
            // The hub's next step for a text frame; it must never panic.
            let _ = Message::decode(t);
            Event::Text(t.to_owned())
        }
        Frame::Binary(b) => Event::Binary(b.to_vec()),
        Frame::Ping(b) => {
            assert!(b.len() <= 125, "control payload over 125 bytes");
            Event::Ping(b.to_vec())
        }
        Frame::Pong(b) => Event::Pong(b.to_vec()),
        Frame::Close(c) => Event::Close(c.map(|c| (u16::from(c.code), c.reason.to_owned()))),
    }
}

/// Whether the decoder has closed: it does after a close frame or an error,
/// and returns nothing after either.
fn closed(events: &[Event]) -> bool {
    matches!(events.last(), Some(Event::Close(_) | Event::Error(_)))
}

/// Pulls frames from one feed; `max` bounds how many before dropping it.
fn pull(dec: &mut Decoder, input: &mut [u8], max: usize, out: &mut Vec<Event>) {
    let mut feed = dec.feed(input);
    for _ in 0..max {
        match feed.next_frame() {
            Ok(Some(frame)) => out.push(own(frame)),
            Ok(None) => return,
            Err(e) => {
                out.push(Event::Error(e.to_string()));
                return;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(k % 16).min(rest.len());
    let (splits, wire) = rest.split_at(k);

    // Reference: everything in one feed, drained.
    let mut whole = Vec::new();
    let mut dec = Decoder::new(LIMITS);
    pull(&mut dec, &mut wire.to_vec(), usize::MAX, &mut whole);

    // The same bytes in pieces; a zero split drops the feed after one frame
    // and drains the rest with an empty feed (the contract says nothing is
    // lost).
    let mut pieces = Vec::new();
    let mut dec = Decoder::new(LIMITS);
    let mut pos = 0;
    let mut i = 0;
    while pos < wire.len() {
        let size = splits.get(i % splits.len().max(1)).copied().unwrap_or(0);
        i += 1;
        if size == 0 {
            let end = (pos + 7).min(wire.len());
            pull(&mut dec, &mut wire[pos..end].to_vec(), 1, &mut pieces);
            pull(&mut dec, &mut [], usize::MAX, &mut pieces);
            pos = end;
        } else {
            let end = (pos + usize::from(size)).min(wire.len());
            pull(&mut dec, &mut wire[pos..end].to_vec(), usize::MAX, &mut pieces);
            pos = end;
        }
        if closed(&pieces) {
            break;
        }
    }
    assert_eq!(whole, pieces, "split decoding differs from whole decoding");
    // A closed decoder ignores everything fed later.
    if closed(&pieces) {
        pull(&mut dec, &mut wire.to_vec(), usize::MAX, &mut pieces);
        assert_eq!(whole.len(), pieces.len(), "a closed decoder produced frames");
    }
    // Never more buffered than the limits allow (plus a header and slack
    // for amortised growth).
    assert!(dec.buffered_capacity() <= 4 * (LIMITS.max_message_size + LIMITS.max_frame_size + 14));
});
