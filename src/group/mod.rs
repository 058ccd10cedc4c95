//! Groups: named sets of connections (rooms, lobbies, sites), and the hook
//! that decides what clients may do with them.
//!
//! Membership is per connection (one device), so a user's phone can be in a
//! room its laptop is not. The store ([`Groups`]) is only touched by the hub
//! thread:
//!
//! ```text
//!  names: HashMap<name, group>        groups: Slab<Group{name, head, tail, len}>
//!  members: Slab<Member>              one record per (group, connection), on two
//!                                     intrusive doubly linked lists at once:
//!                                     its group's members and its connection's groups
//!  conns: Vec<ConnGroups{head, len}>  indexed by the connection's slab key
//! ```
//!
//! Invariants: a member record is on exactly one group list and one
//! connection list; a group exists while it has members (its name is
//! interned in `names` exactly then); a connection has at most
//! `per_conn` records, a hub at most `max_groups` groups.
//!
//! Costs: join and leave walk the connection's own list (at most
//! `max_groups_per_connection` entries, a small constant) to find a
//! duplicate; unlinking is O(1); a closing connection leaves all its groups
//! in O(its groups); a send walks the group's members only. After warm-up
//! (the member slab at its working size) nothing allocates, except the
//! name of a group created anew (one `Arc<str>`, none when the caller
//! hands one in, as `HubHandle` commands do).

mod command;
mod policy;
mod sticky;
#[cfg(test)]
mod tests;

pub(crate) use command::GroupCommand;
pub(crate) use policy::DefaultPolicy;
pub use policy::{GroupAction, GroupPolicy, GroupRequest};
pub(crate) use sticky::Sticky;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use slab::Slab;

use crate::event::ConnId;
use crate::failure::reason::FailureReason;

/// Longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 256;

const NIL: u32 = u32::MAX;

/// Why a group operation was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    /// The name is empty or longer than [`MAX_GROUP_NAME`] bytes.
    InvalidName,
    /// The connection is not open (any more).
    NoSuchConnection,
    /// `max_groups` groups exist already.
    TooManyGroups {
        /// The configured cap.
        limit: usize,
    },
    /// The connection is in `max_groups_per_connection` groups already.
    TooManyForConnection {
        /// The configured cap.
        limit: usize,
    },
    /// The user's standing memberships (`join_user` with `sticky`) reached
    /// their cap: `max_groups_per_connection` per user, and
    /// `max_connections × max_groups_per_connection` across the hub.
    TooManyForUser {
        /// The cap that was reached.
        limit: usize,
    },
    /// The host's [`GroupPolicy`] refused it (a client's request).
    NotAllowed,
}

impl GroupError {
    /// The reason a client's `error` message carries for it:
    /// `permission` when refused, `validation` otherwise.
    ///
    /// ```
    /// use wshub::{FailureReason, GroupError};
    /// assert_eq!(GroupError::NotAllowed.reason(), FailureReason::Permission);
    /// assert_eq!(GroupError::InvalidName.reason().as_str(), "validation");
    /// ```
    pub fn reason(&self) -> FailureReason {
        match self {
            GroupError::NotAllowed => FailureReason::Permission,
            _ => FailureReason::Validation,
        }
    }
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::InvalidName => {
                write!(f, "a group name is 1 to {MAX_GROUP_NAME} bytes")
            }
            GroupError::NoSuchConnection => f.write_str("no such connection"),
            GroupError::TooManyGroups { limit } => {
                write!(f, "{limit} groups exist already (max_groups)")
            }
            GroupError::TooManyForConnection { limit } => write!(
                f,
                "the connection is in {limit} groups already (max_groups_per_connection)"
            ),
            GroupError::TooManyForUser { limit } => {
                write!(f, "standing group memberships are limited to {limit}")
            }
            GroupError::NotAllowed => f.write_str("not allowed to do that with this group"),
        }
    }
}

impl std::error::Error for GroupError {}

/// Checks a group name's length.
pub(crate) fn check_name(name: &str) -> Result<(), GroupError> {
    if name.is_empty() || name.len() > MAX_GROUP_NAME {
        return Err(GroupError::InvalidName);
    }
    Ok(())
}

#[derive(Debug)]
struct Group {
    name: Arc<str>,
    head: u32,
    tail: u32,
    len: u32,
}

#[derive(Debug, Clone, Copy)]
struct Member {
    group: u32,
    conn: ConnId,
    g_prev: u32,
    g_next: u32,
    c_prev: u32,
    c_next: u32,
}

#[derive(Debug, Clone, Copy)]
struct ConnGroups {
    head: u32,
    len: u32,
}

const NO_GROUPS: ConnGroups = ConnGroups { head: NIL, len: 0 };

/// The membership store (see the module docs).
#[derive(Debug)]
pub(crate) struct Groups {
    names: HashMap<Arc<str>, u32>,
    groups: Slab<Group>,
    members: Slab<Member>,
    conns: Vec<ConnGroups>,
    max_groups: usize,
    per_conn: usize,
}

impl Groups {
    /// A store for connection slab keys below `slots`.
    pub(crate) fn new(slots: usize, max_groups: usize, per_conn: usize) -> Groups {
        // Room for the usual case up front; the slabs grow (during warm-up)
        // to what the hub really holds, never past the caps.
        let groups = max_groups.min(1024);
        Groups {
            names: HashMap::with_capacity(groups),
            groups: Slab::with_capacity(groups),
            members: Slab::with_capacity(slots.min(1 << 16)),
            conns: vec![NO_GROUPS; slots],
            max_groups,
            per_conn,
        }
    }

    /// Groups with at least one member.
    pub(crate) fn count(&self) -> usize {
        self.groups.len()
    }

    /// (group, connection) memberships.
    pub(crate) fn memberships(&self) -> usize {
        self.members.len()
    }

    /// Members of `name` (0 when there is no such group).
    pub(crate) fn len_of(&self, name: &str) -> usize {
        self.names
            .get(name)
            .map_or(0, |&g| self.groups[g as usize].len as usize)
    }

    /// Puts connection `conn` in group `name`; `Ok(false)` when it was in it
    /// already. `owned`, when given, is `name` as an `Arc`, used if the
    /// group is new (no allocation then).
    pub(crate) fn join(
        &mut self,
        conn: ConnId,
        name: &str,
        owned: Option<&Arc<str>>,
    ) -> Result<bool, GroupError> {
        check_name(name)?;
        let slot = *self
            .conns
            .get(conn.index())
            .ok_or(GroupError::NoSuchConnection)?;
        let existing = self.names.get(name).copied();
        if let Some(g) = existing
            && self.find(conn.index(), g).is_some()
        {
            return Ok(false);
        }
        if slot.len as usize >= self.per_conn {
            return Err(GroupError::TooManyForConnection {
                limit: self.per_conn,
            });
        }
        let g = match existing {
            Some(g) => g,
            None => self.create(name, owned)?,
        };
        self.link(conn, g);
        Ok(true)
    }

    /// Takes connection `key` out of group `name`; false if it was not in it.
    pub(crate) fn leave(&mut self, key: usize, name: &str) -> bool {
        let Some(&g) = self.names.get(name) else {
            return false;
        };
        match self.find(key, g) {
            Some(m) => {
                self.unlink(m);
                true
            }
            None => false,
        }
    }

    /// Connection `key` is closing: it leaves every group. Returns how many.
    pub(crate) fn conn_gone(&mut self, key: usize) -> usize {
        let mut n = 0;
        while let Some(head) = self.conns.get(key).map(|c| c.head).filter(|&h| h != NIL) {
            self.unlink(head);
            n += 1;
        }
        n
    }

    /// Whether connection `key` is in group `name`.
    pub(crate) fn is_member(&self, key: usize, name: &str) -> bool {
        self.names
            .get(name)
            .is_some_and(|&g| self.find(key, g).is_some())
    }

    /// The members of `name`, oldest first.
    pub(crate) fn members<'a>(&'a self, name: &str) -> impl Iterator<Item = ConnId> + 'a {
        let head = self
            .names
            .get(name)
            .map_or(NIL, |&g| self.groups[g as usize].head);
        let members = &self.members;
        std::iter::successors((head != NIL).then_some(head), move |&m| {
            let next = members[m as usize].g_next;
            (next != NIL).then_some(next)
        })
        .map(move |m| members[m as usize].conn)
    }

    /// The groups connection `key` is in, the most recently joined first
    /// (its list is pushed at the head: no tail to keep per connection).
    pub(crate) fn groups_of<'a>(&'a self, key: usize) -> impl Iterator<Item = &'a Arc<str>> + 'a {
        let head = self.conns.get(key).map_or(NIL, |c| c.head);
        let members = &self.members;
        std::iter::successors((head != NIL).then_some(head), move |&m| {
            let next = members[m as usize].c_next;
            (next != NIL).then_some(next)
        })
        .map(move |m| &self.groups[members[m as usize].group as usize].name)
    }

    /// The member record of connection `key` in group `g`: a walk of the
    /// connection's list, at most `per_conn` long.
    fn find(&self, key: usize, g: u32) -> Option<u32> {
        let mut m = self.conns.get(key)?.head;
        while m != NIL {
            let rec = &self.members[m as usize];
            if rec.group == g {
                return Some(m);
            }
            m = rec.c_next;
        }
        None
    }

    fn create(&mut self, name: &str, owned: Option<&Arc<str>>) -> Result<u32, GroupError> {
        if self.groups.len() >= self.max_groups {
            return Err(GroupError::TooManyGroups {
                limit: self.max_groups,
            });
        }
        let name = match owned {
            Some(a) if &**a == name => a.clone(),
            _ => Arc::from(name),
        };
        let g = self.groups.insert(Group {
            name: name.clone(),
            head: NIL,
            tail: NIL,
            len: 0,
        }) as u32;
        self.names.insert(name, g);
        Ok(g)
    }

    /// Appends a record to group `g`'s list (its tail: members stay in join
    /// order) and to the front of the connection's list.
    fn link(&mut self, conn: ConnId, g: u32) {
        let key = conn.index();
        let (tail, c_head) = (self.groups[g as usize].tail, self.conns[key].head);
        let m = self.members.insert(Member {
            group: g,
            conn,
            g_prev: tail,
            g_next: NIL,
            c_prev: NIL,
            c_next: c_head,
        }) as u32;
        let group = &mut self.groups[g as usize];
        if tail == NIL {
            group.head = m;
        } else {
            self.members[tail as usize].g_next = m;
        }
        group.tail = m;
        group.len += 1;
        if c_head != NIL {
            self.members[c_head as usize].c_prev = m;
        }
        let c = &mut self.conns[key];
        c.head = m;
        c.len += 1;
    }

    /// Takes record `m` off both its lists in O(1); an emptied group goes.
    fn unlink(&mut self, m: u32) {
        let rec = self.members.remove(m as usize);
        let g = rec.group as usize;
        match rec.g_prev {
            NIL => self.groups[g].head = rec.g_next,
            p => self.members[p as usize].g_next = rec.g_next,
        }
        match rec.g_next {
            NIL => self.groups[g].tail = rec.g_prev,
            n => self.members[n as usize].g_prev = rec.g_prev,
        }
        let key = rec.conn.index();
        match rec.c_prev {
            NIL => self.conns[key].head = rec.c_next,
            p => self.members[p as usize].c_next = rec.c_next,
        }
        if rec.c_next != NIL {
            self.members[rec.c_next as usize].c_prev = rec.c_prev;
        }
        self.conns[key].len -= 1;
        let group = &mut self.groups[g];
        group.len -= 1;
        if group.len == 0 {
            let group = self.groups.remove(g);
            self.names.remove(&group.name);
        }
    }
}
