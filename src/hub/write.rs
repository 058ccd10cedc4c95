//! Writing: dirty connections flushed with vectored writes; written tagged
//! frames settled with the engine, which may then pull its backlog in.

use mio::{Interest, Token};

use super::Hub;
use crate::conn::Phase;
use crate::conn::outbox::Flush;
use crate::conn::transport;
use crate::event::DisconnectReason;

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    pub(super) fn flush_dirty(&mut self) {
        while let Some(key) = self.net.dirty.pop() {
            if let Some(conn) = self.net.conns.get_mut(key) {
                conn.dirty = false;
                self.flush_conn(key);
            }
        }
    }

    pub(super) fn flush_conn(&mut self, key: usize) {
        let Some(conn) = self.net.conns.get_mut(key) else {
            return;
        };
        if conn.write_blocked {
            return;
        }
        let mut sent = 0u64;
        let written = &mut self.written;
        let free_before = conn.outbox.free();
        let result = transport::flush(conn, &mut |out| {
            sent += 1;
            if let Some(tag) = out.tag {
                written.push(tag);
            }
        });
        let (id, freed) = (conn.id, conn.outbox.free() > free_before);
        self.stats.messages_out += sent;
        let interest = match result {
            Ok(Flush::Blocked) => {
                conn.write_blocked = true;
                Some(Interest::READABLE | Interest::WRITABLE)
            }
            Ok(Flush::Drained) if conn.write_interest => Some(Interest::READABLE),
            _ => None,
        };
        if let Some(interest) = interest
            && interest.is_writable() != conn.write_interest
        {
            // Re-arming also reports readiness that is already there, so a
            // socket that drained meanwhile is not missed.
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key), interest)
            {
                log::warn!("{}: cannot change interest: {e}", conn.id);
            }
            conn.write_interest = interest.is_writable();
        }
        let outcome = match result {
            // With TLS, the close is sent once its record left rustls too.
            Ok(_) => Ok(conn.outbox.close_sent() && !transport::wants_write(conn)),
            Err(e) => Err(match conn.phase {
                Phase::Closing {
                    reason: Some(r), ..
                } => r,
                _ => DisconnectReason::Io(e.kind()),
            }),
        };
        // Settle deliveries after the write (it may end an attempt), also
        // when a later write of this flush failed: those frames reached the
        // socket, and their tags are this connection's alone.
        let now = self.net.now;
        for i in 0..self.written.len() {
            let tag = self.written[i];
            self.engine.written(now, id, tag, &mut self.net);
        }
        self.written.clear();
        let close_sent = match outcome {
            Ok(close_sent) => close_sent,
            Err(reason) => {
                self.remove_conn(key, reason);
                return;
            }
        };
        // Then let the backlog into the room the write made.
        if freed && self.engine.has_backlog(id) {
            self.engine.ring_space(now, id, &mut self.net);
        }
        if close_sent {
            self.after_close_sent(key);
        }
    }
}
