//! `wss://` over real loopback sockets: rustls clients (under tungstenite)
//! against the hub's TLS listener, certificates made at test time.
#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::tls::{TestCa, tls_stream, wss_connect};
use common::{TestHub, connect, recv_type, send, test_config};
use tungstenite::Message as WsMessage;
use wshub::config::TlsConfig;
use wshub::{BuildError, DefaultHub, HubConfig, HubEvent, Identity, Rejection, Request, TlsError};

fn tls_config(ca: &TestCa) -> HubConfig {
    let (cert, key, _) = ca.issue("server", "localhost");
    let mut c = test_config();
    c.tls = Some(TlsConfig::new(cert, key));
    c.tls_listen = "127.0.0.1:0".parse().unwrap();
    c
}

/// A `wss://` client and a plain `ws://` one on the same hub: relay both
/// ways, with an ACK, a JSON ping and a WebSocket ping over TLS.
#[test]
fn wss_and_ws_side_by_side_relay_ack_and_ping() {
    let ca = TestCa::new("relay");
    let hub = TestHub::start(tls_config(&ca));
    let tls_addr = hub.tls_addr.expect("a wss:// listener");
    assert_ne!(tls_addr, hub.addr);

    let mut secure = wss_connect(tls_addr, "user_id=s", ca.client_config(None)).unwrap();
    let mut plain = connect(hub.addr, "user_id=p");
    for _ in 0..2 {
        hub.wait_for(|e| matches!(e, HubEvent::Connected { .. }));
    }
    send(
        &mut plain,
        r#"{"message_type":"text","receiver":"s","content":"to tls","require_ack":true}"#,
    );
    let got = recv_type(&mut secure, "text");
    assert_eq!((got.sender.as_str(), got.content.as_str()), ("p", "to tls"));
    send(
        &mut secure,
        &format!(
            r#"{{"message_type":"ack","message_id":"{}"}}"#,
            got.message_id
        ),
    );
    send(
        &mut secure,
        r#"{"message_type":"text","receiver":"p","content":"from tls"}"#,
    );
    let back = recv_type(&mut plain, "text");
    assert_eq!(
        (back.sender.as_str(), back.content.as_str()),
        ("s", "from tls")
    );

    send(&mut secure, r#"{"message_type":"ping"}"#);
    recv_type(&mut secure, "pong");
    secure
        .send(WsMessage::Ping(b"tls".to_vec().into()))
        .unwrap();
    let pong = loop {
        match secure.read().unwrap() {
            WsMessage::Pong(p) => break p,
            _ => continue,
        }
    };
    assert_eq!(&pong[..], b"tls");

    // A large message crosses several TLS records both ways.
    let big = "x".repeat(48 * 1024);
    send(
        &mut plain,
        &format!(r#"{{"message_type":"text","receiver":"s","content":"{big}"}}"#),
    );
    assert_eq!(recv_type(&mut secure, "text").content.len(), big.len());

    secure.close(None).unwrap();
    let closed = hub.wait_for(|e| matches!(e, HubEvent::Disconnected { .. }));
    let HubEvent::Disconnected { identity, .. } = closed else {
        unreachable!()
    };
    assert_eq!(&*identity.user_id, "s");
    let stats = hub.stop();
    assert_eq!(stats.tls_errors, 0);
    assert_eq!(stats.protocol_errors, 0);
}

/// Plain HTTP and garbage on the TLS port are refused (TLS alert or close),
/// counted, and the hub goes on serving.
#[test]
fn plain_http_and_garbage_on_the_tls_port_are_refused() {
    let ca = TestCa::new("garbage");
    let hub = TestHub::start(tls_config(&ca));
    let tls_addr = hub.tls_addr.unwrap();
    let inputs: [&[u8]; 3] = [
        b"GET /ws?user_id=x HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0xff; 600],
        // A TLS record header announcing an absurd length.
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01],
    ];
    for input in inputs {
        let mut s = TcpStream::connect(tls_addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(input).unwrap();
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        assert!(
            !reply.starts_with(b"HTTP/"),
            "the TLS port answered in plaintext: {:?}",
            String::from_utf8_lossy(&reply)
        );
        // At most a TLS alert record.
        assert!(reply.is_empty() || reply[0] == 0x15, "reply {reply:?}");
    }
    let mut ok = wss_connect(tls_addr, "user_id=after", ca.client_config(None)).unwrap();
    send(&mut ok, r#"{"message_type":"ping"}"#);
    recv_type(&mut ok, "pong");
    let stats = hub.stop();
    assert_eq!(stats.tls_errors, 3, "{stats:?}");
}

/// A client that stops halfway through the TLS handshake is dropped at the
/// handshake deadline.
#[test]
fn a_client_stalled_mid_tls_handshake_is_dropped() {
    let ca = TestCa::new("stall");
    let mut config = tls_config(&ca);
    config.handshake_timeout = Duration::from_millis(300);
    let hub = TestHub::start(config);
    let tls_addr = hub.tls_addr.unwrap();

    // A real ClientHello, cut in half.
    let mut client =
        rustls::ClientConnection::new(ca.client_config(None), "localhost".try_into().unwrap())
            .unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    let mut s = TcpStream::connect(tls_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&hello[..hello.len() / 2]).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing but a close: {rest:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    // And one that completed TLS but never sent its HTTP request.
    let mut quiet = tls_stream(tls_addr, ca.client_config(None)).unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(quiet.read(&mut buf), Ok(0) | Err(_)));
    let stats = hub.stop();
    assert_eq!(stats.rejected, 2, "{stats:?}");
}

/// A bad file is an error at bind naming it; so is a key that does not
/// match the certificate.
#[test]
fn bad_tls_files_are_errors_at_bind_naming_the_file() {
    let ca = TestCa::new("bad");
    let (cert, key, _) = ca.issue("a", "localhost");
    let (_, other_key, _) = ca.issue("b", "localhost");
    let bind = |cert: &std::path::Path, key: &std::path::Path| {
        let mut c = test_config();
        c.tls = Some(TlsConfig::new(cert, key));
        c.tls_listen = "127.0.0.1:0".parse().unwrap();
        match DefaultHub::bind(c) {
            Err(BuildError::Tls(e)) => e,
            other => panic!("expected a TLS error, got {other:?}"),
        }
    };
    let missing = ca.dir.join("missing.pem");
    let e = bind(&missing, &key);
    assert!(matches!(e, TlsError::Read { .. }), "{e}");
    assert!(e.to_string().contains("missing.pem"), "{e}");

    let e = bind(&key, &key);
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
    assert!(e.to_string().contains("a.key"), "{e}");

    let e = bind(&cert, &cert);
    assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
    assert!(e.to_string().contains("a.pem"), "{e}");

    let e = bind(&cert, &other_key);
    assert!(matches!(e, TlsError::BadKey { .. }), "{e}");
    assert!(
        e.to_string().contains("b.key") && e.to_string().contains("a.pem"),
        "{e}"
    );
}

/// A reload serves the new certificate to new connections; an open one
/// keeps its session. A failed reload keeps the old certificate.
#[test]
fn reload_tls_swaps_the_certificate_for_new_connections_only() {
    let ca = TestCa::new("reload");
    let (cert, key, first) = ca.issue("server", "first");
    let mut config = test_config();
    config.tls = Some(TlsConfig::new(&cert, &key));
    config.tls_listen = "127.0.0.1:0".parse().unwrap();
    let hub = TestHub::start(config);
    let tls_addr = hub.tls_addr.unwrap();
    let served = |expected: &rustls::pki_types::CertificateDer<'_>| {
        let s = tls_stream(tls_addr, ca.client_config(None)).unwrap();
        let chain = s.conn.peer_certificates().unwrap();
        assert_eq!(&chain[0], expected);
    };
    served(&first);
    let mut old = wss_connect(tls_addr, "user_id=old", ca.client_config(None)).unwrap();

    let (_, _, second) = ca.issue("server", "second");
    hub.handle.reload_tls().unwrap();
    common::wait_stat(hub.addr, "tls_reloads", 1);
    served(&second);

    std::fs::write(&key, "not a key").unwrap();
    hub.handle.reload_tls().unwrap();
    common::wait_stat(hub.addr, "tls_reload_errors", 1);
    served(&second);

    send(&mut old, r#"{"message_type":"ping"}"#);
    recv_type(&mut old, "pong");
}

/// Mutual TLS: without a client certificate the handshake fails; with one
/// the authenticator sees it and may take the identity from it.
#[test]
fn mutual_tls_feeds_the_client_certificate_to_the_authenticator() {
    struct ByCert;
    impl wshub::Authenticator for ByCert {
        fn authenticate(&mut self, _: &Request) -> Result<Identity, Rejection> {
            Err(Rejection::new(401, "certificate required"))
        }
        fn authenticate_with_cert(
            &mut self,
            req: &Request,
            cert: Option<&[u8]>,
        ) -> Result<Identity, Rejection> {
            // A real one parses the subject; the test marks the cert by size.
            match cert {
                Some(der) if der.len() > 100 => Ok(Identity::new("device-by-cert", "", "device")),
                _ => self.authenticate(req),
            }
        }
    }
    let ca = TestCa::new("mtls");
    let mut config = tls_config(&ca);
    config.tls.as_mut().unwrap().client_ca_file = Some(ca.ca_file.clone());
    let hub = TestHub::start_with::<{ wshub::DEFAULT_QUEUE }>(config, |hub| {
        hub.set_authenticator(ByCert)
    });
    let tls_addr = hub.tls_addr.unwrap();
    assert!(wss_connect(tls_addr, "user_id=x", ca.client_config(None)).is_err());

    let (ccert, ckey, _) = ca.issue("client", "device-7");
    let config = ca.client_config(Some((&ccert, &ckey)));
    let mut ws = wss_connect(tls_addr, "", config).unwrap();
    let ev = hub.wait_for(|e| matches!(e, HubEvent::Connected { .. }));
    let HubEvent::Connected { identity, .. } = ev else {
        unreachable!()
    };
    assert_eq!(&*identity.user_id, "device-by-cert");
    send(&mut ws, r#"{"message_type":"ping"}"#);
    recv_type(&mut ws, "pong");
}

/// The hub reads a TLS socket once per readiness (up to 44 KiB) and feeds
/// rustls from memory: a message spanning many such reads, a burst of
/// small ones arriving as many records in one read, and the client's
/// close_notify right behind its close frame all come through whole and in
/// order, and the echoes go back.
#[test]
fn large_and_pipelined_messages_and_close_notify_over_wss() {
    let ca = TestCa::new("oneread");
    let mut config = tls_config(&ca);
    config.max_message_size = 1 << 20;
    // Rings of 1,024 frames: all 301 echoes are queued in one turn.
    let mut hub = wshub::Hub::<1024, 512>::bind(config).unwrap();
    hub.set_json_protocol(false);
    let addr = hub.tls_local_addr().unwrap();
    const SMALL: usize = 300;
    let big: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    let client = {
        let (big, config) = (big.clone(), ca.client_config(None));
        std::thread::spawn(move || {
            let mut ws = wss_connect(addr, "user_id=bulk", config).unwrap();
            ws.get_mut()
                .sock
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            // All queued, then one flush: many records per socket read.
            ws.write(WsMessage::Binary(big.clone().into())).unwrap();
            for i in 0..SMALL {
                ws.write(WsMessage::Text(format!("small {i}").into()))
                    .unwrap();
            }
            ws.flush().unwrap();
            let mut echoed = Vec::new();
            while echoed.len() < SMALL + 1 {
                match ws.read().unwrap() {
                    WsMessage::Binary(b) => echoed.push(b.to_vec()),
                    WsMessage::Text(t) => echoed.push(t.as_bytes().to_vec()),
                    _ => {}
                }
            }
            // A close frame, then close_notify and FIN right behind it.
            ws.close(None).unwrap();
            let _ = ws.flush();
            ws.get_mut().conn.send_close_notify();
            let _ = ws.get_mut().flush();
            echoed
        })
    };
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut gone = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !gone && Instant::now() < deadline {
        hub.poll(Some(Duration::from_millis(5))).unwrap();
        while let Some(ev) = hub.next_event() {
            match ev {
                HubEvent::Binary { conn, data, .. }
                | HubEvent::Text {
                    conn, text: data, ..
                } => {
                    got.push(data.body().to_vec());
                    hub.send(wshub::Target::Conn(conn), &data).unwrap();
                }
                HubEvent::Disconnected { .. } => gone = true,
                _ => {}
            }
        }
    }
    let echoed = client.join().unwrap();
    assert!(gone, "the hub never saw the client leave");
    assert_eq!(got.len(), SMALL + 1);
    assert!(got[0] == big, "the 300 KiB message arrived changed");
    for (i, m) in got[1..].iter().enumerate() {
        assert_eq!(m, format!("small {i}").as_bytes());
    }
    assert_eq!(echoed, got, "the echoes differ from what was sent");
    assert_eq!(hub.connections(), 0);
}
