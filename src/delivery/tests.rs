//! The engine driven without sockets: a fake `Net` with rings of a chosen
//! size, virtual time, and every transition checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::engine::{Engine, EngineConfig, Net};
use super::record::{Tag, Waiter};
use super::{DeliveryId, Envelope, SendResult};
use crate::config::HubConfig;
use crate::error::SendError;
use crate::event::ConnId;
use crate::failure::reason::{FailureReason, TimeoutKind};
use crate::message::{Message, Payload};
use crate::retry::Jitter;

/// Devices and rings. A ring holds `cap` frames; `drain` writes them.
struct FakeNet {
    devices: Vec<(String, ConnId, Arc<str>)>,
    rings: HashMap<ConnId, Vec<(Payload, Tag)>>,
    cap: usize,
}

impl FakeNet {
    fn new(cap: usize) -> FakeNet {
        FakeNet {
            devices: Vec::new(),
            rings: HashMap::new(),
            cap,
        }
    }

    fn connect(&mut self, user: &str, client: &str, index: u32, generation: u32) -> ConnId {
        let id = ConnId { index, generation };
        self.devices.push((user.into(), id, client.into()));
        self.rings.insert(id, Vec::new());
        id
    }

    fn disconnect(&mut self, id: ConnId) -> Vec<(Payload, Tag)> {
        self.devices.retain(|d| d.1 != id);
        self.rings.remove(&id).unwrap_or_default()
    }

    /// Takes what the ring of `id` holds, as a socket write would.
    fn drain(&mut self, id: ConnId) -> Vec<Tag> {
        let ring = self.rings.get_mut(&id).expect("connected");
        ring.drain(..).map(|(_, tag)| tag).collect()
    }

    fn queued(&self, id: ConnId) -> usize {
        self.rings.get(&id).map_or(0, Vec::len)
    }
}

impl Net for FakeNet {
    fn each_device(&self, user: &str, f: &mut dyn FnMut(ConnId, &Arc<str>)) {
        for (u, id, client) in &self.devices {
            if u == user {
                f(*id, client);
            }
        }
    }

    fn user_key(&self, user: &str) -> Option<Arc<str>> {
        self.devices
            .iter()
            .any(|d| d.0 == user)
            .then(|| Arc::from(user))
    }

    fn ring_free(&self, conn: ConnId) -> usize {
        self.rings
            .get(&conn)
            .map_or(0, |r| self.cap.saturating_sub(r.len()))
    }

    fn enqueue(&mut self, conn: ConnId, payload: &Payload, tag: Tag) -> bool {
        let cap = self.cap;
        match self.rings.get_mut(&conn) {
            Some(r) if r.len() < cap => {
                r.push((payload.clone(), tag));
                true
            }
            _ => false,
        }
    }
}

type Results = Arc<Mutex<Vec<(DeliveryId, SendResult)>>>;

struct World {
    engine: Engine<64>,
    net: FakeNet,
    now: Instant,
    results: Results,
}

fn hub_config() -> HubConfig {
    let mut c = HubConfig::default();
    c.retry.max_retries = 2;
    c.retry.base_delay = Duration::from_millis(100);
    c.retry.jitter = Jitter::None;
    c.retry.budget = None;
    c.ack_timeout = Duration::from_millis(500);
    c.send_timeout = Duration::from_secs(5);
    c.handler_workers = 0;
    c
}

impl World {
    fn new(cap: usize, tweak: impl FnOnce(&mut HubConfig)) -> World {
        let mut c = hub_config();
        tweak(&mut c);
        let now = Instant::now();
        let mut engine = Engine::new(EngineConfig::from_hub(&c), 16, now, 7);
        let results: Results = Arc::default();
        let sink = results.clone();
        engine.on_result(move |id, r| sink.lock().unwrap().push((id, r.clone())));
        World {
            engine,
            net: FakeNet::new(cap),
            now,
            results,
        }
    }

    fn connect(&mut self, user: &str, client: &str, index: u32, generation: u32) -> ConnId {
        let id = self.net.connect(user, client, index, generation);
        self.engine.conn_opened(id);
        self.engine.user_connected(self.now, user, &mut self.net);
        id
    }

    fn send(&mut self, user: &str, id: &str, ack: bool) -> DeliveryId {
        self.try_send(user, id, ack).expect("starts")
    }

    fn try_send(&mut self, user: &str, id: &str, ack: bool) -> Result<DeliveryId, SendError> {
        let mut m = Message::text(user, "hi");
        m.message_id = id.into();
        m.require_ack = ack;
        let env = Envelope::new(m).unwrap();
        self.engine
            .start(self.now, user, env, Waiter::Loop, None, &mut self.net)
    }

    /// Writes everything queued for `conn`.
    fn write(&mut self, conn: ConnId) -> usize {
        let tags = self.net.drain(conn);
        for &tag in &tags {
            self.engine.written(self.now, conn, tag, &mut self.net);
        }
        self.engine.ring_space(self.now, conn, &mut self.net);
        tags.len()
    }

    fn ack(&mut self, conn: ConnId, id: &str) {
        self.engine.acked(self.now, conn, id, &mut self.net);
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.engine.tick(self.now, &mut self.net);
    }

    fn result(&self, id: DeliveryId) -> Option<SendResult> {
        let results = self.results.lock().unwrap();
        let mut found = results.iter().filter(|(d, _)| *d == id);
        let first = found.next().map(|(_, r)| r.clone());
        assert!(found.next().is_none(), "{id} ended twice");
        first
    }

    /// Nothing leaks once every delivery has ended.
    fn assert_idle(&self) {
        assert_eq!(self.engine.pending(), 0, "deliveries left open");
        assert_eq!(self.engine.acks_in_flight(), 0, "ACK window entries left");
        assert_eq!(self.engine.ack_index_len(), 0, "ACK index entries left");
        assert_eq!(self.engine.pending_timers(), 0, "timers left");
    }
}

#[test]
fn written_without_ack_is_success_on_the_first_attempt() {
    let mut w = World::new(8, |_| {});
    let phone = w.connect("bob", "phone", 1, 1);
    let d = w.send("bob", "m1", false);
    assert!(w.result(d).is_none(), "not final before the write");
    assert_eq!(w.write(phone), 1);
    let r = w.result(d).expect("final");
    assert!(r.success);
    assert_eq!((r.attempts.len(), r.total_retries), (1, 0));
    assert_eq!(r.message_id.as_deref(), Some("m1"));
    w.assert_idle();
}

#[test]
fn an_ack_completes_only_from_the_device_it_was_sent_to() {
    let mut w = World::new(8, |_| {});
    let phone = w.connect("bob", "phone", 1, 1);
    let eve = w.connect("eve", "x", 2, 1);
    let d = w.send("bob", "m1", true);
    w.write(phone);
    assert!(w.result(d).is_none(), "written, but waiting for the ACK");
    w.ack(eve, "m1");
    w.ack(phone, "other");
    assert!(w.result(d).is_none(), "foreign and unknown ACKs ignored");
    assert_eq!(w.engine.counters.unknown_acks, 2);
    w.ack(phone, "m1");
    assert!(w.result(d).unwrap().success);
    w.ack(phone, "m1");
    assert_eq!(
        w.engine.counters.unknown_acks, 3,
        "a duplicate ACK is unknown"
    );
    w.assert_idle();
}

#[test]
fn a_missed_ack_is_resent_with_backoff_then_reported() {
    let mut w = World::new(8, |_| {});
    let phone = w.connect("bob", "phone", 1, 1);
    let d = w.send("bob", "m1", true);
    for attempt in 1..=3 {
        assert_eq!(w.write(phone), 1, "attempt {attempt} resends the frame");
        w.advance(Duration::from_millis(500));
        if attempt < 3 {
            assert!(w.result(d).is_none());
            // Backoff: 100 ms, then 200 ms, before the next offer.
            assert_eq!(w.net.queued(phone), 0);
            w.advance(Duration::from_millis(100 << (attempt - 1)));
            assert_eq!(w.net.queued(phone), 1);
        }
    }
    let r = w.result(d).unwrap();
    assert_eq!(
        r.final_error,
        Some(FailureReason::Timeout(TimeoutKind::Ack))
    );
    assert_eq!((r.attempts.len(), r.total_retries), (3, 2));
    assert_eq!(w.engine.counters.retries, 2);
    w.assert_idle();
}

#[test]
fn retries_go_only_to_devices_that_have_not_taken_the_message() {
    let mut w = World::new(8, |_| {});
    let phone = w.connect("bob", "phone", 1, 1);
    let laptop = w.connect("bob", "laptop", 2, 1);
    let d = w.send("bob", "m1", true);
    w.write(phone);
    w.write(laptop);
    w.ack(phone, "m1");
    w.advance(Duration::from_millis(500));
    w.advance(Duration::from_millis(100));
    assert_eq!(w.net.queued(phone), 0, "the phone has it");
    assert_eq!(w.write(laptop), 1, "the laptop gets the resend");
    w.ack(laptop, "m1");
    let r = w.result(d).unwrap();
    assert!(r.success);
    assert_eq!(r.attempts.len(), 2);
    w.assert_idle();
}

#[test]
fn a_full_ring_is_back_pressure_and_the_backlog_keeps_order() {
    let mut w = World::new(2, |_| {});
    let phone = w.connect("bob", "phone", 1, 1);
    let ids: Vec<DeliveryId> = (0..6)
        .map(|i| w.send("bob", &format!("m{i}"), false))
        .collect();
    assert_eq!(w.net.queued(phone), 2);
    assert_eq!(w.engine.counters.backlog_waits, 4);
    let mut order = Vec::new();
    while w.net.queued(phone) > 0 {
        order.extend(w.net.rings[&phone].iter().map(|(p, _)| p.clone()));
        w.write(phone);
    }
    let sent: Vec<String> = order
        .iter()
        .map(|p| {
            serde_json::from_slice::<Message>(p.body())
                .unwrap()
                .message_id
        })
        .collect();
    assert_eq!(sent, ["m0", "m1", "m2", "m3", "m4", "m5"]);
    for d in ids {
        assert!(w.result(d).unwrap().success);
    }
    assert_eq!(
        w.engine.reporter().counters.total,
        0,
        "waiting is not failing"
    );
    w.assert_idle();
}

#[test]
fn the_ack_window_holds_further_messages_unsent() {
    let mut w = World::new(64, |c| c.max_inflight_acks = 2);
    let phone = w.connect("bob", "phone", 1, 1);
    let a = w.send("bob", "a", true);
    let _b = w.send("bob", "b", true);
    let c = w.send("bob", "c", true);
    assert_eq!(w.write(phone), 2, "the third waits for the window");
    assert_eq!(w.engine.counters.window_full, 1);
    w.ack(phone, "a");
    assert!(w.result(a).unwrap().success);
    assert_eq!(w.write(phone), 1, "an ACK lets the next one in");
    w.ack(phone, "b");
    w.ack(phone, "c");
    assert!(w.result(c).unwrap().success);
    w.assert_idle();
}

#[test]
fn a_full_backlog_is_queue_full() {
    let mut w = World::new(1, |c| {
        c.pending_per_conn = 1;
        c.retry.max_retries = 0;
    });
    w.connect("bob", "phone", 1, 1);
    let _first = w.send("bob", "m0", false);
    let second = w.send("bob", "m1", false);
    let r = w.result(second).unwrap();
    assert_eq!(r.final_error, Some(FailureReason::QueueFull));
    assert_eq!(w.engine.reporter().counters.queue_full, 1);
}

#[test]
fn a_broken_connection_fails_as_conn_error_and_a_reconnect_gets_the_retry() {
    let mut w = World::new(8, |_| {});
    let phone = w.connect("bob", "phone", 1, 1);
    let d = w.send("bob", "m1", true);
    w.write(phone);
    w.net.disconnect(phone);
    w.engine
        .conn_removed(w.now, phone, FailureReason::ConnError, &mut w.net);
    assert_eq!(w.engine.reporter().counters.conn_error, 1);
    assert!(w.result(d).is_none(), "retried, not final");
    let again = w.connect("bob", "phone", 1, 2);
    w.advance(Duration::from_millis(100));
    assert_eq!(w.write(again), 1);
    w.ack(phone, "m1");
    assert!(
        w.result(d).is_none(),
        "an ACK on the old connection does not count"
    );
    w.ack(again, "m1");
    let r = w.result(d).unwrap();
    assert!(r.success);
    assert_eq!(r.attempts[0].error, Some(FailureReason::ConnError));
    w.assert_idle();
}

#[test]
fn a_closing_connection_still_takes_acks() {
    let mut w = World::new(8, |_| {});
    let phone = w.connect("bob", "phone", 1, 1);
    let d = w.send("bob", "m1", true);
    w.write(phone);
    w.engine
        .conn_closing(w.now, phone, FailureReason::ConnError, &mut w.net);
    w.ack(phone, "m1");
    assert!(w.result(d).unwrap().success);
    w.engine
        .conn_removed(w.now, phone, FailureReason::ConnError, &mut w.net);
    assert_eq!(w.engine.reporter().counters.total, 0);
    w.assert_idle();
}

#[test]
fn an_offline_user_is_stored_and_replayed_as_a_tracked_delivery() {
    let mut w = World::new(8, |c| c.offline_queue_per_user = 10);
    let d = w.send("bob", "m1", true);
    let r = w.result(d).unwrap();
    assert_eq!(r.final_error, Some(FailureReason::UserOffline));
    assert!(r.stored_offline && !r.replayed);
    assert_eq!(w.engine.offline_held().0, 1);
    let phone = w.connect("bob", "phone", 1, 1);
    assert_eq!(w.engine.pending(), 1, "the replay is a delivery");
    let frame = w.net.rings[&phone][0].0.clone();
    let m: Message = serde_json::from_slice(frame.body()).unwrap();
    assert_eq!(
        (m.source.as_str(), m.message_id.as_str()),
        ("offline", "m1")
    );
    assert!(m.require_ack);
    w.write(phone);
    w.ack(phone, "m1");
    let results = w.results.lock().unwrap();
    let (_, replay) = results.last().unwrap();
    assert!(replay.success && replay.replayed);
    assert_eq!(replay.message_id.as_deref(), Some("m1"));
    drop(results);
    w.assert_idle();
}

#[test]
fn offline_caps_evict_the_oldest_and_ttl_expires_with_a_final_result() {
    let mut w = World::new(8, |c| {
        c.offline_queue_per_user = 10;
        c.offline_max_messages = 2;
        c.offline_ttl = Duration::from_secs(60);
    });
    for (i, user) in ["u1", "u2", "u3"].iter().enumerate() {
        w.send(user, &format!("m{i}"), false);
    }
    assert_eq!(w.engine.counters.offline_evicted, 1);
    assert_eq!(w.engine.offline_held().0, 2);
    {
        let results = w.results.lock().unwrap();
        let evicted = results
            .iter()
            .find(|(_, r)| r.final_error == Some(FailureReason::OfflineEvicted))
            .expect("eviction reported");
        assert_eq!(evicted.1.message_id.as_deref(), Some("m0"));
    }
    w.advance(Duration::from_secs(61));
    assert_eq!(w.engine.counters.offline_expired, 2);
    assert_eq!(w.engine.offline_held(), (0, 0));
}

#[test]
fn pending_deliveries_are_capped() {
    let mut w = World::new(8, |c| c.max_pending_deliveries = 2);
    w.connect("bob", "phone", 1, 1);
    w.send("bob", "a", true);
    w.send("bob", "b", true);
    assert_eq!(
        w.try_send("bob", "c", true),
        Err(SendError::TooManyPending { limit: 2 })
    );
    assert_eq!(w.engine.reporter().counters.other, 1);
}

#[test]
fn a_duplicate_id_in_flight_to_one_device_is_refused_not_merged() {
    let mut w = World::new(8, |c| c.retry.max_retries = 0);
    let phone = w.connect("bob", "phone", 1, 1);
    let first = w.send("bob", "same", true);
    let second = w.send("bob", "same", true);
    assert_eq!(
        w.result(second).unwrap().final_error,
        Some(FailureReason::Validation)
    );
    w.write(phone);
    w.ack(phone, "same");
    assert!(w.result(first).unwrap().success);
    w.assert_idle();
}

#[test]
fn shutdown_ends_deliveries_waiting_for_a_retry() {
    let mut w = World::new(8, |_| {});
    let phone = w.connect("bob", "phone", 1, 1);
    let d = w.send("bob", "m1", true);
    w.write(phone);
    w.advance(Duration::from_millis(500));
    w.engine.shut_down(w.now);
    assert_eq!(
        w.result(d).unwrap().final_error,
        Some(FailureReason::ChannelClosed)
    );
    assert_eq!(w.try_send("bob", "m2", false), Err(SendError::ShuttingDown));
    w.assert_idle();
}

/// A random walk over sends, writes, ACKs, breaks, reconnects and time,
/// against the invariants: every delivery ends exactly once, a success was
/// taken by every device it targeted, nothing leaks at the end.
#[test]
fn random_walks_end_every_delivery_exactly_once_and_leak_nothing() {
    for seed in 0..150u64 {
        let mut rng = crate::retry::SplitMix64::new(seed);
        let mut next =
            |n: u64| (crate::retry::jitter::RandomSource::next_u64(&mut rng) % n) as usize;
        let mut w = World::new(1 + next(4), |c| {
            c.max_inflight_acks = 1 + next(3);
            c.offline_queue_per_user = next(3);
            c.pending_per_conn = 200 * next(5);
        });
        let mut conns: Vec<Option<ConnId>> = vec![None; 4];
        let mut started = Vec::new();
        let mut generation = 0;
        for step in 0..300usize {
            let slot = next(4);
            let user = format!("u{}", slot % 2);
            match next(8) {
                0 | 1 => {
                    let id = format!("s{seed}-{step}");
                    started.push(w.send(&user, &id, next(2) == 0));
                }
                2 => {
                    if let Some(c) = conns[slot] {
                        w.write(c);
                    }
                }
                3 => {
                    if let Some(c) = conns[slot] {
                        // ACK some of what was sent so far (unknown ids too).
                        for s in step.saturating_sub(20)..step {
                            if next(4) == 0 {
                                w.ack(c, &format!("s{seed}-{s}"));
                            }
                        }
                    }
                }
                4 => {
                    if let Some(c) = conns[slot].take() {
                        let left = w.net.disconnect(c);
                        for (_, tag) in left {
                            w.engine
                                .failed(w.now, c, tag, FailureReason::ConnError, &mut w.net);
                        }
                        w.engine
                            .conn_removed(w.now, c, FailureReason::ConnError, &mut w.net);
                    }
                }
                5 => {
                    if conns[slot].is_none() {
                        generation += 1;
                        let client = format!("c{slot}");
                        conns[slot] = Some(w.connect(&user, &client, slot as u32, generation));
                    }
                }
                _ => w.advance(Duration::from_millis(50 * next(12) as u64)),
            }
        }
        // Drain: keep every device connected and ACKing until all is final.
        for _ in 0..200 {
            for c in conns.iter().flatten().copied().collect::<Vec<_>>() {
                w.write(c);
                for s in 0..300 {
                    w.ack(c, &format!("s{seed}-{s}"));
                }
            }
            w.advance(Duration::from_millis(100));
        }
        for d in &started {
            assert!(w.result(*d).is_some(), "seed {seed}: {d} never ended");
        }
        w.assert_idle();
    }
}

#[test]
fn a_reconnect_resends_what_waited_for_a_retry_at_once_and_in_order() {
    let mut w = World::new(64, |c| {
        c.retry.jitter = Jitter::Full;
        c.retry.base_delay = Duration::from_secs(1);
    });
    let phone = w.connect("bob", "phone", 1, 1);
    let ids: Vec<DeliveryId> = (0..20)
        .map(|i| w.send("bob", &format!("m{i:02}"), true))
        .collect();
    w.write(phone);
    w.net.disconnect(phone);
    w.engine
        .conn_removed(w.now, phone, FailureReason::ConnError, &mut w.net);
    let again = w.connect("bob", "phone", 1, 2);
    let order: Vec<String> = w.net.rings[&again]
        .iter()
        .map(|(p, _)| {
            serde_json::from_slice::<Message>(p.body())
                .unwrap()
                .message_id
        })
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    assert_eq!(
        order, expected,
        "resent at once, in the order they were sent"
    );
    w.write(again);
    for i in 0..20 {
        w.ack(again, &format!("m{i:02}"));
    }
    for d in ids {
        assert!(w.result(d).unwrap().success);
    }
    w.assert_idle();
}

/// Regression (found by the reset burst under load): retries that came due
/// while the user was away end as `user_offline` and go to the offline
/// store; on reconnect they must interleave with the retries still waiting
/// in the order the messages were sent, not come after them.
#[test]
fn a_reconnect_interleaves_stored_and_waiting_messages_in_send_order() {
    let mut w = World::new(64, |c| {
        c.retry.jitter = Jitter::Full;
        c.retry.base_delay = Duration::from_millis(100);
        c.offline_queue_per_user = 100;
    });
    let phone = w.connect("bob", "phone", 1, 1);
    let ids: Vec<DeliveryId> = (0..20)
        .map(|i| w.send("bob", &format!("m{i:02}"), true))
        .collect();
    w.write(phone);
    w.net.disconnect(phone);
    w.engine
        .conn_removed(w.now, phone, FailureReason::ConnError, &mut w.net);
    // Some retries come due while bob is away: they are stored offline
    // (the first one due takes every earlier one with it, in order).
    while w.engine.offline_held().0 == 0 {
        w.advance(Duration::from_millis(1));
    }
    assert!(
        w.engine.offline_held().0 > 0,
        "some retries found bob offline"
    );
    assert!(w.engine.pending() > 0, "others still wait for their retry");
    let again = w.connect("bob", "phone", 1, 2);
    let order: Vec<String> = w.net.rings[&again]
        .iter()
        .map(|(p, _)| {
            serde_json::from_slice::<Message>(p.body())
                .unwrap()
                .message_id
        })
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    assert_eq!(order, expected);
    w.write(again);
    for i in 0..20 {
        w.ack(again, &format!("m{i:02}"));
    }
    let _ = ids;
    w.assert_idle();
}

/// Found by the simulation as it was being built (its seed 15 then): a frame
/// partly written when its device reconnected stays in the old connection's
/// ring (it must finish on the wire) while its target fails and is retried on
/// the new connection under the same tag. When the old connection then broke,
/// the hub failed that leftover frame by its tag, and the engine failed the
/// retry's target on the new, healthy connection: a false `conn_error`, here a
/// final one.
#[test]
fn a_leftover_frame_of_a_replaced_connection_settles_only_its_own_device() {
    let mut w = World::new(8, |c| c.retry.max_retries = 1);
    let old = w.connect("bob", "phone", 1, 1);
    let laptop = w.connect("bob", "laptop", 2, 1);
    let d = w.send("bob", "m1", true);
    // The phone's frame is on the wire, partly; the phone reconnects.
    let leftover = w.net.drain(old);
    let new = w.net.connect("bob", "phone", 3, 1);
    w.net.devices.retain(|dev| dev.1 != old);
    w.engine
        .conn_closing(w.now, old, FailureReason::ConnError, &mut w.net);
    w.engine.conn_replaced(w.now, old, new, &mut w.net);
    w.engine.conn_opened(new);
    w.engine.user_connected(w.now, "bob", &mut w.net);
    // The laptop takes it; the phone's part of the attempt failed: retry.
    w.write(laptop);
    w.ack(laptop, "m1");
    w.advance(Duration::from_millis(100));
    assert_eq!(w.net.queued(new), 1, "the retry goes to the new connection");
    // The old connection breaks with its partly written frame.
    for tag in leftover {
        w.engine
            .failed(w.now, old, tag, FailureReason::ConnError, &mut w.net);
    }
    w.engine
        .conn_removed(w.now, old, FailureReason::ConnError, &mut w.net);
    assert!(
        w.result(d).is_none(),
        "the new connection's retry is intact"
    );
    w.write(new);
    w.ack(new, "m1");
    let r = w.result(d).unwrap();
    assert!(r.success, "{r:?}");
    assert_eq!(r.attempts.len(), 2);
    w.assert_idle();
}

/// Found by the simulation as it was being built (its seed 4 then): a replay
/// held back by `max_pending_deliveries` went through the refusal path, so the
/// handlers were told of a final `rate_limited` failure (will_retry false) for
/// a message the store keeps and replays later.
#[test]
fn a_replay_held_back_by_the_pending_cap_is_not_reported_as_failed() {
    let mut w = World::new(8, |c| {
        c.offline_queue_per_user = 10;
        c.max_pending_deliveries = 1;
    });
    let stored = w.send("bob", "m1", true);
    assert!(w.result(stored).unwrap().stored_offline);
    let failures = w.engine.reporter().counters.total;
    let alice = w.connect("alice", "a", 2, 1);
    w.send("alice", "busy", false);
    let bob = w.connect("bob", "phone", 1, 1);
    assert_eq!(w.engine.offline_held().0, 1, "kept for later");
    assert_eq!(
        w.engine.reporter().counters.total,
        failures,
        "held back is not failed"
    );
    assert_eq!(w.engine.counters.refused_pending_cap, 0);
    w.write(alice);
    w.net.disconnect(bob);
    w.engine
        .conn_removed(w.now, bob, FailureReason::ConnError, &mut w.net);
    let bob = w.connect("bob", "phone", 1, 2);
    w.write(bob);
    w.ack(bob, "m1");
    let results = w.results.lock().unwrap();
    let (_, replay) = results.last().unwrap();
    assert!(replay.success && replay.replayed, "{replay:?}");
    drop(results);
    w.assert_idle();
}

/// Found by the simulation as it was being built (its seed 8 then): the offline
/// store re-encodes a message with `"source":"offline"`, so a message that
/// fitted `max_message_size` when sent could exceed it on replay. The replay
/// was then refused as `message_too_large` on every reconnect (blocking the
/// user's later stored messages behind it) until the store expired it.
#[test]
fn a_stored_message_that_fitted_when_sent_is_replayed() {
    let mut m = Message::text("bob", "hi");
    m.message_id = "m1".into();
    let size = Envelope::new(m).unwrap().payload.len();
    let mut w = World::new(8, |c| {
        c.offline_queue_per_user = 10;
        c.max_message_size = size;
    });
    let d = w.send("bob", "m1", false);
    assert!(w.result(d).unwrap().stored_offline);
    let failures = w.engine.reporter().counters.total;
    let phone = w.connect("bob", "phone", 1, 1);
    assert_eq!(w.engine.offline_held().0, 0, "replayed");
    assert_eq!(w.engine.reporter().counters.total, failures, "not refused");
    assert_eq!(w.write(phone), 1);
    let results = w.results.lock().unwrap();
    let (_, replay) = results.last().unwrap();
    assert!(replay.success && replay.replayed, "{replay:?}");
    drop(results);
    w.assert_idle();
}

/// Seen in a simulation trace as it was being built (its seed 92 then): a
/// stored message for one device (`receiver_client`) was replayed whenever any
/// device of its user connected; with that device absent the replay failed at
/// once as `user_offline` and was stored again with a fresh time-to-live, so
/// every reconnect of another device reported a failure and pushed the
/// message's expiry back without bound.
#[test]
fn a_stored_message_for_one_device_waits_for_that_device() {
    let mut w = World::new(8, |c| {
        c.offline_queue_per_user = 10;
        c.offline_ttl = Duration::from_secs(60);
    });
    let mut m = Message::text("bob", "for the phone");
    m.message_id = "m1".into();
    m.receiver_client = "phone".into();
    let env = Envelope::new(m).unwrap();
    let d = w
        .engine
        .start(w.now, "bob", env, Waiter::Loop, None, &mut w.net)
        .unwrap();
    assert!(w.result(d).unwrap().stored_offline);
    let failures = w.engine.reporter().counters.total;
    let laptop = w.connect("bob", "laptop", 2, 1);
    assert_eq!(w.engine.offline_held().0, 1, "kept for the phone");
    assert_eq!(w.engine.reporter().counters.total, failures);
    assert_eq!(w.results.lock().unwrap().len(), 1, "no replay result yet");
    // Its time-to-live still counts from when it was stored.
    w.net.disconnect(laptop);
    w.engine
        .conn_removed(w.now, laptop, FailureReason::ConnError, &mut w.net);
    w.advance(Duration::from_secs(30));
    w.connect("bob", "laptop", 2, 2);
    w.advance(Duration::from_secs(31));
    let results = w.results.lock().unwrap();
    let (_, end) = results.last().unwrap();
    assert_eq!(end.final_error, Some(FailureReason::OfflineExpired));
    drop(results);
    // A message for the phone, stored again, goes when the phone connects.
    let mut m = Message::text("bob", "again");
    m.message_id = "m2".into();
    m.receiver_client = "phone".into();
    w.net.devices.clear();
    let env = Envelope::new(m).unwrap();
    w.engine
        .start(w.now, "bob", env, Waiter::Loop, None, &mut w.net)
        .unwrap();
    let phone = w.connect("bob", "phone", 1, 1);
    assert_eq!(w.write(phone), 1);
    let results = w.results.lock().unwrap();
    let (_, replay) = results.last().unwrap();
    assert!(replay.success && replay.replayed, "{replay:?}");
}

// ---- cluster: proxies of devices on other hubs (index >= the 16 slots) ----

#[test]
fn a_remote_device_is_tracked_until_its_hub_answers() {
    let mut w = World::new(8, |_| {});
    let phone = w.connect("bob", "phone", 1, 1);
    let laptop = w.connect("bob", "laptop", 20, 1); // a proxy
    let d = w.send("bob", "m1", true);
    assert_eq!(
        w.net.queued(laptop),
        1,
        "the proxy's frame goes to the cluster"
    );
    w.write(phone);
    w.ack(phone, "m1");
    assert!(w.result(d).is_none(), "the remote device has not answered");
    let tag = w.net.drain(laptop)[0];
    // An answer for another proxy, or a stale one, changes nothing.
    let stranger = ConnId {
        index: 21,
        generation: 1,
    };
    w.engine
        .remote_outcome(w.now, stranger, tag, None, &mut w.net);
    assert!(w.result(d).is_none());
    w.engine
        .remote_outcome(w.now, laptop, tag, None, &mut w.net);
    let r = w.result(d).expect("final");
    assert!(r.success && r.attempts.len() == 1, "{r:?}");
    w.assert_idle();
}

#[test]
fn a_remote_hub_that_never_answers_fails_the_attempt_as_cluster_unavailable_and_it_is_retried() {
    let mut w = World::new(8, |_| {});
    let laptop = w.connect("bob", "laptop", 20, 1);
    let d = w.send("bob", "m1", false);
    w.net.drain(laptop); // published; the hub there is gone
    // The deadline: send_timeout (5 s) + 1 s for a message without ACK.
    w.advance(Duration::from_millis(5_990));
    assert!(w.result(d).is_none(), "still within the deadline");
    w.advance(Duration::from_millis(20));
    assert_eq!(w.net.queued(laptop), 0, "the retry waits for its backoff");
    w.advance(Duration::from_millis(100));
    let tag = w.net.drain(laptop)[0];
    w.engine
        .remote_outcome(w.now, laptop, tag, None, &mut w.net);
    let r = w.result(d).expect("final");
    assert!(r.success, "{r:?}");
    assert_eq!(r.attempts[0].error, Some(FailureReason::ClusterUnavailable));
    assert_eq!(r.attempts.len(), 2);
    w.assert_idle();
}

#[test]
fn another_hub_s_request_gets_one_attempt_and_its_outcome_not_a_local_result() {
    use crate::cluster::wire::Ticket;
    use crate::delivery::RemoteWaiter;
    let mut w = World::new(8, |_| {});
    let phone = w.connect("bob", "phone", 1, 1);
    let _elsewhere = w.connect("bob", "tablet", 22, 1); // a proxy: never forwarded to
    let ticket = |n| Ticket {
        conn: ConnId {
            index: 99,
            generation: n,
        },
        tag: Tag {
            delivery: DeliveryId {
                index: n,
                generation: std::num::NonZeroU32::new(1).unwrap(),
            },
            target: 0,
        },
    };
    let env = |id: &str| {
        let mut m = Message::text("bob", "hi");
        m.message_id = id.into();
        m.require_ack = true;
        Envelope::new(m).unwrap()
    };
    let waiter = |n| RemoteWaiter {
        node: Arc::from("hub-1"),
        ticket: ticket(n),
    };
    w.engine
        .start_for_remote(w.now, "bob", "phone", env("m1"), waiter(1), &mut w.net)
        .unwrap();
    // A device this hub does not have: answered at once, not retried.
    w.engine
        .start_for_remote(w.now, "bob", "tablet", env("m2"), waiter(2), &mut w.net)
        .unwrap();
    let mut outcomes = Vec::new();
    w.engine
        .drain_remote_outcomes(|o| outcomes.push((o.ticket, o.error)));
    assert_eq!(outcomes, [(ticket(2), Some(FailureReason::UserOffline))]);
    w.write(phone);
    w.advance(Duration::from_millis(500)); // its ack_timeout here
    w.engine
        .drain_remote_outcomes(|o| outcomes.push((o.ticket, o.error)));
    assert_eq!(
        outcomes[1],
        (ticket(1), Some(FailureReason::Timeout(TimeoutKind::Ack)))
    );
    w.advance(Duration::from_secs(10));
    assert_eq!(
        w.net.queued(phone),
        0,
        "no retry here: the sending hub retries"
    );
    assert!(w.results.lock().unwrap().is_empty(), "no local result");
    assert_eq!(
        w.engine.reporter().counters.total,
        0,
        "reported where it was sent"
    );
    w.assert_idle();
}
