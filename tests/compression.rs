//! permessage-deflate (RFC 7692) over real loopback sockets: negotiation,
//! one compression per broadcast, compressed client messages, and the
//! rules and bounds on inbound compressed frames. The client side is
//! written here with flate2 directly (raw deflate), not with the hub's codec.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::{RawClient, TestHub, client_frame, connect, recv, stats, test_config, wait_stat};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tungstenite::Message as WsMessage;
use wshub::{HubEvent, Message};

const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// Upgrades with `Sec-WebSocket-Extensions: extensions`; returns the client
/// and the 101's head.
fn upgrade_offering(addr: SocketAddr, query: &str, extensions: &str) -> (RawClient, String) {
    let mut c = RawClient::connect(addr);
    c.send(
        format!(
            "GET /ws?{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: {extensions}\r\n\r\n"
        )
        .as_bytes(),
    );
    let head = c.read_head();
    assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
    (c, head)
}

/// The extensions the hub accepted, from a 101 head.
fn accepted(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
        .map(str::to_owned)
}

/// Reads one server frame: (first byte, payload).
fn read_raw_frame(c: &mut RawClient) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    c.stream.read_exact(&mut h).unwrap();
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            c.stream.read_exact(&mut b).unwrap();
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            c.stream.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    c.stream.read_exact(&mut payload).unwrap();
    (h[0], payload)
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    z.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut z = Decompress::new(false);
    let mut out = Vec::with_capacity(1 << 20);
    let input = [data, &[0, 0, 0xff, 0xff]].concat();
    z.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

/// Inflates with zlib itself (python3's `zlib`) and a window of `2^bits`
/// bytes, 64 output bytes per call so that every back-reference is served
/// from zlib's window (within one call zlib reads its own output, whatever
/// the window): one past the window fails ("invalid distance too far
/// back"), which flate2's miniz backend would not notice.
fn zlib_inflate(data: &[u8], bits: u8) -> Result<Vec<u8>, String> {
    let script = "import sys, zlib\n\
                  d = zlib.decompressobj(-int(sys.argv[1]))\n\
                  buf = sys.stdin.buffer.read() + b'\\x00\\x00\\xff\\xff'\n\
                  out = b''\n\
                  while buf:\n    out += d.decompress(buf, 64)\n    buf = d.unconsumed_tail\n\
                  sys.stdout.buffer.write(out)\n";
    let mut child = Command::new("python3")
        .args(["-c", script, &bits.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (CI installs it)");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A JSON message that compresses well, as chat and telemetry do.
fn chatty(receiver: &str) -> Message {
    let mut m = Message::text(
        receiver,
        "the quick brown fox jumps over the lazy dog. ".repeat(40),
    );
    m.message_type = "text".into();
    m
}

#[test]
fn a_broadcast_is_compressed_once_for_every_client_that_negotiated() {
    let hub = TestHub::start(test_config());
    let mut deflaters = Vec::new();
    for user in ["a", "b", "c"] {
        let (c, head) = upgrade_offering(hub.addr, &format!("user_id={user}"), OFFER);
        assert_eq!(
            accepted(&head).as_deref(),
            Some("permessage-deflate; client_no_context_takeover")
        );
        deflaters.push(c);
    }
    let mut plain = connect(hub.addr, "user_id=d");
    wait_stat(hub.addr, "connections", 4);

    let msg = chatty("");
    hub.handle.broadcast(&msg).unwrap();
    let json = serde_json::to_vec(&msg).unwrap();
    for c in &mut deflaters {
        let (b0, payload) = read_raw_frame(c);
        assert_eq!(b0, 0xC1, "FIN + RSV1 + text");
        assert!(payload.len() * 5 < json.len(), "{} bytes", payload.len());
        assert_eq!(inflate(&payload), json);
    }
    assert_eq!(recv(&mut plain).content, msg.content);
    let s = stats(hub.addr);
    assert_eq!(s["deflate_negotiated"], 3);
    assert_eq!(
        s["deflate_compressed"], 1,
        "one compression for three clients"
    );

    // Below min_size: plain, even for a client that negotiated.
    hub.handle.broadcast(&Message::text("", "hi")).unwrap();
    let (b0, payload) = read_raw_frame(&mut deflaters[0]);
    assert_eq!(b0, 0x81);
    assert!(String::from_utf8(payload).unwrap().contains("\"hi\""));
}

#[test]
fn compressed_client_messages_are_inflated_and_relayed() {
    let hub = TestHub::start(test_config());
    let (mut alice, _) = upgrade_offering(hub.addr, "user_id=alice", OFFER);
    let (mut bob, _) = upgrade_offering(hub.addr, "user_id=bob", OFFER);
    let mut carol = connect(hub.addr, "user_id=carol");
    wait_stat(hub.addr, "connections", 3);

    for to in ["bob", "carol"] {
        let json = serde_json::to_vec(&chatty(to)).unwrap();
        let body = deflate(&json);
        // Fragmented: RSV1 on the first frame only.
        let (a, b) = body.split_at(body.len() / 2);
        alice.send(&[client_frame(0x41, a), client_frame(0x80, b)].concat());
    }
    let (b0, payload) = read_raw_frame(&mut bob);
    assert_eq!(b0, 0xC1);
    let got: Message = serde_json::from_slice(&inflate(&payload)).unwrap();
    assert_eq!(
        (got.sender.as_str(), got.content),
        ("alice", chatty("").content)
    );
    assert_eq!(recv(&mut carol).content, chatty("").content);

    // A compressed ping message is answered.
    alice.send(&client_frame(0xC1, &deflate(br#"{"message_type":"ping"}"#)));
    let (b0, payload) = read_raw_frame(&mut alice);
    assert_eq!(b0, 0x81);
    assert!(String::from_utf8(payload).unwrap().contains("pong"));
    hub.wait_for(|e| matches!(e, HubEvent::Message { .. }));
}

#[test]
fn a_zip_bomb_closes_with_1009_and_the_hub_serves_on() {
    let mut config = test_config();
    config.max_message_size = 64 << 10;
    let hub = TestHub::start(config);
    let (mut c, _) = upgrade_offering(hub.addr, "user_id=bomber", OFFER);
    // 50 MiB of zeros in about 50 KB: a frame under the limit, whose
    // inflated size is 800 times the limit.
    let bomb = deflate(&vec![0u8; 50 << 20]);
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    c.send(&client_frame(0xC2, &bomb));
    assert_eq!(c.read_close_code(), Some(1009));

    let (mut other, _) = upgrade_offering(hub.addr, "user_id=ok", OFFER);
    let json = serde_json::to_vec(&chatty("ok")).unwrap();
    other.send(&client_frame(0xC1, &deflate(&json)));
    let (b0, payload) = read_raw_frame(&mut other);
    assert_eq!(b0, 0xC1);
    let got: Message = serde_json::from_slice(&inflate(&payload)).unwrap();
    assert_eq!(
        (got.sender.as_str(), got.content),
        ("ok", chatty("").content)
    );
}

#[test]
fn rsv1_rules_and_corrupt_data_fail_the_connection() {
    let hub = TestHub::start(test_config());
    let compressed = deflate(b"{\"message_type\":\"ping\"}");
    // Not negotiated: RSV1 is a protocol error.
    let mut c = RawClient::upgrade(hub.addr, "user_id=plain");
    c.send(&client_frame(0xC1, &compressed));
    assert_eq!(c.read_close_code(), Some(1002));
    // Negotiated, but on a control frame, or on a continuation.
    let (mut c, _) = upgrade_offering(hub.addr, "user_id=p1", OFFER);
    c.send(&client_frame(0xC9, b""));
    assert_eq!(c.read_close_code(), Some(1002));
    let (mut c, _) = upgrade_offering(hub.addr, "user_id=p2", OFFER);
    c.send(&[client_frame(0x01, b"{"), client_frame(0xC0, &compressed)].concat());
    assert_eq!(c.read_close_code(), Some(1002));
    // Corrupt deflate data: 1007.
    let (mut c, _) = upgrade_offering(hub.addr, "user_id=p3", OFFER);
    c.send(&client_frame(0xC1, b"\xff\xff\xff\xff"));
    assert_eq!(c.read_close_code(), Some(1007));
    wait_stat(hub.addr, "protocol_errors", 4);
}

#[test]
fn bad_offers_are_declined_and_compression_can_be_turned_off() {
    let hub = TestHub::start(test_config());
    for (offer, expect) in [
        ("permessage-deflate; server_max_window_bits=7", None),
        ("permessage-deflate; foo=1", None),
        ("x-webkit-deflate-frame", None),
        (
            "permessage-deflate; server_max_window_bits=20, permessage-deflate; \
             server_no_context_takeover; server_max_window_bits=10",
            Some(
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
                 server_max_window_bits=10",
            ),
        ),
    ] {
        let (_c, head) = upgrade_offering(hub.addr, "user_id=o", offer);
        assert_eq!(accepted(&head).as_deref(), expect, "{offer}");
    }
    // A small window: a longer message is compressed in window-sized pieces.
    let (mut c, _) = upgrade_offering(
        hub.addr,
        "user_id=w",
        "permessage-deflate; server_max_window_bits=9",
    );
    wait_stat(hub.addr, "deflate_negotiated", 2);
    hub.handle.send_to_user("w", &chatty("w")).unwrap();
    let (b0, payload) = read_raw_frame(&mut c);
    assert_eq!(b0, 0xC1, "2 KB message, 512 B window");
    assert_eq!(inflate(&payload), serde_json::to_vec(&chatty("w")).unwrap());

    let mut config = test_config();
    config.compression.enabled = false;
    let off = TestHub::start(config);
    let (mut c, head) = upgrade_offering(off.addr, "user_id=x", OFFER);
    assert_eq!(accepted(&head), None);
    wait_stat(off.addr, "connections", 1);
    off.handle.send_to_user("x", &chatty("x")).unwrap();
    assert_eq!(read_raw_frame(&mut c).0, 0x81);
}

/// `compression.server_max_window_bits` is said to clients that did not
/// ask, a client's smaller limit wins, and the frames keep to the window:
/// zlib inflates them with a 512-byte (or 256-byte) window, which it
/// refuses for the same message compressed with the full window.
#[test]
fn a_configured_window_is_announced_and_kept_to() {
    let mut config = test_config();
    config.compression.server_max_window_bits = 9;
    let hub = TestHub::start(config);
    let (mut nine, head) = upgrade_offering(hub.addr, "user_id=nine", OFFER);
    assert_eq!(
        accepted(&head).as_deref(),
        Some("permessage-deflate; client_no_context_takeover; server_max_window_bits=9")
    );
    let (mut eight, head) = upgrade_offering(
        hub.addr,
        "user_id=eight",
        "permessage-deflate; server_max_window_bits=8",
    );
    assert_eq!(
        accepted(&head).as_deref(),
        Some("permessage-deflate; client_no_context_takeover; server_max_window_bits=8")
    );
    wait_stat(hub.addr, "deflate_negotiated", 2);

    // 700 pseudo-random letters, four times: every repeat lies 700 bytes back.
    let mut x = 7u32;
    let block: String = (0..700)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + ((x >> 16) % 26) as u8)
        })
        .collect();
    let content = block.repeat(4);
    for (c, user, bits) in [(&mut nine, "nine", 9), (&mut eight, "eight", 8)] {
        let msg = Message::text(user, &content);
        let json = serde_json::to_vec(&msg).unwrap();
        let full_window = zlib_inflate(&deflate(&json), bits);
        assert!(
            full_window.is_err(),
            "the control inflated with {bits} bits"
        );
        hub.handle.send_to_user(user, &msg).unwrap();
        let (b0, payload) = read_raw_frame(c);
        assert_eq!(b0, 0xC1, "{user}");
        assert!(
            payload.len() < json.len(),
            "{user}: {} bytes",
            payload.len()
        );
        assert_eq!(zlib_inflate(&payload, bits).unwrap(), json, "{user}");
    }
}

/// tungstenite (without its deflate feature) offers nothing and is served
/// plain frames, and its messages reach compressed peers compressed.
#[test]
fn plain_and_compressed_clients_talk_to_each_other() {
    let hub = TestHub::start(test_config());
    let mut plain = connect(hub.addr, "user_id=plain");
    let (mut z, _) = upgrade_offering(hub.addr, "user_id=z", OFFER);
    wait_stat(hub.addr, "connections", 2);
    let json = serde_json::to_string(&chatty("z")).unwrap();
    plain.send(WsMessage::text(json)).unwrap();
    let (b0, payload) = read_raw_frame(&mut z);
    assert_eq!(b0, 0xC1);
    let got: Message = serde_json::from_slice(&inflate(&payload)).unwrap();
    assert_eq!(got.sender, "plain");
}
