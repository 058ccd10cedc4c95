//! The simulation's connections: the engine's [`Net`] over rings that behave
//! as the hub's do (a fixed capacity, a head frame that can be partly
//! written, no new frames once closing), a registry of open devices, and
//! slab-like slots reused newest-first with a new generation.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::delivery::{Net, Tag};
use crate::event::ConnId;
use crate::failure::reason::FailureReason;
use crate::message::Payload;

/// A frame in a ring.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    pub tag: Tag,
    pub at: Instant,
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Upgraded and registered: a device of its user.
    Open,
    /// Closing for this reason: no new frames, no longer a device, ACKs
    /// still read; removed later.
    Closing(FailureReason),
}

#[derive(Debug)]
pub(super) struct SimConn {
    pub id: ConnId,
    pub user: Arc<str>,
    pub client: Arc<str>,
    pub phase: Phase,
    pub ring: VecDeque<Frame>,
    /// The head frame is partly on the wire: it stays until finished or the
    /// connection goes (a close-now or a send timeout skips it).
    pub partial: bool,
}

pub(super) struct SimNet {
    /// By slot (the slab key).
    pub slots: Vec<Option<SimConn>>,
    generations: Vec<u32>,
    /// Free slots, the most recently freed last (a slab reuses it first).
    free: Vec<u32>,
    /// Open devices in connection order: (user, client, conn).
    pub registry: Vec<(Arc<str>, Arc<str>, ConnId)>,
    pub cap: usize,
    pub now: Instant,
    /// Every frame the engine queued since the checker last looked.
    pub enqueued: Vec<(ConnId, Tag, Payload)>,
}

impl SimNet {
    pub(super) fn new(slots: usize, cap: usize, now: Instant) -> SimNet {
        SimNet {
            slots: (0..slots).map(|_| None).collect(),
            generations: vec![0; slots],
            free: (0..slots as u32).rev().collect(),
            registry: Vec::new(),
            cap,
            now,
            enqueued: Vec::new(),
        }
    }

    /// A new connection of (`user`, `client`) in a free slot, not yet
    /// registered; `None` when every slot is taken.
    pub(super) fn accept(&mut self, user: &Arc<str>, client: &Arc<str>) -> Option<ConnId> {
        let index = self.free.pop()?;
        let generation = &mut self.generations[index as usize];
        *generation += 1;
        let id = ConnId {
            index,
            generation: *generation,
        };
        self.slots[index as usize] = Some(SimConn {
            id,
            user: user.clone(),
            client: client.clone(),
            phase: Phase::Open,
            ring: VecDeque::new(),
            partial: false,
        });
        Some(id)
    }

    /// Makes `id` a device of its user.
    pub(super) fn register(&mut self, id: ConnId) {
        if let Some(c) = self.get(id) {
            let entry = (c.user.clone(), c.client.clone(), id);
            self.registry.push(entry);
        }
    }

    /// `id` is no longer a device of its user.
    pub(super) fn unregister(&mut self, id: ConnId) {
        self.registry.retain(|d| d.2 != id);
    }

    /// Frees the slot of `id`.
    pub(super) fn release(&mut self, id: ConnId) -> Option<SimConn> {
        let slot = self.slots.get_mut(id.index())?;
        if slot.as_ref().is_none_or(|c| c.id != id) {
            return None;
        }
        self.free.push(id.index);
        slot.take()
    }

    pub(super) fn get(&self, id: ConnId) -> Option<&SimConn> {
        self.slots.get(id.index())?.as_ref().filter(|c| c.id == id)
    }

    pub(super) fn get_mut(&mut self, id: ConnId) -> Option<&mut SimConn> {
        self.slots
            .get_mut(id.index())?
            .as_mut()
            .filter(|c| c.id == id)
    }

    /// The open connection of (`user`, `client`), if any.
    pub(super) fn device(&self, user: &str, client: &str) -> Option<ConnId> {
        self.registry
            .iter()
            .find(|d| &*d.0 == user && &*d.1 == client)
            .map(|d| d.2)
    }

    pub(super) fn has_device(&self, user: &str) -> bool {
        self.registry.iter().any(|d| &*d.0 == user)
    }

    /// Every connection still in a slot (open or closing).
    pub(super) fn live(&self) -> impl Iterator<Item = &SimConn> {
        self.slots.iter().flatten()
    }

    pub(super) fn live_ids(&self) -> Vec<ConnId> {
        self.live().map(|c| c.id).collect()
    }

    /// Every tagged frame in the rings, by connection.
    pub(super) fn frames(&self) -> Vec<(ConnId, Tag)> {
        self.live()
            .flat_map(|c| c.ring.iter().map(move |f| (c.id, f.tag)))
            .collect()
    }
}

impl Net for SimNet {
    fn each_device(&self, user: &str, f: &mut dyn FnMut(ConnId, &Arc<str>)) {
        for (u, client, id) in &self.registry {
            if &**u == user {
                f(*id, client);
            }
        }
    }

    fn user_key(&self, user: &str) -> Option<Arc<str>> {
        self.registry
            .iter()
            .find(|d| &*d.0 == user)
            .map(|d| d.0.clone())
    }

    fn ring_free(&self, conn: ConnId) -> usize {
        match self.get(conn) {
            Some(c) if c.phase == Phase::Open => self.cap.saturating_sub(c.ring.len()),
            _ => 0,
        }
    }

    fn enqueue(&mut self, conn: ConnId, payload: &Payload, tag: Tag) -> bool {
        let (cap, now) = (self.cap, self.now);
        match self.get_mut(conn) {
            Some(c) if c.phase == Phase::Open && c.ring.len() < cap => {
                c.ring.push_back(Frame { tag, at: now });
                self.enqueued.push((conn, tag, payload.clone()));
                true
            }
            _ => false,
        }
    }
}
