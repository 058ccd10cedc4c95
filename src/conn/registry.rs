//! Users and their devices: which open connections belong to which user.
//!
//! Only the hub thread touches it. Lookups by `&str` never allocate; a user's
//! entry is created on their first connection and freed with their last.

use std::collections::HashMap;
use std::sync::Arc;

/// One device of a user: its client id and its connection's slab key.
#[derive(Debug, Clone)]
pub(crate) struct Device {
    pub client_id: Arc<str>,
    pub key: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    users: HashMap<Arc<str>, Vec<Device>>,
    connections: usize,
}

impl Registry {
    pub(crate) fn with_capacity(users: usize) -> Registry {
        Registry {
            users: HashMap::with_capacity(users),
            connections: 0,
        }
    }

    /// The devices of `user`, in connection order (empty when offline).
    pub(crate) fn devices(&self, user: &str) -> &[Device] {
        self.users.get(user).map_or(&[], Vec::as_slice)
    }

    /// The registry's shared copy of a connected user's id.
    pub(crate) fn user_key(&self, user: &str) -> Option<&Arc<str>> {
        self.users.get_key_value(user).map(|(k, _)| k)
    }

    /// The connection of `user`'s device `client_id`, if it is connected.
    pub(crate) fn device(&self, user: &str, client_id: &str) -> Option<usize> {
        self.devices(user)
            .iter()
            .find(|d| &*d.client_id == client_id)
            .map(|d| d.key)
    }

    /// Adds an open connection. The caller has already replaced any device
    /// with the same client id and checked the per-user limit.
    pub(crate) fn insert(&mut self, user: &Arc<str>, client_id: &Arc<str>, key: usize) {
        self.users.entry(user.clone()).or_default().push(Device {
            client_id: client_id.clone(),
            key,
        });
        self.connections += 1;
    }

    /// Removes connection `key` of `user`; returns whether it was registered.
    pub(crate) fn remove(&mut self, user: &str, key: usize) -> bool {
        let Some(devices) = self.users.get_mut(user) else {
            return false;
        };
        let Some(pos) = devices.iter().position(|d| d.key == key) else {
            return false;
        };
        // Keep connection order: "first device" stays meaningful.
        devices.remove(pos);
        if devices.is_empty() {
            self.users.remove(user);
        }
        self.connections -= 1;
        true
    }

    /// The slab keys of every open connection.
    pub(crate) fn keys(&self) -> impl Iterator<Item = usize> + '_ {
        self.users.values().flat_map(|d| d.iter().map(|d| d.key))
    }

    /// Users with at least one open connection.
    pub(crate) fn users(&self) -> usize {
        self.users.len()
    }

    /// Registered (open) connections.
    pub(crate) fn connections(&self) -> usize {
        self.connections
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_remove_devices() {
        let mut r = Registry::default();
        let (alice, phone, laptop): (Arc<str>, Arc<str>, Arc<str>) =
            ("alice".into(), "phone".into(), "laptop".into());
        r.insert(&alice, &phone, 1);
        r.insert(&alice, &laptop, 2);
        assert_eq!(r.devices("alice").len(), 2);
        assert_eq!(r.device("alice", "laptop"), Some(2));
        assert_eq!(r.connections(), 2);
        assert!(r.remove("alice", 1));
        assert!(!r.remove("alice", 1));
        assert_eq!(r.devices("alice")[0].key, 2);
        assert!(r.remove("alice", 2));
        assert_eq!(r.users(), 0);
        assert!(r.devices("alice").is_empty());
        assert_eq!(r.connections(), 0);
    }
}
