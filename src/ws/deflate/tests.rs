use super::*;

fn offer(s: &str) -> Option<Negotiated> {
    negotiate([s])
}

#[test]
fn offers_are_accepted_with_their_parameters() {
    let n = offer("permessage-deflate").unwrap();
    assert_eq!(
        n.response(),
        "permessage-deflate; client_no_context_takeover"
    );
    let n = offer(
        "PerMessage-Deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=9; client_max_window_bits=\"12\"",
    )
    .unwrap();
    assert_eq!(
        n,
        Negotiated {
            server_max_window_bits: Some(9),
            server_no_context_takeover: true
        }
    );
    assert_eq!(
        n.response(),
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
         server_max_window_bits=9"
    );
}

#[test]
fn bad_offers_are_declined_and_the_next_one_taken() {
    for bad in [
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; client_max_window_bits=99",
        "permessage-deflate; client_max_window_bits=\"9",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=9; server_max_window_bits=10",
        "permessage-deflate; unknown",
        "x-webkit-deflate-frame",
        "",
    ] {
        assert_eq!(offer(bad), None, "{bad}");
    }
    let n = negotiate([
        "permessage-deflate; server_max_window_bits=20, x-foo",
        "permessage-deflate; server_max_window_bits=8, permessage-deflate",
    ])
    .unwrap();
    assert_eq!(n.server_max_window_bits, Some(8));
}

#[test]
fn the_rfc_examples_inflate() {
    let mut inflater = Inflater::new();
    // RFC 7692 §7.2.3.1 and §7.2.3.3 (no compression, a stored block).
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(inflater.inflate(&hello, 100).unwrap(), b"Hello");
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(inflater.inflate(&stored, 100).unwrap(), b"Hello");
    // §7.2.3.4: with BFINAL set.
    let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(inflater.inflate(&fin, 100).unwrap(), b"Hello");
    // An empty message compresses to one empty block.
    assert_eq!(inflater.inflate(&[0x00], 100).unwrap(), b"");
    assert_eq!(
        inflater.inflate(b"\xff\xff\xff", 100),
        Err(InflateError::Corrupt)
    );
}

#[test]
fn round_trips_and_bounds() {
    let mut deflater = Deflater::new(6);
    let mut inflater = Inflater::new();
    let mut rng = 7u64;
    for len in [0usize, 1, 100, 16 << 10, 70_000, 300_000] {
        // Half random (incompressible), half repetitive.
        let data: Vec<u8> = (0..len)
            .map(|i| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if i % 2 == 0 { rng as u8 } else { b'x' }
            })
            .collect();
        let mut wire = Vec::new();
        deflater.compress(&data, &mut wire);
        assert_eq!(inflater.inflate(&wire, len).unwrap(), &data[..]);
        if len > 0 {
            assert_eq!(
                inflater.inflate(&wire, len - 1),
                Err(InflateError::TooLarge)
            );
        }
    }
}

#[test]
fn a_zip_bomb_costs_no_more_than_the_limit() {
    let mut bomb = Vec::new();
    Deflater::new(9).compress(&vec![0u8; 64 << 20], &mut bomb);
    assert!(bomb.len() < 100 << 10, "{} bytes", bomb.len());
    let mut inflater = Inflater::new();
    let limit = 1 << 20;
    assert_eq!(inflater.inflate(&bomb, limit), Err(InflateError::TooLarge));
    assert!(inflater.buffered_capacity() <= limit + 1);
    // The buffer is not kept past the next message.
    inflater.inflate(&[0x00], 10).unwrap();
    assert!(inflater.buffered_capacity() <= KEEP_INFLATED);
}
