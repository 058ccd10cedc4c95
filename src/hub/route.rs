//! Routing: from a target to the rings of the connections it names.
//!
//! A message is encoded once into a shared [`Payload`]; every recipient's ring
//! gets a reference-counted clone. Plain sends allocate nothing after warm-up.

use std::sync::Arc;

use super::Hub;
use crate::delivery::Envelope;
use crate::error::SendError;
use crate::event::{ConnId, DisconnectReason};
use crate::failure::Failure;
use crate::failure::reason::FailureReason;
use crate::handle::{Command, KickWho};
use crate::message::{Message, Payload};

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// Every open connection (device) of a user.
    User(&'a str),
    /// One device of a user, by client id.
    Device {
        /// The user.
        user: &'a str,
        /// The device's client id.
        client: &'a str,
    },
    /// One connection.
    Conn(ConnId),
    /// Every open connection.
    All,
    /// Every member of a group.
    Group(&'a str),
    /// Every member of a group but one connection (the sender of a
    /// client's group message).
    GroupExcept {
        /// The group.
        group: &'a str,
        /// The member left out.
        except: ConnId,
    },
}

impl<'a> Target<'a> {
    /// The target `msg.receiver` names, narrowed to `msg.receiver_client`
    /// when that is set.
    ///
    /// ```
    /// use wshub::{Message, Target};
    /// let mut m = Message::text("bob", "hi");
    /// assert_eq!(Target::of(&m), Target::User("bob"));
    /// m.receiver_client = "phone".into();
    /// assert_eq!(Target::of(&m), Target::Device { user: "bob", client: "phone" });
    /// ```
    pub fn of(msg: &'a Message) -> Target<'a> {
        Target::user_or_device(&msg.receiver, &msg.receiver_client)
    }

    /// Every device of `user`, or only `client` when it is not empty.
    ///
    /// ```
    /// use wshub::Target;
    /// assert_eq!(Target::user_or_device("bob", ""), Target::User("bob"));
    /// ```
    pub fn user_or_device(user: &'a str, client: &'a str) -> Target<'a> {
        if client.is_empty() {
            Target::User(user)
        } else {
            Target::Device { user, client }
        }
    }
}

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// Queues an encoded payload for `target`. Returns how many connections
    /// took it.
    ///
    /// Errors: `UserOffline` / `NoSuchClient` when nobody matches,
    /// `QueueFull` when some rings were full (the others still got it),
    /// `MessageTooLarge` over `max_message_size`.
    ///
    /// In a cluster, the other hubs' devices get it too (through Redis);
    /// when Redis cannot be reached, that part fails as
    /// `cluster_unavailable` (reported and counted).
    pub fn send(&mut self, target: Target<'_>, payload: &Payload) -> Result<usize, SendError> {
        self.send_with(target, payload, true)
    }

    /// [`send`](Self::send), with or without the other hubs' devices (not
    /// for what another hub forwarded here).
    pub(super) fn send_with(
        &mut self,
        target: Target<'_>,
        payload: &Payload,
        forward: bool,
    ) -> Result<usize, SendError> {
        if self.lifecycle != super::Lifecycle::Running {
            return Err(SendError::ShuttingDown);
        }
        if payload.len() > self.config.max_message_size {
            return Err(SendError::MessageTooLarge {
                size: payload.len(),
                limit: self.config.max_message_size,
            });
        }
        let (mut queued, mut full) = (0, 0);
        let mut offer = |hub: &mut Self, key: usize| match hub.enqueue(key, payload) {
            Ok(()) => queued += 1,
            Err(()) => {
                full += 1;
                hub.report_plain(FailureReason::QueueFull, key, None, payload);
            }
        };
        let remote = if forward && self.cluster.is_some() {
            self.forward(target, payload)
        } else {
            0
        };
        match target {
            Target::User(user) => {
                // Index loop: `enqueue` needs the hub while devices are read.
                for i in 0..self.net.registry.devices(user).len() {
                    let key = self.net.registry.devices(user)[i].key;
                    offer(self, key);
                }
                if queued + full == 0 && remote > 0 && !self.cluster_up() {
                    return Err(SendError::ClusterUnavailable);
                }
                if queued + full + remote == 0 {
                    self.report_plain(FailureReason::UserOffline, usize::MAX, Some(user), payload);
                    self.store_plain_offline(user, payload);
                    return Err(SendError::UserOffline);
                }
            }
            Target::Device { user, client } => match self.net.registry.device(user, client) {
                Some(key) => offer(self, key),
                None if remote > 0 && !self.cluster_up() => {
                    return Err(SendError::ClusterUnavailable);
                }
                None if remote > 0 => {}
                None if self.net.registry.devices(user).is_empty()
                    && !self.remote_devices(user) =>
                {
                    self.report_plain(FailureReason::UserOffline, usize::MAX, Some(user), payload);
                    return Err(SendError::UserOffline);
                }
                None => return Err(SendError::NoSuchClient),
            },
            Target::Conn(id) => match self.conn(id) {
                Some(c) if c.is_open() => offer(self, id.index()),
                _ => return Err(SendError::NoSuchClient),
            },
            Target::All => {
                // The registry lists exactly the open connections: the cost
                // follows them, not the connection limit. The key list is a
                // reused buffer, so a broadcast does not allocate.
                let mut keys = std::mem::take(&mut self.broadcast_keys);
                keys.clear();
                keys.extend(self.net.registry.keys());
                for &key in &keys {
                    offer(self, key);
                }
                self.broadcast_keys = keys;
            }
            Target::Group(group) | Target::GroupExcept { group, .. } => {
                let except = match target {
                    Target::GroupExcept { except, .. } => Some(except),
                    _ => None,
                };
                // Only the members are walked, into the reused key buffer.
                let mut keys = std::mem::take(&mut self.broadcast_keys);
                self.group_keys(group, except, &mut keys);
                for &key in &keys {
                    offer(self, key);
                }
                self.broadcast_keys = keys;
            }
        }
        if full > 0 {
            return Err(SendError::QueueFull { queued, full });
        }
        Ok(queued + remote)
    }

    fn cluster_up(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.up())
    }

    /// Encodes `msg` once and sends it to every device of `user` (or only
    /// to `msg.receiver_client`, when set).
    pub fn send_to_user(&mut self, user: &str, msg: &Message) -> Result<usize, SendError> {
        let offline = self.net.registry.devices(user).is_empty() && !self.remote_devices(user);
        if offline && self.lifecycle == super::Lifecycle::Running && self.engine.stores_offline() {
            // Kept as it is (no decode of its frame later): the offline path.
            let env = Envelope::new(msg.clone())?;
            self.report_plain(
                FailureReason::UserOffline,
                usize::MAX,
                Some(user),
                &env.payload,
            );
            self.engine.store_offline(self.net.now, user, env);
            return Err(SendError::UserOffline);
        }
        let payload = Payload::json(msg).map_err(|e| SendError::Encode(e.to_string()))?;
        self.send(Target::user_or_device(user, &msg.receiver_client), &payload)
    }

    /// Encodes `msg` and sends it to one connection.
    pub fn send_to_client(&mut self, conn: ConnId, msg: &Message) -> Result<usize, SendError> {
        let payload = Payload::json(msg).map_err(|e| SendError::Encode(e.to_string()))?;
        self.send(Target::Conn(conn), &payload)
    }

    /// Encodes `msg` once and sends it to every open connection.
    pub fn broadcast(&mut self, msg: &Message) -> Result<usize, SendError> {
        let payload = Payload::json(msg).map_err(|e| SendError::Encode(e.to_string()))?;
        self.send(Target::All, &payload)
    }

    /// Kicks one connection: a `kick_out` message with `reason`, then close.
    /// Returns false if the connection is not open.
    pub fn kick(&mut self, conn: ConnId, reason: &str) -> bool {
        match self.conn(conn) {
            Some(c) if c.is_open() => {
                self.kick_key(conn.index(), reason, DisconnectReason::Kicked);
                true
            }
            _ => false,
        }
    }

    /// Kicks every device of `user` (on every hub of a cluster); returns
    /// how many were open (here, and as this hub last knew the others).
    pub fn kick_user(&mut self, user: &str, reason: &str) -> usize {
        self.forward_kick(user, "", reason) + self.kick_user_local(user, reason)
    }

    /// Kicks `user`'s devices on this hub.
    pub(super) fn kick_user_local(&mut self, user: &str, reason: &str) -> usize {
        let mut n = 0;
        while let Some(key) = self
            .net
            .registry
            .devices(user)
            .iter()
            .map(|d| d.key)
            .find(|&k| self.net.conns.get(k).is_some_and(|c| c.is_open()))
        {
            self.kick_key(key, reason, DisconnectReason::Kicked);
            n += 1;
        }
        n
    }

    /// Queues one untracked frame for connection `key`; a full ring is `Err`.
    pub(super) fn enqueue(&mut self, key: usize, payload: &Payload) -> Result<(), ()> {
        if self.net.enqueue_key(key, payload, None) {
            Ok(())
        } else {
            Err(())
        }
    }

    /// Keeps a plain send's message for an offline user (decoded from its
    /// frame: a cold path, it allocates).
    fn store_plain_offline(&mut self, user: &str, payload: &Payload) {
        let Ok(msg) = serde_json::from_slice::<Message>(payload.body()) else {
            return;
        };
        if let Ok(env) = Envelope::new(msg) {
            self.engine.store_offline(self.net.now, user, env);
        }
    }

    /// Reports a failed plain send: for connection `key`, or for `user`.
    pub(super) fn report_plain(
        &mut self,
        reason: FailureReason,
        key: usize,
        user: Option<&str>,
        payload: &Payload,
    ) {
        let identity = self
            .net
            .conns
            .get(key)
            .and_then(|c| c.identity.clone().map(|i| (i, c.id)));
        let mut f = match (&identity, user) {
            (Some((i, _)), _) => Failure::new(reason, i.user_id.clone(), None, payload.clone()),
            (None, Some(u)) => Failure::new(reason, Arc::from(u), None, payload.clone()),
            (None, None) => return,
        };
        if let Some((i, conn)) = identity {
            f.client_id = Some(i.client_id);
            f.conn = Some(conn);
        }
        self.engine.report(f);
    }

    pub(super) fn run_commands(&mut self) {
        for _ in 0..super::COMMAND_BUDGET {
            let Ok(cmd) = self.commands.try_recv() else {
                return;
            };
            match cmd {
                Command::Send { dest, payload } => {
                    let result = self.send(dest.target(), &payload);
                    // Offline and full rings already reached the handlers;
                    // the rest would reach nobody but a log without this.
                    if let Err(e) = result {
                        self.stats.command_errors += 1;
                        log::warn!("send to {dest:?} from a handle failed: {e}");
                    }
                }
                Command::SendWithRetry {
                    user,
                    envelope,
                    waiter,
                    result,
                } => {
                    let thread = crate::delivery::Waiter::Thread(waiter.clone());
                    if let Err(e) = self.start_delivery(&user, envelope, thread, Some(result)) {
                        log::debug!("send with retry to {user} from a handle refused: {e}");
                        let _ = waiter.try_send(crate::delivery::SendResult::refused(&e));
                    }
                }
                Command::Kick { who, reason } => match who {
                    KickWho::User(u) => {
                        self.kick_user(&u, &reason);
                    }
                    KickWho::Conn(id) => {
                        self.kick(id, &reason);
                    }
                },
                Command::Group(cmd) => self.group_command(cmd),
                // A failure is logged and counted by `reload_tls` itself.
                Command::ReloadTls => {
                    let _ = self.reload_tls();
                }
            }
        }
    }
}
