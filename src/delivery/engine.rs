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
use std::time::{Duration, Instant, SystemTime};

use super::acks::AckIndex;
use super::lanes::{Lanes, Waiting};
use super::offline::{Gone, OfflineLimits, OfflineStore};
use super::record::{DeliveryTable, DeliveryTarget, Tag, TargetState, Waiter};
use super::{DeliveryId, Envelope, SendAttempt, SendResult};
use crate::config::HubConfig;
use crate::error::SendError;
use crate::event::ConnId;
use crate::failure::reason::{FailureReason, TimeoutKind};
use crate::failure::{Failure, HandlerSet, Reporter};
use crate::message::Payload;
use crate::retry::{RetryBudget, RetryDecision, RetryPolicy, SplitMix64};
use crate::util::timer::TimerWheel;

#[cfg(test)]
pub(crate) mod audit;

/// What the engine needs of the connections: who is connected, and rings
/// to put frames in. The hub implements it over its registry and slab.
pub(crate) trait Net {
    /// Calls `f` with every open connection of `user` and its client id.
    fn each_device(&self, user: &str, f: &mut dyn FnMut(ConnId, &Arc<str>));
    /// The registry's shared copy of a connected user's id.
    fn user_key(&self, user: &str) -> Option<Arc<str>>;
    /// Free entries in the ring of connection `conn`.
    fn ring_free(&self, conn: ConnId) -> usize;
    /// Queues a tagged frame; false when the ring is full or gone.
    fn enqueue(&mut self, conn: ConnId, payload: &Payload, tag: Tag) -> bool;
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
    pub fn from_hub(c: &HubConfig) -> EngineConfig {
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
    pub fn new(cfg: EngineConfig, slots: usize, now: Instant, seed: u64) -> Self {
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

    pub fn add_handlers(&mut self, add: impl FnOnce(&mut HandlerSet)) {
        self.reporter.add_handlers(add);
    }

    pub fn on_result(&mut self, f: impl FnMut(DeliveryId, &SendResult) + Send + 'static) {
        self.on_result = Some(Box::new(f));
    }

    #[cfg(test)]
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// Counts a failure and hands it to the handlers (plain sends too).
    pub fn report(&mut self, failure: Failure) {
        self.reporter.report(failure);
    }

    /// Deliveries not yet final.
    pub fn pending(&self) -> usize {
        self.table.active()
    }

    /// `require_ack` frames in flight (queued or awaiting their ACK).
    pub fn acks_in_flight(&self) -> usize {
        self.lanes.windows()
    }

    /// Entries of the ACK index (in flight, or waiting in a backlog).
    #[cfg(test)]
    pub fn ack_index_len(&self) -> usize {
        self.acks.len()
    }

    /// Messages and bytes in the offline store.
    #[cfg(test)]
    pub fn offline_held(&self) -> (usize, usize) {
        (self.offline.messages(), self.offline.bytes())
    }

    /// Pending engine timers (retries, ACK deadlines).
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Adds the engine's counters and gauges to a stats snapshot.
    pub fn fill_stats(&self, s: &mut crate::stats::Stats) {
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

    /// When the engine next needs [`tick`](Self::tick).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    // ---- inputs ----------------------------------------------------------

    /// Starts a delivery of `env` to `user`. Errors only when it cannot
    /// start (shutting down, too large, too many pending); everything else
    /// ends in the result.
    pub fn start(
        &mut self,
        now: Instant,
        user: &str,
        env: Envelope,
        waiter: Waiter,
        result: Option<SendResult>,
        net: &mut impl Net,
    ) -> Result<DeliveryId, SendError> {
        self.open(now, user, env, waiter, result, false, net)
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
                    Some(env.message.clone()),
                    env.payload.clone(),
                );
                self.report(failure);
            }
            return Err(err);
        }
        let user = net.user_key(user).unwrap_or_else(|| Arc::from(user));
        let require_ack = env.message.require_ack;
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
    pub fn written(&mut self, now: Instant, conn: ConnId, tag: Tag, net: &mut impl Net) {
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
    pub fn acked(&mut self, now: Instant, conn: ConnId, message_id: &str, net: &mut impl Net) {
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
    pub fn failed(
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
    pub fn conn_opened(&mut self, conn: ConnId) {
        self.lanes.open(conn);
    }

    /// Connection `conn` closes: it takes no new frames, and its backlog
    /// fails with `reason`. ACKs are still honoured until it is removed.
    pub fn conn_closing(
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
        while let Some(w) = self.lanes.get_mut(conn).and_then(|l| l.backlog.pop_front()) {
            if let Some(lane) = self.lanes.get_mut(conn) {
                lane.backlog_bytes -= w.bytes;
            }
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
    pub fn conn_removed(
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
    pub fn conn_replaced(&mut self, now: Instant, old: ConnId, new: ConnId, net: &mut impl Net) {
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
    pub fn ring_space(&mut self, now: Instant, conn: ConnId, net: &mut impl Net) {
        self.pump(now, conn, net);
    }

    /// Whether `conn` has deliveries waiting for ring space.
    pub fn has_backlog(&self, conn: ConnId) -> bool {
        self.lanes.get(conn).is_some_and(|l| !l.backlog.is_empty())
    }

    /// `user` connected: replay what the offline store kept for them.
    pub fn user_connected(&mut self, now: Instant, user: &str, net: &mut impl Net) {
        // What waited for a retry goes first: it was sent before the user
        // went offline, what the store kept after.
        self.retry_now(now, user, u64::MAX, net);
        let mut stored = self.offline.take(user).unwrap_or_default();
        // Messages for one device that is not connected stay stored.
        let mut later = VecDeque::new();
        while let Some(s) = stored.pop_front() {
            let only = s.envelope.message.receiver_client.as_str();
            if !only.is_empty() {
                let mut present = false;
                net.each_device(user, &mut |_, c| present |= &**c == only);
                if !present {
                    later.push_back(s);
                    continue;
                }
            }
            if self.table.active() >= self.cfg.max_pending_deliveries {
                // Held back, not refused: the store keeps it (no failure).
                stored.push_front(s);
                break;
            }
            let env = s.envelope.clone();
            match self.open(now, user, env, Waiter::Loop, None, true, net) {
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
    pub fn tick(&mut self, now: Instant, net: &mut impl Net) {
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
                    let conn = match self.table.target_mut(tag) {
                        Some(t) if t.state == TargetState::AwaitingAck => {
                            t.ack_timer = None;
                            t.conn
                        }
                        _ => continue,
                    };
                    let reason = FailureReason::Timeout(TimeoutKind::Ack);
                    self.settle(now, tag, TargetState::Failed(reason), net);
                    self.pump(now, conn, net);
                }
            }
        }
        let mut gone = Vec::new();
        self.offline
            .expire(now, &mut |u, s, why| gone.push((u, s.envelope, why)));
        for (user, env, why) in gone {
            self.offline_gone(now, user, env, why);
        }
    }

    /// Shutdown: no new deliveries, and those waiting for a retry end now.
    pub fn shut_down(&mut self, now: Instant) {
        self.running = false;
        let ids: Vec<DeliveryId> = self.table.active_ids().collect();
        for id in ids {
            if self.table.get(id).is_some_and(|d| d.retry_timer.is_some()) {
                self.finalize(now, id, Some(FailureReason::ChannelClosed));
            }
        }
    }

    /// Whether the offline store keeps messages.
    pub fn stores_offline(&self) -> bool {
        self.offline.enabled()
    }

    /// Keeps a message of a plain send for an offline user.
    pub fn store_offline(&mut self, now: Instant, user: &str, env: Envelope) -> bool {
        let user: Arc<str> = Arc::from(user);
        self.store(now, &user, env)
    }

    // ---- the state machine -----------------------------------------------

    /// Offers the message to every device still missing it.
    fn start_attempt(&mut self, now: Instant, id: DeliveryId, net: &mut impl Net) {
        #[cfg(test)]
        let retry_taken = self.mutation == audit::Mutation::RetryTakenDevices;
        let Some(d) = self.table.get_mut(id) else {
            return;
        };
        d.attempt_started = now;
        d.attempt_started_wall = SystemTime::now();
        d.retry_timer = None;
        d.targets.clear();
        let (Some(user), Some(env)) = (d.user.clone(), d.envelope.as_ref()) else {
            return;
        };
        let only = env.message.receiver_client.as_str();
        let (targets, taken) = (&mut d.targets, &d.taken[..]);
        #[cfg(test)]
        let taken = if retry_taken { &[] } else { taken };
        net.each_device(&user, &mut |conn, client_id| {
            if (only.is_empty() || &**client_id == only) && !taken.iter().any(|c| c == client_id) {
                targets.push(DeliveryTarget {
                    conn,
                    client_id: client_id.clone(),
                    state: TargetState::Queued,
                    ack_timer: None,
                    window_pos: None,
                });
            }
        });
        let count = d.targets.len();
        for i in 0..count {
            let tag = Tag {
                delivery: id,
                target: i as u16,
            };
            self.offer(now, tag, net);
        }
        if self.table.get(id).is_some_and(|d| d.outstanding() == 0) {
            self.finish_attempt(now, id, net);
        }
    }

    /// Puts one target's frame in its ring, or in its connection's backlog.
    fn offer(&mut self, now: Instant, tag: Tag, net: &mut impl Net) {
        let Some(d) = self.table.get(tag.delivery) else {
            return;
        };
        let (require_ack, payload) = (d.require_ack, d.payload().clone());
        let conn = d.targets[usize::from(tag.target)].conn;
        let Some(lane) = self.lanes.get(conn).filter(|l| !l.closing) else {
            self.set_failed(tag, FailureReason::ConnError);
            return;
        };
        let backlogged = !lane.backlog.is_empty();
        let window_full = require_ack && lane.window.len() >= self.cfg.max_inflight_acks;
        if require_ack {
            let message_id = self.table.get(tag.delivery).map(|d| d.message_id_arc());
            let Some(message_id) = message_id else { return };
            if self.acks.insert(conn, &message_id, tag).is_err() {
                // The same id already in flight to this device: never merge
                // two messages into one ACK.
                self.counters.duplicate_ids += 1;
                self.set_failed(tag, FailureReason::Validation);
                return;
            }
        }
        if !backlogged && !window_full && net.enqueue(conn, &payload, tag) {
            self.queued(tag, conn, require_ack);
            return;
        }
        if window_full {
            self.counters.window_full += 1;
        }
        let lane = self.lanes.get_mut(conn).expect("checked above");
        if lane.backlog_bytes + payload.len() > self.cfg.pending_per_conn {
            self.forget_ack(tag);
            self.set_failed(tag, FailureReason::QueueFull);
            return;
        }
        lane.backlog_bytes += payload.len();
        lane.backlog.push_back(Waiting {
            tag,
            bytes: payload.len(),
            since: now,
            require_ack,
        });
        self.counters.backlog_waits += 1;
        if let Some(t) = self.table.target_mut(tag) {
            t.state = TargetState::Backlogged;
        }
    }

    /// The target's frame is in its ring.
    fn queued(&mut self, tag: Tag, conn: ConnId, require_ack: bool) {
        let pos = if require_ack {
            self.lanes.window_push(conn, tag)
        } else {
            None
        };
        if let Some(t) = self.table.target_mut(tag) {
            t.state = TargetState::Queued;
            t.window_pos = pos;
        }
    }

    /// Moves what fits from `conn`'s backlog into its ring, in order.
    fn pump(&mut self, now: Instant, conn: ConnId, net: &mut impl Net) {
        loop {
            let Some(lane) = self.lanes.get(conn).filter(|l| !l.closing) else {
                return;
            };
            let Some(w) = lane.backlog.front().copied() else {
                return;
            };
            let window = lane.window.len();
            let expired = now.saturating_duration_since(w.since) >= self.cfg.send_timeout;
            if !expired
                && (w.require_ack && window >= self.cfg.max_inflight_acks
                    || net.ring_free(conn) == 0)
            {
                return;
            }
            if let Some(lane) = self.lanes.get_mut(conn) {
                lane.backlog.pop_front();
                lane.backlog_bytes -= w.bytes;
            }
            let payload = self.table.get(w.tag.delivery).map(|d| d.payload().clone());
            match payload {
                Some(_) if expired => {
                    let reason = FailureReason::Timeout(TimeoutKind::Send);
                    self.settle(now, w.tag, TargetState::Failed(reason), net);
                }
                Some(p) if net.enqueue(conn, &p, w.tag) => self.queued(w.tag, conn, w.require_ack),
                Some(_) => {
                    // The ring said it had room: only a closed ring refuses.
                    self.settle(
                        now,
                        w.tag,
                        TargetState::Failed(FailureReason::ConnError),
                        net,
                    );
                }
                None => {}
            }
        }
    }

    /// A target's part of the attempt is over: take it out of the window,
    /// the ACK index and the wheel, and end the attempt if it was the last.
    fn settle(&mut self, now: Instant, tag: Tag, state: TargetState, net: &mut impl Net) {
        let Some(t) = self.table.target_mut(tag) else {
            return;
        };
        if !t.state.is_outstanding() {
            return;
        }
        let (conn, pos, timer) = (t.conn, t.window_pos.take(), t.ack_timer.take());
        t.state = state;
        if let Some(k) = timer {
            self.timers.cancel(k);
        }
        if let Some(pos) = pos
            && let Some(moved) = self.lanes.window_remove(conn, pos)
            && let Some(m) = self.table.target_mut(moved)
        {
            m.window_pos = Some(pos);
        }
        self.forget_ack(tag);
        if self
            .table
            .get(tag.delivery)
            .is_some_and(|d| d.outstanding() == 0)
        {
            self.finish_attempt(now, tag.delivery, net);
        }
    }

    fn forget_ack(&mut self, tag: Tag) {
        let Some(d) = self.table.get(tag.delivery) else {
            return;
        };
        if d.require_ack {
            let conn = d.targets[usize::from(tag.target)].conn;
            let id = d.message_id_arc();
            self.acks.remove(conn, &id, tag);
        }
    }

    fn set_failed(&mut self, tag: Tag, reason: FailureReason) {
        if let Some(t) = self.table.target_mut(tag) {
            t.state = TargetState::Failed(reason);
        }
    }

    /// Every device of the attempt has answered: success, retry or give up.
    fn finish_attempt(&mut self, now: Instant, id: DeliveryId, _net: &mut impl Net) {
        let Some(d) = self.table.get_mut(id) else {
            return;
        };
        let first_failure = d.targets.iter().find_map(|t| match t.state {
            TargetState::Failed(r) => Some(r),
            _ => None,
        });
        // No device left to try but one already has it: the user has it.
        let error = match first_failure {
            Some(r) => Some(r),
            None if d.targets.is_empty() && d.taken.is_empty() => Some(FailureReason::UserOffline),
            None => None,
        };
        let attempt_number = d.result.attempts.len() as u32 + 1;
        d.result.attempts.push(SendAttempt {
            attempt_number,
            start_time: d.attempt_started_wall,
            duration: now.saturating_duration_since(d.attempt_started),
            error,
            success: error.is_none(),
        });
        for t in &d.targets {
            if t.state == TargetState::Taken {
                d.taken.push(t.client_id.clone());
            }
        }
        let Some(reason) = error else {
            self.finalize(now, id, None);
            return;
        };
        let elapsed = now.saturating_duration_since(d.started);
        let budget = d
            .user
            .as_ref()
            .and_then(|u| self.budgets.get_mut(u))
            .map(|b| &mut b.budget);
        let decision = match budget {
            Some(budget) if self.running => self.cfg.retry.should_retry(
                reason,
                attempt_number - 1,
                elapsed,
                budget,
                &mut self.rng,
            ),
            _ => RetryDecision::GiveUp(crate::retry::GiveUpReason::NotRetryable),
        };
        let will_retry = matches!(decision, RetryDecision::Retry { .. });
        self.report_attempt_failures(id, attempt_number, will_retry);
        match decision {
            RetryDecision::Retry { delay } => {
                self.counters.retries += 1;
                let key = self.timers.insert(now + delay, Timer::Retry(id));
                if let Some(d) = self.table.get_mut(id) {
                    d.retry_timer = Some(key);
                    if let Some(user) = &d.user {
                        self.retry_order
                            .entry(user.clone())
                            .or_default()
                            .insert(d.seq, id);
                    }
                }
                log::debug!(
                    "{id}: {} on attempt {attempt_number}, retry in {delay:?}",
                    reason.name()
                );
            }
            RetryDecision::GiveUp(why) => {
                log::debug!(
                    "{id}: {} on attempt {attempt_number}, giving up: {}",
                    reason.name(),
                    why.as_str()
                );
                self.finalize(now, id, Some(reason));
            }
        }
    }

    fn report_attempt_failures(&mut self, id: DeliveryId, attempt: u32, will_retry: bool) {
        let Some(d) = self.table.get(id) else {
            return;
        };
        let (Some(user), Some(env)) = (d.user.clone(), d.envelope.clone()) else {
            return;
        };
        let base = |reason| {
            let mut f = Failure::new(
                reason,
                user.clone(),
                Some(env.message.clone()),
                env.payload.clone(),
            );
            f.delivery = Some(id);
            f.attempt = attempt;
            f.will_retry = will_retry;
            f
        };
        if d.targets.is_empty() {
            if d.taken.is_empty() {
                self.reporter.report(base(FailureReason::UserOffline));
            }
            return;
        }
        for i in 0..d.targets.len() {
            let Some(t) = self.table.get(id).map(|d| &d.targets[i]) else {
                return;
            };
            if let TargetState::Failed(reason) = t.state {
                let mut f = base(reason);
                f.client_id = Some(t.client_id.clone());
                f.conn = Some(t.conn);
                f.waited = self.waited(reason);
                self.reporter.report(f);
            }
        }
    }

    /// The deadline behind a timeout reason.
    pub fn waited(&self, reason: FailureReason) -> Duration {
        match reason.timeout_kind() {
            Some(TimeoutKind::Ack) => self.cfg.ack_timeout,
            Some(TimeoutKind::Send) => self.cfg.send_timeout,
            Some(TimeoutKind::Connection) => self.cfg.client_timeout,
            _ => Duration::ZERO,
        }
    }

    fn finalize(&mut self, now: Instant, id: DeliveryId, error: Option<FailureReason>) {
        let Some(d) = self.table.get_mut(id) else {
            return;
        };
        if let Some(t) = d.retry_timer.take() {
            self.timers.cancel(t);
            if let Some(user) = &d.user
                && let Some(waiting) = self.retry_order.get_mut(user)
            {
                waiting.remove(&d.seq);
                if waiting.is_empty() {
                    self.retry_order.remove(user);
                }
            }
        }
        for t in &mut d.targets {
            if let Some(k) = t.ack_timer.take() {
                self.timers.cancel(k);
            }
        }
        let r = &mut d.result;
        r.success = error.is_none();
        r.total_retries = (r.attempts.len() as u32).saturating_sub(1);
        r.total_time = now.saturating_duration_since(d.started);
        r.final_error = error;
        r.message_id = d.envelope.as_ref().map(|e| e.id.clone());
        r.replayed = d.replay;
        if r.success {
            self.counters.succeeded += 1;
            if r.total_retries > 0 {
                self.counters.retry_successes += 1;
            }
        } else {
            self.counters.final_failures += 1;
        }
        let user = d.user.take();
        if let Some(u) = &user
            && let Some(b) = self.budgets.get_mut(u)
        {
            if r.success {
                b.budget.on_success();
            }
            b.deliveries -= 1;
            if b.deliveries == 0 {
                self.budgets.remove(u);
            }
        }
        let keep = error == Some(FailureReason::UserOffline) && self.offline.enabled();
        if keep && let (Some(u), Some(env)) = (&user, d.envelope.clone()) {
            let stored = self.store(now, u, env);
            if let Some(d) = self.table.get_mut(id) {
                d.result.stored_offline = stored;
            }
        }
        let Some(d) = self.table.get_mut(id) else {
            return;
        };
        match std::mem::replace(&mut d.waiter, Waiter::Loop) {
            Waiter::Loop => {
                if let Some(cb) = &mut self.on_result {
                    cb(id, &d.result);
                }
            }
            Waiter::Thread(tx) => {
                // Moves the result to the waiting thread; the slot gets an
                // empty one (no allocation until it is used again).
                let _ = tx.try_send(std::mem::take(&mut d.result));
            }
        }
        self.table.close(id);
    }

    /// Keeps `env` for `user`; reports what the caps push out.
    fn store(&mut self, now: Instant, user: &Arc<str>, env: Envelope) -> bool {
        let env = env.for_offline();
        let mut gone = Vec::new();
        let kept = self.offline.store(now, user, env, &mut |u, s, why| {
            gone.push((u, s.envelope, why))
        });
        if kept {
            self.counters.offline_stored += 1;
        }
        for (u, env, why) in gone {
            self.offline_gone(now, u, env, why);
        }
        kept
    }

    /// A stored message left the store unreplayed: a final failure.
    fn offline_gone(&mut self, now: Instant, user: Arc<str>, env: Envelope, why: Gone) {
        let reason = match why {
            Gone::Evicted => {
                self.counters.offline_evicted += 1;
                FailureReason::OfflineEvicted
            }
            Gone::Expired => {
                self.counters.offline_expired += 1;
                FailureReason::OfflineExpired
            }
        };
        log::debug!("offline message for {user} {}", reason.name());
        let result = SendResult {
            success: false,
            final_error: Some(reason),
            stored_offline: true,
            replayed: true,
            message_id: Some(env.id.clone()),
            ..SendResult::default()
        };
        let _ = now;
        let failure = Failure::new(reason, user, Some(env.message.clone()), env.payload.clone());
        self.reporter.report(failure);
        if let Some(cb) = &mut self.on_result {
            // Not a delivery of this hub any more: no id of the table.
            cb(DeliveryId::NONE, &result);
        }
    }
}
