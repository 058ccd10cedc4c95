//! Failure handling and retry over real loopback sockets: every failure
//! source, which handlers saw it, and the exact `SendResult`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use crossbeam_channel::{Receiver, Sender, unbounded};
use tungstenite::Message as WsMessage;
use wshub::{
    ConnectionErrorHandler, Failure, FailureReason, HubConfig, Message, Payload, QueueFullHandler,
    SendFailureHandler, TimeoutHandler, TimeoutKind, UserOfflineHandler,
};

/// What one handler call saw.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    kind: &'static str,
    reason: FailureReason,
    recipient: String,
    message_id: String,
    client_id: Option<String>,
    detail: String,
    will_retry: bool,
    attempt: u32,
    waited: Duration,
}

/// Implements all five handler kinds and reports every call.
#[derive(Clone)]
struct Recorder(Sender<Seen>);

impl Recorder {
    fn seen(&self, kind: &'static str, msg: &Message, who: &str, detail: String, err: &Failure) {
        let _ = self.0.send(Seen {
            kind,
            reason: err.reason,
            recipient: who.to_owned(),
            message_id: msg.message_id.clone(),
            client_id: err.client_id.as_deref().map(str::to_owned),
            detail,
            will_retry: err.will_retry,
            attempt: err.attempt,
            waited: err.waited,
        });
    }
}

impl SendFailureHandler for Recorder {
    fn handle_send_failure(
        &self,
        msg: &Message,
        recipient: &str,
        reason: FailureReason,
        err: &Failure,
    ) {
        self.seen(
            "send_failure",
            msg,
            recipient,
            reason.as_str().to_owned(),
            err,
        );
    }
}
impl QueueFullHandler for Recorder {
    fn handle_queue_full(&self, msg: &Message, recipient: &str, queue_type: &str, err: &Failure) {
        self.seen("queue_full", msg, recipient, queue_type.to_owned(), err);
    }
}
impl UserOfflineHandler for Recorder {
    fn handle_user_offline(&self, msg: &Message, user_id: &str, err: &Failure) {
        self.seen("user_offline", msg, user_id, String::new(), err);
    }
}
impl ConnectionErrorHandler for Recorder {
    fn handle_connection_error(&self, msg: &Message, client_id: &str, err: &Failure) {
        self.seen("conn_error", msg, client_id, String::new(), err);
    }
}
impl TimeoutHandler for Recorder {
    fn handle_timeout(
        &self,
        msg: &Message,
        recipient: &str,
        kind: TimeoutKind,
        d: Duration,
        err: &Failure,
    ) {
        self.seen(
            "timeout",
            msg,
            recipient,
            format!("{}:{d:?}", kind.as_str()),
            err,
        );
    }
}

/// A hub with rings of `Q` frames, a recorder on every handler kind, and the
/// test's retry policy.
fn start<const Q: usize>(config: HubConfig) -> (TestHub, Receiver<Seen>) {
    let (tx, rx) = unbounded();
    let rec = Recorder(tx);
    let hub = TestHub::start_with::<Q>(config, move |hub| {
        hub.add_send_failure_handler(rec.clone());
        hub.add_queue_full_handler(rec.clone());
        hub.add_user_offline_handler(rec.clone());
        hub.add_connection_error_handler(rec.clone());
        hub.add_timeout_handler(rec);
    });
    (hub, rx)
}

fn config(max_retries: u32, base_ms: u64) -> HubConfig {
    let mut c = test_config();
    c.retry.max_retries = max_retries;
    c.retry.base_delay = Duration::from_millis(base_ms);
    c.retry.backoff_factor = 2.0;
    c
}

/// The next handler call of `kind` (within 5 s).
fn next(seen: &Receiver<Seen>, kind: &str) -> Seen {
    loop {
        let s = seen
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("no {kind} handler call"));
        if s.kind == kind {
            return s;
        }
    }
}

fn msg(id: &str, to: &str, require_ack: bool) -> Message {
    let mut m = Message::text(to, format!("body of {id}"));
    m.message_id = id.to_owned();
    m.require_ack = require_ack;
    m
}

#[test]
fn user_offline_is_final_at_once_and_reaches_the_offline_handlers() {
    let (hub, seen) = start::<64>(config(3, 20));
    let result = hub
        .handle
        .send_to_user_with_retry("ghost", &msg("m-off", "ghost", false))
        .unwrap()
        .wait();
    assert!(!result.success);
    assert_eq!(result.final_error, Some(FailureReason::UserOffline));
    assert_eq!(
        result.attempts.len(),
        1,
        "user_offline is not retried by default"
    );
    assert_eq!(result.total_retries, 0);
    assert_eq!(result.attempts[0].error, Some(FailureReason::UserOffline));
    let off = next(&seen, "user_offline");
    assert_eq!(
        (
            off.recipient.as_str(),
            off.message_id.as_str(),
            off.will_retry
        ),
        ("ghost", "m-off", false)
    );
    let general = next(&seen, "send_failure");
    assert_eq!(
        (general.detail.as_str(), general.recipient.as_str()),
        ("user_offline", "ghost")
    );
    let s = stats(hub.addr);
    assert_eq!(s["offline_count"], 1);
    assert_eq!(s["total_failures"], 1);
    assert_eq!(s["final_failures"], 1);
}

#[test]
fn offline_queue_replays_on_reconnect_with_source_offline() {
    let mut c = config(0, 20);
    c.offline_queue_per_user = 2;
    let (hub, _seen) = start::<64>(c);
    for i in 0..3 {
        let r = hub
            .handle
            .send_to_user_with_retry("later", &msg(&format!("o{i}"), "later", false))
            .unwrap()
            .wait();
        assert_eq!(r.final_error, Some(FailureReason::UserOffline));
    }
    let mut ws = connect(hub.addr, "user_id=later");
    // Bounded at 2: the oldest (o0) was dropped, and counted.
    for id in ["o1", "o2"] {
        let m = recv(&mut ws);
        assert_eq!((m.message_id.as_str(), m.source.as_str()), (id, "offline"));
    }
    let s = stats(hub.addr);
    assert_eq!(
        (
            s["offline_stored"].as_u64(),
            s["offline_dropped"].as_u64(),
            s["offline_replayed"].as_u64()
        ),
        (Some(3), Some(1), Some(2))
    );
}

#[test]
fn first_try_success_has_one_successful_attempt() {
    let (hub, _seen) = start::<64>(config(3, 20));
    let mut bob = connect(hub.addr, "user_id=bob");
    hub.wait_for(|e| matches!(e, wshub::HubEvent::Connected { .. }));
    let r = hub
        .handle
        .send_to_user_with_retry("bob", &msg("ok-1", "bob", false))
        .unwrap()
        .wait();
    assert!(r.success);
    assert_eq!(
        (r.attempts.len(), r.total_retries, r.final_error),
        (1, 0, None)
    );
    assert!(r.attempts[0].success);
    assert_eq!(recv(&mut bob).message_id, "ok-1");
}

#[test]
fn unacked_message_is_resent_with_the_same_id_then_fails_as_ack_timeout() {
    let mut c = config(2, 30);
    c.ack_timeout = Duration::from_millis(150);
    let (hub, seen) = start::<64>(c);
    let mut alice = connect(hub.addr, "user_id=alice&client_id=phone");
    hub.wait_for(|e| matches!(e, wshub::HubEvent::Connected { .. }));
    let pending = hub
        .handle
        .send_to_user_with_retry("alice", &msg("needs-ack", "alice", true))
        .unwrap();
    for _ in 0..3 {
        let m = recv(&mut alice);
        assert_eq!(
            m.message_id, "needs-ack",
            "a resend carries the same message_id"
        );
        assert!(m.require_ack);
    }
    let r = pending.wait();
    assert!(!r.success);
    assert_eq!(
        r.final_error,
        Some(FailureReason::Timeout(TimeoutKind::Ack))
    );
    assert_eq!((r.attempts.len(), r.total_retries), (3, 2));
    assert!(
        r.attempts
            .iter()
            .all(|a| a.error == Some(FailureReason::Timeout(TimeoutKind::Ack)))
    );
    for attempt in 1..=3 {
        let t = next(&seen, "timeout");
        assert_eq!(t.detail, "ack_timeout:150ms");
        assert_eq!((t.attempt, t.will_retry), (attempt, attempt < 3));
        assert_eq!(t.client_id.as_deref(), Some("phone"));
    }
}

#[test]
fn ack_completes_the_delivery_and_retries_skip_devices_that_have_it() {
    let mut c = config(1, 30);
    c.ack_timeout = Duration::from_millis(200);
    let (hub, _seen) = start::<64>(c);
    let mut phone = connect(hub.addr, "user_id=carol&client_id=phone");
    let mut laptop = connect(hub.addr, "user_id=carol&client_id=laptop");
    for _ in 0..2 {
        hub.wait_for(|e| matches!(e, wshub::HubEvent::Connected { .. }));
    }
    let pending = hub
        .handle
        .send_to_user_with_retry("carol", &msg("multi", "carol", true))
        .unwrap();
    assert_eq!(recv(&mut phone).message_id, "multi");
    send(&mut phone, r#"{"message_type":"ack","message_id":"multi"}"#);
    // The laptop ignores the first copy and ACKs the resend.
    assert_eq!(recv(&mut laptop).message_id, "multi");
    assert_eq!(recv(&mut laptop).message_id, "multi");
    send(
        &mut laptop,
        r#"{"message_type":"ack","message_id":"multi"}"#,
    );
    let r = pending.wait();
    assert!(r.success, "{r:?}");
    assert_eq!((r.attempts.len(), r.total_retries), (2, 1));
    assert_eq!(
        r.attempts[0].error,
        Some(FailureReason::Timeout(TimeoutKind::Ack))
    );
    assert!(r.attempts[1].success);
    // The phone had it after attempt 1: the retry did not go to it.
    send(&mut phone, r#"{"message_type":"ping"}"#);
    assert_eq!(recv(&mut phone).message_type, "pong");
    let s = stats(hub.addr);
    assert_eq!(s["retry_successes"], 1);
}

#[test]
fn an_ack_from_another_user_is_ignored() {
    let mut c = config(0, 30);
    c.ack_timeout = Duration::from_millis(300);
    let (hub, _seen) = start::<64>(c);
    let mut dave = connect(hub.addr, "user_id=dave");
    let mut eve = connect(hub.addr, "user_id=eve");
    for _ in 0..2 {
        hub.wait_for(|e| matches!(e, wshub::HubEvent::Connected { .. }));
    }
    let pending = hub
        .handle
        .send_to_user_with_retry("dave", &msg("for-dave", "dave", true))
        .unwrap();
    assert_eq!(recv(&mut dave).message_id, "for-dave");
    send(
        &mut eve,
        r#"{"message_type":"ack","message_id":"for-dave"}"#,
    );
    let r = pending.wait();
    assert!(!r.success, "eve's ACK must not complete dave's delivery");
    assert_eq!(
        r.final_error,
        Some(FailureReason::Timeout(TimeoutKind::Ack))
    );
}

#[test]
fn broken_connection_fails_as_conn_error_and_a_device_reconnecting_in_the_backoff_window_gets_it() {
    let mut c = config(3, 400);
    // The exact 400 ms window this test reconnects inside.
    c.retry.jitter = wshub::retry::Jitter::None;
    c.ack_timeout = Duration::from_secs(10);
    let (hub, seen) = start::<64>(c);
    let mut first = connect(hub.addr, "user_id=frank&client_id=phone");
    hub.wait_for(|e| matches!(e, wshub::HubEvent::Connected { .. }));
    let pending = hub
        .handle
        .send_to_user_with_retry("frank", &msg("survives", "frank", true))
        .unwrap();
    assert_eq!(recv(&mut first).message_id, "survives");
    // The connection breaks before the ACK.
    drop(first);
    let ce = next(&seen, "conn_error");
    assert_eq!(
        (ce.recipient.as_str(), ce.message_id.as_str(), ce.will_retry),
        ("phone", "survives", true)
    );
    // Reconnect within the 400 ms backoff window.
    let mut again = connect(hub.addr, "user_id=frank&client_id=phone");
    let m = recv(&mut again);
    assert_eq!(m.message_id, "survives");
    send(
        &mut again,
        r#"{"message_type":"ack","message_id":"survives"}"#,
    );
    let r = pending.wait();
    assert!(r.success, "{r:?}");
    assert_eq!(r.attempts.len(), 2);
    assert_eq!(r.attempts[0].error, Some(FailureReason::ConnError));
}

#[test]
fn lost_heartbeat_fails_pending_messages_as_connection_timeout() {
    let mut c = config(0, 30);
    c.heartbeat_interval = Duration::from_millis(150);
    c.client_timeout = Duration::from_millis(400);
    c.ack_timeout = Duration::from_secs(10);
    let (hub, seen) = start::<64>(c);
    // A raw client that never answers pings nor ACKs.
    let mut mute = RawClient::upgrade(hub.addr, "user_id=gina");
    hub.wait_for(|e| matches!(e, wshub::HubEvent::Connected { .. }));
    let pending = hub
        .handle
        .send_to_user_with_retry("gina", &msg("hb", "gina", true))
        .unwrap();
    let r = pending.wait();
    assert_eq!(
        r.final_error,
        Some(FailureReason::Timeout(TimeoutKind::Connection))
    );
    let t = next(&seen, "timeout");
    assert_eq!(t.detail, "connection_timeout:400ms");
    assert_eq!(t.message_id, "hb");
    assert_eq!(mute.read_close_code(), Some(1001));
}

/// Sends 60 KiB messages to a user whose client never reads until the
/// kernel's buffers and the ring are full: rings refuse and nothing more is
/// written for a while.
fn fill_until_stuck(hub: &TestHub, user: &str) {
    let big = Payload::json(&Message::text(user, "x".repeat(60 * 1024))).unwrap();
    let mut last_out = u64::MAX;
    for _ in 0..400 {
        for _ in 0..20 {
            hub.handle.send_payload_to_user(user, big.clone()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(30));
        let s = stats(hub.addr);
        let out = s["messages_out"].as_u64().unwrap();
        if s["queue_full_count"].as_u64().unwrap() > 0 && out == last_out {
            return;
        }
        last_out = out;
    }
    panic!("the client's socket never filled up");
}

#[test]
fn full_ring_is_queue_full_for_the_caller_and_the_handlers_and_retries_back_off() {
    // A ring of 4 frames and a client that never reads: once the socket
    // buffers are full the ring fills.
    let mut c = config(3, 40);
    // The gaps asserted below are the exact backoff.
    c.retry.jitter = wshub::retry::Jitter::None;
    c.send_timeout = Duration::from_secs(30);
    c.max_message_size = 64 * 1024;
    // A one-byte backlog: a full ring is `queue_full` at once (the backlog, which
    // would make it wait instead, has tests of its own in delivery.rs).
    c.pending_per_conn = 1;
    let (hub, seen) = start::<4>(c);
    let _stuck = RawClient::upgrade(hub.addr, "user_id=slow");
    let mut healthy = connect(hub.addr, "user_id=fast");
    for _ in 0..2 {
        hub.wait_for(|e| matches!(e, wshub::HubEvent::Connected { .. }));
    }
    fill_until_stuck(&hub, "slow");
    let qf = next(&seen, "queue_full");
    assert_eq!(
        (qf.recipient.as_str(), qf.detail.as_str()),
        ("slow", "client")
    );

    // With retry: every attempt finds the ring full; the gaps follow the policy.
    let r = hub
        .handle
        .send_to_user_with_retry("slow", &msg("storm", "slow", false))
        .unwrap()
        .wait();
    assert!(!r.success);
    assert_eq!(r.final_error, Some(FailureReason::QueueFull));
    assert_eq!((r.attempts.len(), r.total_retries), (4, 3));
    for (n, pair) in r.attempts.windows(2).enumerate() {
        let gap = pair[1]
            .start_time
            .duration_since(pair[0].start_time)
            .unwrap();
        let backoff = Duration::from_millis(40 * 2u64.pow(n as u32));
        assert!(
            gap >= backoff,
            "retry {n} came after {gap:?}, before its backoff {backoff:?}"
        );
    }
    // Others' traffic is unaffected.
    send(&mut healthy, r#"{"message_type":"ping"}"#);
    assert_eq!(recv(&mut healthy).message_type, "pong");
    // Memory stays bounded: the slow client's ring never holds more than 4.
    let s = stats(hub.addr);
    assert!(s["queued"].as_u64().unwrap() <= 4, "{s}");
    assert!(s["queue_full_count"].as_u64().unwrap() >= 4);
}

#[test]
fn messages_stuck_past_send_timeout_fail_as_send_timeout() {
    let mut c = config(0, 30);
    c.send_timeout = Duration::from_millis(200);
    let (hub, seen) = start::<8>(c);
    let _stuck = RawClient::upgrade(hub.addr, "user_id=stuck");
    hub.wait_for(|e| matches!(e, wshub::HubEvent::Connected { .. }));
    fill_until_stuck(&hub, "stuck");
    // Queued frames expire (the flood of queue_full reports may crowd some
    // out of the handler queue, so count them in the stats).
    wait_stat(hub.addr, "send_timeouts", 1);
    std::thread::sleep(Duration::from_millis(300));
    // The ring has drained by expiry: a delivery now waits, then times out too.
    let r = hub
        .handle
        .send_to_user_with_retry("stuck", &msg("late", "stuck", false))
        .unwrap()
        .wait();
    assert_eq!(
        r.final_error,
        Some(FailureReason::Timeout(TimeoutKind::Send))
    );
    assert_eq!(r.attempts.len(), 1);
    let t = loop {
        let t = next(&seen, "timeout");
        if t.message_id == "late" {
            break t;
        }
    };
    assert_eq!(
        (t.detail.as_str(), t.recipient.as_str()),
        ("send_timeout:200ms", "stuck")
    );
    // The hub named the device (an unguessable id).
    assert_eq!(t.client_id.as_deref().map(str::len), Some(24));
}

struct Panicky(Arc<AtomicU64>);
impl UserOfflineHandler for Panicky {
    fn handle_user_offline(&self, msg: &Message, _user: &str, _err: &Failure) {
        self.0.fetch_add(1, Ordering::SeqCst);
        if msg.content.contains("boom") {
            panic!("handler bug");
        }
    }
}

#[test]
fn a_panicking_handler_is_counted_and_the_pool_keeps_working() {
    let calls = Arc::new(AtomicU64::new(0));
    let c2 = calls.clone();
    let hub = TestHub::start_with::<64>(config(0, 10), move |hub| {
        hub.add_user_offline_handler(Panicky(c2))
    });
    hub.handle
        .send_to_user("nobody", &Message::text("nobody", "boom"))
        .unwrap();
    hub.handle
        .send_to_user("nobody", &Message::text("nobody", "fine"))
        .unwrap();
    wait_stat(hub.addr, "handler_handled", 2);
    let s = stats(hub.addr);
    assert_eq!(s["handler_panics"], 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the call after the panic still ran"
    );
}

struct Slow;
impl UserOfflineHandler for Slow {
    fn handle_user_offline(&self, _msg: &Message, _user: &str, _err: &Failure) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_full_handler_queue_drops_and_counts_without_blocking_the_loop() {
    let mut c = config(0, 10);
    c.handler_workers = 1;
    c.handler_queue_capacity = 2;
    let hub = TestHub::start_with::<64>(c, |hub| hub.add_user_offline_handler(Slow));
    for i in 0..40 {
        hub.handle
            .send_to_user("nobody", &Message::text("nobody", format!("{i}")))
            .unwrap();
    }
    let s = wait_stat(hub.addr, "offline_count", 40);
    let dropped = s["handler_dropped"].as_u64().unwrap();
    assert!(dropped > 0, "{s}");
    // The loop kept serving while the handler was busy.
    let mut c = connect(hub.addr, "user_id=alive");
    send(&mut c, r#"{"message_type":"ping"}"#);
    assert_eq!(recv(&mut c).message_type, "pong");
}

#[test]
fn health_endpoints_answer_with_the_seed_fields_and_prometheus_text() {
    let hub = TestHub::start(config(3, 100));
    let s = stats(hub.addr);
    for field in [
        "total_failures",
        "queue_full_count",
        "offline_count",
        "timeout_count",
        "conn_error_count",
        "uptime_seconds",
        "retries",
        "retry_successes",
        "handler_dropped",
        "handler_panics",
        "connections",
    ] {
        assert!(s.get(field).is_some(), "failure-stats lacks {field}: {s}");
    }
    let (status, body) = http_get(hub.addr, "/health/retry-config");
    assert_eq!(status, 200);
    let rc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rc["max_retries"], 3);
    assert_eq!(rc["base_delay"], "100ms");
    assert_eq!(rc["backoff_factor"], 2.0);
    assert!(
        rc["retryable_errors"]
            .as_array()
            .unwrap()
            .contains(&"queue_full".into())
    );
    assert!(
        rc["non_retryable_errors"]
            .as_array()
            .unwrap()
            .contains(&"user_offline".into())
    );
    let (status, metrics) = http_get(hub.addr, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("# TYPE wshub_total_failures counter"));
    assert!(metrics.lines().any(|l| l.starts_with("wshub_connections ")));

    let mut off = test_config();
    off.health.enabled = false;
    let quiet = TestHub::start(off);
    assert_eq!(http_get(quiet.addr, "/health/failure-stats").0, 404);
}

#[test]
fn the_seed_yaml_config_is_read_as_written() {
    let yaml = "wsc:\n  max_retries: 3\n  base_delay: 100ms\n  backoff_factor: 2.0\n  retryable_errors:\n    - \"queue_full\"\n    - \"timeout\"\n    - \"conn_error\"\n    - \"channel_closed\"\n    - \"network_unreachable\"\n  non_retryable_errors:\n    - \"user_offline\"\n    - \"permission\"\n    - \"validation\"\n    - \"authentication_failed\"\n    - \"message_too_large\"\n";
    let mut c = HubConfig::from_yaml_str(yaml).unwrap();
    c.listen = "127.0.0.1:0".parse().unwrap();
    let hub = TestHub::start(c);
    let (_, body) = http_get(hub.addr, "/health/retry-config");
    let rc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rc["base_delay"], "100ms");
    assert!(
        HubConfig::from_yaml_str("wsc:\n  retryable_errors: [queue_ful]\n")
            .unwrap_err()
            .to_string()
            .contains("queue_full")
    );
}

#[test]
fn websocket_clients_keep_working_while_failures_happen() {
    let (hub, _seen) = start::<64>(config(1, 10));
    let mut a = connect(hub.addr, "user_id=a1");
    let mut b = connect(hub.addr, "user_id=b1");
    for i in 0..20 {
        hub.handle
            .send_to_user(
                "offline-user",
                &Message::text("offline-user", format!("{i}")),
            )
            .unwrap();
        send(
            &mut a,
            &format!(r#"{{"message_type":"text","receiver":"b1","content":"{i}"}}"#),
        );
    }
    for i in 0..20 {
        assert_eq!(recv(&mut b).content, i.to_string());
    }
    a.send(WsMessage::Close(None)).unwrap();
}

#[test]
fn replies_that_find_the_control_lane_full_are_counted() {
    let (hub, _seen) = start::<4>(config(0, 10));
    let mut stuck = RawClient::upgrade(hub.addr, "user_id=deaf");
    hub.wait_for(|e| matches!(e, wshub::HubEvent::Connected { .. }));
    fill_until_stuck(&hub, "deaf");
    // The client still sends: 30 JSON pings, whose pongs cannot leave.
    let ping = client_frame(0x81, br#"{"message_type":"ping"}"#);
    for _ in 0..30 {
        stuck.send(&ping);
    }
    // 16 control slots: at least 14 of the 30 pongs are refused, and counted.
    wait_stat(hub.addr, "control_dropped", 14);
}

#[test]
fn a_delivery_refused_at_the_start_reports_why_and_handle_errors_are_counted() {
    let mut c = config(3, 10);
    c.max_message_size = 64;
    let (hub, seen) = start::<64>(c);
    let r = hub
        .handle
        .send_to_user_with_retry("anyone", &msg("big", "anyone", false))
        .unwrap()
        .wait_timeout(Duration::from_secs(5))
        .expect("a result");
    assert!(!r.success);
    assert_eq!(r.final_error, Some(FailureReason::MessageTooLarge));
    assert!(r.attempts.is_empty());
    assert_eq!(next(&seen, "send_failure").detail, "message_too_large");
    // A device that does not exist: no handler sees it, the counter does.
    let mut to_device = Message::text("nobody-here", "x");
    to_device.receiver_client = "phone".into();
    let _online = connect(hub.addr, "user_id=nobody-here&client_id=laptop");
    hub.wait_for(|e| matches!(e, wshub::HubEvent::Connected { .. }));
    hub.handle.send_to_user("nobody-here", &to_device).unwrap();
    wait_stat(hub.addr, "command_errors", 1);
}
