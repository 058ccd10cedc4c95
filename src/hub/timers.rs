//! The timer turn: every expired entry of the wheel, each checked against the
//! connection it names. The cost grows with expired timers, never with
//! connections.

use super::net::live;
use super::{Hub, TimerEvent};
use crate::conn::Phase;
use crate::conn::outbox::CloseWhen;
use crate::event::DisconnectReason;
use crate::ws::CloseCode;

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    pub(super) fn run_timers(&mut self) {
        self.engine.tick(self.net.now, &mut self.net);
        while let Some(event) = self.net.timers.poll(self.net.now) {
            match event {
                TimerEvent::Phase(id) => {
                    let Some(conn) = live(&mut self.net.conns, id) else {
                        continue;
                    };
                    conn.timers.phase = None;
                    let reason = match conn.phase {
                        Phase::Handshake { .. } => {
                            // Silent, or headers byte by byte: not worth an answer.
                            self.stats.rejected += 1;
                            log::debug!("{id}: handshake timed out");
                            DisconnectReason::ConnectionLost
                        }
                        Phase::Closing { reason, .. } => {
                            reason.unwrap_or(DisconnectReason::ConnectionLost)
                        }
                        Phase::Open => continue,
                    };
                    self.remove_conn(id.index(), reason);
                }
                TimerEvent::Idle(id) => {
                    let Some(conn) = live(&mut self.net.conns, id) else {
                        continue;
                    };
                    conn.timers.idle = None;
                    let deadline = conn.last_seen + self.config.client_timeout;
                    if deadline > self.net.now {
                        // Traffic since the timer was set: check again later.
                        conn.timers.idle =
                            Some(self.net.timers.insert(deadline, TimerEvent::Idle(id)));
                    } else if conn.is_open() {
                        self.stats.idle_timeouts += 1;
                        log::debug!("{id}: idle for {:?}, closing", self.config.client_timeout);
                        self.close_conn(
                            id.index(),
                            DisconnectReason::IdleTimeout,
                            CloseCode::AWAY,
                            "idle timeout",
                            CloseWhen::Now,
                        );
                    }
                }
                TimerEvent::Heartbeat(id) => {
                    let Some(conn) = live(&mut self.net.conns, id) else {
                        continue;
                    };
                    conn.timers.heartbeat = None;
                    if !conn.is_open() {
                        continue;
                    }
                    if !conn.outbox.push_control(self.ping_frame.clone()) {
                        self.stats.control_dropped += 1;
                    }
                    let next = self.net.now + self.config.heartbeat_interval;
                    conn.timers.heartbeat =
                        Some(self.net.timers.insert(next, TimerEvent::Heartbeat(id)));
                    self.net.mark_dirty(id.index());
                }
                TimerEvent::SendTimeout(id) => self.on_send_timeout(id),
                TimerEvent::Expiry(id) => self.on_token_expiry(id),
                TimerEvent::AcceptRetry => {
                    self.accept_paused = false;
                    self.accept_all();
                }
                TimerEvent::ShutdownDeadline => {
                    let keys: Vec<usize> = self.net.conns.iter().map(|(k, _)| k).collect();
                    if !keys.is_empty() {
                        log::warn!("shutdown deadline: dropping {} connection(s)", keys.len());
                    }
                    for key in keys {
                        self.remove_conn(key, DisconnectReason::Shutdown);
                    }
                }
            }
        }
    }
}
