//! The trust boundary over real loopback sockets: signed identities,
//! origins, admin endpoints, forged notices, per-IP limits, the buffered
//! bytes budget, fair reads and the safe default at bind.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{RawClient, TestHub, client_frame, http_get, recv, recv_type, send, test_config};
use jsonwebtoken::{EncodingKey, Header};
use tungstenite::client::IntoClientRequest;
use wshub::auth::JwtAuthenticator;
use wshub::config::{AuthMode, JwtConfig};
use wshub::{DefaultHub, DisconnectReason, HubConfig, HubEvent};

const SECRET: &str = "test-secret-test-secret-test-secret-0123";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt_config() -> HubConfig {
    let mut c = test_config();
    c.auth.mode = Some(AuthMode::Jwt);
    c.auth.jwt.secret = Some(SECRET.to_owned());
    c.auth.jwt.audience = Some("wshub-test".to_owned());
    c.auth.jwt.issuer = Some("tests".to_owned());
    c
}

/// A token signed with `secret` (the hub's ring provider is installed by
/// building an authenticator first).
fn mint_with(secret: &str, claims: serde_json::Value) -> String {
    let mut cfg = JwtConfig::default();
    cfg.secret = Some(SECRET.to_owned());
    JwtAuthenticator::from_config(&cfg).unwrap();
    let key = EncodingKey::from_secret(secret.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::default(), &claims, &key).unwrap()
}

fn mint(sub: &str, exp: u64) -> String {
    mint_with(
        SECRET,
        serde_json::json!({"sub": sub, "exp": exp, "aud": "wshub-test", "iss": "tests"}),
    )
}

/// The status and body of an upgrade request with `query` and extra headers.
fn upgrade_status(addr: SocketAddr, query: &str, headers: &str) -> (u16, String) {
    let mut c = RawClient::connect(addr);
    c.send(
        format!(
            "GET /ws?{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
        )
        .as_bytes(),
    );
    let all = String::from_utf8_lossy(&c.read_to_end()).into_owned();
    let status = all.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = all
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn missing_bad_expired_and_misaddressed_tokens_get_401_with_a_reason() {
    let hub = TestHub::start(jwt_config());
    let exp = now() + 600;
    let cases = [
        ("user_id=alice".to_owned(), "missing token"),
        ("token=not.a.jwt".to_owned(), "malformed"),
        (
            format!(
                "token={}",
                mint_with(
                    &"x".repeat(40),
                    serde_json::json!({"sub": "alice", "exp": exp, "aud": "wshub-test", "iss": "tests"})
                )
            ),
            "signature",
        ),
        (format!("token={}", mint("alice", now() - 120)), "expired"),
        (
            format!(
                "token={}",
                mint_with(
                    SECRET,
                    serde_json::json!({"sub": "alice", "exp": exp, "aud": "other", "iss": "tests"})
                )
            ),
            "audience",
        ),
        (
            format!(
                "token={}",
                mint_with(
                    SECRET,
                    serde_json::json!({"sub": "alice", "exp": exp, "aud": "wshub-test", "iss": "evil"})
                )
            ),
            "issuer",
        ),
        (
            format!(
                "token={}",
                mint_with(
                    SECRET,
                    serde_json::json!({"sub": "alice", "aud": "wshub-test", "iss": "tests"})
                )
            ),
            "claim",
        ),
    ];
    for (query, why) in &cases {
        let (status, body) = upgrade_status(hub.addr, query, "");
        assert_eq!(status, 401, "{query}: {body}");
        assert!(body.contains(why), "{query}: body {body:?} lacks {why:?}");
    }
    let s = common::stats(hub.addr);
    assert_eq!(s["auth_failures"].as_u64(), Some(cases.len() as u64), "{s}");
    hub.stop();
}

#[test]
fn a_valid_token_names_the_user_and_the_query_cannot_override_it() {
    let hub = TestHub::start(jwt_config());
    let token = mint("alice", now() + 600);
    let mut ws = common::connect(
        hub.addr,
        &format!("token={token}&user_id=bob&user_type=admin"),
    );
    let HubEvent::Connected { identity, .. } =
        hub.wait_for(|e| matches!(e, HubEvent::Connected { .. }))
    else {
        unreachable!()
    };
    assert_eq!(&*identity.user_id, "alice");
    assert_eq!(&*identity.user_type, "user");
    // Authorization: Bearer works too, for clients that can set headers.
    let stream = TcpStream::connect(hub.addr).unwrap();
    let mut req = format!("ws://{}/ws", hub.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", mint("carol", now() + 600))
            .parse()
            .unwrap(),
    );
    let (mut carol, _) = tungstenite::client(req, stream).unwrap();
    let HubEvent::Connected { identity, .. } =
        hub.wait_for(|e| matches!(e, HubEvent::Connected { .. }))
    else {
        unreachable!()
    };
    assert_eq!(&*identity.user_id, "carol");
    send(
        &mut ws,
        r#"{"message_type":"text","receiver":"carol","content":"hi"}"#,
    );
    let m = recv(&mut carol);
    assert_eq!((m.sender.as_str(), m.content.as_str()), ("alice", "hi"));
    hub.stop();
}

/// A signed token's `groups` claim joins those groups as the connection
/// opens (the issuer decided: the group policy is not asked); bad names, too
/// many groups for one connection (with the `group_id` parameter counted)
/// and a hub at `max_groups` refuse the upgrade, and nothing is half joined.
#[test]
fn a_token_groups_claim_joins_at_the_handshake_within_the_limits() {
    let mut config = jwt_config();
    config.max_groups_per_connection = 2;
    config.max_groups = 3;
    let hub = TestHub::start_with::<{ wshub::DEFAULT_QUEUE }>(config, |hub| {
        hub.set_group_policy(|_: &wshub::GroupRequest<'_>| true);
    });
    let exp = now() + 600;
    let token = |sub: &str, groups: serde_json::Value| {
        let claims = serde_json::json!({
            "sub": sub, "exp": exp, "aud": "wshub-test", "iss": "tests", "groups": groups,
        });
        format!("token={}", mint_with(SECRET, claims))
    };
    let connected = |e: &HubEvent| matches!(e, HubEvent::Connected { .. });

    // A repeated name is one membership.
    let mut alice = common::connect(
        hub.addr,
        &token("alice", serde_json::json!(["room-1", "room-2", "room-1"])),
    );
    let HubEvent::Connected { conn, .. } = hub.wait_for(connected) else {
        unreachable!()
    };
    let mut groups = hub.handle.groups_of(conn).unwrap();
    groups.sort();
    assert_eq!(
        groups.iter().map(|g| &**g).collect::<Vec<_>>(),
        ["room-1", "room-2"]
    );
    hub.handle
        .send_to_group("room-2", &wshub::Message::text("host", "to room-2"), None)
        .unwrap();
    assert_eq!(recv(&mut alice).content, "to room-2");

    let refusals = [
        (
            token("bob", serde_json::json!("room-1")),
            401,
            "not an array of strings",
        ),
        (
            token("bob", serde_json::json!(["room-1", 7])),
            401,
            "not an array of strings",
        ),
        (token("bob", serde_json::json!([""])), 400, "group name"),
        (
            token("bob", serde_json::json!(["a", "b", "c"])),
            400,
            "max_groups_per_connection",
        ),
        // The query's group counts too: three groups for one connection.
        (
            token("bob", serde_json::json!(["room-1", "room-2"])) + "&group_id=x",
            400,
            "max_groups_per_connection",
        ),
        // Two new groups beside the two that exist pass max_groups (3).
        (
            token("bob", serde_json::json!(["x", "y"])),
            503,
            "max_groups",
        ),
    ];
    for (query, status, why) in &refusals {
        let (got, body) = upgrade_status(hub.addr, query, "");
        assert_eq!(got, *status, "{query}: {body}");
        assert!(body.contains(why), "{query}: body {body:?} lacks {why:?}");
    }
    for group in ["a", "x", "y"] {
        assert!(hub.handle.members(group).unwrap().is_empty(), "{group}");
    }
    assert_eq!(hub.handle.members("room-1").unwrap(), [conn]);
    let s = common::stats(hub.addr);
    // The four after the token was read; the two malformed claims are 401s.
    assert_eq!(s["group_refusals"].as_u64(), Some(4), "{s}");
    assert_eq!(s["auth_failures"].as_u64(), Some(2), "{s}");

    // One new group is within max_groups: bob joins it and an old one.
    let _bob = common::connect(hub.addr, &token("bob", serde_json::json!(["room-1", "x"])));
    let HubEvent::Connected { conn: bob, .. } = hub.wait_for(connected) else {
        unreachable!()
    };
    assert_eq!(hub.handle.members("x").unwrap(), [bob]);
    assert_eq!(hub.handle.members("room-1").unwrap().len(), 2);
    hub.stop();
}

/// PyJWT, a different implementation, mints an HS256 token the hub accepts.
#[test]
fn an_hs256_token_made_by_python_is_accepted() {
    let script = format!(
        "import jwt,time; print(jwt.encode({{'sub':'pyuser','exp':int(time.time())+600,'aud':'wshub-test','iss':'tests'}}, '{SECRET}', algorithm='HS256'))"
    );
    // CI's venv is on PATH; a developer's may be /work/venv.
    let candidates = [
        std::env::var("WSHUB_PYTHON").ok(),
        Some("python3".into()),
        Some("/work/venv/bin/python".into()),
    ];
    let token = candidates.iter().flatten().find_map(|python| {
        let o = Command::new(python).args(["-c", &script]).output().ok()?;
        o.status
            .success()
            .then(|| String::from_utf8(o.stdout).unwrap().trim().to_owned())
    });
    let Some(token) = token else {
        let why = "SKIPPED: no Python with PyJWT (pip install pyjwt; or set WSHUB_PYTHON)";
        assert!(std::env::var("CI").is_err(), "{why}");
        println!("{why}");
        return;
    };
    let hub = TestHub::start(jwt_config());
    let _ws = common::connect(hub.addr, &format!("token={token}"));
    let HubEvent::Connected { identity, .. } =
        hub.wait_for(|e| matches!(e, HubEvent::Connected { .. }))
    else {
        unreachable!()
    };
    assert_eq!(&*identity.user_id, "pyuser");
    hub.stop();
}

#[test]
fn an_open_connection_is_closed_with_4001_when_its_token_expires() {
    let mut config = jwt_config();
    config.auth.jwt.leeway = Duration::ZERO;
    let hub = TestHub::start(config);
    let mut ws = common::connect(hub.addr, &format!("token={}", mint("alice", now() + 2)));
    assert_eq!(common::expect_close(&mut ws), Some(4001));
    let ev = hub.wait_for(|e| matches!(e, HubEvent::Disconnected { .. }));
    let HubEvent::Disconnected { reason, .. } = ev else {
        unreachable!()
    };
    assert_eq!(reason, DisconnectReason::TokenExpired);
    assert_eq!(common::stats(hub.addr)["tokens_expired"].as_u64(), Some(1));
    hub.stop();
}

#[test]
fn binding_a_public_address_with_the_default_auth_fails_and_names_auth_mode() {
    let mut config = HubConfig::default();
    config.listen = "0.0.0.0:0".parse().unwrap();
    let err = DefaultHub::bind(config.clone()).unwrap_err().to_string();
    assert!(err.contains("auth.mode"), "{err}");
    config.auth.mode = Some(AuthMode::Query);
    assert!(
        DefaultHub::bind(config).is_ok(),
        "explicit query mode is the operator's choice"
    );
    // Loopback keeps the demo behaviour.
    assert!(DefaultHub::bind(test_config()).is_ok());
}

#[test]
fn forged_hub_notices_reach_nobody_and_the_sender_gets_a_validation_error() {
    let hub = TestHub::start(test_config());
    let mut mallory = common::connect(hub.addr, "user_id=mallory");
    let mut bob = common::connect(hub.addr, "user_id=bob");
    for t in ["kick_out", "error", "pong", "send_result"] {
        send(
            &mut mallory,
            &format!(r#"{{"message_type":"{t}","receiver":"bob","data":{{"reason":"forged"}}}}"#),
        );
        let e = recv_type(&mut mallory, "error");
        let detail = e.data.unwrap()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("reserved"), "{t}: {detail}");
    }
    // What bob receives next is the first legitimate message, stamped by
    // the hub: its source and create_at are not the client's.
    send(
        &mut mallory,
        r#"{"message_type":"text","receiver":"bob","content":"real","source":"offline","create_at":"2001-01-01T00:00:00Z"}"#,
    );
    let m = recv(&mut bob);
    assert_eq!(
        (m.message_type.as_str(), m.content.as_str()),
        ("text", "real")
    );
    assert!(m.source.is_empty(), "source {:?}", m.source);
    assert!(
        !m.create_at.starts_with("2001"),
        "create_at {:?}",
        m.create_at
    );
    assert_eq!(common::stats(hub.addr)["reserved_types"].as_u64(), Some(4));
    hub.stop();
}

#[test]
fn hub_assigned_client_ids_are_unguessable() {
    let hub = TestHub::start(test_config());
    let _a = common::connect(hub.addr, "user_id=alice");
    let _b = common::connect(hub.addr, "user_id=alice");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let HubEvent::Connected { identity, .. } =
            hub.wait_for(|e| matches!(e, HubEvent::Connected { .. }))
        else {
            unreachable!()
        };
        ids.push(identity.client_id.to_string());
    }
    assert_ne!(ids[0], ids[1]);
    for id in &ids {
        // 24 hex digits of keyed hash and counter, not `c<N>`.
        assert!(
            id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
    }
    hub.stop();
}

#[test]
fn an_upgrade_from_a_disallowed_origin_gets_403() {
    let mut config = test_config();
    config.allowed_origins = vec!["https://app.example.com".to_owned()];
    let hub = TestHub::start(config);
    let (status, body) = upgrade_status(
        hub.addr,
        "user_id=a",
        "Origin: https://evil.example.net\r\n",
    );
    assert_eq!(status, 403, "{body}");
    let (status, _) = upgrade_status(hub.addr, "user_id=a", "Origin: https://APP.example.com\r\n");
    assert_eq!(status, 101);
    // Non-browser clients send no Origin.
    let (status, _) = upgrade_status(hub.addr, "user_id=b", "");
    assert_eq!(status, 101);
    assert_eq!(common::stats(hub.addr)["origin_rejected"].as_u64(), Some(1));
    hub.stop();
}

#[test]
fn with_admin_listen_metrics_move_to_the_admin_port() {
    let mut config = test_config();
    let admin: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    config.admin_listen = Some(admin);
    let hub = TestHub::start(config);
    assert_eq!(http_get(hub.addr, "/metrics").0, 404);
    assert_eq!(http_get(hub.addr, "/health/failure-stats").0, 404);
    let (status, body) = http_get(admin, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("wshub_"), "{body}");
    assert_eq!(http_get(admin, "/health/failure-stats").0, 200);
    // The admin port upgrades nothing and serves nothing else.
    assert_eq!(upgrade_status(admin, "user_id=a", "").0, 404);
    hub.stop();
}

#[test]
fn sixty_five_connections_from_one_address_with_a_limit_of_64_refuse_the_last() {
    let mut config = test_config();
    config.max_connections_per_ip = 64;
    config.max_connections_per_user = 100;
    let hub = TestHub::start(config);
    let mut clients: Vec<_> = (0..64)
        .map(|i| common::connect(hub.addr, &format!("user_id=u{i}")))
        .collect();
    let (status, body) = upgrade_status(hub.addr, "user_id=u64", "");
    assert_eq!(status, 503, "{body}");
    // The others keep working.
    send(
        &mut clients[0],
        r#"{"message_type":"text","receiver":"u63","content":"still here"}"#,
    );
    assert_eq!(recv(&mut clients[63]).content, "still here");
    drop(clients.pop());
    // A freed place is usable again (once the hub has seen the close).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(_c) = common::try_connect(hub.addr, "user_id=again") {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
    hub.stop();
}

/// 500 clients trickle a 60 KB message one byte at a time: the hub's
/// buffered bytes stay within `max_buffered_bytes` (plus one read), the
/// largest holders are closed 1008 and counted.
#[test]
fn trickled_partial_messages_stay_within_max_buffered_bytes() {
    const CLIENTS: usize = 500;
    const BUDGET: usize = 2 << 20;
    let mut config = test_config();
    config.max_connections = CLIENTS + 16;
    config.max_connections_per_ip = 0;
    config.max_connections_per_user = CLIENTS;
    config.max_buffered_bytes = Some(BUDGET);
    let hub = TestHub::start(config);
    let frame = client_frame(0x81, &vec![b'x'; 60_000]);
    let mut clients: Vec<RawClient> = (0..CLIENTS)
        .map(|_| RawClient::upgrade(hub.addr, "user_id=trickle"))
        .collect();
    for c in &mut clients {
        c.stream.set_nonblocking(true).unwrap();
    }
    let mut max_seen = 0;
    // Header and a growing prefix, one byte per client per round.
    for round in 0..frame.len().min(20_000) {
        for c in &mut clients {
            let _ = std::io::Write::write(&mut c.stream, &frame[round..round + 1]);
        }
        if round % 2000 == 1999 {
            let s = common::stats(hub.addr);
            max_seen = max_seen.max(s["buffered_bytes"].as_u64().unwrap());
        }
    }
    let s = common::stats(hub.addr);
    max_seen = max_seen.max(s["buffered_bytes"].as_u64().unwrap());
    println!(
        "buffered bytes: max seen {max_seen}, evictions {}",
        s["buffer_evictions"]
    );
    assert!(
        max_seen as usize <= BUDGET + 64 * 1024,
        "{max_seen} > {BUDGET}"
    );
    assert!(s["buffer_evictions"].as_u64().unwrap() > 0, "{s}");
    hub.stop();
}

/// A client flooding empty frames cannot keep another unread: the other's
/// ping is answered while the flood goes on.
#[test]
fn a_flood_of_empty_frames_does_not_starve_another_clients_ping() {
    let mut config = test_config();
    config.max_connections_per_user = 4;
    let hub = TestHub::start(config);
    let flooder = RawClient::upgrade(hub.addr, "user_id=flood");
    let mut victim = common::connect(hub.addr, "user_id=victim");
    let empty = client_frame(0x82, b"");
    let burst: Vec<u8> = empty
        .iter()
        .copied()
        .cycle()
        .take(empty.len() * 10_000)
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        let mut stream = flooder.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut sent = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if std::io::Write::write_all(&mut stream, &burst).is_err() {
                    break;
                }
                sent += burst.len();
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        send(&mut victim, r#"{"message_type":"ping"}"#);
        recv_type(&mut victim, "pong");
        worst = worst.max(t.elapsed());
    }
    let flooding = !flood.is_finished();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = flooder.stream.shutdown(std::net::Shutdown::Both);
    let sent = flood.join().unwrap();
    println!("20 pongs during a flood of {sent} bytes of empty frames; slowest {worst:?}");
    assert!(flooding, "the flood ended before the pongs came");
    hub.stop();
}
