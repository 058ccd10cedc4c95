//! The trust boundary at the door: who may listen where with which
//! authenticator, connections per IP address, allowed origins, the admin
//! endpoints, token expiry, and the hub-wide budget of buffered bytes.
//!
//! The hub's other files call in here at one point each (bind, accept,
//! request, upgrade, open, read, remove); the policy lives in this file.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{Hub, TimerEvent};
use crate::auth::{Authenticator, JwtAuthenticator, QueryAuthenticator};
use crate::config::{AuthMode, HubConfig};
use crate::conn::Phase;
use crate::conn::outbox::CloseWhen;
use crate::error::BuildError;
use crate::event::{ConnId, DisconnectReason};
use crate::util::escape::Esc;
use crate::ws::CloseCode;
use crate::ws::http::Request;

/// Refuses query-string identities on a non-loopback address unless the
/// config asked for them by name, and builds the authenticator the config
/// names.
pub(super) fn authenticator(
    config: &HubConfig,
    addr: SocketAddr,
) -> Result<Box<dyn Authenticator>, BuildError> {
    match config.auth.mode {
        Some(AuthMode::Jwt) => Ok(Box::new(
            JwtAuthenticator::from_config(&config.auth.jwt).map_err(BuildError::Config)?,
        )),
        None if !addr.ip().is_loopback() => Err(BuildError::UnsafeAuth { addr }),
        _ => {
            log::warn!(
                "{addr}: identities are unauthenticated (auth.mode: query): \
                 any client may claim any user_id; use auth.mode: jwt outside trusted networks"
            );
            Ok(Box::new(QueryAuthenticator))
        }
    }
}

/// Connections (handshaking or open) per peer address, for
/// `max_connections_per_ip`. The map holds one entry per address with a
/// connection, so it never outgrows the connection slab it is sized to.
#[derive(Debug)]
pub(super) struct PerIp {
    counts: HashMap<IpAddr, u32>,
    limit: usize,
}

impl PerIp {
    pub(super) fn new(limit: usize, slots: usize) -> PerIp {
        let cap = if limit == 0 { 0 } else { slots };
        PerIp {
            counts: HashMap::with_capacity(cap),
            limit,
        }
    }

    /// Counts a new connection from `ip`; false when it is one too many.
    pub(super) fn admit(&mut self, ip: IpAddr) -> bool {
        if self.limit == 0 {
            return true;
        }
        let n = self.counts.entry(ip).or_insert(0);
        if *n as usize >= self.limit {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` is gone.
    pub(super) fn release(&mut self, ip: IpAddr) {
        if self.limit == 0 {
            return;
        }
        if let Some(n) = self.counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&ip);
            }
        }
    }
}

/// Whether a browser's `Origin` may upgrade: any when the list is empty,
/// and requests without the header (non-browser clients) always.
pub(super) fn origin_allowed(config: &HubConfig, req: &Request) -> bool {
    if config.allowed_origins.is_empty() {
        return true;
    }
    match req.header("origin") {
        None => true,
        Some(origin) => {
            let origin = origin.trim().trim_end_matches('/');
            config
                .allowed_origins
                .iter()
                .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
        }
    }
}

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// Whether connection `key` may read a health or metrics path: `None`
    /// to serve it, else the status to answer with.
    pub(super) fn admin_gate(&mut self, key: usize) -> Option<u16> {
        let conn = &self.net.conns[key];
        if conn.admin {
            return None;
        }
        if self.config.admin_listen.is_some() {
            // Served on the admin port only: here they do not exist.
            return Some(404);
        }
        if conn.peer.is_loopback() {
            return None;
        }
        self.stats.admin_forbidden += 1;
        Some(403)
    }

    /// Arms the close at the token's `exp` for a connection just opened.
    pub(super) fn arm_expiry(&mut self, key: usize) {
        let conn = &mut self.net.conns[key];
        let Some(expires_at) = conn.identity.as_ref().and_then(|i| i.expires_at) else {
            return;
        };
        let left = crate::auth::expires_in(expires_at).unwrap_or(Duration::ZERO);
        // A deadline years away is as good as none, and must not overflow.
        if left > crate::config::MAX_DURATION {
            return;
        }
        let at = self.net.now + left;
        conn.timers.expiry = Some(self.net.timers.insert(at, TimerEvent::Expiry(conn.id)));
    }

    /// The token of connection `id` expired: close it with 4001.
    pub(super) fn on_token_expiry(&mut self, id: ConnId) {
        let Some(conn) = super::net::live(&mut self.net.conns, id) else {
            return;
        };
        conn.timers.expiry = None;
        if !conn.is_open() {
            return;
        }
        self.stats.tokens_expired += 1;
        if let Some(identity) = &conn.identity {
            log::info!("{id}: token of user {} expired", Esc(&identity.user_id));
        }
        self.close_conn(
            id.index(),
            DisconnectReason::TokenExpired,
            CloseCode::TOKEN_EXPIRED,
            "token expired",
            CloseWhen::Now,
        );
    }

    /// Recounts what connection `key` holds in partial input after a read
    /// and, past `max_buffered_bytes`, closes whoever holds the most.
    ///
    /// Finding the largest holder scans the connections, but only when the
    /// budget is exceeded, and each scan closes one that holds at least the
    /// average: an attacker pays for every scan with that many bytes sent.
    pub(super) fn account_buffered(&mut self, key: usize) {
        let Some(conn) = self.net.conns.get_mut(key) else {
            return;
        };
        let held = held_bytes(&conn.phase, conn.decoder.buffered_capacity());
        self.buffered = self.buffered - conn.held + held;
        conn.held = held;
        while self.buffered > self.buffered_budget {
            let Some((victim, most)) = self
                .net
                .conns
                .iter()
                .filter(|(_, c)| c.held > 0)
                .max_by_key(|(_, c)| c.held)
                .map(|(k, c)| (k, c.held))
            else {
                return;
            };
            self.evict(victim, most);
        }
    }

    /// Closes connection `key`, which holds `held` buffered bytes, for the
    /// hub-wide budget.
    fn evict(&mut self, key: usize, held: usize) {
        self.stats.buffer_evictions += 1;
        let conn = &mut self.net.conns[key];
        log::warn!(
            "{}: closed, holds {held} of the hub's {} buffered bytes (max_buffered_bytes {})",
            conn.id,
            self.buffered,
            self.buffered_budget
        );
        // Its partial input is dropped now, whatever the close does next.
        self.buffered -= conn.held;
        conn.held = 0;
        conn.decoder = crate::ws::Decoder::new(crate::ws::Limits {
            max_frame_size: self
                .config
                .max_frame_size
                .unwrap_or(self.config.max_message_size),
            max_message_size: self.config.max_message_size,
        });
        match conn.phase {
            Phase::Open => self.close_conn(
                key,
                DisconnectReason::MemoryLimit,
                CloseCode::POLICY,
                "server memory limit",
                CloseWhen::Now,
            ),
            _ => self.remove_conn(key, DisconnectReason::MemoryLimit),
        }
    }
}

/// Bytes a connection holds in partial input: its request head while
/// handshaking, its decoder's partial frame and message after.
fn held_bytes(phase: &Phase, decoder: usize) -> usize {
    match phase {
        Phase::Handshake { head } => head.capacity() + decoder,
        _ => decoder,
    }
}
