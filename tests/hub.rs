//! The hub runtime over real loopback sockets with real clients.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use tungstenite::Message as WsMessage;
use wshub::{CloseCode, DisconnectReason, HubEvent, Message};

#[test]
fn identity_comes_from_the_handshake_and_sender_is_stamped() {
    let hub = TestHub::start(test_config());
    let mut alice = connect(hub.addr, "user_id=alice&client_id=phone&user_type=agent");
    match hub.event() {
        HubEvent::Connected { identity, .. } => {
            assert_eq!(&*identity.user_id, "alice");
            assert_eq!(&*identity.client_id, "phone");
            assert_eq!(&*identity.user_type, "agent");
        }
        other => panic!("expected Connected, got {other:?}"),
    }
    send(
        &mut alice,
        r#"{"message_type":"no_relay","sender":"mallory","sender_type":"admin","content":"x"}"#,
    );
    match hub.event() {
        HubEvent::Message {
            message, identity, ..
        } => {
            assert_eq!(
                message.sender, "alice",
                "sender comes from the identity, not the client"
            );
            assert_eq!(message.sender_type, "agent");
            assert_eq!(&*identity.user_id, "alice");
            assert!(!message.create_at.is_empty(), "create_at is stamped");
        }
        other => panic!("expected Message, got {other:?}"),
    }
}

#[test]
fn a_user_with_two_devices_gets_the_message_on_both() {
    let hub = TestHub::start(test_config());
    let mut phone = connect(hub.addr, "user_id=alice&client_id=phone");
    let mut laptop = connect(hub.addr, "user_id=alice&client_id=laptop");
    let mut bob = connect(hub.addr, "user_id=bob");
    for _ in 0..3 {
        hub.wait_for(|e| matches!(e, HubEvent::Connected { .. }));
    }
    send(
        &mut bob,
        r#"{"message_type":"text","receiver":"alice","content":"hello both"}"#,
    );
    for ws in [&mut phone, &mut laptop] {
        let m = recv(ws);
        assert_eq!(m.content, "hello both");
        assert_eq!(m.sender, "bob");
    }
    // receiver_client narrows it to one device.
    send(
        &mut bob,
        r#"{"message_type":"text","receiver":"alice","receiver_client":"laptop","content":"only laptop"}"#,
    );
    assert_eq!(recv(&mut laptop).content, "only laptop");
    send(
        &mut bob,
        r#"{"message_type":"text","receiver":"alice","content":"both again"}"#,
    );
    assert_eq!(
        recv(&mut phone).content,
        "both again",
        "the phone never saw the laptop-only message"
    );
    assert_eq!(recv(&mut laptop).content, "both again");
}

#[test]
fn host_sends_broadcasts_and_kicks_through_the_handle() {
    let hub = TestHub::start(test_config());
    let mut clients: Vec<Client> = (0..3)
        .map(|i| connect(hub.addr, &format!("user_id=u{i}")))
        .collect();
    for _ in 0..3 {
        hub.wait_for(|e| matches!(e, HubEvent::Connected { .. }));
    }
    hub.handle
        .broadcast(&Message::text("", "to everyone"))
        .unwrap();
    for ws in &mut clients {
        assert_eq!(recv(ws).content, "to everyone");
    }
    hub.handle
        .send_to_user("u1", &Message::text("u1", "just u1"))
        .unwrap();
    assert_eq!(recv(&mut clients[1]).content, "just u1");

    hub.handle.kick_user("u2", "policy").unwrap();
    let kick = recv_type(&mut clients[2], "kick_out");
    assert_eq!(kick.data.unwrap()["reason"], "policy");
    assert_eq!(expect_close(&mut clients[2]), Some(1000));
    match hub.wait_for(|e| matches!(e, HubEvent::Disconnected { .. })) {
        HubEvent::Disconnected {
            identity, reason, ..
        } => {
            assert_eq!(&*identity.user_id, "u2");
            assert_eq!(reason, DisconnectReason::Kicked);
        }
        _ => unreachable!(),
    }
    // The others are unaffected.
    hub.handle
        .send_to_user("u0", &Message::text("u0", "still here"))
        .unwrap();
    assert_eq!(recv(&mut clients[0]).content, "still here");
}

#[test]
fn json_ping_gets_pong_and_websocket_ping_gets_pong_frame() {
    let hub = TestHub::start(test_config());
    let mut c = connect(hub.addr, "user_id=pinger");
    send(&mut c, r#"{"message_type":"ping"}"#);
    assert_eq!(recv(&mut c).message_type, "pong");
    c.send(WsMessage::Ping(b"abc".to_vec().into())).unwrap();
    loop {
        match c.read().unwrap() {
            WsMessage::Pong(p) => {
                assert_eq!(&p[..], b"abc");
                break;
            }
            WsMessage::Ping(_) => continue,
            other => panic!("expected pong, got {other:?}"),
        }
    }
}

#[test]
fn server_sends_heartbeat_pings() {
    let mut cfg = test_config();
    cfg.heartbeat_interval = Duration::from_millis(100);
    let hub = TestHub::start(cfg);
    let mut raw = RawClient::upgrade(hub.addr, "user_id=hb");
    let started = Instant::now();
    for _ in 0..3 {
        let (op, _) = raw.read_frame().expect("a ping");
        assert_eq!(op, 0x9, "heartbeat is a WebSocket ping");
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn silent_client_is_dropped_by_the_idle_timeout_and_traffic_keeps_others_alive() {
    let mut cfg = test_config();
    cfg.heartbeat_interval = Duration::from_millis(250);
    cfg.client_timeout = Duration::from_millis(400);
    let hub = TestHub::start(cfg);
    let mut silent = RawClient::upgrade(hub.addr, "user_id=silent");
    let mut chatty = connect(hub.addr, "user_id=chatty");
    // The chatty client sends something every 100 ms for 800 ms.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(100));
        send(&mut chatty, r#"{"message_type":"ping"}"#);
        assert_eq!(recv(&mut chatty).message_type, "pong");
    }
    assert_eq!(silent.read_close_code(), Some(1001));
    match hub.wait_for(|e| matches!(e, HubEvent::Disconnected { .. })) {
        HubEvent::Disconnected {
            identity, reason, ..
        } => {
            assert_eq!(&*identity.user_id, "silent");
            assert_eq!(reason, DisconnectReason::IdleTimeout);
        }
        _ => unreachable!(),
    }
}

#[test]
fn handshake_timeout_drops_silent_and_byte_by_byte_clients() {
    let mut cfg = test_config();
    cfg.handshake_timeout = Duration::from_millis(300);
    let hub = TestHub::start(cfg);
    let mut silent = RawClient::connect(hub.addr);
    let mut slow = RawClient::connect(hub.addr);
    let request = b"GET /ws?user_id=slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n";
    let started = Instant::now();
    for b in request.iter() {
        if slow.stream.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(15));
        if started.elapsed() > Duration::from_millis(600) {
            break;
        }
    }
    assert!(
        silent.read_to_end().is_empty(),
        "silent client gets nothing and is closed"
    );
    assert!(!slow.read_to_end().starts_with(b"HTTP/1.1 101"));
    // A normal client still gets in.
    let _ok = connect(hub.addr, "user_id=ok");
}

#[test]
fn per_user_limit_and_replacement_by_client_id() {
    let mut cfg = test_config();
    cfg.max_connections_per_user = 2;
    let hub = TestHub::start(cfg);
    let _a = connect(hub.addr, "user_id=lim&client_id=a");
    let mut b = connect(hub.addr, "user_id=lim&client_id=b");
    match try_connect(hub.addr, "user_id=lim&client_id=c") {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        other => panic!("third device should get 503, got {other:?}"),
    }
    // Same client id: replaces the old connection instead of counting.
    let mut b2 = connect(hub.addr, "user_id=lim&client_id=b");
    let kick = recv_type(&mut b, "kick_out");
    assert!(
        kick.data.unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("replaced")
    );
    assert_eq!(expect_close(&mut b), Some(1000));
    // The device id now names the new connection.
    let mut to_b = Message::text("lim", "to the new b");
    to_b.receiver_client = "b".into();
    hub.handle.send_to_user("lim", &to_b).unwrap();
    assert_eq!(recv(&mut b2).content, "to the new b");
}

#[test]
fn hub_limit_refuses_with_503_and_keeps_serving_existing_clients() {
    let mut cfg = test_config();
    cfg.max_connections = 2;
    let hub = TestHub::start(cfg);
    let mut a = connect(hub.addr, "user_id=a");
    let _b = connect(hub.addr, "user_id=b");
    for _ in 0..5 {
        match try_connect(hub.addr, "user_id=c") {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
            other => panic!("expected 503, got {other:?}"),
        }
    }
    send(&mut a, r#"{"message_type":"ping"}"#);
    assert_eq!(recv(&mut a).message_type, "pong");
}

#[test]
fn missing_user_id_and_garbage_requests_get_400() {
    let hub = TestHub::start(test_config());
    match try_connect(hub.addr, "client_id=x") {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
    let mut garbage = RawClient::connect(hub.addr);
    garbage.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n");
    let resp = String::from_utf8_lossy(&garbage.read_to_end()).into_owned();
    assert!(resp.starts_with("HTTP/1.1 400"), "got {resp:?}");
    let mut plain = RawClient::connect(hub.addr);
    plain.send(b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = String::from_utf8_lossy(&plain.read_to_end()).into_owned();
    assert!(resp.starts_with("HTTP/1.1 404"), "got {resp:?}");
}

/// RFC 6455 §4.4: a client asking for a version the hub does not speak gets
/// 426 with the version it does speak, then the connection closes.
#[test]
fn unsupported_websocket_version_gets_426_naming_version_13() {
    let hub = TestHub::start(test_config());
    let mut c = RawClient::connect(hub.addr);
    c.send(
        b"GET /ws?user_id=old HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    let resp = String::from_utf8_lossy(&c.read_to_end()).into_owned();
    let (head, _body) = resp.split_once("\r\n\r\n").expect("a complete head");
    assert!(head.starts_with("HTTP/1.1 426 "), "got {resp:?}");
    let headers: Vec<&str> = head.split("\r\n").skip(1).collect();
    assert!(
        headers.contains(&"Sec-WebSocket-Version: 13"),
        "got {resp:?}"
    );
    assert!(headers.contains(&"Upgrade: websocket"), "got {resp:?}");
}

#[test]
fn malformed_json_gets_an_error_message_and_the_connection_stays_open() {
    let hub = TestHub::start(test_config());
    let mut c = connect(hub.addr, "user_id=sloppy");
    for bad in [
        "{not json",
        r#"{"content":"no type"}"#,
        r#"{"message_type":"ack"}"#,
        "[]",
    ] {
        send(&mut c, bad);
        let err = recv_type(&mut c, "error");
        assert_eq!(
            err.data.as_ref().unwrap()["reason"],
            "validation",
            "for {bad}"
        );
    }
    send(&mut c, r#"{"message_type":"ping"}"#);
    assert_eq!(recv(&mut c).message_type, "pong");
}

#[test]
fn oversize_message_closes_1009_and_others_are_unaffected() {
    let mut cfg = test_config();
    cfg.max_message_size = 1024;
    let hub = TestHub::start(cfg);
    let mut bystander = connect(hub.addr, "user_id=bystander");
    let mut big = RawClient::upgrade(hub.addr, "user_id=big");
    let body = format!(
        r#"{{"message_type":"text","content":"{}"}}"#,
        "x".repeat(2000)
    );
    big.send(&client_frame(0x81, body.as_bytes()));
    assert_eq!(big.read_close_code(), Some(1009));
    send(&mut bystander, r#"{"message_type":"ping"}"#);
    assert_eq!(recv(&mut bystander).message_type, "pong");
}

#[test]
fn invalid_utf8_closes_1007() {
    let hub = TestHub::start(test_config());
    let mut c = RawClient::upgrade(hub.addr, "user_id=utf");
    c.send(&client_frame(0x81, b"{\"message_type\":\"\xff\xfe\"}"));
    assert_eq!(c.read_close_code(), Some(1007));
}

#[test]
fn protocol_violations_close_1002() {
    let hub = TestHub::start(test_config());
    // Reserved opcode.
    let mut c = RawClient::upgrade(hub.addr, "user_id=p1");
    c.send(&client_frame(0x83, b"x"));
    assert_eq!(c.read_close_code(), Some(1002));
    // Unmasked client frame.
    let mut c = RawClient::upgrade(hub.addr, "user_id=p2");
    c.send(&[0x81, 0x02, b'h', b'i']);
    assert_eq!(c.read_close_code(), Some(1002));
    // Continuation without a start.
    let mut c = RawClient::upgrade(hub.addr, "user_id=p3");
    c.send(&client_frame(0x80, b"x"));
    assert_eq!(c.read_close_code(), Some(1002));
    // Stats saw all three.
    let mut ok = connect(hub.addr, "user_id=ok");
    send(&mut ok, r#"{"message_type":"ping"}"#);
    assert_eq!(recv(&mut ok).message_type, "pong");
    let stats = hub.stop();
    assert_eq!(stats.protocol_errors, 3);
}

#[test]
fn client_close_is_answered_and_reported() {
    let hub = TestHub::start(test_config());
    let mut c = connect(hub.addr, "user_id=leaver");
    hub.wait_for(|e| matches!(e, HubEvent::Connected { .. }));
    c.close(None).unwrap();
    let code = expect_close(&mut c);
    assert!(
        matches!(code, Some(1000) | None),
        "close reply, got {code:?}"
    );
    match hub.wait_for(|e| matches!(e, HubEvent::Disconnected { .. })) {
        HubEvent::Disconnected { reason, .. } => {
            assert_eq!(reason, DisconnectReason::ClientClosed(CloseCode::STATUS))
        }
        _ => unreachable!(),
    }
}

#[test]
fn shutdown_closes_every_client_with_1001_and_run_returns() {
    let hub = TestHub::start(test_config());
    let mut a = connect(hub.addr, "user_id=a");
    let mut b = connect(hub.addr, "user_id=b");
    for _ in 0..2 {
        hub.wait_for(|e| matches!(e, HubEvent::Connected { .. }));
    }
    hub.handle
        .send_to_user("a", &Message::text("a", "last words"))
        .unwrap();
    assert_eq!(recv(&mut a).content, "last words");
    let handle = hub.handle.clone();
    let addr = hub.addr;
    let joiner = std::thread::spawn(move || hub.stop());
    assert_eq!(expect_close(&mut a), Some(1001));
    assert_eq!(expect_close(&mut b), Some(1001));
    let stats = joiner.join().unwrap();
    assert_eq!(stats.connections, 0);
    assert!(
        handle
            .send_to_user("a", &Message::text("a", "late"))
            .is_err(),
        "hub is gone"
    );
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

#[test]
fn a_flood_is_pushed_back_while_the_host_does_not_drain_and_nothing_is_lost() {
    let mut cfg = test_config();
    cfg.max_message_size = 1024;
    let mut hub = wshub::DefaultHub::bind(cfg).unwrap();
    hub.set_event_limit(100);
    let addr = hub.local_addr();
    const FLOOD: usize = 20_000;
    let flooder = std::thread::spawn(move || {
        let mut c = RawClient::upgrade(addr, "user_id=flood");
        let frame = client_frame(0x81, br#"{"message_type":"no_relay","content":"x"}"#);
        let all: Vec<u8> = (0..FLOOD).flat_map(|_| frame.iter().copied()).collect();
        c.send(&all);
        c
    });
    // Poll without draining: reading pauses near the limit.
    let mut most = 0;
    for _ in 0..100 {
        hub.poll(Some(Duration::from_millis(2))).unwrap();
        most = most.max(hub.pending_events());
    }
    // One 64 KiB read of 45-byte frames may pass the limit; the flood may not.
    assert!(most < 100 + 64 * 1024 / 45 + 2, "{most} events waiting");
    assert!(most < FLOOD);
    // Draining lets it all through.
    let mut messages = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while messages < FLOOD && Instant::now() < deadline {
        hub.poll(Some(Duration::from_millis(5))).unwrap();
        while let Some(ev) = hub.next_event() {
            messages += usize::from(matches!(ev, HubEvent::Message { .. }));
        }
    }
    assert_eq!(messages, FLOOD);
    drop(flooder.join().unwrap());
}
