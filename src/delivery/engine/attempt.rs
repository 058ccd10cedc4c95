//! One attempt: offering a message to devices (ring or backlog), the ACK
//! window, and settling each device's part.

use std::time::{Instant, SystemTime};

use super::{Engine, Net, Timer};
use crate::delivery::DeliveryId;
use crate::delivery::lanes::Waiting;
use crate::delivery::record::{DeliveryTarget, Tag, TargetState};
use crate::event::ConnId;
use crate::failure::reason::{FailureReason, TimeoutKind};

impl<const W: usize> Engine<W> {
    /// Offers the message to every device still missing it.
    pub(super) fn start_attempt(&mut self, now: Instant, id: DeliveryId, net: &mut impl Net) {
        #[cfg(test)]
        let retry_taken = self.mutation == super::audit::Mutation::RetryTakenDevices;
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
        // A group delivery's own device first, else `receiver_client`.
        let only = d
            .only
            .as_deref()
            .or(env.only.as_deref())
            .unwrap_or_default();
        let (targets, taken) = (&mut d.targets, &d.taken[..]);
        #[cfg(test)]
        let taken = if retry_taken { &[] } else { taken };
        // Another hub's request is for this hub's devices only: its own
        // picture of the cluster routes the rest.
        let local_only = d.waiter.is_remote();
        let local_slots = self.local_slots;
        net.each_device(&user, &mut |conn, client_id| {
            if local_only && conn.index() >= local_slots {
                return;
            }
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
    pub(super) fn offer(&mut self, now: Instant, tag: Tag, net: &mut impl Net) {
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
            self.queued(now, tag, conn, require_ack);
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

    /// The target's frame is in its ring (or, for a proxy, on its way to
    /// the device's hub, which has until the remote deadline to answer).
    pub(super) fn queued(&mut self, now: Instant, tag: Tag, conn: ConnId, require_ack: bool) {
        let pos = if require_ack {
            self.lanes.window_push(conn, tag)
        } else {
            None
        };
        let deadline = self.is_proxy(conn).then(|| {
            self.timers.insert(
                now + self.remote_deadline(require_ack),
                Timer::AckTimeout(tag),
            )
        });
        if let Some(t) = self.table.target_mut(tag) {
            t.state = TargetState::Queued;
            t.window_pos = pos;
            if deadline.is_some() {
                t.ack_timer = deadline;
            }
        }
    }

    /// Moves what fits from `conn`'s backlog into its ring, in order.
    pub(super) fn pump(&mut self, now: Instant, conn: ConnId, net: &mut impl Net) {
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
            self.lanes.pop_backlog(conn);
            let payload = self.table.get(w.tag.delivery).map(|d| d.payload().clone());
            match payload {
                Some(_) if expired => {
                    let reason = FailureReason::Timeout(TimeoutKind::Send);
                    self.settle(now, w.tag, TargetState::Failed(reason), net);
                }
                Some(p) if net.enqueue(conn, &p, w.tag) => {
                    self.queued(now, w.tag, conn, w.require_ack);
                }
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
    pub(super) fn settle(
        &mut self,
        now: Instant,
        tag: Tag,
        state: TargetState,
        net: &mut impl Net,
    ) {
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

    pub(super) fn forget_ack(&mut self, tag: Tag) {
        let Some(d) = self.table.get(tag.delivery) else {
            return;
        };
        if d.require_ack {
            let conn = d.targets[usize::from(tag.target)].conn;
            let id = d.message_id_arc();
            self.acks.remove(conn, &id, tag);
        }
    }

    pub(super) fn set_failed(&mut self, tag: Tag, reason: FailureReason) {
        if let Some(t) = self.table.target_mut(tag) {
            t.state = TargetState::Failed(reason);
        }
    }
}
