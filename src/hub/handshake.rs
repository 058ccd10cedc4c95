//! The HTTP phase: the request head, pages and health endpoints, and the
//! WebSocket upgrade (limits, authentication, replacement of a device).

use super::{CLOSE_LINGER, Hub, Lifecycle, MAX_HEAD, REPLACED, TimerEvent, guard};
use crate::auth::Identity;
use crate::conn::Phase;
use crate::conn::outbox::CloseWhen;
use crate::delivery::ids::IdBuf;
use crate::event::{DisconnectReason, HubEvent};
use crate::message::Payload;
use crate::util::escape::Esc;
use crate::ws::deflate::Negotiated;
use crate::ws::http::{self, Request};

/// Content type of the hub's plain-text answers.
const TEXT: &str = "text/plain; charset=utf-8";

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    pub(super) fn on_request_bytes(&mut self, key: usize) {
        let conn = &mut self.net.conns[key];
        let Phase::Handshake { head } = &mut conn.phase else {
            return;
        };
        match http::parse_request(head, MAX_HEAD) {
            Ok(None) => {}
            Err(e) => {
                self.stats.rejected += 1;
                log::debug!("{}: bad request: {e}", conn.id);
                self.respond(key, e.status(), TEXT, e.to_string().as_bytes());
            }
            Ok(Some((req, len))) => {
                let early = head.split_off(len);
                self.on_request(key, &req, early);
            }
        }
    }

    pub(super) fn on_request(&mut self, key: usize, req: &Request, early: Vec<u8>) {
        if req.is_websocket_upgrade() {
            self.on_upgrade(key, req, early);
            return;
        }
        self.stats.http_requests += 1;
        if req.method != "GET" && req.method != "HEAD" {
            let body = b"only GET is served here";
            self.respond(key, 405, TEXT, body);
            return;
        }
        if self.net.conns[key].admin {
            // The admin port serves the health endpoints only.
            if let Some((ct, body)) = self.health_response(&req.path) {
                self.respond(key, 200, ct, body.as_bytes());
            } else {
                self.respond(key, 404, TEXT, b"not found");
            }
            return;
        }
        if let Some(page) = self.pages.iter().find(|p| p.path == req.path) {
            let (ct, body) = (page.content_type, page.body.clone());
            self.respond(key, 200, ct, &body);
            return;
        }
        if self.is_health_path(&req.path) {
            match self.admin_gate(key) {
                Some(404) => self.respond(key, 404, TEXT, b"not found"),
                Some(status) => {
                    let body =
                        b"health and metrics are served to loopback peers only (see admin_listen)";
                    self.respond(key, status, TEXT, body);
                }
                None => match self.health_response(&req.path) {
                    Some((ct, body)) => self.respond(key, 200, ct, body.as_bytes()),
                    None => self.respond(key, 404, TEXT, b"not found"),
                },
            }
            return;
        }
        self.respond(key, 404, TEXT, b"not found");
    }

    pub(super) fn on_upgrade(&mut self, key: usize, req: &Request, early: Vec<u8>) {
        let checked = self.check_upgrade(key, req).and_then(|(accept, identity)| {
            let group = self.handshake_group(key, req, &identity)?;
            self.check_identity_groups(&identity, group.as_deref())?;
            Ok((accept, identity, group))
        });
        let (accept, identity, group) = match checked {
            Ok(ok) => ok,
            Err((status, why)) => {
                self.stats.rejected += 1;
                log::debug!(
                    "{}: upgrade refused: {status} {}",
                    self.net.conns[key].id,
                    Esc(&why)
                );
                self.respond(key, status, TEXT, why.as_bytes());
                return;
            }
        };
        let id = self.net.conns[key].id;
        if let Some(old) = self
            .net
            .registry
            .device(&identity.user_id, &identity.client_id)
        {
            self.kick_key(old, REPLACED, DisconnectReason::Replaced);
            if let Some(old_id) = self.net.conns.get(old).map(|c| c.id) {
                self.engine
                    .conn_replaced(self.net.now, old_id, id, &mut self.net);
            }
        }
        let compression = &self.config.compression;
        let deflate = compression
            .enabled
            .then(|| http::negotiate_deflate(req))
            .flatten()
            .map(|n| n.capped(compression.server_max_window_bits));
        self.open_conn(key, &accept, identity, deflate);
        self.groups_on_open(key, group);
        if !early.is_empty() {
            // Frames the client sent before seeing our 101.
            let n = early.len().min(self.scratch.len());
            self.scratch[..n].copy_from_slice(&early[..n]);
            self.on_frames(key, n);
        }
    }

    /// Whether the upgrade may go ahead: the accept key and the identity,
    /// or the status and reason to refuse it with.
    fn check_upgrade(
        &mut self,
        key: usize,
        req: &Request,
    ) -> Result<(String, Identity), (u16, String)> {
        let refuse = |status: u16, why: &str| Err((status, why.to_owned()));
        if self.net.conns[key].admin
            || self.config.ws_path != "*" && req.path != self.config.ws_path
        {
            return refuse(404, "no WebSocket endpoint at this path");
        }
        if !guard::origin_allowed(&self.config, req) {
            self.stats.origin_rejected += 1;
            return refuse(403, "origin not allowed");
        }
        let accept = http::websocket_accept(req).map_err(|e| (e.status(), e.to_string()))?;
        if self.lifecycle != Lifecycle::Running {
            return refuse(503, "hub is shutting down");
        }
        if self.net.registry.connections() >= self.config.max_connections {
            return refuse(503, "hub is full");
        }
        let cert = crate::conn::transport::peer_certificate(&self.net.conns[key]);
        let mut identity = match self.auth.authenticate_with_cert(req, cert) {
            Ok(identity) => identity,
            Err(r) => {
                self.stats.auth_failures += 1;
                return Err((r.status, r.message));
            }
        };
        if identity.client_id.is_empty() {
            // Unguessable, so no one can aim at (replace, kick) a device
            // whose id the hub chose.
            identity.client_id = IdBuf::next().as_str().into();
        }
        let replaced = self
            .net
            .registry
            .device(&identity.user_id, &identity.client_id);
        let others =
            self.net.registry.devices(&identity.user_id).len() - usize::from(replaced.is_some());
        if others >= self.config.max_connections_per_user {
            return refuse(503, "too many connections for this user");
        }
        Ok((accept, identity))
    }

    /// The upgrade is accepted: 101, timers, registry, and the engine's
    /// resends and replays for the user.
    fn open_conn(
        &mut self,
        key: usize,
        accept: &str,
        identity: Identity,
        deflate: Option<Negotiated>,
    ) {
        let mut resp = Vec::with_capacity(160);
        let extensions = deflate.map(|d| d.response());
        http::write_switching_protocols_with(&mut resp, accept, extensions.as_deref());
        let conn = &mut self.net.conns[key];
        let id = conn.id;
        conn.deflate = deflate;
        self.stats.deflate_negotiated += u64::from(deflate.is_some());
        conn.decoder.set_deflate(deflate.is_some());
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
            Esc(&identity.user_id),
            Esc(&identity.client_id)
        );
        let user = identity.user_id.clone();
        self.announce_device(&identity.user_id, &identity.client_id, true);
        self.events
            .push_back(HubEvent::Connected { conn: id, identity });
        self.arm_expiry(key);
        self.engine.conn_opened(id);
        self.engine
            .user_connected(self.net.now, &user, &mut self.net);
        self.net.mark_dirty(key);
    }

    /// Sends an HTTP response and closes once it is out.
    pub(super) fn respond(&mut self, key: usize, status: u16, content_type: &str, body: &[u8]) {
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
}
