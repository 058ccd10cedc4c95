use super::*;
use crate::testutil::Rng;
use crate::ws::CloseCode;

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
            Frame::Close(c) => Owned::Close(c.map(|c| (u16::from(c.code), c.reason.to_owned()))),
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
    assert!(dec.closed);
    assert_eq!(dec.buffered_capacity(), 0);
}

#[test]
fn unmasked_frame() {
    assert_err(
        &frame_with(FIN | TEXT, b"hi", 0, None),
        ProtocolError::UnmaskedFrame,
    );
    assert_eq!(
        ProtocolError::UnmaskedFrame.close_code(),
        CloseCode::PROTOCOL
    );
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
    assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode::INVALID);
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
    assert_eq!(ProtocolError::FrameTooLarge.close_code(), CloseCode::SIZE);

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
    assert_eq!(ProtocolError::MessageTooLarge.close_code(), CloseCode::SIZE);
}

#[test]
fn close_frames() {
    let close = |payload: &[u8]| decode(&[&frame(FIN | CLOSE, payload)]);
    assert_eq!(close(b""), Ok(vec![Owned::Close(None)]));
    assert_eq!(close(b"\x03"), Err(ProtocolError::InvalidClosePayload));
    assert_eq!(
        ProtocolError::InvalidClosePayload.close_code(),
        CloseCode::PROTOCOL
    );
    assert_eq!(
        close(b"\x03\xe8bye"),
        Ok(vec![Owned::Close(Some((1000, "bye".to_owned())))])
    );
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
        4999,
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
    assert!(dec.closed);
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
    assert!(dec.closed);
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

const RSV1: u8 = 0x40;

/// Decodes `chunks` with permessage-deflate negotiated.
fn decode_deflate(chunks: &[&[u8]], max_message_size: usize) -> Result<Vec<Owned>, ProtocolError> {
    let mut dec = Decoder::new(Limits {
        max_frame_size: 1 << 20,
        max_message_size,
    });
    dec.set_deflate(true);
    let mut inflater = crate::ws::deflate::Inflater::new();
    let mut out = Vec::new();
    for chunk in chunks {
        let mut data = chunk.to_vec();
        let mut feed = dec.feed_inflating(&mut data, &mut inflater);
        while let Some(frame) = feed.next_frame()? {
            out.push(frame.into());
        }
    }
    Ok(out)
}

fn deflated(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crate::ws::deflate::Deflater::new(6).compress(data, &mut out);
    out
}

#[test]
fn compressed_messages_whole_fragmented_and_byte_by_byte() {
    let body = deflated("héllo ".repeat(50).as_bytes());
    let (a, b) = body.split_at(body.len() / 2);
    let wire = [
        frame(FIN | RSV1 | TEXT, &body),
        frame(FIN | TEXT, b"plain"),
        frame(RSV1 | BIN, a),
        frame(FIN | PING, b"p"),
        frame(FIN | CONT, b),
    ]
    .concat();
    let expect = vec![
        text(&"héllo ".repeat(50)),
        text("plain"),
        Owned::Ping(b"p".to_vec()),
        Owned::Binary("héllo ".repeat(50).into_bytes()),
    ];
    assert_eq!(decode_deflate(&[&wire], 1 << 20), Ok(expect.clone()));
    assert_eq!(
        decode_deflate(&one_byte_at_a_time(&wire), 1 << 20),
        Ok(expect)
    );
}

#[test]
fn rsv1_rules_with_deflate() {
    let body = deflated(b"x");
    for bad in [
        frame(FIN | RSV1 | PING, b""),
        [frame(TEXT, b"a"), frame(FIN | RSV1 | CONT, b"b")].concat(),
        frame(FIN | 0x20 | TEXT, &body),
    ] {
        assert_eq!(
            decode_deflate(&[&bad], 100),
            Err(ProtocolError::ReservedBits)
        );
    }
    // Without an inflater, a compressed message cannot be read.
    let mut dec = Decoder::default();
    dec.set_deflate(true);
    assert_eq!(
        decode_with(&mut dec, &[&frame(FIN | RSV1 | TEXT, &body)]),
        Err(ProtocolError::ReservedBits)
    );
}

#[test]
fn inflated_size_limit_corrupt_data_and_text_checked_after_inflation() {
    let bomb = deflated(&[b'a'; 100_000]);
    assert!(bomb.len() < 1000);
    let err = decode_deflate(&[&frame(FIN | RSV1 | TEXT, &bomb)], 99_999).unwrap_err();
    assert_eq!(err, ProtocolError::MessageTooLarge);
    assert_eq!(err.close_code(), CloseCode::SIZE);
    let err = decode_deflate(&[&frame(FIN | RSV1 | BIN, b"\xff\xff\xff")], 100).unwrap_err();
    assert_eq!(err, ProtocolError::InvalidCompressedData);
    assert_eq!(err.close_code(), CloseCode::INVALID);
    let bad_utf8 = deflated(b"ok \xff");
    assert_eq!(
        decode_deflate(&[&frame(FIN | RSV1 | TEXT, &bad_utf8)], 100),
        Err(ProtocolError::InvalidUtf8)
    );
}
