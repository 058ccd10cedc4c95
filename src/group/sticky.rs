//! Standing memberships of users: `join_user(user, group, sticky: true)`
//! puts every device of the user in the group now and every device that
//! connects later, until `leave_user`. Host calls only (cold path): adding
//! one may allocate; looking a user up on connect does not.

use std::collections::HashMap;
use std::sync::Arc;

use super::GroupError;

/// user → the groups each of its new connections joins.
#[derive(Debug)]
pub(crate) struct Sticky {
    users: HashMap<Arc<str>, Vec<Arc<str>>>,
    entries: usize,
    per_user: usize,
    max_entries: usize,
}

impl Sticky {
    /// At most `per_user` groups per user and `max_entries` in all.
    pub(crate) fn new(per_user: usize, max_entries: usize) -> Sticky {
        Sticky {
            users: HashMap::new(),
            entries: 0,
            per_user,
            max_entries,
        }
    }

    /// Records that `user`'s devices belong in `group`; `Ok(false)` if so
    /// already.
    pub(crate) fn add(&mut self, user: &str, group: &Arc<str>) -> Result<bool, GroupError> {
        let held = self.users.get(user).map_or(&[][..], Vec::as_slice);
        if held.iter().any(|g| g == group) {
            return Ok(false);
        }
        if held.len() >= self.per_user {
            return Err(GroupError::TooManyForUser {
                limit: self.per_user,
            });
        }
        if self.entries >= self.max_entries {
            return Err(GroupError::TooManyForUser {
                limit: self.max_entries,
            });
        }
        match self.users.get_mut(user) {
            Some(groups) => groups.push(group.clone()),
            None => {
                self.users.insert(Arc::from(user), vec![group.clone()]);
            }
        }
        self.entries += 1;
        Ok(true)
    }

    /// Forgets `user`'s standing membership of `group`; false if none.
    pub(crate) fn remove(&mut self, user: &str, group: &str) -> bool {
        let Some(groups) = self.users.get_mut(user) else {
            return false;
        };
        let Some(pos) = groups.iter().position(|g| &**g == group) else {
            return false;
        };
        groups.remove(pos);
        if groups.is_empty() {
            self.users.remove(user);
        }
        self.entries -= 1;
        true
    }

    /// The groups new connections of `user` join.
    pub(crate) fn of(&self, user: &str) -> &[Arc<str>] {
        self.users.get(user).map_or(&[], Vec::as_slice)
    }

    /// Standing memberships, all users.
    pub(crate) fn len(&self) -> usize {
        self.entries
    }
}
