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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::DeliveryId;
    use std::num::NonZeroU32;

    fn tag(i: u32) -> Tag {
        Tag {
            delivery: DeliveryId {
                index: i,
                generation: NonZeroU32::MIN,
            },
            target: 0,
        }
    }

    #[test]
    fn entries_match_by_connection_and_id_and_memory_comes_back_after_a_burst() {
        let conn = ConnId {
            index: 1,
            generation: 1,
        };
        let other = ConnId {
            index: 2,
            generation: 1,
        };
        let mut acks = AckIndex::with_capacity(16);
        assert!(acks.insert(conn, "a", tag(0)).is_ok());
        assert_eq!(
            acks.insert(conn, "a", tag(1)),
            Err(tag(0)),
            "one id in flight"
        );
        assert_eq!(acks.get(other, "a"), None, "another connection's ACK");
        acks.remove(conn, "a", tag(1));
        assert_eq!(
            acks.get(conn, "a"),
            Some(tag(0)),
            "only its own tag removes it"
        );
        acks.remove(conn, "a", tag(0));
        // A burst grows the map; once it drains, capacity goes back down.
        for i in 0..50_000 {
            acks.insert(conn, &format!("m{i}"), tag(i)).unwrap();
        }
        let peak = acks.map.capacity();
        for i in 0..50_000 {
            acks.remove(conn, &format!("m{i}"), tag(i));
        }
        assert_eq!(acks.len(), 0);
        assert!(
            acks.map.capacity() < peak / 4,
            "{} of {peak}",
            acks.map.capacity()
        );
    }
}
