//! Socket readiness: accepting, reading, the HTTP phase, frames, writing and
//! closing.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::{CLOSE_LINGER, Hub, Lifecycle, MAX_HEAD, READ_BUDGET, TimerEvent};
use crate::conn::outbox::{CloseWhen, Flush, Outbox};
use crate::conn::{Conn, ConnTimers, Phase};
use crate::delivery::ids::IdBuf;
use crate::event::{ConnId, DisconnectReason, HubEvent};
use crate::message::{Control, Message, Payload, kind};
use crate::ws::http::{self, Request};
use crate::ws::{CloseCode, Decoder, Frame, Limits, OpCode};

/// Pause before accepting again after the process ran out of descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What one inbound frame asks of the hub, decided while the decoder still
/// borrows the connection and carried out after.
enum After {
    Nothing,
    /// The peer sent a close frame (with this code).
    PeerClosed(CloseCode),
    /// The peer broke the protocol: close with this code.
    Violation(CloseCode, &'static str),
}

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

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr) {
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

    pub(super) fn conn_ready(&mut self, key: usize, readable: bool, writable: bool) {
        let Some(conn) = self.net.conns.get_mut(key) else {
            return;
        };
        if writable && conn.write_blocked {
            conn.write_blocked = false;
            self.flush_conn(key);
        }
        if readable {
            self.read_conn(key);
        }
    }

    /// Gives connections that used up their read budget another turn.
    pub(super) fn read_leftovers(&mut self) {
        // Two preallocated lists swap roles: `read_conn` may list a
        // connection again while this turn's list is walked, and neither
        // ever grows past the slot count (a connection is listed once).
        let spare = std::mem::take(&mut self.read_spare);
        let mut pending = std::mem::replace(&mut self.read_again, spare);
        for &key in &pending {
            if let Some(conn) = self.net.conns.get_mut(key) {
                conn.read_pending = false;
                self.read_conn(key);
            }
        }
        pending.clear();
        self.read_spare = pending;
    }

    fn read_conn(&mut self, key: usize) {
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
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => {
                    let reason = match conn.phase {
                        Phase::Closing {
                            reason: Some(r), ..
                        } => r,
                        _ => DisconnectReason::ConnectionLost,
                    };
                    self.remove_conn(key, reason);
                    return;
                }
                Ok(n) => {
                    conn.last_seen = self.net.now;
                    self.on_bytes(key, n);
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        if let Some(conn) = self.net.conns.get_mut(key) {
                            conn.read_pending = true;
                            self.read_again.push(key);
                        }
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.remove_conn(key, DisconnectReason::Io(e.kind()));
                    return;
                }
            }
        }
    }

    /// `n` fresh bytes of connection `key` are at the start of the scratch buffer.
    fn on_bytes(&mut self, key: usize, n: usize) {
        let conn = &mut self.net.conns[key];
        match &mut conn.phase {
            Phase::Handshake { head } => {
                head.extend_from_slice(&self.scratch[..n]);
                self.on_request_bytes(key);
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

    fn on_request_bytes(&mut self, key: usize) {
        let conn = &mut self.net.conns[key];
        let Phase::Handshake { head } = &mut conn.phase else {
            return;
        };
        match http::parse_request(head, MAX_HEAD) {
            Ok(None) => {}
            Err(e) => {
                self.stats.rejected += 1;
                log::debug!("{}: bad request: {e}", conn.id);
                self.respond(
                    key,
                    e.status(),
                    "text/plain; charset=utf-8",
                    e.to_string().as_bytes(),
                );
            }
            Ok(Some((req, len))) => {
                let early = head.split_off(len);
                self.on_request(key, &req, early);
            }
        }
    }

    fn on_request(&mut self, key: usize, req: &Request, early: Vec<u8>) {
        if req.is_websocket_upgrade() {
            self.on_upgrade(key, req, early);
            return;
        }
        self.stats.http_requests += 1;
        if req.method != "GET" && req.method != "HEAD" {
            let body = b"only GET is served here";
            self.respond(key, 405, "text/plain; charset=utf-8", body);
            return;
        }
        if let Some(page) = self.pages.iter().find(|p| p.path == req.path) {
            let (ct, body) = (page.content_type, page.body.clone());
            self.respond(key, 200, ct, &body);
            return;
        }
        if let Some((ct, body)) = self.health_response(&req.path) {
            self.respond(key, 200, ct, body.as_bytes());
            return;
        }
        self.respond(key, 404, "text/plain; charset=utf-8", b"not found");
    }

    fn on_upgrade(&mut self, key: usize, req: &Request, early: Vec<u8>) {
        let refuse = |hub: &mut Self, status: u16, why: &str| {
            hub.stats.rejected += 1;
            log::debug!("{}: upgrade refused: {status} {why}", hub.net.conns[key].id);
            hub.respond(key, status, "text/plain; charset=utf-8", why.as_bytes());
        };
        if self.config.ws_path != "*" && req.path != self.config.ws_path {
            return refuse(self, 404, "no WebSocket endpoint at this path");
        }
        let accept = match http::websocket_accept(req) {
            Ok(a) => a,
            Err(e) => return refuse(self, e.status(), &e.to_string()),
        };
        if self.lifecycle != Lifecycle::Running {
            return refuse(self, 503, "hub is shutting down");
        }
        if self.net.registry.connections() >= self.config.max_connections {
            return refuse(self, 503, "hub is full");
        }
        let mut identity = match self.auth.authenticate(req) {
            Ok(id) => id,
            Err(r) => return refuse(self, r.status, &r.message),
        };
        let id = self.net.conns[key].id;
        if identity.client_id.is_empty() {
            identity.client_id = format!("c{}", id.generation).into();
        }
        let replaced = self
            .net
            .registry
            .device(&identity.user_id, &identity.client_id);
        let others =
            self.net.registry.devices(&identity.user_id).len() - usize::from(replaced.is_some());
        if others >= self.config.max_connections_per_user {
            return refuse(self, 503, "too many connections for this user");
        }
        if let Some(old) = replaced {
            self.kick_key(
                old,
                "replaced by a newer connection",
                DisconnectReason::Replaced,
            );
            if let Some(old_id) = self.net.conns.get(old).map(|c| c.id) {
                self.engine
                    .conn_replaced(self.net.now, old_id, id, &mut self.net);
            }
        }

        let mut resp = Vec::with_capacity(160);
        http::write_switching_protocols(&mut resp, &accept);
        let conn = &mut self.net.conns[key];
        conn.outbox.push_control(Payload::raw(resp));
        conn.phase = Phase::Open;
        conn.identity = Some(identity.clone());
        if let Some(t) = conn.timers.phase.take() {
            self.net.timers.cancel(t);
        }
        let idle_at = self.net.now + self.config.client_timeout;
        conn.timers.idle = Some(self.net.timers.insert(idle_at, TimerEvent::Idle(id)));
        if !self.config.heartbeat_interval.is_zero() {
            let ping_at = self.net.now + self.config.heartbeat_interval;
            conn.timers.heartbeat =
                Some(self.net.timers.insert(ping_at, TimerEvent::Heartbeat(id)));
        }
        self.net
            .registry
            .insert(&identity.user_id, &identity.client_id, key);
        self.stats.upgraded += 1;
        log::debug!(
            "{id} open: user {} client {}",
            identity.user_id,
            identity.client_id
        );
        let user = identity.user_id.clone();
        self.events
            .push_back(HubEvent::Connected { conn: id, identity });
        self.engine.conn_opened(id);
        self.engine
            .user_connected(self.net.now, &user, &mut self.net);
        self.net.mark_dirty(key);
        if !early.is_empty() {
            // Frames the client sent before seeing our 101.
            let n = early.len().min(self.scratch.len());
            self.scratch[..n].copy_from_slice(&early[..n]);
            self.on_frames(key, n);
        }
    }

    /// Decodes the frames in `scratch[..n]` for connection `key`.
    fn on_frames(&mut self, key: usize, n: usize) {
        let Hub {
            net,
            scratch,
            events,
            stats,
            config,
            json_protocol,
            acks,
            ..
        } = self;
        let conn = &mut net.conns[key];
        let Conn {
            decoder,
            outbox,
            identity,
            id,
            phase,
            dirty: conn_dirty,
            ..
        } = conn;
        let open = matches!(phase, Phase::Open);
        let mut after = After::Nothing;
        let mut feed = decoder.feed(&mut scratch[..n]);
        loop {
            let frame = match feed.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    after = After::Violation(e.close_code(), "protocol error");
                    log::debug!("{id}: protocol error: {e}");
                    break;
                }
            };
            match frame {
                Frame::Close(close) => {
                    after = After::PeerClosed(close.map_or(CloseCode::STATUS, |c| c.code));
                    break;
                }
                // Once closing, only ACKs and the close reply still count.
                Frame::Text(text) if !open => {
                    if identity.is_some()
                        && let Some(Control::Ack(message_id)) = Control::probe(text)
                    {
                        acks.push(*id, message_id);
                    }
                }
                _ if !open => {}
                Frame::Ping(data) => {
                    if !outbox.push_control(Payload::encode(OpCode::Pong, data)) {
                        stats.control_dropped += 1;
                    }
                }
                Frame::Pong(_) => {}
                Frame::Text(text) => {
                    let Some(identity) = identity.as_ref() else {
                        continue;
                    };
                    if !*json_protocol {
                        stats.messages_in += 1;
                        events.push_back(HubEvent::Text {
                            conn: *id,
                            identity: identity.clone(),
                            text: Payload::encode(OpCode::Text, text.as_bytes()),
                        });
                        continue;
                    }
                    match Control::probe(text) {
                        Some(Control::Ping) => {
                            if !outbox.push_control(pong_payload()) {
                                stats.control_dropped += 1;
                            }
                            continue;
                        }
                        Some(Control::Ack(message_id)) => {
                            acks.push(*id, message_id);
                            continue;
                        }
                        None => {}
                    }
                    match Message::decode(text) {
                        Ok(msg) if msg.message_type == kind::PING => {
                            if !outbox.push_control(pong_payload()) {
                                stats.control_dropped += 1;
                            }
                        }
                        Ok(msg) if msg.message_type == kind::ACK => {
                            acks.push(*id, &msg.message_id);
                        }
                        Ok(mut msg) => {
                            if !config.trust_client_message_ids || msg.message_id.is_empty() {
                                // The hub names every message it routes; the
                                // client's own id travels on in `id`.
                                if msg.id.is_empty() {
                                    msg.id = std::mem::take(&mut msg.message_id);
                                }
                                msg.message_id = IdBuf::next().as_str().to_owned();
                            }
                            msg.sender = identity.user_id.to_string();
                            msg.sender_type = identity.user_type.to_string();
                            if msg.create_at.is_empty() {
                                msg.create_at = crate::message::rfc3339_now();
                            }
                            stats.messages_in += 1;
                            events.push_back(HubEvent::Message {
                                conn: *id,
                                identity: identity.clone(),
                                message: Box::new(msg),
                            });
                        }
                        Err(e) => {
                            stats.invalid_messages += 1;
                            let notice = Message::notice(
                                kind::ERROR,
                                serde_json::json!({"reason": "validation", "detail": e.to_string()}),
                            );
                            if let Ok(p) = Payload::json(&notice)
                                && p.len() <= config.max_message_size
                                && !outbox.push_control(p)
                            {
                                stats.control_dropped += 1;
                            }
                        }
                    }
                }
                Frame::Binary(data) => {
                    if let Some(identity) = identity.as_ref() {
                        stats.messages_in += 1;
                        events.push_back(HubEvent::Binary {
                            conn: *id,
                            identity: identity.clone(),
                            data: Payload::encode(OpCode::Binary, data),
                        });
                    }
                }
            }
        }
        drop(feed);
        if outbox.has_pending() && !*conn_dirty {
            *conn_dirty = true;
            net.dirty.push(key);
        }
        // ACKs count while the connection closes too: until it is gone.
        let now = self.net.now;
        for (conn, message_id) in self.acks.iter() {
            self.engine.acked(now, conn, message_id, &mut self.net);
        }
        self.acks.clear();
        match after {
            After::Nothing => {}
            After::PeerClosed(code) => self.on_peer_close(key, code),
            After::Violation(code, why) => {
                self.stats.protocol_errors += 1;
                self.close_conn(
                    key,
                    DisconnectReason::ProtocolError(code),
                    code,
                    why,
                    CloseWhen::Now,
                );
            }
        }
    }

    fn on_peer_close(&mut self, key: usize, code: CloseCode) {
        let conn = &mut self.net.conns[key];
        match conn.phase {
            // We closed first and this is the reply: the handshake is done.
            Phase::Closing { reason, .. } if conn.outbox.close_sent() => {
                self.remove_conn(key, reason.unwrap_or(DisconnectReason::ClientClosed(code)));
            }
            Phase::Closing { .. } => {
                if let Phase::Closing { peer_closed, .. } = &mut conn.phase {
                    *peer_closed = true;
                }
            }
            _ => {
                // Echo the code (RFC 6455 5.5.1); STATUS (1005) means none was given.
                let reply = if code == CloseCode::STATUS {
                    CloseCode::NORMAL
                } else {
                    code
                };
                self.close_conn(
                    key,
                    DisconnectReason::ClientClosed(code),
                    reply,
                    "",
                    CloseWhen::Now,
                );
                if let Some(Phase::Closing { peer_closed, .. }) =
                    self.net.conns.get_mut(key).map(|c| &mut c.phase)
                {
                    *peer_closed = true;
                }
            }
        }
    }

    /// Sends an HTTP response and closes once it is out.
    fn respond(&mut self, key: usize, status: u16, content_type: &str, body: &[u8]) {
        let mut resp = Vec::with_capacity(128 + body.len());
        http::write_response(&mut resp, status, content_type, body);
        let conn = &mut self.net.conns[key];
        conn.outbox.close(Payload::raw(resp), CloseWhen::Now);
        conn.phase = Phase::Closing {
            reason: None,
            peer_closed: false,
        };
        self.rearm_phase_timer(key, CLOSE_LINGER);
        self.net.mark_dirty(key);
    }

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
        if let Some(identity) = &conn.identity {
            self.net.registry.remove(&identity.user_id, key);
        }
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
    fn fail_abandoned(&mut self, key: usize, reason: DisconnectReason) {
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

    fn rearm_phase_timer(&mut self, key: usize, after: Duration) {
        let conn = &mut self.net.conns[key];
        if let Some(t) = conn.timers.phase.take() {
            self.net.timers.cancel(t);
        }
        let at: Instant = self.net.now + after;
        conn.timers.phase = Some(self.net.timers.insert(at, TimerEvent::Phase(conn.id)));
    }

    pub(super) fn flush_dirty(&mut self) {
        while let Some(key) = self.net.dirty.pop() {
            if let Some(conn) = self.net.conns.get_mut(key) {
                conn.dirty = false;
                self.flush_conn(key);
            }
        }
    }

    fn flush_conn(&mut self, key: usize) {
        let Some(conn) = self.net.conns.get_mut(key) else {
            return;
        };
        if conn.write_blocked {
            return;
        }
        let mut sent = 0u64;
        let written = &mut self.written;
        let free_before = conn.outbox.free();
        let result = conn.outbox.flush(&mut conn.stream, &mut |out| {
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
            Ok(_) => Ok(conn.outbox.close_sent()),
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

    /// Our last bytes are out: finish now if the peer is done too, otherwise
    /// half-close and wait (linger timer) for its close or EOF.
    fn after_close_sent(&mut self, key: usize) {
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
            let _ = conn.stream.shutdown(std::net::Shutdown::Write);
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
        for t in [conn.timers.phase, conn.timers.idle, conn.timers.heartbeat]
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
        if let Some(identity) = &conn.identity {
            self.net.registry.remove(&identity.user_id, key);
        }
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

/// go-wsc's JSON pong, encoded once per thread.
fn pong_payload() -> Payload {
    thread_local! {
        static PONG: Payload = Payload::json(&Message {
            message_type: kind::PONG.to_owned(),
            ..Message::default()
        })
        .expect("a plain message always encodes");
    }
    PONG.with(Payload::clone)
}
