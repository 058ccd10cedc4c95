//! The simulation's model of what happened, and the invariants checked
//! against it.
//!
//! The model records only what an observer outside the engine can know: the
//! messages sent and to whom, the frames the engine queued (through `Net`),
//! the frames written to each connection, the ACKs each connection sent and
//! whether the engine took them, every reported failure (the reporter's
//! tap), every result, and the counters. The engine's own snapshot of its
//! open deliveries (taken after each step) only names the devices of an
//! attempt, so that a success can be checked device by device.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::delivery::engine::EngineConfig;
use crate::delivery::engine::audit::DeliverySnap;
use crate::delivery::record::TargetState;
use crate::delivery::{DeliveryId, SendResult, Tag};
use crate::event::ConnId;
use crate::failure::Failure;
use crate::failure::reason::{FailureReason, TimeoutKind};
use crate::message::{Message, Payload};
use crate::stats::Stats;

/// A quick hash for the model's maps (FxHash's mixing step): the model
/// looks things up many times a step, in a debug build, and SipHash showed.
#[derive(Default, Clone, Copy)]
pub(super) struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

pub(super) type Map<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;
pub(super) type Set<K> = HashSet<K, BuildHasherDefault<Fx>>;

/// A broken invariant, in words.
pub(super) type Violation = String;

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}
pub(super) use ensure;

/// A message the simulation sent (a duplicate id is the same message again).
#[derive(Debug)]
pub(super) struct MsgInfo {
    pub user: Arc<str>,
    pub require_ack: bool,
    pub only: Option<Arc<str>>,
    pub payload: Payload,
}

/// One delivery: started by the simulation, or a replay found later.
#[derive(Debug)]
pub(super) struct Del {
    pub msg: Arc<str>,
    pub user: Arc<str>,
    pub require_ack: bool,
    pub only: Option<Arc<str>>,
    pub replay: bool,
    pub thread: bool,
    /// When it started (unknown for a replay: it starts inside a connect).
    pub started: Option<Instant>,
    /// Devices that took it: a frame written (without ACK), or an ACK the
    /// engine accepted (with ACK).
    pub took: Vec<Arc<str>>,
    pub ended: bool,
}

/// A connection as the model knows it.
#[derive(Debug, Clone)]
pub(super) struct ConnInfo {
    pub user: Arc<str>,
    pub client: Arc<str>,
}

/// What a connection's peer saw and answered.
#[derive(Debug, Default)]
pub(super) struct Peer {
    /// Message ids written to it.
    pub seen: Set<Arc<str>>,
    /// Seen and not yet ACKed by it, in the order written.
    pub unacked: Vec<Arc<str>>,
    /// ACKed by it.
    pub acked: Vec<Arc<str>>,
}

/// What the counters must say.
#[derive(Debug, Default, Clone)]
pub(super) struct Expected {
    pub succeeded: u64,
    pub final_failures: u64,
    pub retry_successes: u64,
    /// Retries decided for finished deliveries.
    pub retries_closed: u64,
    pub offline_stored: u64,
    pub evicted: u64,
    pub expired: u64,
    pub refused_pending: u64,
    pub refused_too_large: u64,
    pub replays_ended: u64,
}

/// What the run did, for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tally {
    pub deliveries: u64,
    pub successes: u64,
    pub failures: u64,
    pub retries: u64,
    pub acks_accepted: u64,
    pub acks_ignored: u64,
    pub failures_reported: u64,
    pub stored: u64,
    pub replays: u64,
    /// Final failures by reason (`FailureReason::index`).
    pub final_errors: [u64; 16],
}

pub(super) struct Model {
    cfg: EngineConfig,
    pub msgs: Map<Arc<str>, MsgInfo>,
    pub dels: Map<DeliveryId, Del>,
    pub conns: Map<ConnId, ConnInfo>,
    /// What each connection's peer saw and ACKed.
    pub peers: Map<ConnId, Peer>,
    /// Message ids written anywhere, in order (for foreign ACKs).
    pub all_written: Vec<Arc<str>>,
    /// Reported failures by reason index (`FailureReason::index`).
    by_reason: [u64; 32],
    /// The engine's open deliveries after the previous step.
    pub snap: Map<DeliveryId, DeliverySnap>,
    /// Per stored message id: stores minus ends (replay result, eviction,
    /// expiry). Never negative; zero for all at the end.
    pub stored: Map<Arc<str>, i64>,
    pub tap: Vec<Failure>,
    tap_by_delivery: Map<DeliveryId, Vec<usize>>,
    /// Failures reported without a delivery (refusals, offline ends).
    loose_failures: u64,
    pub expected: Expected,
    pub tally: Tally,
    pub shutdown: bool,
}

/// The message id inside an encoded frame.
pub(super) fn message_id_of(p: &Payload) -> Option<Arc<str>> {
    serde_json::from_slice::<Message>(p.body())
        .ok()
        .map(|m| Arc::from(m.message_id.as_str()))
}

impl Model {
    pub(super) fn new(cfg: EngineConfig) -> Model {
        Model {
            cfg,
            msgs: Map::default(),
            dels: Map::default(),
            conns: Map::default(),
            peers: Map::default(),
            all_written: Vec::new(),
            by_reason: [0; 32],
            snap: Map::default(),
            stored: Map::default(),
            tap: Vec::new(),
            tap_by_delivery: Map::default(),
            loose_failures: 0,
            expected: Expected::default(),
            tally: Tally::default(),
            shutdown: false,
        }
    }

    /// The simulation started delivery `id` of message `msg`.
    pub(super) fn started(&mut self, id: DeliveryId, msg: &Arc<str>, thread: bool, now: Instant) {
        let info = &self.msgs[msg];
        self.tally.deliveries += 1;
        self.dels.insert(
            id,
            Del {
                msg: msg.clone(),
                user: info.user.clone(),
                require_ack: info.require_ack,
                only: info.only.clone(),
                replay: false,
                thread,
                started: Some(now),
                took: Vec::new(),
                ended: false,
            },
        );
    }

    /// A delivery the simulation did not start: a replay of a stored message.
    fn discover(&mut self, id: DeliveryId, msg: Option<Arc<str>>) -> Result<(), Violation> {
        if !self.dels.contains_key(&id) {
            let msg = msg.ok_or_else(|| format!("{id}: unknown delivery without a message id"))?;
            let info = self
                .msgs
                .get(&msg)
                .ok_or_else(|| format!("{id}: a delivery of message {msg}, never sent"))?;
            // A replay: its end takes it off the stored count, which must
            // never go below zero (`stores_balanced`).
            self.tally.replays += 1;
            self.tally.deliveries += 1;
            self.dels.insert(
                id,
                Del {
                    msg,
                    user: info.user.clone(),
                    require_ack: info.require_ack,
                    only: info.only.clone(),
                    replay: true,
                    thread: false,
                    started: None,
                    took: Vec::new(),
                    ended: false,
                },
            );
        }
        Ok(())
    }

    /// The engine queued a frame: for the right user, the right device, and
    /// never again for a device that already took the message.
    pub(super) fn enqueued(
        &mut self,
        conn: ConnId,
        tag: Tag,
        payload: &Payload,
    ) -> Result<(), Violation> {
        let id = tag.delivery;
        let msg = match self.dels.get(&id) {
            Some(d) => Some(d.msg.clone()),
            None => message_id_of(payload),
        };
        let ci = self
            .conns
            .get(&conn)
            .cloned()
            .ok_or_else(|| format!("{id}: queued on {conn}, a connection never opened"))?;
        self.discover(id, msg)?;
        let d = &self.dels[&id];
        ensure!(
            ci.user == d.user,
            "{id} (message {} for {}) queued on {conn}, a connection of {}",
            d.msg,
            d.user,
            ci.user
        );
        if let Some(only) = &d.only {
            ensure!(
                *only == ci.client,
                "{id} is for device {only} only, queued on {conn} of device {}",
                ci.client
            );
        }
        ensure!(
            !d.took.contains(&ci.client),
            "{id} (message {}) queued again for device {}, which already took it",
            d.msg,
            ci.client
        );
        let msg = d.msg.clone();
        let same = self.msgs[&msg].payload == *payload;
        ensure!(
            same || message_id_of(payload).as_ref() == Some(&msg),
            "{id}: a frame of another message queued under its tag"
        );
        Ok(())
    }

    /// A frame reached connection `conn`'s peer.
    pub(super) fn wrote(&mut self, conn: ConnId, tag: Tag) -> Result<(), Violation> {
        let ci = self.conns[&conn].clone();
        let d = self
            .dels
            .get_mut(&tag.delivery)
            .ok_or_else(|| format!("{conn}: wrote a frame of {}, never queued", tag.delivery))?;
        let peer = self.peers.entry(conn).or_default();
        if peer.seen.insert(d.msg.clone()) {
            self.all_written.push(d.msg.clone());
        }
        if !peer.acked.contains(&d.msg) && !peer.unacked.contains(&d.msg) {
            peer.unacked.push(d.msg.clone());
        }
        if !d.require_ack && !d.took.contains(&ci.client) {
            d.took.push(ci.client);
        }
        Ok(())
    }

    /// Connection `conn` ACKed `msg`; `target` is the engine's match, if it
    /// took the ACK.
    pub(super) fn acked(
        &mut self,
        conn: ConnId,
        msg: &Arc<str>,
        target: Option<(Tag, ConnId)>,
    ) -> Result<(), Violation> {
        let ci = self.conns[&conn].clone();
        let peer = self.peers.entry(conn).or_default();
        peer.unacked.retain(|m| m != msg);
        if !peer.acked.contains(msg) {
            peer.acked.push(msg.clone());
        }
        // Was a device of this connection waiting for exactly this ACK?
        let awaited = self.snap.values().find(|s| {
            s.message_id == *msg
                && !s.waiting_retry
                && s.targets
                    .iter()
                    .any(|t| t.0 == conn && t.2 == TargetState::AwaitingAck)
        });
        if let Some(s) = awaited {
            ensure!(
                target.is_some(),
                "{conn} ACKed {msg}, awaited by {} on it, and the engine ignored the ACK",
                s.id
            );
        }
        let Some((tag, on)) = target else {
            self.tally.acks_ignored += 1;
            return Ok(());
        };
        self.tally.acks_accepted += 1;
        if on == conn {
            // Its own frame: written to this connection.
            let seen = self.peers.get(&conn).is_some_and(|p| p.seen.contains(msg));
            ensure!(
                seen,
                "{conn} ({}) ACKed {msg}, never written to it, and the engine took the \
                 ACK for {}",
                ci.client,
                tag.delivery
            );
        } else {
            // A replaced connection's late ACK counts for its successor's
            // resend: the same device, by its handshake identity.
            let to = self.conns.get(&on);
            ensure!(
                to.is_some_and(|to| to.user == ci.user && to.client == ci.client),
                "{conn} ({}/{}) ACKed {msg} and the engine completed {} on {on}, \
                 another device",
                ci.user,
                ci.client,
                tag.delivery
            );
        }
        self.discover(tag.delivery, Some(msg.clone()))?;
        let d = self.dels.get_mut(&tag.delivery).expect("discovered");
        ensure!(
            d.msg == *msg,
            "an ACK of {msg} completed {} (message {})",
            tag.delivery,
            d.msg
        );
        ensure!(
            d.user == ci.user,
            "{}'s ACK on {conn} completed {} for {}",
            ci.user,
            tag.delivery,
            d.user
        );
        ensure!(!d.ended, "an ACK completed {}, already ended", tag.delivery);
        if !d.took.contains(&ci.client) {
            d.took.push(ci.client);
        }
        Ok(())
    }

    /// Failures the reporter saw this step.
    pub(super) fn tapped(&mut self, new: &mut Vec<Failure>) -> Result<(), Violation> {
        for f in new.drain(..) {
            self.tally.failures_reported += 1;
            self.by_reason[f.reason.index() as usize] += 1;
            let index = self.tap.len();
            match f.delivery {
                Some(id) => {
                    let msg = Some(Arc::from(f.message().message_id.as_str()));
                    self.discover(id, msg)?;
                    let d = &self.dels[&id];
                    ensure!(!d.ended, "a failure reported for {id} after its result");
                    ensure!(
                        f.recipient == d.user,
                        "a failure of {id} names {}, the delivery is for {}",
                        f.recipient,
                        d.user
                    );
                    match &f.client_id {
                        Some(c) => {
                            ensure!(
                                !d.took.contains(c),
                                "{id}: device {c} took message {} and is reported failed \
                                 ({} on attempt {})",
                                d.msg,
                                f.reason.name(),
                                f.attempt
                            );
                            let conn = f.conn.ok_or_else(|| format!("{id}: no conn"))?;
                            let ci = &self.conns[&conn];
                            ensure!(
                                ci.client == *c && ci.user == d.user,
                                "{id}: failure on {conn} names device {c}"
                            );
                        }
                        None => ensure!(
                            f.reason == FailureReason::UserOffline,
                            "{id}: a {} failure without a device",
                            f.reason.name()
                        ),
                    }
                    if let Some(kind) = f.reason.timeout_kind() {
                        let want = match kind {
                            TimeoutKind::Ack => self.cfg.ack_timeout,
                            TimeoutKind::Send => self.cfg.send_timeout,
                            _ => self.cfg.client_timeout,
                        };
                        ensure!(f.waited == want, "{id}: waited {:?}", f.waited);
                    }
                    self.tap_by_delivery.entry(id).or_default().push(index);
                }
                None => self.loose_failures += 1,
            }
            self.tap.push(f);
        }
        Ok(())
    }

    /// A start the engine refused.
    pub(super) fn refused(&mut self, err: &crate::error::SendError) {
        use crate::error::SendError;
        match err {
            SendError::TooManyPending { .. } => self.expected.refused_pending += 1,
            SendError::MessageTooLarge { .. } => self.expected.refused_too_large += 1,
            _ => {}
        }
    }

    /// A plain send the offline store kept.
    pub(super) fn stored_plain(&mut self, msg: &Arc<str>) {
        *self.stored.entry(msg.clone()).or_default() += 1;
        self.expected.offline_stored += 1;
        self.tally.stored += 1;
    }

    /// A final result, on the loop callback or a thread waiter's channel.
    pub(super) fn result(
        &mut self,
        id: DeliveryId,
        r: &SendResult,
        via_thread: bool,
        now: Instant,
    ) -> Result<(), Violation> {
        if id == DeliveryId::NONE {
            return self.offline_end(r);
        }
        let msg = r.message_id.as_deref().map(Arc::from);
        self.discover(id, msg)?;
        let mut d = self.dels.remove(&id).expect("discovered");
        ensure!(!d.ended, "{id} ended twice");
        d.ended = true;
        ensure!(
            d.thread == via_thread,
            "{id}: the result went to the {} waiter",
            if via_thread { "thread" } else { "loop" }
        );
        let n = r.attempts.len();
        let max = self.cfg.retry.max_retries as usize + 1;
        ensure!(n >= 1 && n <= max, "{id}: {n} attempts (at most {max})");
        ensure!(
            r.total_retries as usize == n - 1,
            "{id}: total_retries {} with {n} attempts",
            r.total_retries
        );
        for (i, a) in r.attempts.iter().enumerate() {
            ensure!(
                a.attempt_number as usize == i + 1,
                "{id}: attempt {} numbered {}",
                i + 1,
                a.attempt_number
            );
            ensure!(
                a.success == a.error.is_none(),
                "{id}: attempt {} success {} with error {:?}",
                i + 1,
                a.success,
                a.error
            );
            ensure!(
                i + 1 == n || !a.success,
                "{id}: attempt {} succeeded but was not the last",
                i + 1
            );
        }
        let last = &r.attempts[n - 1];
        ensure!(
            r.success == last.success && r.success == r.final_error.is_none(),
            "{id}: success {} with final error {:?} and last attempt {:?}",
            r.success,
            r.final_error,
            last.error
        );
        let closed_by_shutdown = r.final_error == Some(FailureReason::ChannelClosed);
        if closed_by_shutdown {
            ensure!(self.shutdown, "{id}: channel_closed without a shutdown");
            ensure!(last.error.is_some(), "{id}: closed by shutdown mid-attempt");
        } else {
            ensure!(
                r.final_error == last.error,
                "{id}: final error {:?}, last attempt's {:?}",
                r.final_error,
                last.error
            );
        }
        ensure!(
            r.message_id.as_deref() == Some(&*d.msg),
            "{id}: result names message {:?}, not {}",
            r.message_id,
            d.msg
        );
        ensure!(
            r.replayed == d.replay,
            "{id}: replayed {} on a {}",
            r.replayed,
            if d.replay { "replay" } else { "first delivery" }
        );
        if r.stored_offline {
            ensure!(
                r.final_error == Some(FailureReason::UserOffline),
                "{id}: stored offline after {:?}",
                r.final_error
            );
        }
        if let Some(started) = d.started {
            let total = now.saturating_duration_since(started);
            ensure!(
                r.total_time == total,
                "{id}: total_time {:?}, {total:?} passed",
                r.total_time
            );
            let sum: Duration = r.attempts.iter().map(|a| a.duration).sum();
            ensure!(sum <= total, "{id}: attempts took {sum:?} of {total:?}");
        }
        if let Some(s) = self.snap.get(&id) {
            ensure!(
                s.replay == d.replay,
                "{id}: replay {} in the engine",
                s.replay
            );
        }
        if r.success {
            ensure!(
                !d.took.is_empty(),
                "{id}: success, but no device took message {} ({})",
                d.msg,
                if d.require_ack {
                    "no ACK accepted"
                } else {
                    "no frame written"
                }
            );
            if let Some(s) = self.snap.get(&id)
                && !s.waiting_retry
                && s.attempts + 1 == n
            {
                for (conn, client, state) in &s.targets {
                    ensure!(
                        d.took.contains(client),
                        "{id}: success, but device {client} ({conn}, {state:?}) of the final \
                         attempt never took message {} ({})",
                        d.msg,
                        if d.require_ack {
                            "no ACK from it"
                        } else {
                            "no frame written to it"
                        }
                    );
                }
            }
        }
        // The failures reported for it agree with its attempts.
        let entries = self.tap_by_delivery.remove(&id).unwrap_or_default();
        for k in 1..=n {
            let of_k: Vec<&Failure> = entries
                .iter()
                .map(|&i| &self.tap[i])
                .filter(|f| f.attempt as usize == k)
                .collect();
            match r.attempts[k - 1].error {
                Some(e) => {
                    ensure!(
                        of_k.first().is_some_and(|f| f.reason == e),
                        "{id}: attempt {k} failed with {}, handlers were told {:?}",
                        e.name(),
                        of_k.first().map(|f| f.reason.name())
                    );
                    let retry = k < n || closed_by_shutdown;
                    ensure!(
                        of_k.iter().all(|f| f.will_retry == retry),
                        "{id}: attempt {k}'s failures say will_retry {}, \
                         the delivery {} retried",
                        !retry,
                        if retry { "was" } else { "was not" }
                    );
                }
                None => ensure!(
                    of_k.is_empty(),
                    "{id}: attempt {k} succeeded, yet {} failure(s) were reported for it",
                    of_k.len()
                ),
            }
        }
        ensure!(
            entries
                .iter()
                .all(|&i| (1..=n).contains(&(self.tap[i].attempt as usize))),
            "{id}: a failure reported for an attempt it never made"
        );
        let e = &mut self.expected;
        e.retries_closed += (n - 1) as u64 + u64::from(closed_by_shutdown);
        if r.success {
            e.succeeded += 1;
            self.tally.successes += 1;
            if n > 1 {
                e.retry_successes += 1;
            }
        } else {
            e.final_failures += 1;
            self.tally.failures += 1;
            if let Some(reason) = r.final_error {
                self.tally.final_errors[reason.index() as usize] += 1;
            }
        }
        self.tally.retries += (n - 1) as u64;
        if d.replay {
            e.replays_ended += 1;
        }
        if r.stored_offline {
            e.offline_stored += 1;
            self.tally.stored += 1;
            *self.stored.entry(d.msg.clone()).or_default() += 1;
        }
        if d.replay {
            self.unstore(&d.msg)?;
        }
        self.dels.insert(id, d);
        Ok(())
    }

    /// A stored message ended. (A thread waiter's result, which says it was
    /// stored, may be read after the end of the stored copy: the counts are
    /// checked once a step's results are all in.)
    fn unstore(&mut self, msg: &Arc<str>) -> Result<(), Violation> {
        *self.stored.entry(msg.clone()).or_default() -= 1;
        Ok(())
    }

    /// No stored message ended more often than it was stored.
    pub(super) fn stores_balanced(&self) -> Result<(), Violation> {
        for (msg, n) in &self.stored {
            ensure!(
                *n >= 0,
                "stored message {msg} ended more often than it was stored"
            );
        }
        Ok(())
    }

    /// A stored message left the store unreplayed.
    fn offline_end(&mut self, r: &SendResult) -> Result<(), Violation> {
        let msg: Arc<str> = r
            .message_id
            .as_deref()
            .map(Arc::from)
            .ok_or("an offline end without a message id")?;
        match r.final_error {
            Some(FailureReason::OfflineEvicted) => self.expected.evicted += 1,
            Some(FailureReason::OfflineExpired) => self.expected.expired += 1,
            other => return Err(format!("offline end of {msg} with {other:?}")),
        }
        ensure!(
            !r.success && r.stored_offline && r.replayed && r.attempts.is_empty(),
            "offline end of {msg}: {r:?}"
        );
        self.unstore(&msg)
    }

    /// The counters and the stats snapshot agree with what was seen; `open`
    /// is the engine's snapshot after this step.
    pub(super) fn counters(
        &self,
        c: &crate::delivery::engine::EngineCounters,
        stats: &Stats,
        open: &[DeliverySnap],
        handler_dropped: u64,
    ) -> Result<(), Violation> {
        let e = &self.expected;
        let open_retries: u64 = open.iter().map(|s| s.attempts as u64).sum();
        let pairs = [
            ("succeeded", c.succeeded, e.succeeded),
            ("final_failures", c.final_failures, e.final_failures),
            ("retry_successes", c.retry_successes, e.retry_successes),
            ("retries", c.retries, e.retries_closed + open_retries),
            ("offline_stored", c.offline_stored, e.offline_stored),
            ("offline_evicted", c.offline_evicted, e.evicted),
            ("offline_expired", c.offline_expired, e.expired),
            (
                "refused_pending_cap",
                c.refused_pending_cap,
                e.refused_pending,
            ),
            (
                "pending_deliveries",
                stats.pending_deliveries,
                open.len() as u64,
            ),
            (
                "deliveries_succeeded",
                stats.deliveries_succeeded,
                e.succeeded,
            ),
            (
                "stats.final_failures",
                stats.final_failures,
                e.final_failures,
            ),
            ("stats.retries", stats.retries, c.retries),
            ("handler_dropped", stats.handler_dropped, handler_dropped),
        ];
        for (name, got, want) in pairs {
            ensure!(
                got == want,
                "counter {name} is {got}, the model says {want}"
            );
        }
        let unreported_validation = open
            .iter()
            .filter(|s| !s.waiting_retry)
            .flat_map(|s| &s.targets)
            .filter(|t| t.2 == TargetState::Failed(FailureReason::Validation))
            .count() as u64;
        let n = |r: FailureReason| self.by_reason[r.index() as usize];
        let timeouts = [TimeoutKind::Ack, TimeoutKind::Send, TimeoutKind::Connection]
            .map(|k| n(FailureReason::Timeout(k)));
        let by_reason = [
            (
                "total_failures",
                stats.total_failures,
                self.tap.len() as u64,
            ),
            (
                "queue_full_count",
                stats.queue_full_count,
                n(FailureReason::QueueFull),
            ),
            (
                "offline_count",
                stats.offline_count,
                n(FailureReason::UserOffline),
            ),
            (
                "conn_error_count",
                stats.conn_error_count,
                n(FailureReason::ConnError),
            ),
            ("timeout_count", stats.timeout_count, timeouts.iter().sum()),
            ("ack_timeouts", stats.ack_timeouts, timeouts[0]),
            ("send_timeouts", stats.send_timeouts, timeouts[1]),
            (
                "connection_timeouts",
                stats.connection_timeouts,
                timeouts[2],
            ),
            (
                // Reported when the attempt ends; until then the target
                // shows the failure.
                "duplicate_ids",
                c.duplicate_ids,
                n(FailureReason::Validation) + unreported_validation,
            ),
            (
                "failures without a delivery",
                self.loose_failures,
                e.refused_pending + e.refused_too_large + e.evicted + e.expired,
            ),
        ];
        for (name, got, want) in by_reason {
            ensure!(
                got == want,
                "{name} is {got}, the reported failures say {want}"
            );
        }
        Ok(())
    }

    /// The end of a run: every delivery ended, every stored message ended.
    pub(super) fn finish(&self, replayed: u64) -> Result<(), Violation> {
        for (id, d) in &self.dels {
            ensure!(d.ended, "{id} (message {}) never ended", d.msg);
        }
        for (msg, n) in &self.stored {
            ensure!(*n == 0, "stored message {msg}: {n} store(s) never ended");
        }
        ensure!(
            replayed == self.expected.replays_ended,
            "offline_replayed is {replayed}, {} replays ended",
            self.expected.replays_ended
        );
        Ok(())
    }
}
