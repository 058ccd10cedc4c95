//! The connections as the layers below the loop see them: the slab, the
//! user/device registry, the connection timers, the dirty list and the
//! loop's clock. The delivery engine reaches the rings through this (its
//! [`Net`] view); the loop owns it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use super::TimerEvent;
use super::deflate::Twins;
use crate::cluster::presence::Presence;
use crate::config::HubConfig;
use crate::conn::Conn;
use crate::conn::outbox::Outbound;
use crate::conn::registry::Registry;
use crate::delivery::{Net, Tag};
use crate::event::ConnId;
use crate::message::Payload;
use crate::util::timer::TimerWheel;

/// Granularity of the connection timers' wheel.
const TICK: Duration = Duration::from_millis(10);

pub(crate) struct Conns<const QUEUE: usize, const WHEEL: usize> {
    pub conns: Slab<Conn<QUEUE>>,
    pub registry: Registry,
    /// Handshake, linger, idle, heartbeat and send-timeout timers.
    pub timers: TimerWheel<TimerEvent, WHEEL>,
    /// Connections with frames queued since the last flush.
    pub dirty: Vec<usize>,
    /// The loop's clock, read once per turn.
    pub now: Instant,
    started: Instant,
    send_timeout: u32,
    /// Compressed twins of this turn's sends, for connections that
    /// negotiated permessage-deflate.
    pub twins: Twins,
    /// Devices on other hubs (`cluster`), behind proxy connection ids.
    pub remote: Option<Presence>,
    /// Tracked frames for proxies, published by the loop after this turn.
    pub remote_out: Vec<(ConnId, Payload, Tag)>,
}

impl<const QUEUE: usize, const WHEEL: usize> Conns<QUEUE, WHEEL> {
    pub(super) fn new(slots: usize, users: usize, config: &HubConfig, now: Instant) -> Self {
        Conns {
            conns: Slab::with_capacity(slots),
            registry: Registry::with_capacity(users),
            // Each connection holds up to four timers.
            timers: TimerWheel::with_capacity(TICK, now, slots * 4 + 64),
            dirty: Vec::with_capacity(slots),
            now,
            started: now,
            send_timeout: millis(config.send_timeout),
            twins: Twins::new(&config.compression),
            // A hub's picture of the others: up to four remote devices per
            // local connection slot.
            remote: config
                .cluster
                .as_ref()
                .map(|_| Presence::new(slots, slots.saturating_mul(4))),
            remote_out: Vec::new(),
        }
    }

    /// The connection `id` names, unless it has closed (its slot may hold a
    /// newer one).
    pub(super) fn live(&mut self, id: ConnId) -> Option<&mut Conn<QUEUE>> {
        live(&mut self.conns, id)
    }

    /// The connection `id` names, if it is open.
    pub(super) fn open(&self, id: ConnId) -> Option<&Conn<QUEUE>> {
        self.conns
            .get(id.index())
            .filter(|c| c.id == id && c.is_open())
    }

    /// The loop's millisecond clock for ring entries (wraps after 49 days;
    /// only differences are used).
    pub(super) fn clock_ms(&self) -> u32 {
        self.now.saturating_duration_since(self.started).as_millis() as u32
    }

    /// Lists `key` for the next flush.
    pub(super) fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(key);
        }
    }

    /// Queues one frame for connection `key`; false when its ring is full.
    pub(super) fn enqueue_key(&mut self, key: usize, payload: &Payload, tag: Option<Tag>) -> bool {
        let enqueued = self.clock_ms();
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let out = Outbound {
            payload: self.twins.pick(payload, conn.deflate),
            enqueued,
            tag,
        };
        if conn.outbox.push(out).is_err() {
            return false;
        }
        if conn.timers.send.is_none() {
            self.arm_send_timer(key);
        }
        self.mark_dirty(key);
        true
    }

    /// Arms the `send_timeout` check for the oldest waiting frame, if any.
    pub(super) fn arm_send_timer(&mut self, key: usize) {
        let now_ms = self.clock_ms();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.timers.send.is_some() {
            return;
        }
        if let Some(oldest) = conn.outbox.oldest_waiting() {
            let left = self
                .send_timeout
                .saturating_sub(now_ms.wrapping_sub(oldest));
            let at = self.now + Duration::from_millis(u64::from(left));
            conn.timers.send = Some(self.timers.insert(at, TimerEvent::SendTimeout(conn.id)));
        }
    }

    /// `send_timeout` in the ring clock's milliseconds.
    pub(super) fn send_timeout_ms(&self) -> u32 {
        self.send_timeout
    }
}

impl<const QUEUE: usize, const WHEEL: usize> Net for Conns<QUEUE, WHEEL> {
    fn each_device(&self, user: &str, f: &mut dyn FnMut(ConnId, &Arc<str>)) {
        for dev in self.registry.devices(user) {
            if let Some(conn) = self.conns.get(dev.key).filter(|c| c.is_open()) {
                f(conn.id, &dev.client_id);
            }
        }
        for dev in self.remote.iter().flat_map(|r| r.of_user(user)) {
            f(dev.id, &dev.client);
        }
    }

    fn user_key(&self, user: &str) -> Option<Arc<str>> {
        let local = self.registry.user_key(user).cloned();
        local.or_else(|| self.remote.as_ref()?.user_key(user))
    }

    fn ring_free(&self, conn: ConnId) -> usize {
        match &self.remote {
            // A remote device's ring is on its hub: the engine's ACK window
            // and that hub's answer bound what is in flight.
            Some(r) if r.is_proxy(conn) => usize::from(r.get(conn).is_some()) * QUEUE,
            _ => self.open(conn).map_or(0, |c| c.outbox.free()),
        }
    }

    fn enqueue(&mut self, conn: ConnId, payload: &Payload, tag: Tag) -> bool {
        match &self.remote {
            Some(r) if r.is_proxy(conn) => {
                let present = r.get(conn).is_some();
                if present {
                    self.remote_out.push((conn, payload.clone(), tag));
                }
                present
            }
            _ => self.open(conn).is_some() && self.enqueue_key(conn.index(), payload, Some(tag)),
        }
    }
}

/// [`Conns::live`] borrowing only the slab, for callers that also use the
/// wheel or the clock meanwhile.
pub(crate) fn live<const Q: usize>(conns: &mut Slab<Conn<Q>>, id: ConnId) -> Option<&mut Conn<Q>> {
    conns.get_mut(id.index()).filter(|c| c.id == id)
}

/// A duration in whole milliseconds for the ring's 32-bit clock (saturating).
pub(crate) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
