//! The ACK index: (connection, message id) → the target waiting for it, in
//! O(1) per ACK whatever the number of messages in flight.
//!
//! Keys hold a 64-bit keyed hash of the message id, not the id itself, so an
//! insert allocates nothing; a hit is confirmed against the delivery's own
//! message id, and the hash keys are random per hub, so a client cannot
//! aim collisions.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use super::record::Tag;
use crate::event::ConnId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct AckKey {
    conn: ConnId,
    id_hash: u64,
}

#[derive(Debug)]
pub(crate) struct AckIndex {
    map: HashMap<AckKey, Tag>,
    ids: RandomState,
    /// The smallest capacity the map shrinks back to.
    floor: usize,
}

impl AckIndex {
    pub(super) fn with_capacity(capacity: usize) -> AckIndex {
        AckIndex {
            map: HashMap::with_capacity(capacity),
            ids: RandomState::new(),
            floor: capacity,
        }
    }

    fn key(&self, conn: ConnId, message_id: &str) -> AckKey {
        AckKey {
            conn,
            id_hash: self.ids.hash_one(message_id),
        }
    }

    /// Registers `tag` as waiting for `message_id` on `conn`; gives back the
    /// tag already registered there, if any (a duplicate id in flight).
    pub(super) fn insert(&mut self, conn: ConnId, message_id: &str, tag: Tag) -> Result<(), Tag> {
        let key = self.key(conn, message_id);
        match self.map.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => Err(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(tag);
                Ok(())
            }
        }
    }

    pub(super) fn get(&self, conn: ConnId, message_id: &str) -> Option<Tag> {
        self.map.get(&self.key(conn, message_id)).copied()
    }

    /// Removes the entry if it is `tag`'s.
    pub(super) fn remove(&mut self, conn: ConnId, message_id: &str, tag: Tag) {
        let key = self.key(conn, message_id);
        if self.map.get(&key) == Some(&tag) {
            self.map.remove(&key);
            // Give memory back after a burst (amortised: only when the map
            // is a quarter full and well above its preallocated size).
            let cap = self.map.capacity();
            if cap > self.floor.max(1024) && self.map.len() * 4 < cap {
                self.map.shrink_to(self.floor.max(self.map.len() * 2));
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}
