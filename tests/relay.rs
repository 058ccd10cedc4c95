//! The built-in relay (`relay: true`) over real loopback sockets: routing by
//! receiver and device, the hub's stamp, require_ack with its result told
//! to the sender, broadcast only when allowed, forged hub types refused,
//! and the host's filter.

mod common;

use std::time::Duration;

use common::*;
use wshub::{HubConfig, HubEvent, RelayVerdict};

fn relay_config() -> HubConfig {
    let mut c = test_config();
    c.relay = true;
    c
}

fn ack(ws: &mut Client, id: &str) {
    send(
        ws,
        &format!(r#"{{"message_type":"ack","message_id":"{id}"}}"#),
    );
}

#[test]
fn a_client_message_is_relayed_stamped_by_the_hub() {
    let hub = TestHub::start(relay_config());
    let mut alice = connect(hub.addr, "user_id=alice&user_type=customer");
    let mut bob = connect(hub.addr, "user_id=bob");
    send(
        &mut alice,
        r#"{"message_type":"text","receiver":"bob","content":"hi \"bob\"","message_id":"a1","sender":"mallory","source":"offline","create_at":"1999","data":{"n":[1,2]},"priority":"high","seq_no":3,"trace_id":"tr"}"#,
    );
    let m = recv(&mut bob);
    assert_eq!(
        (m.sender.as_str(), m.sender_type.as_str()),
        ("alice", "customer")
    );
    assert_eq!(m.content, "hi \"bob\"");
    assert_eq!(m.id, "a1", "the client's own id travels in `id`");
    assert_eq!(m.message_id.len(), 24, "a hub-assigned id: {m:?}");
    assert_eq!(m.source, "", "source is the hub's");
    assert_eq!(m.create_at.len(), 24, "create_at stamped by the hub: {m:?}");
    assert_ne!(m.create_at, "1999");
    assert_eq!(m.data, Some(serde_json::json!({"n": [1, 2]})));
    assert_eq!((m.seq_no, m.trace_id.as_str()), (3, "tr"));
    // The host saw no message: the hub routed it.
    let s = stats(hub.addr);
    assert_eq!(s["relayed"], 1, "{s}");
    assert!(
        hub.events
            .try_iter()
            .all(|e| !matches!(e, HubEvent::Message { .. }))
    );
}

#[test]
fn receiver_client_narrows_the_relay_to_one_device() {
    let hub = TestHub::start(relay_config());
    let mut alice = connect(hub.addr, "user_id=alice");
    let mut phone = connect(hub.addr, "user_id=bob&client_id=phone");
    let mut laptop = connect(hub.addr, "user_id=bob&client_id=laptop");
    send(
        &mut alice,
        r#"{"message_type":"text","receiver":"bob","receiver_client":"laptop","content":"only you"}"#,
    );
    assert_eq!(recv(&mut laptop).content, "only you");
    // A device bob does not have: alice is told, nobody gets it.
    send(
        &mut alice,
        r#"{"message_type":"text","receiver":"bob","receiver_client":"tablet","content":"lost?"}"#,
    );
    let e = recv_type(&mut alice, "error");
    let data = e.data.unwrap();
    assert_eq!(data["reason"], "validation", "{data}");
    assert!(
        data["detail"].as_str().unwrap().contains("no such client"),
        "{data}"
    );
    send(
        &mut alice,
        r#"{"message_type":"text","receiver":"bob","content":"both"}"#,
    );
    assert_eq!(
        recv(&mut phone).content,
        "both",
        "the phone missed nothing before"
    );
    assert_eq!(recv(&mut laptop).content, "both");
}

#[test]
fn require_ack_is_delivered_with_retry_and_the_sender_is_told() {
    let mut c = relay_config();
    c.ack_timeout = Duration::from_millis(200);
    c.retry.max_retries = 1;
    c.retry.base_delay = Duration::from_millis(50);
    let hub = TestHub::start(c);
    let mut alice = connect(hub.addr, "user_id=alice");
    let mut bob = connect(hub.addr, "user_id=bob");
    send(
        &mut alice,
        r#"{"message_type":"text","receiver":"bob","content":"ack me","message_id":"a1","require_ack":true}"#,
    );
    let m = recv(&mut bob);
    assert!(m.require_ack);
    ack(&mut bob, &m.message_id);
    let r = recv_type(&mut alice, "send_result");
    let data = r.data.unwrap();
    assert_eq!(data["success"], true, "{data}");
    assert_eq!(data["message_id"], m.message_id.as_str());
    assert_eq!(data["attempts"], 1);

    // Never ACKed: resent once, then the sender hears it failed.
    send(
        &mut alice,
        r#"{"message_type":"text","receiver":"bob","content":"ignored","require_ack":true}"#,
    );
    let first = recv(&mut bob);
    let again = recv(&mut bob);
    assert_eq!(first.message_id, again.message_id, "a resend keeps its id");
    let r = recv_type(&mut alice, "send_result");
    let data = r.data.unwrap();
    assert_eq!(data["success"], false, "{data}");
    assert_eq!(data["final_error"], "ack_timeout");
    assert_eq!(data["attempts"], 2);
}

#[test]
fn broadcast_needs_client_broadcast() {
    let hub = TestHub::start(relay_config());
    let mut alice = connect(hub.addr, "user_id=alice");
    send(
        &mut alice,
        r#"{"message_type":"text","receiver":"*","content":"all"}"#,
    );
    let e = recv_type(&mut alice, "error");
    assert_eq!(e.data.unwrap()["reason"], "validation");
    drop(hub);

    let mut c = relay_config();
    c.client_broadcast = true;
    let hub = TestHub::start(c);
    let mut alice = connect(hub.addr, "user_id=alice&client_id=a");
    let mut alice2 = connect(hub.addr, "user_id=alice&client_id=b");
    let mut bob = connect(hub.addr, "user_id=bob");
    let mut carol = connect(hub.addr, "user_id=carol");
    send(
        &mut alice,
        r#"{"message_type":"text","receiver":"*","content":"all"}"#,
    );
    assert_eq!(recv(&mut bob).content, "all");
    assert_eq!(recv(&mut carol).content, "all");
    // Not to the sender's own devices.
    send(&mut alice, r#"{"message_type":"ping"}"#);
    assert_eq!(recv(&mut alice).message_type, "pong");
    alice2
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        alice2.read().is_err(),
        "the sender's other device gets nothing"
    );
}

#[test]
fn forged_hub_messages_reach_nobody() {
    let hub = TestHub::start(relay_config());
    let mut mallory = connect(hub.addr, "user_id=mallory");
    let mut bob = connect(hub.addr, "user_id=bob");
    for forged in ["kick_out", "error", "pong", "send_result"] {
        send(
            &mut mallory,
            &format!(r#"{{"message_type":"{forged}","receiver":"bob","data":{{"reason":"x"}}}}"#),
        );
        let e = recv_type(&mut mallory, "error");
        assert_eq!(e.data.unwrap()["reason"], "validation", "{forged}");
    }
    send(
        &mut mallory,
        r#"{"message_type":"text","receiver":"bob","content":"real"}"#,
    );
    assert_eq!(
        recv(&mut bob).content,
        "real",
        "nothing forged came before it"
    );
    send(
        &mut mallory,
        r#"{"message_type":"text","content":"to whom?"}"#,
    );
    let e = recv_type(&mut mallory, "error");
    assert!(
        e.data.unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("receiver")
    );
}

#[test]
fn the_relay_filter_drops_or_hands_over() {
    let hub = TestHub::start_with::<64>(relay_config(), |hub| {
        hub.set_relay_filter(|m| match m.message_type {
            "secret" => RelayVerdict::Drop,
            "admin" => RelayVerdict::ToHost,
            _ => RelayVerdict::Relay,
        });
    });
    let mut alice = connect(hub.addr, "user_id=alice");
    let mut bob = connect(hub.addr, "user_id=bob");
    send(
        &mut alice,
        r#"{"message_type":"secret","receiver":"bob","content":"no"}"#,
    );
    send(
        &mut alice,
        r#"{"message_type":"admin","receiver":"bob","content":"host"}"#,
    );
    let ev = hub.wait_for(|e| matches!(e, HubEvent::Message { .. }));
    let HubEvent::Message { message, .. } = ev else {
        unreachable!()
    };
    assert_eq!(
        (message.message_type.as_str(), message.sender.as_str()),
        ("admin", "alice")
    );
    // The test hub relays what it is handed; the dropped one never came.
    assert_eq!(recv(&mut bob).message_type, "admin");
    let s = stats(hub.addr);
    assert_eq!(s["relay_dropped"], 1, "{s}");
}

#[test]
fn a_group_message_reaches_the_other_members_only_from_a_member() {
    let hub = TestHub::start_with::<64>(relay_config(), |hub| {
        hub.set_group_policy(|_: &wshub::GroupRequest<'_>| true);
    });
    let mut alice = connect(hub.addr, "user_id=alice&group_id=lobby");
    let mut bob = connect(hub.addr, "user_id=bob&group_id=lobby");
    let mut carol = connect(hub.addr, "user_id=carol");
    send(
        &mut alice,
        r#"{"message_type":"text","receiver":"lobby","receiver_type":"group","content":"hi all"}"#,
    );
    let m = recv_type(&mut bob, "text");
    assert_eq!((m.content.as_str(), m.sender.as_str()), ("hi all", "alice"));
    assert_eq!(m.receiver_type, "group");
    // A non-member may not speak in the group.
    send(
        &mut carol,
        r#"{"message_type":"text","receiver":"lobby","receiver_type":"group","content":"let me in"}"#,
    );
    let e = recv_type(&mut carol, "error");
    assert_eq!(e.data.unwrap()["reason"], "permission");
    // The sender got no copy, and bob nothing from carol: the next thing
    // each reads past the join notice is the pong.
    for ws in [&mut alice, &mut bob] {
        send(ws, r#"{"message_type":"ping"}"#);
        let next = loop {
            let m = recv(ws);
            if m.message_type != "joined" {
                break m;
            }
        };
        assert_eq!(next.message_type, "pong", "{next:?}");
    }
}

#[test]
fn a_require_ack_group_message_is_tracked_per_member() {
    let mut c = relay_config();
    c.ack_timeout = Duration::from_millis(200);
    c.retry.max_retries = 1;
    c.retry.base_delay = Duration::from_millis(50);
    let hub = TestHub::start_with::<64>(c, |hub| {
        hub.set_group_policy(|_: &wshub::GroupRequest<'_>| true);
    });
    let mut alice = connect(hub.addr, "user_id=alice&group_id=ops");
    let mut bob = connect(hub.addr, "user_id=bob&group_id=ops");
    let mut carol = connect(hub.addr, "user_id=carol&group_id=ops");
    send(
        &mut alice,
        r#"{"message_type":"alert","receiver":"ops","receiver_type":"group","content":"disk","require_ack":true}"#,
    );
    // bob ACKs; carol does not, and gets the resend (same id).
    let to_bob = recv_type(&mut bob, "alert");
    ack(&mut bob, &to_bob.message_id);
    let first = recv_type(&mut carol, "alert");
    let again = recv_type(&mut carol, "alert");
    assert_eq!(first.message_id, again.message_id);
    assert_eq!(first.message_id, to_bob.message_id, "one id for the group");
    let s = wait_stat(hub.addr, "retries", 1);
    assert!(s["deliveries_succeeded"].as_u64().unwrap() >= 1, "{s}");
}

#[test]
fn with_the_relay_on_join_ping_and_ack_messages_are_still_answered() {
    let mut c = relay_config();
    c.ack_timeout = Duration::from_secs(5);
    let hub = TestHub::start_with::<64>(c, |hub| {
        hub.set_group_policy(|_: &wshub::GroupRequest<'_>| true);
    });
    let mut alice = connect(hub.addr, "user_id=alice");
    let mut bob = connect(hub.addr, "user_id=bob");
    // A join names no receiver: it is a request to the hub, not a relay.
    send(
        &mut bob,
        r#"{"message_type":"join","data":{"group":"lobby"}}"#,
    );
    let joined = recv(&mut bob);
    assert_eq!(joined.message_type, "joined", "{joined:?}");
    send(&mut bob, r#"{"message_type":"ping","extra":{"a":[1]}}"#);
    assert_eq!(recv(&mut bob).message_type, "pong");
    // The ACK of a relayed require_ack message ends its delivery.
    send(
        &mut alice,
        r#"{"message_type":"text","receiver":"bob","content":"ack me","require_ack":true}"#,
    );
    let m = recv_type(&mut bob, "text");
    ack(&mut bob, &m.message_id);
    let result = recv_type(&mut alice, "send_result");
    assert_eq!(result.data.unwrap()["success"], true);
}

/// Whether `s` has bytes waiting, without taking them.
fn has_bytes(s: &std::net::TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let had = matches!(s.peek(&mut [0u8; 1]), Ok(n) if n > 0);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    had
}

/// A `gate` message holds the loop (in the relay filter) while a test's
/// messages arrive, so that the next turn finds all their connections
/// ready at once.
fn held_at_gate(m: &wshub::RelayView<'_>) -> bool {
    let gate = m.message_type == "gate";
    if gate {
        std::thread::sleep(Duration::from_millis(300));
    }
    gate
}

/// What the filter saw on the hub thread.
#[derive(Default)]
struct TurnWatch {
    /// The receivers' sockets, as their clients hold them.
    sockets: Vec<(String, std::net::TcpStream)>,
    /// The receiver of the first watched message routed.
    first: Option<String>,
    /// At the second message: whether the first was on its socket already.
    first_written: Vec<bool>,
}

#[test]
fn a_relayed_message_is_written_before_the_next_ready_connection_is_read() {
    use std::sync::{Arc, Mutex};
    let watch = Arc::new(Mutex::new(TurnWatch::default()));
    let seen = Arc::clone(&watch);
    let hub = TestHub::start_with::<64>(relay_config(), move |hub| {
        hub.set_relay_filter(move |m| {
            if held_at_gate(m) {
                return RelayVerdict::Relay;
            }
            let mut w = seen.lock().unwrap();
            match w.first.take() {
                None => w.first = Some(m.receiver.to_owned()),
                Some(first) => {
                    let had = w
                        .sockets
                        .iter()
                        .find(|(user, _)| *user == first)
                        .is_some_and(|(_, s)| has_bytes(s));
                    w.first_written.push(had);
                }
            }
            RelayVerdict::Relay
        });
    });
    let mut gate = connect(hub.addr, "user_id=gate");
    let mut c = connect(hub.addr, "user_id=c");
    let mut d = connect(hub.addr, "user_id=d");
    let mut e = connect(hub.addr, "user_id=e");
    let mut f = connect(hub.addr, "user_id=f");
    for (user, ws) in [("d", &d), ("f", &f)] {
        let s = ws.get_ref().try_clone().unwrap();
        watch.lock().unwrap().sockets.push((user.into(), s));
    }
    send(
        &mut gate,
        r#"{"message_type":"gate","receiver":"gate","content":"hold"}"#,
    );
    std::thread::sleep(Duration::from_millis(100));
    send(
        &mut c,
        r#"{"message_type":"text","receiver":"d","content":"1"}"#,
    );
    send(
        &mut e,
        r#"{"message_type":"text","receiver":"f","content":"2"}"#,
    );
    // Nobody reads the receivers' sockets before the filter has peeked.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while watch.lock().unwrap().first_written.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "second message never routed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(recv(&mut d).content, "1");
    assert_eq!(recv(&mut f).content, "2");
    assert_eq!(recv(&mut gate).message_type, "gate");
    // Both were read in one turn; the first one's frame had left before
    // the second connection was read, not at the end of the turn.
    assert_eq!(watch.lock().unwrap().first_written, [true]);
}

#[test]
fn a_fan_in_burst_larger_than_the_ring_in_one_turn_is_not_refused() {
    // Rings of 8 frames; 24 senders to one receiver, all read in one turn.
    // Each read's frames are written before the next sender is read, so
    // the ring never holds more than one of them.
    let hub = TestHub::start_with::<8>(relay_config(), |hub| {
        hub.set_relay_filter(|m| {
            held_at_gate(m);
            RelayVerdict::Relay
        });
    });
    let mut gate = connect(hub.addr, "user_id=gate");
    let mut sink = connect(hub.addr, "user_id=sink");
    let mut senders: Vec<_> = (0..24)
        .map(|i| connect(hub.addr, &format!("user_id=s{i}")))
        .collect();
    send(
        &mut gate,
        r#"{"message_type":"gate","receiver":"gate","content":"hold"}"#,
    );
    std::thread::sleep(Duration::from_millis(100));
    for (i, ws) in senders.iter_mut().enumerate() {
        send(
            ws,
            &format!(r#"{{"message_type":"text","receiver":"sink","content":"{i}"}}"#),
        );
    }
    let mut got: Vec<usize> = (0..24)
        .map(|_| recv(&mut sink).content.parse().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..24).collect::<Vec<_>>());
    assert_eq!(recv(&mut gate).message_type, "gate");
    let s = stats(hub.addr);
    assert_eq!(s["queue_full_count"], 0, "{s}");
}
