//! The delivery engine: attempts, ACKs, retries, back-pressure and the
//! offline store, as a sans-IO state machine.
//!
//! The hub feeds it what happened — a send started, a frame written, an
//! ACK decoded, a frame failed, a connection opened or closed, time passed —
//! and hands it a [`Net`]: the registry's view of who is connected and the
//! rings to queue frames in. The engine never touches a socket, never reads
//! a clock (time is an argument), and never calls back into the hub: what
//! it decides goes into rings through `Net`, to the failure handlers
//! through the [`Reporter`], and to whoever waits for a result.
//!
//! A delivery is (message, user). An attempt offers the message to every
//! device of the user that has not taken it yet (or to `receiver_client`
//! only). A device takes it when its frame is written, or, with
//! `require_ack`, when it ACKs it. The attempt ends when every device it
//! targeted has taken or failed it; the retry policy then decides, and a
//! retry waits in the engine's own timing wheel.
//!
//! Back-pressure is not failure: a device whose ring (or ACK window) is full
//! gets the message in its connection's backlog, in order, and the drain of
//! the ring pulls it in. `queue_full` happens only when that backlog is full.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::acks::AckIndex;
use super::lanes::Lanes;
use super::offline::{OfflineLimits, OfflineStore};
use super::record::{DeliveryTable, Tag, TargetState, Waiter};
use super::{DeliveryId, Envelope, SendResult};
use crate::config::HubConfig;
use crate::error::SendError;
use crate::event::ConnId;
use crate::failure::reason::{FailureReason, TimeoutKind};
use crate::failure::{Failure, HandlerSet, Reporter};
use crate::message::Payload;
use crate::retry::{RetryBudget, RetryPolicy, SplitMix64};
use crate::util::timer::TimerWheel;

mod attempt;
#[cfg(test)]
pub(crate) mod audit;
mod outcome;

/// What the engine needs of the connections: who is connected, and rings
/// to put frames in. The hub implements it over its registry and slab.
pub(crate) trait Net {
    /// Calls `f` with every open connection of `user` and its client id.
    fn each_device(&self, user: &str, f: &mut dyn FnMut(ConnId, &Arc<str>));
    /// The registry's shared copy of a connected user's id.
    fn user_key(&self, user: &str) -> Option<Arc<str>>;
    /// Free entries in the ring of connection `conn`.
    fn ring_free(&self, conn: ConnId) -> usize;
    /// Queues a tagged frame; false when the ring is full or gone. For a
    /// proxy (a device on another hub) the frame goes to the cluster.
    fn enqueue(&mut self, conn: ConnId, payload: &Payload, tag: Tag) -> bool;
}

/// The outcome of one attempt another hub asked this one for.
#[derive(Debug, Clone)]
pub(crate) struct RemoteOutcome {
    pub(crate) node: Arc<str>,
    pub(crate) ticket: crate::cluster::wire::Ticket,
    pub(crate) error: Option<FailureReason>,
}

/// The engine's settings, taken from [`HubConfig`].
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    pub retry: RetryPolicy,
    pub ack_timeout: Duration,
    pub send_timeout: Duration,
    pub client_timeout: Duration,
    pub max_message_size: usize,
    pub max_inflight_acks: usize,
    pub pending_per_conn: usize,
    pub max_pending_deliveries: usize,
    pub offline: OfflineLimits,
    pub handler_workers: usize,
    pub handler_queue_capacity: usize,
}

impl EngineConfig {
    pub(crate) fn from_hub(c: &HubConfig) -> EngineConfig {
        EngineConfig {
            retry: c.retry.clone(),
            ack_timeout: c.ack_timeout,
            send_timeout: c.send_timeout,
            client_timeout: c.client_timeout,
            max_message_size: c.max_message_size,
            max_inflight_acks: c.max_inflight_acks.max(1),
            pending_per_conn: c.pending_per_conn,
            max_pending_deliveries: c.max_pending_deliveries.max(1),
            offline: OfflineLimits {
                per_user: c.offline_queue_per_user,
                max_messages: c.offline_max_messages,
                max_bytes: c.offline_max_bytes,
                ttl: c.offline_ttl,
            },
            handler_workers: c.handler_workers,
            handler_queue_capacity: c.handler_queue_capacity,
        }
    }
}

/// A relayed message's result, for its sender (`Waiter::Sender`).
#[derive(Debug, Clone)]
pub(crate) struct SenderNotice {
    pub(crate) to: ConnId,
    pub(crate) message_id: Option<crate::delivery::MessageId>,
    pub(crate) success: bool,
    pub(crate) attempts: u32,
    pub(crate) total_ms: u64,
    pub(crate) final_error: Option<FailureReason>,
    pub(crate) stored_offline: bool,
}

/// The engine's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Retry(DeliveryId),
    AckTimeout(Tag),
}

/// Counters the engine keeps (merged into `Stats` by the hub).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EngineCounters {
    pub retries: u64,
    pub retry_successes: u64,
    pub succeeded: u64,
    pub final_failures: u64,
    pub backlog_waits: u64,
    pub window_full: u64,
    pub unknown_acks: u64,
    pub refused_pending_cap: u64,
    pub duplicate_ids: u64,
    pub offline_stored: u64,
    pub offline_replayed: u64,
    pub offline_evicted: u64,
    pub offline_expired: u64,
    pub dropped_on_close: u64,
}

/// A user's retry budget, shared by that user's deliveries while any is
/// open: one user's failure storm drains only its own budget.
#[derive(Debug)]
struct UserBudget {
    budget: RetryBudget,
    deliveries: u32,
}

type ResultCallback = Box<dyn FnMut(DeliveryId, &SendResult) + Send>;

/// The delivery engine. `W` is the number of slots of its timing wheel.
pub(crate) struct Engine<const W: usize> {
    cfg: EngineConfig,
    table: DeliveryTable,
    lanes: Lanes,
    acks: AckIndex,
    timers: TimerWheel<Timer, W>,
    offline: OfflineStore,
    budgets: HashMap<Arc<str>, UserBudget>,
    /// Deliveries waiting for a retry, per user, in start order: a retry
    /// (or the user's reconnect) sends every earlier one of the user first,
    /// so jitter never reorders one user's messages.
    retry_order: HashMap<Arc<str>, BTreeMap<u64, DeliveryId>>,
    /// Reused list of deliveries to retry now.
    due: Vec<DeliveryId>,
    /// Results the built-in relay tells their senders, drained by the hub.
    sender_notices: Vec<SenderNotice>,
    /// Outcomes owed to other hubs of the cluster, drained by the hub.
    remote_outcomes: Vec<RemoteOutcome>,
    /// Connection ids from here up are proxies of remote devices.
    local_slots: usize,
    next_seq: u64,
    rng: SplitMix64,
    reporter: Reporter,
    on_result: Option<ResultCallback>,
    running: bool,
    pub counters: EngineCounters,
    /// A deliberate bug, switched on by the simulation's self-test only.
    #[cfg(test)]
    pub(crate) mutation: audit::Mutation,
}

impl<const W: usize> std::fmt::Debug for Engine<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("pending", &self.table.active())
            .field("acks_in_flight", &self.lanes.windows())
            .field("ack_index", &self.acks.len())
            .field("timers", &self.timers.len())
            .field("offline", &self.offline.messages())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// Granularity of the engine's wheel.
const TICK: Duration = Duration::from_millis(10);

impl<const W: usize> Engine<W> {
    /// An engine for `slots` connection slots.
    pub(crate) fn new(cfg: EngineConfig, slots: usize, now: Instant, seed: u64) -> Self {
        let deliveries = cfg.max_pending_deliveries.min(1024);
        Engine {
            table: DeliveryTable::with_capacity(deliveries),
            lanes: Lanes::with_slots(slots),
            acks: AckIndex::with_capacity(deliveries),
            timers: TimerWheel::with_capacity(TICK, now, deliveries * 2),
            offline: OfflineStore::new(cfg.offline),
            budgets: HashMap::with_capacity(deliveries),
            retry_order: HashMap::new(),
            due: Vec::new(),
            sender_notices: Vec::new(),
            remote_outcomes: Vec::new(),
            local_slots: slots,
            next_seq: 0,
            rng: SplitMix64::new(seed),
            reporter: Reporter::new(cfg.handler_workers, cfg.handler_queue_capacity),
            on_result: None,
            running: true,
            counters: EngineCounters::default(),
            #[cfg(test)]
            mutation: audit::Mutation::None,
            cfg,
        }
    }

    // ---- the host's side -------------------------------------------------

    pub(crate) fn add_handlers(&mut self, add: impl FnOnce(&mut HandlerSet)) {
        self.reporter.add_handlers(add);
    }

    pub(crate) fn on_result(&mut self, f: impl FnMut(DeliveryId, &SendResult) + Send + 'static) {
        self.on_result = Some(Box::new(f));
    }

    #[cfg(test)]
    pub(crate) fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// Counts a failure and hands it to the handlers (plain sends too).
    pub(crate) fn report(&mut self, failure: Failure) {
        self.reporter.report(failure);
    }

    /// Deliveries not yet final.
    pub(crate) fn pending(&self) -> usize {
        self.table.active()
    }

    /// `require_ack` frames in flight (queued or awaiting their ACK).
    pub(crate) fn acks_in_flight(&self) -> usize {
        self.lanes.windows()
    }

    /// Entries of the ACK index (in flight, or waiting in a backlog).
    #[cfg(test)]
    pub(crate) fn ack_index_len(&self) -> usize {
        self.acks.len()
    }

    /// Messages and bytes in the offline store.
    #[cfg(test)]
    pub(crate) fn offline_held(&self) -> (usize, usize) {
        (self.offline.messages(), self.offline.bytes())
    }

    /// Pending engine timers (retries, ACK deadlines).
    pub(crate) fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Adds the engine's counters and gauges to a stats snapshot.
    pub(crate) fn fill_stats(&self, s: &mut crate::stats::Stats) {
        let c = &self.counters;
        let f = &self.reporter.counters;
        s.total_failures = f.total;
        s.queue_full_count = f.queue_full;
        s.offline_count = f.offline;
        s.timeout_count = f.timeout;
        s.conn_error_count = f.conn_error;
        s.ack_timeouts = f.ack_timeouts;
        s.send_timeouts = f.send_timeouts;
        s.connection_timeouts = f.connection_timeouts;
        s.other_failures = f.other;
        s.retries = c.retries;
        s.retry_successes = c.retry_successes;
        s.deliveries_succeeded = c.succeeded;
        s.final_failures = c.final_failures;
        s.pending_deliveries = self.table.active() as u64;
        s.handler_dropped = self.reporter.dropped();
        let (handled, panics) = self.reporter.handled_and_panics();
        s.handler_handled = handled;
        s.handler_panics = panics;
        s.handler_backlog = self.reporter.backlog() as u64;
        s.offline_stored = c.offline_stored;
        s.offline_replayed = c.offline_replayed;
        s.offline_evicted = c.offline_evicted;
        s.offline_expired = c.offline_expired;
        s.offline_dropped = c.offline_evicted + c.offline_expired;
        s.offline_held = self.offline.messages() as u64;
        s.offline_bytes = self.offline.bytes() as u64;
        s.backlog_waits = c.backlog_waits;
        s.inflight_window_full = c.window_full;
        s.acks_in_flight = self.acks_in_flight() as u64;
        s.unknown_acks = c.unknown_acks;
        s.pending_cap_refusals = c.refused_pending_cap;
        s.duplicate_ids = c.duplicate_ids;
        s.dropped_on_close += c.dropped_on_close;
    }

    /// Failures counted as `cluster_unavailable`.
    pub(crate) fn cluster_failures(&self) -> u64 {
        self.reporter.counters.cluster_unavailable
    }

    /// When the engine next needs [`tick`](Self::tick).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    // ---- inputs ----------------------------------------------------------

    /// Starts a delivery of `env` to `user`. Errors only when it cannot
    /// start (shutting down, too large, too many pending); everything else
    /// ends in the result.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        user: &str,
        env: Envelope,
        waiter: Waiter,
        result: Option<SendResult>,
        net: &mut impl Net,
    ) -> Result<DeliveryId, SendError> {
        self.open(now, user, env, waiter, result, false, None, net)
    }

    /// Starts a delivery of `env` to one device of `user`, whatever the
    /// message's `receiver_client` says (a group member: the group's frame
    /// is shared by every member's delivery).
    pub(crate) fn start_for_device(
        &mut self,
        now: Instant,
        user: &str,
        client: &Arc<str>,
        env: Envelope,
        net: &mut impl Net,
    ) -> Result<DeliveryId, SendError> {
        let only = Some(client.clone());
        self.open(now, user, env, Waiter::Loop, None, false, only, net)
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        now: Instant,
        user: &str,
        env: Envelope,
        waiter: Waiter,
        result: Option<SendResult>,
        replay: bool,
        only: Option<Arc<str>>,
        net: &mut impl Net,
    ) -> Result<DeliveryId, SendError> {
        let refused = if !self.running {
            Some(SendError::ShuttingDown)
        } else if !replay && env.payload.len() > self.cfg.max_message_size {
            // (A replay was checked when sent; the store's `source` marker
            // may have made it a few bytes longer since.)
            Some(SendError::MessageTooLarge {
                size: env.payload.len(),
                limit: self.cfg.max_message_size,
            })
        } else if self.table.active() >= self.cfg.max_pending_deliveries {
            self.counters.refused_pending_cap += 1;
            Some(SendError::TooManyPending {
                limit: self.cfg.max_pending_deliveries,
            })
        } else {
            None
        };
        if let Some(err) = refused {
            if !matches!(err, SendError::ShuttingDown) {
                let reason = SendResult::refused(&err).final_error;
                let failure = Failure::new(
                    reason.unwrap_or(FailureReason::Validation),
                    Arc::from(user),
                    env.message.clone(),
                    env.payload.clone(),
                );
                self.report(failure);
            }
            return Err(err);
        }
        let user = net.user_key(user).unwrap_or_else(|| Arc::from(user));
        let require_ack = env.require_ack;
        let capacity = self.cfg.retry.max_retries as usize + 1;
        let id = self.table.open(now, env);
        self.budgets
            .entry(user.clone())
            .or_insert_with(|| UserBudget {
                budget: self.cfg.retry.new_budget(),
                deliveries: 0,
            })
            .deliveries += 1;
        let d = self.table.get_mut(id).expect("just opened");
        d.seq = self.next_seq;
        self.next_seq += 1;
        d.user = Some(user);
        d.require_ack = require_ack;
        d.waiter = waiter;
        d.replay = replay;
        d.only = only;
        match result {
            Some(r) => d.result = r,
            None => d.result.attempts.reserve(capacity),
        }
        self.start_attempt(now, id, net);
        Ok(id)
    }

    /// A tagged frame of `conn` reached the socket.
    ///
    /// A tag names a target of its delivery's current attempt; a frame left
    /// from an earlier attempt (partly written when its device reconnected,
    /// say) may carry the tag of a target now on another connection, so
    /// only a target on `conn` counts. The same holds for [`failed`].
    ///
    /// [`failed`]: Self::failed
    pub(crate) fn written(&mut self, now: Instant, conn: ConnId, tag: Tag, net: &mut impl Net) {
        let ack_timeout = self.cfg.ack_timeout;
        let Some(d) = self.table.get_mut(tag.delivery) else {
            return;
        };
        let require_ack = d.require_ack;
        #[cfg(test)]
        let require_ack = require_ack && self.mutation != audit::Mutation::SuccessOnWrite;
        let Some(t) = d.targets.get_mut(usize::from(tag.target)) else {
            return;
        };
        if t.state != TargetState::Queued || t.conn != conn {
            return;
        }
        if require_ack {
            t.state = TargetState::AwaitingAck;
            t.ack_timer = Some(
                self.timers
                    .insert(now + ack_timeout, Timer::AckTimeout(tag)),
            );
        } else {
            self.settle(now, tag, TargetState::Taken, net);
        }
    }

    /// Connection `conn` ACKed `message_id`: only its own frames count (or,
    /// on a replaced connection, its successor's resend of them).
    pub(crate) fn acked(
        &mut self,
        now: Instant,
        conn: ConnId,
        message_id: &str,
        net: &mut impl Net,
    ) {
        match self.ack_target(conn, message_id) {
            Some((tag, on)) => {
                self.settle(now, tag, TargetState::Taken, net);
                self.pump(now, on, net);
            }
            None => {
                self.counters.unknown_acks += 1;
                log::trace!("{conn}: ack for unknown message ignored");
            }
        }
    }

    /// The target an ACK of `message_id` on `conn` completes, and the
    /// connection whose backlog it frees: its own frame, or its successor's
    /// resend of it.
    fn ack_target(&self, conn: ConnId, message_id: &str) -> Option<(Tag, ConnId)> {
        if let Some(tag) = self.awaiting(conn, message_id, &[TargetState::AwaitingAck]) {
            return Some((tag, conn));
        }
        let to = self.lanes.get(conn).and_then(|l| l.successor)?;
        let states = [TargetState::AwaitingAck, TargetState::Queued];
        Some((self.awaiting(to, message_id, &states)?, to))
    }

    /// The target of `conn` waiting for an ACK of `message_id`, if any.
    fn awaiting(&self, conn: ConnId, message_id: &str, states: &[TargetState]) -> Option<Tag> {
        let tag = self.acks.get(conn, message_id)?;
        let d = self.table.get(tag.delivery)?;
        let t = d.targets.get(usize::from(tag.target))?;
        (d.message_id() == message_id && t.conn == conn && states.contains(&t.state)).then_some(tag)
    }

    /// A queued frame failed (expired in its ring, or its connection closed).
    pub(crate) fn failed(
        &mut self,
        now: Instant,
        conn: ConnId,
        tag: Tag,
        reason: FailureReason,
        net: &mut impl Net,
    ) {
        let on_conn = self
            .table
            .get(tag.delivery)
            .and_then(|d| d.targets.get(usize::from(tag.target)))
            .is_some_and(|t| t.conn == conn);
        if on_conn {
            self.settle(now, tag, TargetState::Failed(reason), net);
        }
    }

    /// A connection was upgraded: it can take deliveries.
    pub(crate) fn conn_opened(&mut self, conn: ConnId) {
        self.lanes.open(conn);
    }

    /// Connection `conn` closes: it takes no new frames, and its backlog
    /// fails with `reason`. ACKs are still honoured until it is removed.
    pub(crate) fn conn_closing(
        &mut self,
        now: Instant,
        conn: ConnId,
        reason: FailureReason,
        net: &mut impl Net,
    ) {
        let Some(lane) = self.lanes.get_mut(conn) else {
            return;
        };
        lane.closing = true;
        while let Some(w) = self.lanes.pop_backlog(conn) {
            #[cfg(test)]
            if self.mutation == audit::Mutation::LoseBacklogOnClose {
                continue;
            }
            self.counters.dropped_on_close += 1;
            self.settle(now, w.tag, TargetState::Failed(reason), net);
        }
    }

    /// Connection `conn` is gone (its ring already drained through
    /// [`failed`](Self::failed)): what still waits on it fails.
    pub(crate) fn conn_removed(
        &mut self,
        now: Instant,
        conn: ConnId,
        reason: FailureReason,
        net: &mut impl Net,
    ) {
        self.conn_closing(now, conn, reason, net);
        self.fail_window(now, conn, reason, net);
        if let Some(lane) = self.lanes.get_mut(conn) {
            lane.conn = None;
            lane.successor = None;
        }
    }

    /// The same device connected again as `new` while `old` still closes:
    /// everything `old` holds unacknowledged fails now (to be resent to
    /// `new` in order), and a late ACK on `old` counts for that resend.
    pub(crate) fn conn_replaced(
        &mut self,
        now: Instant,
        old: ConnId,
        new: ConnId,
        net: &mut impl Net,
    ) {
        if let Some(lane) = self.lanes.get_mut(old) {
            lane.successor = Some(new);
        }
        self.conn_closing(now, old, FailureReason::ConnError, net);
        self.fail_window(now, old, FailureReason::ConnError, net);
    }

    fn fail_window(
        &mut self,
        now: Instant,
        conn: ConnId,
        reason: FailureReason,
        net: &mut impl Net,
    ) {
        while let Some(tag) = self.lanes.get(conn).and_then(|l| l.window.last().copied()) {
            let before = self.lanes.window_len(conn);
            self.settle(now, tag, TargetState::Failed(reason), net);
            if self.lanes.window_len(conn) == before {
                // Not settled (already final): drop it from the window.
                self.lanes.window_remove(conn, (before - 1) as u32);
            }
        }
    }

    /// Ring space freed on `conn`: pull its backlog in.
    pub(crate) fn ring_space(&mut self, now: Instant, conn: ConnId, net: &mut impl Net) {
        self.pump(now, conn, net);
    }

    /// Whether `conn` has deliveries waiting for ring space.
    pub(crate) fn has_backlog(&self, conn: ConnId) -> bool {
        self.lanes.get(conn).is_some_and(|l| !l.backlog.is_empty())
    }

    /// `user` connected: replay what the offline store kept for them.
    pub(crate) fn user_connected(&mut self, now: Instant, user: &str, net: &mut impl Net) {
        // What waited for a retry and what the store kept go out together
        // in the order the messages were first sent.
        let mut stored = self.offline.take(user).unwrap_or_default();
        stored.make_contiguous().sort_by_key(|s| s.origin);
        // Messages for one device that is not connected stay stored.
        let mut later = VecDeque::new();
        while let Some(s) = stored.pop_front() {
            if let Some(only) = s.only.as_deref() {
                let mut present = false;
                net.each_device(user, &mut |_, c| present |= &**c == only);
                if !present {
                    later.push_back(s);
                    continue;
                }
            }
            self.retry_now(now, user, s.origin, net);
            if self.table.active() >= self.cfg.max_pending_deliveries {
                // Held back, not refused: the store keeps it (no failure).
                stored.push_front(s);
                break;
            }
            let Some(env) = s.envelope() else {
                log::error!("stored message {} no longer decodes: dropped", s.id);
                continue;
            };
            match self.open(now, user, env, Waiter::Loop, None, true, None, net) {
                Ok(_) => self.counters.offline_replayed += 1,
                Err(_) => {
                    stored.push_front(s);
                    break;
                }
            }
        }
        later.append(&mut stored);
        if !later.is_empty() {
            let user = net.user_key(user).unwrap_or_else(|| Arc::from(user));
            self.offline.restore(&user, later);
        }
        self.retry_now(now, user, u64::MAX, net);
    }

    /// Starts the next attempt of every delivery of `user` that waits for a
    /// retry and started no later than `upto`, oldest first.
    fn retry_now(&mut self, now: Instant, user: &str, upto: u64, net: &mut impl Net) {
        let Some(waiting) = self.retry_order.get_mut(user) else {
            return;
        };
        let mut due = std::mem::take(&mut self.due);
        while let Some(entry) = waiting.first_entry() {
            if *entry.key() > upto {
                break;
            }
            due.push(entry.remove());
        }
        if waiting.is_empty() {
            self.retry_order.remove(user);
        }
        for &id in &due {
            if let Some(d) = self.table.get_mut(id) {
                if let Some(t) = d.retry_timer.take() {
                    self.timers.cancel(t);
                }
                self.start_attempt(now, id, net);
            }
        }
        due.clear();
        self.due = due;
    }

    /// Runs every expired engine timer and offline expiry.
    pub(crate) fn tick(&mut self, now: Instant, net: &mut impl Net) {
        while let Some(timer) = self.timers.poll(now) {
            match timer {
                Timer::Retry(id) => {
                    let Some(d) = self.table.get_mut(id) else {
                        continue;
                    };
                    d.retry_timer = None;
                    let (user, seq) = (d.user.clone(), d.seq);
                    if let Some(user) = user {
                        self.retry_now(now, &user, seq, net);
                    }
                }
                Timer::AckTimeout(tag) => {
                    let local_slots = self.local_slots;
                    let (conn, reason) = match self.table.target_mut(tag) {
                        Some(t) if t.state == TargetState::AwaitingAck => {
                            t.ack_timer = None;
                            (t.conn, FailureReason::Timeout(TimeoutKind::Ack))
                        }
                        // A remote device's hub never answered.
                        Some(t)
                            if t.state == TargetState::Queued && t.conn.index() >= local_slots =>
                        {
                            t.ack_timer = None;
                            (t.conn, FailureReason::ClusterUnavailable)
                        }
                        _ => continue,
                    };
                    self.settle(now, tag, TargetState::Failed(reason), net);
                    self.pump(now, conn, net);
                }
            }
        }
        let mut gone = Vec::new();
        self.offline
            .expire(now, &mut |u, s, why| gone.push((u, s, why)));
        for (user, env, why) in gone {
            self.offline_gone(now, user, env, why);
        }
    }

    /// Shutdown: no new deliveries, and those waiting for a retry end now.
    pub(crate) fn shut_down(&mut self, now: Instant) {
        self.running = false;
        let ids: Vec<DeliveryId> = self.table.active_ids().collect();
        for id in ids {
            if self.table.get(id).is_some_and(|d| d.retry_timer.is_some()) {
                self.finalize(now, id, Some(FailureReason::ChannelClosed));
            }
        }
    }

    /// Another hub answered for a remote device's part (`error`: `None`
    /// when the device took the message).
    pub(crate) fn remote_outcome(
        &mut self,
        now: Instant,
        conn: ConnId,
        tag: Tag,
        error: Option<FailureReason>,
        net: &mut impl Net,
    ) {
        let queued_here = self
            .table
            .target_mut(tag)
            .is_some_and(|t| t.conn == conn && t.state == TargetState::Queued);
        if !queued_here {
            return;
        }
        let state = match error {
            None => TargetState::Taken,
            Some(r) => TargetState::Failed(r),
        };
        self.settle(now, tag, state, net);
        self.pump(now, conn, net);
    }

    /// Starts the one attempt another hub asks for: to `client` of `user`
    /// on this hub only; the outcome goes back through
    /// [`drain_remote_outcomes`](Self::drain_remote_outcomes).
    pub(crate) fn start_for_remote(
        &mut self,
        now: Instant,
        user: &str,
        client: &str,
        env: Envelope,
        waiter: super::RemoteWaiter,
        net: &mut impl Net,
    ) -> Result<DeliveryId, SendError> {
        let only = Some(Arc::from(client));
        let waiter = Waiter::Remote(waiter);
        self.open(now, user, env, waiter, None, false, only, net)
    }

    /// Hands the outcomes owed to other hubs to `f`.
    pub(crate) fn drain_remote_outcomes(&mut self, mut f: impl FnMut(&RemoteOutcome)) {
        for o in &self.remote_outcomes {
            f(o);
        }
        self.remote_outcomes.clear();
    }

    /// `require_ack` of a delivery under way.
    pub(crate) fn require_ack_of(&self, id: DeliveryId) -> Option<bool> {
        self.table.get(id).map(|d| d.require_ack)
    }

    /// The message id of a delivery under way.
    pub(crate) fn message_id_of(&self, id: DeliveryId) -> Option<super::MessageId> {
        self.table.get(id).map(|d| d.message_id_arc())
    }

    /// Whether `conn` is a proxy of a device on another hub.
    pub(crate) fn is_proxy(&self, conn: ConnId) -> bool {
        conn.index() >= self.local_slots
    }

    /// How long a remote device's hub has to answer: its ring's
    /// `send_timeout`, its ACK deadline, and a second for the way back.
    pub(super) fn remote_deadline(&self, require_ack: bool) -> Duration {
        let ack = if require_ack {
            self.cfg.ack_timeout
        } else {
            Duration::ZERO
        };
        self.cfg.send_timeout + ack + Duration::from_secs(1)
    }

    /// Hands the results the built-in relay owes its senders to `f`.
    pub(crate) fn drain_sender_notices(&mut self, mut f: impl FnMut(&SenderNotice)) {
        for n in &self.sender_notices {
            f(n);
        }
        self.sender_notices.clear();
    }

    /// Whether the offline store keeps messages.
    pub(crate) fn stores_offline(&self) -> bool {
        self.offline.enabled()
    }

    /// Keeps a message of a plain send for an offline user.
    pub(crate) fn store_offline(&mut self, now: Instant, user: &str, env: Envelope) -> bool {
        let user: Arc<str> = Arc::from(user);
        let origin = self.next_seq;
        self.next_seq += 1;
        self.store(now, &user, env, origin)
    }
}
