//! Accepting: new sockets get a slot, a generation and a handshake deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::{Hub, TimerEvent};
use crate::conn::outbox::Outbox;
use crate::conn::{Conn, ConnTimers, Phase};
use crate::event::ConnId;
use crate::ws::http;
use crate::ws::{Decoder, Limits};

/// Pause before accepting again after the process ran out of descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    pub(super) fn accept(&mut self) {
        while !self.accept_paused {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
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

    pub(super) fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        self.stats.accepted += 1;
        if self.net.conns.len() >= super::slot_limit(self.config.max_connections) {
            // Not even room to read the request: answer blind and drop.
            self.stats.refused_full += 1;
            let _ = stream.read(&mut self.scratch);
            let mut resp = Vec::new();
            http::write_error(&mut resp, 503, "hub is full");
            let _ = stream.write(&resp);
            let _ = stream.shutdown(std::net::Shutdown::Write);
            log::debug!("refused {peer}: no free slot");
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
        });
        log::trace!("{id} accepted from {peer}");
    }
}
