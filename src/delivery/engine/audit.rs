//! Test builds only: the engine checks its own bookkeeping, shows its state
//! to the simulation ([`crate::delivery::sim`]), and can carry one deliberate
//! bug so that the simulation proves it would catch it.
//!
//! [`Engine::audit`] cross-checks every structure against every other: each
//! target of an open delivery is exactly where its state says (a ring, a
//! backlog, the ACK window, the ACK index, the wheel), each entry of those
//! structures names a live target that agrees, the counts match, and every
//! cap holds. A delivery that waits for nothing (no device outstanding, no
//! retry timer) is stuck, and an error.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Engine, Timer};
use crate::delivery::DeliveryId;
use crate::delivery::record::{Tag, TargetState};
use crate::event::ConnId;
use crate::failure::Failure;

/// A bug the simulation's self-test switches on, to show it is caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Mutation {
    /// The engine as it is.
    #[default]
    None,
    /// A `require_ack` frame counts as taken once written, without its ACK.
    SuccessOnWrite,
    /// Retries go to every device again, also those that took the message.
    RetryTakenDevices,
    /// A closing connection's backlog is dropped without failing it.
    LoseBacklogOnClose,
}

/// One open delivery as the simulation sees it.
#[derive(Debug, Clone)]
pub(crate) struct DeliverySnap {
    pub id: DeliveryId,
    pub message_id: Arc<str>,
    pub replay: bool,
    /// Attempts finished so far.
    pub attempts: usize,
    /// Between attempts, waiting for its retry timer.
    pub waiting_retry: bool,
    /// The devices of the current (or last) attempt.
    pub targets: Vec<(ConnId, Arc<str>, TargetState)>,
}

/// Names a target in an audit finding (formatted only when one is made).
struct At<'a>(DeliveryId, usize, &'a str, ConnId);

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} target {} ({} on {})", self.0, self.1, self.2, self.3)
    }
}

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

impl<const W: usize> Engine<W> {
    /// Switches a deliberate bug on.
    pub(crate) fn mutate(&mut self, m: Mutation) {
        self.mutation = m;
    }

    /// Starts logging every reported failure.
    pub(crate) fn tap_failures(&mut self) {
        self.reporter.tap = Some(Vec::new());
    }

    /// The failures reported since the last call, in order.
    pub(crate) fn take_tapped(&mut self, into: &mut Vec<Failure>) {
        if let Some(tap) = &mut self.reporter.tap {
            into.append(tap);
        }
    }

    /// Failures the handler pool dropped (its queue was full).
    pub(crate) fn handler_dropped(&self) -> u64 {
        self.reporter.dropped()
    }

    /// The target an ACK of `message_id` on `conn` would complete now, and
    /// the connection that target is on (`conn`, or its successor).
    pub(crate) fn probe_ack(&self, conn: ConnId, message_id: &str) -> Option<(Tag, ConnId)> {
        self.ack_target(conn, message_id)
    }

    /// Deliveries waiting for a retry, as the per-user order lists them.
    pub(crate) fn retry_waiting(&self) -> usize {
        self.retry_order.values().map(|m| m.len()).sum()
    }

    /// Every open delivery: its attempts and current targets.
    pub(crate) fn snapshot(&self) -> Vec<DeliverySnap> {
        self.table
            .active_ids()
            .filter_map(|id| {
                let d = self.table.get(id)?;
                Some(DeliverySnap {
                    id,
                    message_id: Arc::from(d.message_id()),
                    replay: d.replay,
                    attempts: d.result.attempts.len(),
                    waiting_retry: d.retry_timer.is_some(),
                    targets: d
                        .targets
                        .iter()
                        .map(|t| (t.conn, t.client_id.clone(), t.state))
                        .collect(),
                })
            })
            .collect()
    }

    /// Cross-checks every structure of the engine; `frames` lists the
    /// tagged frames in the rings, by connection.
    pub(crate) fn audit(&self, frames: &[(ConnId, Tag)]) -> Result<(), String> {
        let cfg = &self.cfg;
        let ids: Vec<DeliveryId> = self.table.active_ids().collect();
        ensure!(
            ids.len() == self.table.active(),
            "table counts {} open deliveries, holds {}",
            self.table.active(),
            ids.len()
        );
        ensure!(
            ids.len() <= cfg.max_pending_deliveries,
            "{} open deliveries, cap {}",
            ids.len(),
            cfg.max_pending_deliveries
        );
        let (mut timers, mut ack_entries, mut waiting) = (0, 0, 0);
        let mut users: HashMap<Arc<str>, u32> = HashMap::new();
        for &id in &ids {
            let d = self.table.get(id).ok_or("an active id without a record")?;
            let user = d.user.clone().ok_or_else(|| format!("{id}: no user"))?;
            *users.entry(user.clone()).or_default() += 1;
            let attempts = d.result.attempts.len();
            ensure!(
                attempts <= cfg.retry.max_retries as usize + 1,
                "{id}: {attempts} attempts, max_retries {}",
                cfg.retry.max_retries
            );
            let outstanding = d.outstanding();
            match d.retry_timer {
                Some(k) => {
                    timers += 1;
                    waiting += 1;
                    ensure!(
                        self.timers.get(k) == Some(&Timer::Retry(id)),
                        "{id}: its retry timer is not in the wheel"
                    );
                    ensure!(
                        outstanding == 0,
                        "{id}: waits for a retry with {outstanding} device(s) outstanding"
                    );
                    ensure!(
                        self.retry_order.get(&user).and_then(|m| m.get(&d.seq)) == Some(&id),
                        "{id}: waits for a retry but is not in {user}'s retry order"
                    );
                }
                None => ensure!(
                    outstanding > 0,
                    "{id}: stuck: no device outstanding and no retry timer (attempt {})",
                    attempts + 1
                ),
            }
            let message_id = d.message_id();
            for (i, t) in d.targets.iter().enumerate() {
                let tag = Tag {
                    delivery: id,
                    target: i as u16,
                };
                let in_ring = |conn: ConnId| {
                    frames
                        .iter()
                        .filter(|&&(c, g)| c == conn && g == tag)
                        .count()
                };
                let lane = self.lanes.get(t.conn);
                let window_ok = |pos: Option<u32>| {
                    pos.zip(lane)
                        .is_some_and(|(p, l)| l.window.get(p as usize) == Some(&tag))
                };
                let indexed = self.acks.get(t.conn, message_id) == Some(tag);
                let at = At(id, i, &t.client_id, t.conn);
                match t.state {
                    TargetState::Queued => {
                        let n = in_ring(t.conn);
                        ensure!(n == 1, "{at}: queued, but its ring holds {n} such frame(s)");
                        ensure!(t.ack_timer.is_none(), "{at}: queued with an ACK timer");
                        if d.require_ack {
                            ack_entries += 1;
                            ensure!(window_ok(t.window_pos), "{at}: not at its window position");
                            ensure!(indexed, "{at}: missing from the ACK index");
                        } else {
                            ensure!(t.window_pos.is_none(), "{at}: in a window without ACK");
                        }
                    }
                    TargetState::Backlogged => {
                        ensure!(
                            in_ring(t.conn) == 0,
                            "{at}: backlogged, but a frame of it is in its ring"
                        );
                        let lane = lane.ok_or_else(|| format!("{at}: backlogged, no lane"))?;
                        ensure!(!lane.closing, "{at}: backlogged on a closing connection");
                        let n = lane.backlog.iter().filter(|w| w.tag == tag).count();
                        ensure!(n == 1, "{at}: backlogged, in its backlog {n} time(s)");
                        ensure!(t.window_pos.is_none(), "{at}: backlogged inside the window");
                        ensure!(t.ack_timer.is_none(), "{at}: backlogged with an ACK timer");
                        if d.require_ack {
                            ack_entries += 1;
                            ensure!(indexed, "{at}: missing from the ACK index");
                        }
                    }
                    TargetState::AwaitingAck => {
                        ensure!(d.require_ack, "{at}: awaits an ACK it does not need");
                        ensure!(
                            in_ring(t.conn) == 0,
                            "{at}: awaits its ACK, but its frame is still in its ring"
                        );
                        let timer = t.ack_timer.and_then(|k| self.timers.get(k));
                        ensure!(
                            timer == Some(&Timer::AckTimeout(tag)),
                            "{at}: awaits its ACK without an ACK timer"
                        );
                        timers += 1;
                        ack_entries += 1;
                        ensure!(window_ok(t.window_pos), "{at}: not at its window position");
                        ensure!(indexed, "{at}: missing from the ACK index");
                    }
                    TargetState::Taken | TargetState::Failed(_) => {
                        ensure!(t.window_pos.is_none(), "{at}: settled, still in a window");
                        ensure!(
                            t.ack_timer.is_none(),
                            "{at}: settled, still has an ACK timer"
                        );
                        ensure!(!indexed, "{at}: settled, still in the ACK index");
                    }
                }
            }
        }
        for &(conn, tag) in frames {
            // A frame left from an earlier attempt may carry the tag of a
            // target now on another connection: `written` and `failed`
            // ignore it there. On its own connection the target must be in
            // its ring or settled.
            let t = self
                .table
                .get(tag.delivery)
                .and_then(|d| d.targets.get(usize::from(tag.target)))
                .filter(|t| t.conn == conn);
            if let Some(t) = t {
                ensure!(
                    !t.state.is_outstanding() || t.state == TargetState::Queued,
                    "a frame of {} target {} is in the ring of {conn}, but the target is {:?}",
                    tag.delivery,
                    tag.target,
                    t.state
                );
            }
        }
        let mut windows = 0;
        for lane in self.lanes.iter() {
            let Some(conn) = lane.conn else {
                ensure!(
                    lane.backlog.is_empty() && lane.window.is_empty() && lane.backlog_bytes == 0,
                    "an unbound lane holds a backlog or a window"
                );
                continue;
            };
            ensure!(
                !lane.closing || lane.backlog.is_empty(),
                "{conn}: closing with a backlog"
            );
            let bytes: usize = lane.backlog.iter().map(|w| w.bytes).sum();
            ensure!(
                bytes == lane.backlog_bytes,
                "{conn}: backlog counts {} bytes, holds {bytes}",
                lane.backlog_bytes
            );
            ensure!(
                bytes <= cfg.pending_per_conn,
                "{conn}: backlog of {bytes} bytes, cap {}",
                cfg.pending_per_conn
            );
            for w in &lane.backlog {
                let t = self
                    .table
                    .get(w.tag.delivery)
                    .and_then(|d| d.targets.get(usize::from(w.tag.target)));
                ensure!(
                    t.is_some_and(|t| t.conn == conn && t.state == TargetState::Backlogged),
                    "{conn}: backlog entry {:?} names no backlogged target of this connection",
                    w.tag
                );
            }
            ensure!(
                lane.window.len() <= cfg.max_inflight_acks,
                "{conn}: {} ACKs in flight, cap {}",
                lane.window.len(),
                cfg.max_inflight_acks
            );
            for (pos, tag) in lane.window.iter().enumerate() {
                let d = self.table.get(tag.delivery);
                let t = d.and_then(|d| d.targets.get(usize::from(tag.target)));
                ensure!(
                    d.is_some_and(|d| d.require_ack)
                        && t.is_some_and(|t| t.conn == conn
                            && t.window_pos == Some(pos as u32)
                            && matches!(t.state, TargetState::Queued | TargetState::AwaitingAck)),
                    "{conn}: window entry {pos} ({tag:?}) names no target in flight here"
                );
            }
            windows += lane.window.len();
        }
        ensure!(
            windows == self.lanes.windows(),
            "windows count {} entries, hold {windows}",
            self.lanes.windows()
        );
        ensure!(
            self.acks.len() == ack_entries,
            "ACK index holds {} entries, {ack_entries} targets need one",
            self.acks.len()
        );
        ensure!(
            self.timers.len() == timers,
            "wheel holds {} timers, {timers} are wanted",
            self.timers.len()
        );
        ensure!(
            self.retry_waiting() == waiting,
            "retry order lists {} deliveries, {waiting} wait for a retry",
            self.retry_waiting()
        );
        ensure!(
            self.retry_order.values().all(|m| !m.is_empty()),
            "an empty retry order kept"
        );
        ensure!(
            self.budgets.len() == users.len()
                && users
                    .iter()
                    .all(|(u, n)| self.budgets.get(u).is_some_and(|b| b.deliveries == *n)),
            "retry budgets ({}) do not match the users with open deliveries ({})",
            self.budgets.len(),
            users.len()
        );
        self.offline.audit()
    }
}
