//! Closing: close frames, kicks, the linger, and removal (which fails what a
//! connection still held).

use std::time::{Duration, Instant};

use super::{CLOSE_LINGER, Hub, TimerEvent};
use crate::conn::Phase;
use crate::conn::outbox::CloseWhen;
use crate::event::{DisconnectReason, HubEvent};
use crate::message::{Message, Payload, kind};
use crate::ws::CloseCode;

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// Closes an open connection with a close frame (`when` decides whether
    /// queued messages go first). Anything not upgraded is dropped at once.
    pub(super) fn close_conn(
        &mut self,
        key: usize,
        reason: DisconnectReason,
        code: CloseCode,
        why: &str,
        when: CloseWhen,
    ) {
        let Some(conn) = self.net.conns.get_mut(key) else {
            return;
        };
        match conn.phase {
            Phase::Open => {}
            Phase::Closing { .. } => {
                if when == CloseWhen::Now {
                    conn.outbox.close(close_frame(code, why), when);
                }
                return;
            }
            Phase::Handshake { .. } => {
                self.remove_conn(key, reason);
                return;
            }
        }
        conn.outbox.close(close_frame(code, why), when);
        conn.phase = Phase::Closing {
            reason: Some(reason),
            peer_closed: false,
        };
        if when == CloseWhen::Now {
            // Frames a close-now will never write fail at once (below): a
            // retry can take them to another device, or this one reconnected.
            let abandoned = &mut self.abandoned;
            conn.outbox.abandon_waiting(&mut |out| abandoned.push(out));
        }
        // A closing connection is no longer a device of its user: sends and
        // retries skip it, and it no longer counts against the limits.
        if let Some(identity) = &conn.identity
            && self.net.registry.remove(&identity.user_id, key)
            && let Some(cluster) = self.cluster.as_mut()
        {
            cluster.device(&identity.user_id, &identity.client_id, false);
        }
        // Nor a member of its groups: group sends skip it from now on.
        self.groups.conn_gone(key);
        let id = conn.id;
        self.engine.conn_closing(
            self.net.now,
            id,
            super::deliver::failure_of(reason),
            &mut self.net,
        );
        let linger = if when == CloseWhen::AfterData {
            self.config.shutdown_timeout.max(CLOSE_LINGER)
        } else {
            CLOSE_LINGER
        };
        self.rearm_phase_timer(key, linger);
        self.net.mark_dirty(key);
        self.fail_abandoned(key, reason);
    }

    /// Fails the frames `close_conn` abandoned on connection `key`.
    pub(super) fn fail_abandoned(&mut self, key: usize, reason: DisconnectReason) {
        if self.abandoned.is_empty() {
            return;
        }
        let mut abandoned = std::mem::take(&mut self.abandoned);
        let conn = self
            .net
            .conns
            .get(key)
            .and_then(|c| Some((c.id, c.identity.clone()?)));
        if let Some((id, identity)) = conn {
            let failure = super::deliver::failure_of(reason);
            for out in abandoned.drain(..) {
                self.stats.dropped_on_close += 1;
                self.fail_outbound(out, failure, &identity.user_id, &identity.client_id, id);
            }
        }
        abandoned.clear();
        self.abandoned = abandoned;
    }

    /// Kicks a connection: a `kick_out` notice that overtakes queued data,
    /// then close 1000.
    pub(super) fn kick_key(&mut self, key: usize, why: &str, reason: DisconnectReason) {
        let Some(conn) = self.net.conns.get_mut(key) else {
            return;
        };
        if conn.is_open() && self.json_protocol {
            let notice = Message::notice(kind::KICK_OUT, serde_json::json!({ "reason": why }));
            if let Ok(p) = Payload::json(&notice)
                && !conn.outbox.push_control(p)
            {
                self.stats.control_dropped += 1;
            }
        }
        self.close_conn(key, reason, CloseCode::NORMAL, why, CloseWhen::Now);
    }

    pub(super) fn rearm_phase_timer(&mut self, key: usize, after: Duration) {
        let conn = &mut self.net.conns[key];
        if let Some(t) = conn.timers.phase.take() {
            self.net.timers.cancel(t);
        }
        let at: Instant = self.net.now + after;
        conn.timers.phase = Some(self.net.timers.insert(at, TimerEvent::Phase(conn.id)));
    }

    /// Our last bytes are out: finish now if the peer is done too, otherwise
    /// half-close and wait (linger timer) for its close or EOF.
    pub(super) fn after_close_sent(&mut self, key: usize) {
        let conn = &mut self.net.conns[key];
        let Phase::Closing {
            reason,
            peer_closed,
        } = conn.phase
        else {
            return;
        };
        if peer_closed {
            self.remove_conn(key, reason.unwrap_or(DisconnectReason::ConnectionLost));
        } else if conn.identity.is_none() {
            // An HTTP response: FIN after it, so the client reads it all.
            crate::conn::transport::shutdown_write(conn);
        }
    }

    /// Drops a connection now: deregisters it, cancels its timers, and fails
    /// what it still had queued.
    pub(super) fn remove_conn(&mut self, key: usize, reason: DisconnectReason) {
        if !self.net.conns.contains(key) {
            return;
        }
        let mut conn = self.net.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if !conn.admin {
            self.per_ip.release(conn.peer);
        }
        self.buffered -= conn.held;
        let timers = &conn.timers;
        for t in [timers.phase, timers.idle, timers.heartbeat, timers.expiry]
            .into_iter()
            .flatten()
        {
            self.net.timers.cancel(t);
        }
        if conn.dirty
            && let Some(pos) = self.net.dirty.iter().position(|&k| k == key)
        {
            self.net.dirty.swap_remove(pos);
        }
        if conn.read_pending
            && let Some(pos) = self.read_again.iter().position(|&k| k == key)
        {
            self.read_again.swap_remove(pos);
        }
        if let Some(t) = conn.timers.send.take() {
            self.net.timers.cancel(t);
        }
        // Unregister first (if closing has not already): a retry started by
        // the failures below must not pick this connection again.
        if let Some(identity) = &conn.identity
            && self.net.registry.remove(&identity.user_id, key)
            && let Some(cluster) = self.cluster.as_mut()
        {
            cluster.device(&identity.user_id, &identity.client_id, false);
        }
        self.groups.conn_gone(key);
        self.fail_conn_leftovers(&mut conn, reason);
        if let Some(identity) = conn.identity.take() {
            log::debug!("{} closed: {reason}", conn.id);
            self.events.push_back(HubEvent::Disconnected {
                conn: conn.id,
                identity,
                reason,
            });
        }
    }
}

fn close_frame(code: CloseCode, why: &str) -> Payload {
    Payload::raw(crate::ws::encode_close(code, why))
}
