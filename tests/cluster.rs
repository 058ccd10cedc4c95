//! Hubs sharing users through Redis: three demo-server processes and one
//! real `redis-server` (started by the test on a free port), with real
//! WebSocket clients on each hub.
//!
//! Without `redis-server` on the PATH the tests print why and skip; under
//! CI=true that is a failure.

mod common;
mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use support::redis::{Redis, free_port};

/// Presence TTL of the test hubs: short, so a killed hub is noticed quickly.
const TTL_MS: u64 = 1500;

/// The demo server, built by `cargo test` beside the test binaries.
fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("server");
    assert!(
        bin.exists(),
        "{} is not built (plain `cargo test` builds it)",
        bin.display()
    );
    bin
}

/// One hub process of the cluster.
struct HubProc {
    addr: SocketAddr,
    child: Child,
    _config: tempfile::TempPath,
}

mod tempfile {
    /// A file removed when dropped.
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl HubProc {
    fn start(redis: &Redis, node: &str) -> HubProc {
        Self::start_with(redis, node, "")
    }

    /// With more `wsc:` keys (`extra`: YAML lines, each indented two spaces).
    fn start_with(redis: &Redis, node: &str, extra: &str) -> HubProc {
        let port = free_port();
        let path = std::env::temp_dir().join(format!(
            "wshub-cluster-{}-{node}-{port}.yaml",
            std::process::id()
        ));
        let yaml = format!(
            "wsc:\n  relay: true\n  client_broadcast: true\n  max_connections_per_ip: 0\n  \
             ack_timeout: 700ms\n  send_timeout: 2s\n  max_retries: 2\n  base_delay: 100ms\n  \
             jitter: none\n  retry_budget: false\n  \
             cluster: {{redis_url: \"{}\", node_id: {node}, presence_ttl: {TTL_MS}ms}}\n{extra}",
            redis.url()
        );
        std::fs::write(&path, yaml).unwrap();
        let child = Command::new(server_binary())
            .args(["--config", path.to_str().unwrap()])
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()
            .expect("server starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let hub = HubProc {
            addr,
            child,
            _config: tempfile::TempPath(path),
        };
        hub.wait_linked();
        hub
    }

    /// Waits until the hub answers and is linked to Redis.
    fn wait_linked(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(self.addr).is_ok() && stats(self.addr)["cluster_up"] == 1 {
                return;
            }
            assert!(Instant::now() < deadline, "hub {} never linked", self.addr);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until this hub knows `n` devices on other hubs.
    fn wait_remote_devices(&self, n: u64) -> Duration {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(15);
        loop {
            let s = stats(self.addr);
            if s["cluster_remote_devices"] == n {
                return start.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "{}: cluster_remote_devices never {n}: {s}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no goodbye to the others.
        let _ = self.child.wait();
    }
}

impl Drop for HubProc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn text(ws: &mut Client, to: &str, content: &str, extra: &str) {
    send(
        ws,
        &format!(r#"{{"message_type":"text","receiver":"{to}","content":"{content}"{extra}}}"#),
    );
}

fn ack(ws: &mut Client, id: &str) {
    send(
        ws,
        &format!(r#"{{"message_type":"ack","message_id":"{id}"}}"#),
    );
}

/// Three hubs on one Redis; each waits until it sees `devices` remote
/// devices in total once the clients are up.
fn three_hubs(redis: &Redis) -> [HubProc; 3] {
    [
        HubProc::start(redis, "hub-1"),
        HubProc::start(redis, "hub-2"),
        HubProc::start(redis, "hub-3"),
    ]
}

#[test]
fn users_on_different_hubs_reach_each_other_with_acks_retries_and_results() {
    let Some(redis) = Redis::start() else { return };
    let hubs = three_hubs(&redis);
    let mut alice = connect(hubs[0].addr, "user_id=alice&client_id=a1");
    let mut bob_phone = connect(hubs[1].addr, "user_id=bob&client_id=phone");
    let mut bob_laptop = connect(hubs[2].addr, "user_id=bob&client_id=laptop");
    hubs[0].wait_remote_devices(2);
    hubs[1].wait_remote_devices(2);

    // alice on hub 1 reaches bob's two devices on hubs 2 and 3, stamped.
    text(&mut alice, "bob", "hello bob", "");
    let (p, l) = (recv(&mut bob_phone), recv(&mut bob_laptop));
    assert_eq!(
        (p.content.as_str(), p.sender.as_str()),
        ("hello bob", "alice")
    );
    assert_eq!(l.content, "hello bob");
    assert_eq!(p.message_id, l.message_id, "one message, one id");

    // And back: bob on hub 2 to alice on hub 1.
    text(&mut bob_phone, "alice", "hi alice", "");
    assert_eq!(recv(&mut alice).content, "hi alice");

    // require_ack across hubs: the phone ACKs at once; the laptop lets the
    // first copy time out and ACKs the resend. alice's result: success,
    // after two attempts, only the laptop retried.
    text(&mut alice, "bob", "ack me", r#","require_ack":true"#);
    let first = recv(&mut bob_phone);
    ack(&mut bob_phone, &first.message_id);
    let l1 = recv(&mut bob_laptop);
    assert_eq!(l1.message_id, first.message_id);
    let l2 = recv_type(&mut bob_laptop, "text");
    assert_eq!(l2.message_id, first.message_id, "the resend keeps its id");
    ack(&mut bob_laptop, &l2.message_id);
    let r = recv_type(&mut alice, "send_result").data.unwrap();
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["attempts"], 2, "{r}");
    assert_eq!(r["message_id"], first.message_id.as_str());

    // A user on no hub: user_offline, at once, not retried.
    text(&mut alice, "nobody", "anyone?", r#","require_ack":true"#);
    let r = recv_type(&mut alice, "send_result").data.unwrap();
    assert_eq!(
        (&r["success"], &r["final_error"], &r["attempts"]),
        (&false.into(), &"user_offline".into(), &1.into()),
        "{r}"
    );

    // A device that goes: its proxy goes on the other hubs too.
    drop(bob_laptop);
    hubs[0].wait_remote_devices(1);
    let s = stats(hubs[0].addr);
    assert!(s["cluster_sent"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["cluster"]["state"], "up", "{s}");
}

#[test]
fn broadcast_kick_and_replacement_cross_hubs() {
    let Some(redis) = Redis::start() else { return };
    let hubs = three_hubs(&redis);
    let mut alice = connect(hubs[0].addr, "user_id=alice");
    let mut bob = connect(hubs[1].addr, "user_id=bob&client_id=phone");
    let mut carol = connect(hubs[2].addr, "user_id=carol");
    let mut dave = connect(hubs[2].addr, "user_id=dave");
    hubs[0].wait_remote_devices(3);
    hubs[1].wait_remote_devices(3);
    hubs[2].wait_remote_devices(2);

    // A client broadcast reaches every other user once, on every hub.
    text(&mut alice, "*", "to all", "");
    for ws in [&mut bob, &mut carol, &mut dave] {
        assert_eq!(recv(ws).content, "to all");
    }
    // ...and only once: the next message each gets is this one.
    text(&mut alice, "*", "second", "");
    for ws in [&mut bob, &mut carol, &mut dave] {
        assert_eq!(recv(ws).content, "second");
    }
    alice
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        alice.read().is_err(),
        "the sender does not get its own broadcast"
    );

    // bob's phone reconnects to hub 3: hub 2's old connection is replaced.
    let mut bob2 = connect(hubs[2].addr, "user_id=bob&client_id=phone");
    let kicked = recv_type(&mut bob, "kick_out");
    assert!(format!("{kicked:?}").contains("replaced"), "{kicked:?}");
    hubs[0].wait_remote_devices(3);
    text(&mut carol, "bob", "where are you", "");
    assert_eq!(recv(&mut bob2).content, "where are you");
}

#[test]
fn a_killed_hub_goes_offline_within_the_ttl_and_redis_outages_heal() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let mut hubs = three_hubs(&redis);
    let mut alice = connect(hubs[0].addr, "user_id=alice");
    let bob = connect(hubs[1].addr, "user_id=bob");
    let mut carol = connect(hubs[2].addr, "user_id=carol");
    let mut alice_too = connect(hubs[0].addr, "user_id=erin");
    hubs[0].wait_remote_devices(2);

    // SIGKILL hub 2. At once, a message for bob finds nobody on hub 2's
    // channel: reported as cluster_unavailable, not lost silently.
    hubs[1].kill();
    let killed = Instant::now();
    text(&mut alice, "bob", "are you there?", "");
    let s = wait_stat(hubs[0].addr, "cluster_unheard", 1);
    assert!(s["cluster_unavailable"].as_u64().unwrap() >= 1, "{s}");
    // Within presence_ttl (+ 1 s) bob is offline for hub 1.
    hubs[0].wait_remote_devices(1);
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_millis(TTL_MS + 1000),
        "bob still counted online {took:?} after the kill"
    );
    text(&mut alice, "bob", "gone?", r#","require_ack":true"#);
    let r = recv_type(&mut alice, "send_result").data.unwrap();
    assert_eq!(r["final_error"], "user_offline", "{r}");
    drop(bob);

    // Redis stops: local relay goes on; a send to carol (hub 3) fails with
    // the cluster reason, reported and counted.
    redis.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats(hubs[0].addr)["cluster_up"] != 0 {
        assert!(
            Instant::now() < deadline,
            "hub 1 never noticed redis stopped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    text(&mut alice, "erin", "still local", "");
    assert_eq!(recv(&mut alice_too).content, "still local");
    text(&mut alice, "carol", "across?", r#","require_ack":true"#);
    let r = recv_type(&mut alice, "send_result").data.unwrap();
    assert_eq!(r["final_error"], "cluster_unavailable", "{r}");
    assert_eq!(r["attempts"], 3, "retried as a retryable reason: {r}");
    let s = stats(hubs[0].addr);
    assert!(s["cluster_unavailable"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["cluster"]["state"], "down", "{s}");

    // Redis is back (empty): the hubs reconnect and re-register by
    // themselves, and cross-hub delivery resumes.
    redis.restart();
    hubs[0].wait_linked();
    hubs[2].wait_linked();
    hubs[0].wait_remote_devices(1);
    text(&mut alice, "carol", "back", "");
    assert_eq!(recv(&mut carol).content, "back");
    let s = stats(hubs[0].addr);
    assert!(s["cluster_link_downs"].as_u64().unwrap() >= 1, "{s}");
}

#[test]
fn a_message_kept_for_an_offline_user_reaches_them_on_whichever_hub_they_join() {
    let Some(redis) = Redis::start() else { return };
    let offline = "  offline_queue_per_user: 10\n";
    let hub1 = HubProc::start_with(&redis, "hub-1", offline);
    let hub2 = HubProc::start_with(&redis, "hub-2", offline);
    let mut alice = connect(hub1.addr, "user_id=alice");
    hub2.wait_remote_devices(1);
    // dave is on no hub: hub 1 keeps the message...
    text(
        &mut alice,
        "dave",
        "while you were out",
        r#","require_ack":true"#,
    );
    let r = recv_type(&mut alice, "send_result").data.unwrap();
    assert_eq!(r["stored_offline"], true, "{r}");
    // ...and replays it when dave connects to hub 2; his ACK ends it there.
    let mut dave = connect(hub2.addr, "user_id=dave");
    let m = recv_type(&mut dave, "text");
    assert_eq!(
        (m.content.as_str(), m.source.as_str()),
        ("while you were out", "offline")
    );
    ack(&mut dave, &m.message_id);
    let s = wait_stat(hub1.addr, "offline_replayed", 1);
    assert_eq!(s["offline_held"], 0, "{s}");
}

/// Two hubs in this process (`TestHub`), for the host's API across hubs.
fn hub_in_process(redis: &Redis, node: &str) -> TestHub {
    let mut c = test_config();
    c.max_connections_per_ip = 0;
    c.ack_timeout = Duration::from_millis(700);
    c.retry.base_delay = Duration::from_millis(100);
    let mut cluster = wshub::config::ClusterConfig::new(redis.url());
    cluster.node_id = node.to_owned();
    cluster.presence_ttl = Duration::from_millis(TTL_MS);
    c.cluster = Some(cluster);
    TestHub::start(c)
}

fn wait_remote(addr: SocketAddr, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while stats(addr)["cluster_remote_devices"] != n {
        assert!(
            Instant::now() < deadline,
            "{addr} never saw {n} remote devices"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_host_api_reaches_other_hubs_with_retry_results_and_kicks() {
    let Some(redis) = Redis::start() else { return };
    let a = hub_in_process(&redis, "host-a");
    let b = hub_in_process(&redis, "host-b");
    let mut bob = connect(b.addr, "user_id=bob&client_id=phone");
    wait_remote(a.addr, 1);

    // send_to_user_with_retry from hub A's handle: bob (on B) lets the first
    // copy time out and ACKs the resend; the waiting thread gets success.
    let mut m = wshub::Message::text("bob", "tracked");
    m.require_ack = true;
    let pending = a.handle.send_to_user_with_retry("bob", &m).unwrap();
    let first = recv(&mut bob);
    let again = recv(&mut bob);
    assert_eq!(
        (first.content.as_str(), &again.message_id),
        ("tracked", &first.message_id)
    );
    send(
        &mut bob,
        &format!(
            r#"{{"message_type":"ack","message_id":"{}"}}"#,
            again.message_id
        ),
    );
    let r = pending
        .wait_timeout(Duration::from_secs(10))
        .expect("a result");
    assert!(r.success, "{r:?}");
    assert_eq!(r.attempts.len(), 2, "{r:?}");
    assert_eq!(
        r.attempts[0].error,
        Some(wshub::reason::FailureReason::Timeout(
            wshub::reason::TimeoutKind::Ack
        ))
    );

    // A plain send and a broadcast from A's handle reach bob on B.
    a.handle
        .send_to_user("bob", &wshub::Message::text("bob", "plain"))
        .unwrap();
    assert_eq!(recv(&mut bob).content, "plain");
    a.handle
        .broadcast(&wshub::Message::text("", "everyone"))
        .unwrap();
    assert_eq!(recv(&mut bob).content, "everyone");

    // kick_user on A closes bob's connection on B.
    a.handle.kick_user("bob", "bye").unwrap();
    let kicked = recv_type(&mut bob, "kick_out");
    assert!(format!("{kicked:?}").contains("bye"), "{kicked:?}");
    wait_remote(a.addr, 0);
}
