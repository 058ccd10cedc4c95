//! Per-connection delivery state: the backlog of with-retry deliveries
//! waiting for ring space, and the ACK window.
//!
//! A lane exists for every slab slot (sized once, like the slab); it is
//! bound to a connection while that connection is open or closing. Its
//! vectors keep their capacity across connections, so a busy slot stops
//! allocating after warm-up and an idle one holds none.

use std::collections::VecDeque;
use std::time::Instant;

use super::record::Tag;
use crate::event::ConnId;

/// A delivery waiting in a backlog.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waiting {
    pub tag: Tag,
    pub bytes: usize,
    pub since: Instant,
    pub require_ack: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Lane {
    /// The connection this lane serves, while it is open or closing.
    pub conn: Option<ConnId>,
    /// No new frames: the connection is closing.
    pub closing: bool,
    /// The connection that replaced this one (same device): a late ACK
    /// here counts for the resend there.
    pub successor: Option<ConnId>,
    /// With-retry deliveries waiting, in arrival order.
    pub backlog: VecDeque<Waiting>,
    pub backlog_bytes: usize,
    /// `require_ack` frames queued or written and not yet settled; a
    /// target records its position here for O(1) removal.
    pub window: Vec<Tag>,
}

impl Lane {
    /// Whether `conn` is this lane's connection.
    pub(super) fn serves(&self, conn: ConnId) -> bool {
        self.conn == Some(conn)
    }
}

/// The lanes, indexed by slab key.
#[derive(Debug, Default)]
pub(crate) struct Lanes {
    lanes: Vec<Lane>,
    /// Entries in all windows.
    windows: usize,
}

impl Lanes {
    pub(super) fn with_slots(slots: usize) -> Lanes {
        Lanes {
            lanes: (0..slots).map(|_| Lane::default()).collect(),
            windows: 0,
        }
    }

    /// Binds slot `conn.index()` to a new connection.
    pub(super) fn open(&mut self, conn: ConnId) {
        // Proxies of remote devices (cluster) are numbered past the slots:
        // their lanes are made when a device of another hub appears.
        if conn.index() >= self.lanes.len() {
            self.lanes.resize_with(conn.index() + 1, Lane::default);
        }
        if let Some(lane) = self.lanes.get_mut(conn.index()) {
            debug_assert!(lane.backlog.is_empty() && lane.window.is_empty());
            lane.conn = Some(conn);
            lane.closing = false;
            lane.successor = None;
        }
    }

    /// The lane of `conn`, if it is still bound to it.
    pub(super) fn get_mut(&mut self, conn: ConnId) -> Option<&mut Lane> {
        self.lanes
            .get_mut(conn.index())
            .filter(|lane| lane.serves(conn))
    }

    pub(super) fn get(&self, conn: ConnId) -> Option<&Lane> {
        self.lanes
            .get(conn.index())
            .filter(|lane| lane.serves(conn))
    }

    /// Adds `tag` to the window of `conn`; returns its position.
    pub(super) fn window_push(&mut self, conn: ConnId, tag: Tag) -> Option<u32> {
        let lane = self.get_mut(conn)?;
        lane.window.push(tag);
        let pos = (lane.window.len() - 1) as u32;
        self.windows += 1;
        Some(pos)
    }

    /// Removes position `pos` from the window of `conn`. Returns the tag
    /// that moved into `pos` (its target must learn its new position).
    pub(super) fn window_remove(&mut self, conn: ConnId, pos: u32) -> Option<Tag> {
        let lane = self.get_mut(conn)?;
        let pos = pos as usize;
        if pos >= lane.window.len() {
            return None;
        }
        lane.window.swap_remove(pos);
        let moved = lane.window.get(pos).copied();
        self.windows -= 1;
        moved
    }

    /// Takes the oldest backlog entry of `conn`.
    pub(crate) fn pop_backlog(&mut self, conn: ConnId) -> Option<Waiting> {
        let lane = self.get_mut(conn)?;
        let w = lane.backlog.pop_front()?;
        lane.backlog_bytes -= w.bytes;
        Some(w)
    }

    /// Entries in all windows: `require_ack` frames in flight.
    pub(super) fn windows(&self) -> usize {
        self.windows
    }

    pub(super) fn window_len(&self, conn: ConnId) -> usize {
        self.get(conn).map_or(0, |lane| lane.window.len())
    }

    /// Every lane, by slot (the engine's self-audit).
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = &Lane> {
        self.lanes.iter()
    }
}
