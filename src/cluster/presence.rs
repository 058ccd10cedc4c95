//! The hub's picture of the other hubs: which devices each holds, each
//! behind a *proxy* connection id, so the delivery engine tracks a remote
//! device exactly as it tracks a local one.
//!
//! Proxy ids sit above the local slab's slots (`base + key`), so they never
//! collide with a local connection, and their generation changes with every
//! reuse, so a late outcome for a gone proxy is recognised and ignored.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::event::ConnId;

/// A device on another hub.
#[derive(Debug)]
pub(crate) struct RemoteDevice {
    pub node: Arc<str>,
    pub user: Arc<str>,
    pub client: Arc<str>,
    pub id: ConnId,
}

#[derive(Debug)]
struct Node {
    last_seen: Instant,
    /// Proxy keys of its devices (a set: a device going is O(1), however
    /// many that hub holds).
    devices: HashSet<usize>,
}

/// Remote devices by user and by hub.
#[derive(Debug)]
pub(crate) struct Presence {
    base: usize,
    cap: usize,
    devices: Slab<RemoteDevice>,
    by_user: HashMap<Arc<str>, Vec<usize>>,
    nodes: HashMap<Arc<str>, Node>,
    next_generation: u32,
    /// Devices refused at the cap (counted for /metrics).
    pub refused: u64,
}

impl Presence {
    /// Proxies numbered from `base` (the local slot count); at most `cap`
    /// remote devices are tracked.
    pub(crate) fn new(base: usize, cap: usize) -> Presence {
        Presence {
            base,
            cap,
            devices: Slab::new(),
            by_user: HashMap::new(),
            nodes: HashMap::new(),
            next_generation: 0,
            refused: 0,
        }
    }

    /// Whether `conn` names a proxy rather than a local connection.
    pub(crate) fn is_proxy(&self, conn: ConnId) -> bool {
        conn.index() >= self.base
    }

    /// The remote device behind proxy `conn`, while it is present.
    pub(crate) fn get(&self, conn: ConnId) -> Option<&RemoteDevice> {
        let key = conn.index().checked_sub(self.base)?;
        self.devices.get(key).filter(|d| d.id == conn)
    }

    /// The remote devices of `user`.
    pub(crate) fn of_user(&self, user: &str) -> impl Iterator<Item = &RemoteDevice> {
        self.by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|&k| self.devices.get(k))
    }

    /// The shared copy of a remote user's id.
    pub(crate) fn user_key(&self, user: &str) -> Option<Arc<str>> {
        self.by_user.get_key_value(user).map(|(k, _)| k.clone())
    }

    /// Remote devices tracked.
    pub(crate) fn len(&self) -> usize {
        self.devices.len()
    }

    /// Hubs heard from.
    pub(crate) fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The hubs heard from.
    pub(crate) fn node_names(&self) -> Vec<Arc<str>> {
        self.nodes.keys().cloned().collect()
    }

    /// `node` is alive now.
    pub(crate) fn seen(&mut self, node: &str, now: Instant) {
        match self.nodes.get_mut(node) {
            Some(n) => n.last_seen = now,
            None => {
                self.nodes.insert(
                    Arc::from(node),
                    Node {
                        last_seen: now,
                        devices: HashSet::new(),
                    },
                );
            }
        }
    }

    /// Adds a device of `node`; its new proxy id, or `None` when already
    /// present or at the cap.
    pub(crate) fn add(
        &mut self,
        node: &str,
        user: &str,
        client: &str,
        now: Instant,
    ) -> Option<ConnId> {
        self.seen(node, now);
        if self
            .of_user(user)
            .any(|d| &*d.node == node && &*d.client == client)
        {
            return None;
        }
        if self.devices.len() >= self.cap {
            self.refused += 1;
            log::warn!(
                "cluster: {} remote devices tracked, {user}/{client} on {node} ignored",
                self.cap
            );
            return None;
        }
        let (node_key, n) = self.nodes.get_key_value(node).expect("seen above");
        let node_key = node_key.clone();
        let _ = n;
        let user: Arc<str> = self.user_key(user).unwrap_or_else(|| Arc::from(user));
        self.next_generation = self.next_generation.wrapping_add(1);
        let entry = self.devices.vacant_entry();
        let key = entry.key();
        let id = ConnId {
            index: (self.base + key) as u32,
            generation: self.next_generation,
        };
        entry.insert(RemoteDevice {
            node: node_key.clone(),
            user: user.clone(),
            client: Arc::from(client),
            id,
        });
        self.by_user.entry(user).or_default().push(key);
        if let Some(n) = self.nodes.get_mut(&*node_key) {
            n.devices.insert(key);
        }
        Some(id)
    }

    /// Removes a device of `node`; its proxy id, if it was present.
    pub(crate) fn remove(&mut self, node: &str, user: &str, client: &str) -> Option<ConnId> {
        let key = self.by_user.get(user)?.iter().copied().find(|&k| {
            self.devices
                .get(k)
                .is_some_and(|d| &*d.node == node && &*d.client == client)
        })?;
        if let Some(n) = self.nodes.get_mut(node) {
            n.devices.remove(&key);
        }
        Some(self.take(key))
    }

    /// Removes every device of `user`/`client` on any hub (the device
    /// connected here instead); their proxy ids go to `gone`.
    pub(crate) fn remove_device(&mut self, user: &str, client: &str, gone: &mut Vec<ConnId>) {
        loop {
            let node = self
                .of_user(user)
                .find(|d| &*d.client == client)
                .map(|d| d.node.clone());
            let Some(node) = node else { break };
            gone.extend(self.remove(&node, user, client));
        }
    }

    /// Forgets `node` and its devices; their proxy ids go to `gone`.
    pub(crate) fn remove_node(&mut self, node: &str, gone: &mut Vec<ConnId>) {
        if let Some(n) = self.nodes.remove(node) {
            for key in n.devices {
                gone.push(self.take(key));
            }
        }
    }

    /// Hubs not heard from for `ttl`.
    pub(crate) fn silent(&self, now: Instant, ttl: Duration) -> Vec<Arc<str>> {
        self.nodes
            .iter()
            .filter(|(_, n)| now.saturating_duration_since(n.last_seen) > ttl)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Devices of `node` that a snapshot no longer lists: (user, client).
    pub(crate) fn devices_of(&self, node: &str) -> Vec<(Arc<str>, Arc<str>)> {
        self.nodes
            .get(node)
            .into_iter()
            .flat_map(|n| n.devices.iter())
            .filter_map(|&k| self.devices.get(k))
            .map(|d| (d.user.clone(), d.client.clone()))
            .collect()
    }

    fn take(&mut self, key: usize) -> ConnId {
        let d = self.devices.remove(key);
        if let Some(keys) = self.by_user.get_mut(&d.user) {
            keys.retain(|&k| k != key);
            if keys.is_empty() {
                self.by_user.remove(&d.user);
            }
        }
        d.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_come_and_go_by_device_and_by_hub() {
        let now = Instant::now();
        let mut p = Presence::new(100, 3);
        let a = p.add("n1", "bob", "phone", now).unwrap();
        assert!(p.is_proxy(a) && a.index() == 100);
        assert!(p.add("n1", "bob", "phone", now).is_none(), "no duplicate");
        let b = p.add("n2", "bob", "laptop", now).unwrap();
        p.add("n2", "carol", "x", now).unwrap();
        assert!(p.add("n2", "dave", "x", now).is_none(), "cap");
        assert_eq!(p.refused, 1);
        assert_eq!(p.of_user("bob").count(), 2);
        assert_eq!(p.remove("n1", "bob", "phone"), Some(a));
        assert!(p.get(a).is_none());
        let mut gone = Vec::new();
        p.remove_node("n2", &mut gone);
        assert_eq!(gone.len(), 2);
        assert!(gone.contains(&b));
        assert_eq!(p.len(), 0);
        assert!(p.user_key("bob").is_none(), "users go with their devices");
        // A reused slot gets a new generation: an old id does not match.
        let c = p.add("n1", "bob", "phone", now).unwrap();
        p.remove("n1", "bob", "phone");
        let d = p.add("n1", "bob", "tablet", now).unwrap();
        assert_eq!(c.index(), d.index());
        assert_ne!(c, d);
        assert!(p.get(c).is_none() && p.get(d).is_some());
    }

    #[test]
    fn silent_hubs_are_found() {
        let t0 = Instant::now();
        let mut p = Presence::new(0, 10);
        p.seen("n1", t0);
        p.seen("n2", t0 + Duration::from_secs(5));
        let silent = p.silent(t0 + Duration::from_secs(6), Duration::from_secs(3));
        assert_eq!(silent.len(), 1);
        assert_eq!(&*silent[0], "n1");
    }
}
