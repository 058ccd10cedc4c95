//! Groups over real sockets: membership from the handshake, client
//! messages and the host; group sends (one copy per member, none to others,
//! none back to the sender); leaving on close; limits; sends with retry.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{Client, connect, recv, recv_type, send, stats, test_config, try_connect, wait_stat};
use crossbeam_channel::{Receiver, unbounded};
use wshub::{DefaultHub, GroupAction, GroupRequest, HubConfig, HubEvent, HubHandle, Message};

/// A hub that routes client messages with `receiver_type: "group"` to the
/// group (sender left out, members only) and the rest to their user, as
/// examples/server.rs does. Its policy lets clients into any group whose
/// name does not start with `secret`.
struct GroupHub {
    addr: SocketAddr,
    handle: HubHandle,
    events: Receiver<HubEvent>,
    results: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl GroupHub {
    fn start(config: HubConfig) -> GroupHub {
        let (tx, events) = unbounded();
        let (ready_tx, ready) = unbounded();
        let results = Arc::new(AtomicU64::new(0));
        let counted = results.clone();
        let thread = std::thread::spawn(move || {
            let mut hub = DefaultHub::bind(config).expect("hub binds");
            hub.set_group_policy(|req: &GroupRequest<'_>| {
                req.action == GroupAction::Leave || !req.group.starts_with("secret")
            });
            hub.on_send_result(move |_, r| {
                if r.success {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            });
            ready_tx.send((hub.local_addr(), hub.handle())).unwrap();
            hub.run(|hub, ev| {
                if let HubEvent::Message { conn, message, .. } = &ev {
                    let to = message.receiver.clone();
                    if message.receiver_type == "group" {
                        if hub.is_member(*conn, &to) {
                            let _ = hub.send_to_group(&to, message, Some(*conn));
                        }
                    } else if !to.is_empty() {
                        let _ = hub.send_to_user(&to, message);
                    }
                }
                let _ = tx.send(ev);
            })
            .expect("hub runs");
        });
        let (addr, handle) = ready.recv_timeout(Duration::from_secs(10)).unwrap();
        GroupHub {
            addr,
            handle,
            events,
            results,
            thread: Some(thread),
        }
    }

    /// The connection id of the next `Connected` event of `user`.
    fn connected(&self, user: &str) -> wshub::ConnId {
        loop {
            let ev = self.events.recv_timeout(Duration::from_secs(5)).unwrap();
            if let HubEvent::Connected { conn, identity } = ev
                && &*identity.user_id == user
            {
                return conn;
            }
        }
    }
}

impl Drop for GroupHub {
    fn drop(&mut self) {
        let _ = self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The HTTP status a refused upgrade gets.
fn refused(addr: SocketAddr, query: &str) -> u16 {
    match try_connect(addr, query) {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn join(ws: &mut Client, group: &str) -> Message {
    send(
        ws,
        &format!(r#"{{"message_type":"join","data":{{"group":"{group}"}}}}"#),
    );
    recv(ws)
}

fn to_group(ws: &mut Client, group: &str, content: &str) {
    send(
        ws,
        &format!(
            r#"{{"message_type":"text","receiver_type":"group","receiver":"{group}","content":"{content}"}}"#
        ),
    );
}

/// Sends a marker to `user` from the host: a client's next message is the
/// marker exactly when nothing else was queued for it before.
fn marker(hub: &GroupHub, user: &str) {
    hub.handle
        .send_to_user(user, &Message::text(user, "marker"))
        .unwrap();
}

#[test]
fn a_group_send_reaches_each_member_once_and_nobody_else() {
    let hub = GroupHub::start(test_config());
    let mut phone = connect(hub.addr, "user_id=alice&client_id=phone");
    let mut laptop = connect(hub.addr, "user_id=alice&client_id=laptop");
    let mut bob = connect(hub.addr, "user_id=bob");
    let mut carol = connect(hub.addr, "user_id=carol");
    for ws in [&mut phone, &mut bob] {
        let reply = join(ws, "room");
        assert_eq!(reply.message_type, "joined", "{reply:?}");
        assert_eq!(reply.data.unwrap()["group"], "room");
    }
    // Membership is per device: alice's laptop is not in the room.
    to_group(&mut phone, "room", "hello room");
    let got = recv(&mut bob);
    assert_eq!(
        (got.content.as_str(), got.sender.as_str()),
        ("hello room", "alice")
    );
    assert_eq!(got.receiver_type, "group");
    for user in ["alice", "bob", "carol"] {
        marker(&hub, user);
    }
    assert_eq!(recv(&mut bob).content, "marker", "bob got one copy");
    assert_eq!(recv(&mut phone).content, "marker", "not back to the sender");
    assert_eq!(
        recv(&mut laptop).content,
        "marker",
        "not to a non-member device"
    );
    assert_eq!(recv(&mut carol).content, "marker", "not to a non-member");

    // From the host, through a handle: every member, the sender included.
    hub.handle
        .send_to_group("room", &Message::text("", "from the host"), None)
        .unwrap();
    assert_eq!(recv(&mut phone).content, "from the host");
    assert_eq!(recv(&mut bob).content, "from the host");
    let s = stats(hub.addr);
    assert_eq!(
        (s["groups"].as_u64(), s["memberships"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(s["group_sends"].as_u64().unwrap() >= 2, "{s}");

    // A non-member's group message is not routed.
    to_group(&mut carol, "room", "intruder");
    marker(&hub, "bob");
    assert_eq!(recv(&mut bob).content, "marker");
}

#[test]
fn the_group_id_query_parameter_joins_at_the_handshake() {
    let hub = GroupHub::start(test_config());
    let mut ws = connect(hub.addr, "user_id=dan&group_id=lobby");
    let conn = hub.connected("dan");
    let reply = recv(&mut ws);
    assert_eq!(reply.message_type, "joined");
    assert_eq!(hub.handle.members("lobby").unwrap(), [conn]);
    assert_eq!(&*hub.handle.groups_of(conn).unwrap()[0], "lobby");

    // Refused by the policy: 403 before any upgrade.
    assert_eq!(refused(hub.addr, "user_id=eve&group_id=secret-room"), 403);
    let name = "x".repeat(wshub::MAX_GROUP_NAME + 1);
    assert_eq!(
        refused(hub.addr, &format!("user_id=eve&group_id={name}")),
        400
    );
}

#[test]
fn join_and_leave_messages_go_through_the_policy() {
    let hub = GroupHub::start(test_config());
    let mut ann = connect(hub.addr, "user_id=ann");
    let mut ben = connect(hub.addr, "user_id=ben");
    assert_eq!(join(&mut ben, "open").message_type, "joined");
    let refused = join(&mut ann, "secret-plans");
    assert_eq!(refused.message_type, "error");
    let data = refused.data.unwrap();
    assert_eq!(
        (data["reason"].as_str(), data["group"].as_str()),
        (Some("permission"), Some("secret-plans"))
    );
    assert_eq!(join(&mut ann, "open").message_type, "joined");

    send(
        &mut ann,
        r#"{"message_type":"leave","data":{"group":"open"}}"#,
    );
    assert_eq!(recv_type(&mut ann, "left").data.unwrap()["group"], "open");
    hub.handle
        .send_to_group("open", &Message::text("", "after leave"), None)
        .unwrap();
    assert_eq!(recv(&mut ben).content, "after leave");
    marker(&hub, "ann");
    assert_eq!(recv(&mut ann).content, "marker", "a member no more");

    // Malformed requests are validation errors; the connection stays.
    send(&mut ann, r#"{"message_type":"join"}"#);
    assert_eq!(recv(&mut ann).data.unwrap()["reason"], "validation");
    send(&mut ann, r#"{"message_type":"join","data":{"group":""}}"#);
    assert_eq!(recv(&mut ann).data.unwrap()["reason"], "validation");
    assert!(stats(hub.addr)["group_refusals"].as_u64().unwrap() >= 2);
}

#[test]
fn without_a_policy_clients_cannot_join() {
    let hub = common::TestHub::start(test_config());
    let mut ws = connect(hub.addr, "user_id=zed");
    let reply = join(&mut ws, "anything");
    assert_eq!(reply.message_type, "error");
    assert_eq!(reply.data.unwrap()["reason"], "permission");
    assert_eq!(refused(hub.addr, "user_id=zed2&group_id=anything"), 403);
}

#[test]
fn a_closing_connection_leaves_its_groups() {
    let hub = GroupHub::start(test_config());
    let mut ws = connect(hub.addr, "user_id=gone");
    for g in ["a", "b", "c"] {
        assert_eq!(join(&mut ws, g).message_type, "joined");
    }
    let mut stay = connect(hub.addr, "user_id=stay");
    assert_eq!(join(&mut stay, "a").message_type, "joined");
    assert_eq!(wait_stat(hub.addr, "memberships", 4)["groups"], 3);
    ws.close(None).unwrap();
    common::expect_close(&mut ws);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while stats(hub.addr)["memberships"] != 1 {
        assert!(std::time::Instant::now() < deadline, "memberships stayed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stats(hub.addr)["groups"], 1, "emptied groups are gone");
    assert_eq!(hub.handle.members("b").unwrap(), []);
    assert_eq!(hub.handle.members("a").unwrap().len(), 1);
}

#[test]
fn limits_are_enforced_with_clear_errors() {
    let mut config = test_config();
    config.max_groups = 3;
    config.max_groups_per_connection = 2;
    let hub = GroupHub::start(config);
    let mut one = connect(hub.addr, "user_id=one");
    assert_eq!(join(&mut one, "g1").message_type, "joined");
    assert_eq!(join(&mut one, "g2").message_type, "joined");
    let third = join(&mut one, "g3");
    let detail = third.data.unwrap()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("max_groups_per_connection"), "{detail}");

    let mut two = connect(hub.addr, "user_id=two");
    assert_eq!(join(&mut two, "g3").message_type, "joined");
    let fourth = join(&mut two, "g4");
    let detail = fourth.data.unwrap()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("3 groups exist already (max_groups)"),
        "{detail}"
    );
    // At the handshake, a new group past max_groups is a 503.
    assert_eq!(refused(hub.addr, "user_id=three&group_id=g5"), 503);
    // An existing one is fine.
    let mut three = connect(hub.addr, "user_id=three&group_id=g1");
    assert_eq!(recv(&mut three).message_type, "joined");
}

#[test]
fn a_sticky_user_membership_takes_in_later_devices() {
    let hub = GroupHub::start(test_config());
    let mut first = connect(hub.addr, "user_id=fay&client_id=one");
    hub.connected("fay");
    hub.handle.join_user("fay", "team", true).unwrap();
    let mut second = connect(hub.addr, "user_id=fay&client_id=two");
    let conn = hub.connected("fay");
    assert!(hub.handle.members("team").unwrap().contains(&conn));
    hub.handle
        .send_to_group("team", &Message::text("", "standup"), None)
        .unwrap();
    assert_eq!(recv(&mut first).content, "standup");
    assert_eq!(recv(&mut second).content, "standup");
    assert_eq!(stats(hub.addr)["sticky_memberships"], 1);

    hub.handle.leave_user("fay", "team").unwrap();
    assert_eq!(hub.handle.members("team").unwrap(), []);
    let _third = connect(hub.addr, "user_id=fay&client_id=three");
    hub.connected("fay");
    assert_eq!(
        hub.handle.members("team").unwrap(),
        [],
        "no longer standing"
    );
}

#[test]
fn a_group_send_with_retry_is_one_delivery_per_member() {
    let hub = GroupHub::start(test_config());
    let mut clients: Vec<Client> = (0..5)
        .map(|i| connect(hub.addr, &format!("user_id=m{i}&group_id=crew")))
        .collect();
    for ws in &mut clients {
        assert_eq!(recv(ws).message_type, "joined");
    }
    let mut msg = Message::text("", "with retry");
    msg.require_ack = true;
    hub.handle
        .send_to_group_with_retry("crew", &msg, None)
        .unwrap();
    let mut ids = Vec::new();
    for ws in &mut clients {
        let m = recv(ws);
        assert_eq!(m.content, "with retry");
        send(
            ws,
            &format!(
                r#"{{"message_type":"ack","message_id":"{}"}}"#,
                m.message_id
            ),
        );
        ids.push(m.message_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one message id, one encode");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while hub.results.load(Ordering::Relaxed) < 5 {
        assert!(std::time::Instant::now() < deadline, "five successes");
        std::thread::sleep(Duration::from_millis(10));
    }
    let metrics = common::http_get(hub.addr, "/metrics").1;
    assert!(
        metrics.contains("# TYPE wshub_memberships gauge"),
        "{metrics}"
    );
    assert!(metrics.contains("wshub_groups 1"), "{metrics}");
}
