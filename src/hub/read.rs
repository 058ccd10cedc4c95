//! Reading: readiness to the hub-wide scratch buffer, with a per-turn budget
//! per connection and the event limit pushing back on floods.

use std::io::ErrorKind;

use super::{Hub, MAX_HEAD, READ_BUDGET};
use crate::conn::Phase;
use crate::conn::transport::{self, Input};
use crate::event::DisconnectReason;
use crate::ws::http;

/// Whether the poller reports new data on a socket even if the last read
/// did not reach `WouldBlock`: epoll does (a new edge on every arrival), as
/// does kqueue; elsewhere the loop reads until `WouldBlock`.
const EDGE_WAKES_ON_NEW_DATA: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
));

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    pub(super) fn conn_ready(&mut self, key: usize, readable: bool, writable: bool, hup: bool) {
        let Some(conn) = self.net.conns.get_mut(key) else {
            return;
        };
        if writable && conn.write_blocked {
            conn.write_blocked = false;
            self.flush_conn(key);
        }
        if readable {
            self.read_conn(key, hup);
            // Write what this read routed before reading the next ready
            // connection, as a task-per-connection server would: the
            // receivers get their messages a whole turn of reads sooner
            // (strict request/response p99), and the kernel can piggyback
            // the ACK for what was just read on the reply instead of a
            // pure ACK segment. A receiver's frames from one read still
            // leave in one write; only a fan-in turn (many senders, one
            // receiver) writes once per sender instead of once per turn.
            self.flush_dirty();
        }
    }

    /// Gives connections that used up their read budget, or were put off
    /// by the event limit, another turn: round-robin.
    ///
    /// When the event limit stops the walk, the connections not reached
    /// go first next turn, ahead of those read (and listed again) this
    /// turn. Otherwise a flooder listed first would fill the events every
    /// turn and the others behind it would never be read.
    pub(super) fn read_leftovers(&mut self) {
        // Two preallocated lists swap roles: `read_conn` may list a
        // connection again while this turn's list is walked, and neither
        // ever grows past the slot count (a connection is listed once).
        let spare = std::mem::take(&mut self.read_spare);
        let mut pending = std::mem::replace(&mut self.read_again, spare);
        let mut walked = 0;
        while walked < pending.len() {
            if self.events.len() >= self.event_limit {
                break;
            }
            let key = pending[walked];
            walked += 1;
            if let Some(conn) = self.net.conns.get_mut(key) {
                conn.read_pending = false;
                self.read_conn(key, true);
                self.flush_dirty();
            }
        }
        // Not reached (still marked pending) first, then those listed again.
        pending.drain(..walked);
        // A connection removed meanwhile left its key behind.
        let conns = &self.net.conns;
        pending.retain(|&k| conns.get(k).is_some_and(|c| c.read_pending));
        pending.append(&mut self.read_again);
        self.read_spare = std::mem::replace(&mut self.read_again, pending);
    }

    /// Reads what connection `key` has, within its budget. `hup`: the
    /// peer closed (or the socket failed) as far as the poller knows, so
    /// reading goes on until EOF or `WouldBlock` whatever a read returned.
    pub(super) fn read_conn(&mut self, key: usize, hup: bool) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.net.conns.get_mut(key) else {
                return;
            };
            if conn.read_pending {
                return;
            }
            if self.events.len() >= self.event_limit && conn.is_open() {
                // The host has not drained its events: leave the input in
                // the socket (TCP pushes back on the client) and come back
                // to this connection once there is room.
                conn.read_pending = true;
                self.read_again.push(key);
                return;
            }
            match transport::read(conn, &mut self.scratch) {
                Ok(Input::Eof) => {
                    let reason = match conn.phase {
                        Phase::Closing {
                            reason: Some(r), ..
                        } => r,
                        _ => DisconnectReason::ConnectionLost,
                    };
                    self.remove_conn(key, reason);
                    return;
                }
                Ok(Input::Bytes {
                    plain,
                    wire,
                    drained,
                }) => {
                    conn.last_seen = self.net.now;
                    // A read that did not fill the buffer emptied the
                    // socket: epoll (edge-triggered, as mio registers it)
                    // wakes us when more arrives, so the read that would only
                    // say EAGAIN is skipped: one system call less per message
                    // (tokio does the same). Not when the peer's FIN may have
                    // come with this data (`hup`: no new edge would tell us).
                    // The transport says whether it was short and left no
                    // decrypted bytes behind (TLS).
                    let drained = EDGE_WAKES_ON_NEW_DATA && !hup && drained;
                    if transport::wants_write(conn) {
                        // A TLS handshake reply (or alert) to send.
                        self.net.mark_dirty(key);
                    }
                    if plain > 0 {
                        self.on_bytes(key, plain);
                        self.account_buffered(key);
                    }
                    budget = budget.saturating_sub(plain.max(wire));
                    if budget == 0 {
                        if let Some(conn) = self.net.conns.get_mut(key) {
                            conn.read_pending = true;
                            self.read_again.push(key);
                        }
                        return;
                    }
                    if drained {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    if conn.tls.is_some() && e.kind() == ErrorKind::InvalidData {
                        self.stats.tls_errors += 1;
                        log::debug!("{}: TLS error: {e}", conn.id);
                    }
                    self.remove_conn(key, DisconnectReason::Io(e.kind()));
                    return;
                }
            }
        }
    }

    /// `n` fresh bytes of connection `key` are at the start of the scratch buffer.
    pub(super) fn on_bytes(&mut self, key: usize, n: usize) {
        let conn = &mut self.net.conns[key];
        match &mut conn.phase {
            Phase::Handshake { head } => {
                let old_len = head.len();
                head.extend_from_slice(&self.scratch[..n]);
                if http::head_worth_parsing(head, old_len, MAX_HEAD) {
                    self.on_request_bytes(key);
                }
            }
            Phase::Open => self.on_frames(key, n),
            Phase::Closing { .. } => {
                // Still upgraded: watch for the peer's close reply.
                if conn.identity.is_some() {
                    self.on_frames(key, n);
                }
            }
        }
    }
}
