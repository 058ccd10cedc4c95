//! Accepting: new sockets get a slot, a generation and a handshake deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::{Hub, Listener, TimerEvent};
use crate::conn::outbox::Outbox;
use crate::conn::transport::TlsSession;
use crate::conn::{Conn, ConnTimers, Phase};
use crate::event::ConnId;
use crate::ws::http;
use crate::ws::{Decoder, Limits};

/// Pause before accepting again after the process ran out of descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// Accepts on every listener (after an accept pause, say).
    pub(super) fn accept_all(&mut self) {
        self.accept(Listener::Public);
        self.accept(Listener::Tls);
        self.accept(Listener::Admin);
    }

    /// Accepts what waits on one listener.
    pub(super) fn accept(&mut self, which: Listener) {
        while !self.accept_paused {
            let Some(listener) = self.listener_for(which) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    let Ok(session) = self.tls_session(which == Listener::Tls) else {
                        continue;
                    };
                    self.admit(stream, peer, session, which == Listener::Admin);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors (EMFILE, ENFILE) or buffers: the
                    // connection stays in the backlog and, readiness being
                    // edge-triggered, no new event would come for it. Retry
                    // from a timer rather than spin.
                    self.stats.accept_errors += 1;
                    log::warn!("accept failed: {e}; retrying in {ACCEPT_RETRY:?}");
                    self.accept_paused = true;
                    self.net
                        .timers
                        .insert(self.net.now + ACCEPT_RETRY, TimerEvent::AcceptRetry);
                }
            }
        }
    }

    pub(super) fn admit(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        tls: Option<TlsSession>,
        admin: bool,
    ) {
        self.stats.accepted += 1;
        if self.net.conns.len() >= super::slot_limit(self.config.max_connections) {
            if tls.is_some() {
                // No TLS session to answer through: just close.
                self.stats.refused_full += 1;
                return;
            }
            // Not even room to read the request: answer blind and drop.
            self.stats.refused_full += 1;
            refuse_blind(&mut stream, &mut self.scratch, "hub is full");
            log::debug!("refused {peer}: no free slot");
            return;
        }
        if !admin && !self.per_ip.admit(peer.ip()) {
            self.stats.per_ip_rejected += 1;
            refuse_blind(
                &mut stream,
                &mut self.scratch,
                "too many connections from this address",
            );
            log::debug!("refused {peer}: max_connections_per_ip");
            return;
        }
        let _ = stream.set_nodelay(true);
        let entry = self.net.conns.vacant_entry();
        let key = entry.key();
        // Readable only: writable interest is added while a write is
        // blocked. Registered for both, every ACK that frees socket space
        // would wake the loop (a broadcast to N clients: N extra events).
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            log::warn!("cannot register {peer}: {e}");
            if !admin {
                self.per_ip.release(peer.ip());
            }
            return;
        }
        self.next_generation = self.next_generation.wrapping_add(1);
        let id = ConnId {
            index: key as u32,
            generation: self.next_generation,
        };
        let deadline = self.net.now + self.config.handshake_timeout;
        let phase_timer = self.net.timers.insert(deadline, TimerEvent::Phase(id));
        entry.insert(Conn {
            stream,
            tls,
            id,
            phase: Phase::Handshake { head: Vec::new() },
            identity: None,
            decoder: Decoder::new(Limits {
                max_frame_size: self
                    .config
                    .max_frame_size
                    .unwrap_or(self.config.max_message_size),
                max_message_size: self.config.max_message_size,
            }),
            deflate: None,
            outbox: Outbox::new(),
            last_seen: self.net.now,
            timers: ConnTimers {
                phase: Some(phase_timer),
                ..ConnTimers::default()
            },
            dirty: false,
            write_blocked: false,
            write_interest: false,
            read_pending: false,
            peer: peer.ip(),
            admin,
            held: 0,
        });
        log::trace!("{id} accepted from {peer}");
    }
}

/// Answers 503 without taking a slot, and drops the connection.
fn refuse_blind(stream: &mut TcpStream, scratch: &mut [u8], why: &str) {
    let _ = stream.read(scratch);
    let mut resp = Vec::new();
    http::write_error(&mut resp, 503, why);
    let _ = stream.write(&resp);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
