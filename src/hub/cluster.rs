//! The loop's side of the cluster: what the bridge heard, applied to the
//! presence picture and the engine; tracked frames for remote devices and
//! outcomes owed to other hubs, published; plain sends forwarded.

use std::sync::Arc;

use super::{Hub, REPLACED, Target};
use crate::cluster::bridge::{Channel, In};
use crate::cluster::wire::{Ticket, Wire};
use crate::delivery::{Envelope, MessageId, RemoteWaiter};
use crate::event::{ConnId, DisconnectReason};
use crate::failure::reason::FailureReason;
use crate::message::Payload;
use crate::ws::OpCode;

/// Bridge messages handled per turn, so a flood from Redis cannot starve
/// the sockets.
const INBOX_BUDGET: usize = 4096;

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// One turn's cluster work: hear, sweep, then publish what the turn made.
    pub(super) fn cluster_turn(&mut self) {
        if self.cluster.is_none() {
            return;
        }
        for _ in 0..INBOX_BUDGET {
            let Some(msg) = self.cluster.as_ref().and_then(|c| c.poll_inbox()) else {
                break;
            };
            self.cluster_in(msg);
        }
        self.sweep_silent_nodes();
        self.flush_remote();
    }

    /// When the loop must wake for the cluster: now while messages wait
    /// (the waker fired once for them), else at the next sweep.
    pub(super) fn cluster_deadline(&self) -> Option<std::time::Instant> {
        let c = self.cluster.as_ref()?;
        if c.has_inbox() || !self.net.remote_out.is_empty() {
            return Some(self.net.now);
        }
        Some(c.last_sweep + c.ttl / 3)
    }

    fn cluster_in(&mut self, msg: In) {
        match msg {
            In::Link(link, up) => {
                let Some(c) = self.cluster.as_mut() else {
                    return;
                };
                if c.set_link(link, up) {
                    log::warn!("cluster: redis unreachable; remote sends fail until it is back");
                }
            }
            In::Lost(n) => {
                if let Some(c) = self.cluster.as_mut() {
                    c.counters.lost += n;
                }
            }
            In::Unheard(body) => self.unheard(&body),
            In::Snapshot { node, devices } => self.apply_snapshot(&node, devices),
            In::Synced(alive) => {
                let known = self
                    .net
                    .remote
                    .as_ref()
                    .map(|p| p.node_names())
                    .unwrap_or_default();
                for node in known {
                    if !alive.iter().any(|a| **a == *node) {
                        self.drop_node(&node);
                    }
                }
            }
            In::Message(body) => {
                if let Some(c) = self.cluster.as_mut() {
                    c.counters.received += 1;
                }
                match Wire::decode(&body) {
                    Ok(wire) => self.on_wire(wire),
                    Err(e) => self.malformed(&e.to_string()),
                }
            }
        }
    }

    /// A message to a hub that no longer listens: a tracked part fails
    /// now (and is retried), a plain send is reported as failed.
    fn unheard(&mut self, body: &[u8]) {
        if let Some(c) = self.cluster.as_mut() {
            c.counters.unheard += 1;
        }
        match Wire::decode(body) {
            Ok(Wire::Deliver {
                ticket: Some(t), ..
            }) => {
                let now = self.net.now;
                let error = Some(FailureReason::ClusterUnavailable);
                let Hub { engine, net, .. } = self;
                engine.remote_outcome(now, t.conn, t.tag, error, net);
            }
            Ok(Wire::Deliver {
                ticket: None,
                user,
                binary,
                body,
                ..
            }) => {
                let op = if binary { OpCode::Binary } else { OpCode::Text };
                let payload = Payload::encode(op, body);
                self.report_plain(
                    FailureReason::ClusterUnavailable,
                    usize::MAX,
                    Some(user),
                    &payload,
                );
            }
            // An outcome's sender retries at its deadline; a kick's target
            // hub is gone with its connections.
            _ => {}
        }
    }

    fn me(&self) -> Arc<str> {
        self.cluster
            .as_ref()
            .map_or_else(|| Arc::from(""), |c| c.node.clone())
    }

    fn on_wire(&mut self, wire: Wire<'_>) {
        let me = self.me();
        let now = self.net.now;
        match wire {
            Wire::Up { node, .. }
            | Wire::Down { node, .. }
            | Wire::Heartbeat { node }
            | Wire::Registered { node }
            | Wire::Leaving { node }
                if *node == *me => {}
            Wire::Up { node, user, client } => self.remote_up(node, user, client, true),
            Wire::Down { node, user, client } => {
                let gone = self
                    .net
                    .remote
                    .as_mut()
                    .and_then(|p| p.remove(node, user, client));
                self.proxies_gone(gone);
            }
            Wire::Heartbeat { node } | Wire::Registered { node } => {
                if let Some(p) = self.net.remote.as_mut() {
                    p.seen(node, now);
                }
            }
            Wire::Leaving { node } => self.drop_node(node),
            Wire::Deliver {
                origin,
                ticket,
                user,
                client,
                require_ack,
                message_id,
                binary,
                body,
            } => {
                let Some(payload) = self.frame_of(binary, body) else {
                    return;
                };
                match ticket {
                    Some(t) => {
                        self.deliver_for(origin, t, user, client, require_ack, message_id, payload)
                    }
                    None => {
                        // Best effort, as the sender's plain send: failures
                        // reach this hub's handlers.
                        let _ =
                            self.send_with(Target::user_or_device(user, client), &payload, false);
                    }
                }
            }
            Wire::Outcome { ticket, error } => {
                // The device left that hub before the attempt: for this
                // delivery, a connection that went (retried, and final as
                // `user_offline` only if no device of the user has it).
                let error = error.map(|e| match e {
                    FailureReason::UserOffline => FailureReason::ConnError,
                    e => e,
                });
                let Hub { engine, net, .. } = self;
                engine.remote_outcome(now, ticket.conn, ticket.tag, error, net);
            }
            Wire::Kick {
                user,
                client,
                reason,
            } => self.kick_local(user, client, reason),
            Wire::Broadcast {
                origin,
                except,
                binary,
                body,
            } if *origin != *me => {
                let Some(payload) = self.frame_of(binary, body) else {
                    return;
                };
                if except.is_empty() {
                    let _ = self.send_with(Target::All, &payload, false);
                } else {
                    self.send_to_others_local(except, &payload);
                }
            }
            Wire::Group {
                origin,
                group,
                binary,
                body,
            } if *origin != *me => {
                let Some(payload) = self.frame_of(binary, body) else {
                    return;
                };
                let _ = self.send_with(Target::Group(group), &payload, false);
            }
            Wire::Broadcast { .. } | Wire::Group { .. } => {}
        }
    }

    /// The frame for a message another hub sent: within `max_message_size`,
    /// and UTF-8 if text (clients would close on it otherwise); else it is
    /// counted and dropped.
    fn frame_of(&mut self, binary: bool, body: &[u8]) -> Option<Payload> {
        if body.len() > self.config.max_message_size {
            self.malformed("message over max_message_size");
            return None;
        }
        if binary {
            return Some(Payload::encode(OpCode::Binary, body));
        }
        if std::str::from_utf8(body).is_err() {
            self.malformed("text message not UTF-8");
            return None;
        }
        Some(Payload::encode(OpCode::Text, body))
    }

    fn malformed(&mut self, what: &str) {
        if let Some(c) = self.cluster.as_mut() {
            c.counters.malformed += 1;
        }
        log::warn!("cluster: {what}");
    }

    /// Another hub asks this one to deliver to one of its devices, tracked:
    /// one attempt here, the outcome back to it.
    #[allow(clippy::too_many_arguments)]
    fn deliver_for(
        &mut self,
        origin: &str,
        ticket: Ticket,
        user: &str,
        client: &str,
        require_ack: bool,
        message_id: &str,
        payload: Payload,
    ) {
        let env = Envelope {
            message: None,
            payload,
            id: MessageId::new(message_id),
            require_ack,
            only: None,
        };
        let waiter = RemoteWaiter {
            node: Arc::from(origin),
            ticket,
        };
        let now = self.net.now;
        let started = self
            .engine
            .start_for_remote(now, user, client, env, waiter, &mut self.net);
        if let Err(e) = started {
            let error = crate::delivery::SendResult::refused(&e).final_error;
            self.publish_outcome(origin, ticket, error);
        }
    }

    fn publish_outcome(&mut self, origin: &str, ticket: Ticket, error: Option<FailureReason>) {
        if let Some(c) = self.cluster.as_mut() {
            // Lost with the link: the origin's deadline fails the attempt.
            c.publish(
                Channel::Node(Arc::from(origin)),
                &Wire::Outcome { ticket, error },
            );
        }
    }

    /// A device appeared on another hub (`connected`: it just connected
    /// there, rather than being listed by a snapshot).
    fn remote_up(&mut self, node: &str, user: &str, client: &str, connected: bool) {
        let now = self.net.now;
        // The same device here is replaced by the newer connection there.
        if connected && let Some(key) = self.net.registry.device(user, client) {
            self.kick_key(key, REPLACED, DisconnectReason::Replaced);
        }
        let Some(id) = self
            .net
            .remote
            .as_mut()
            .and_then(|p| p.add(node, user, client, now))
        else {
            return;
        };
        self.engine.conn_opened(id);
        // Replays and retries waiting for the user go to the new device.
        self.engine.user_connected(now, user, &mut self.net);
    }

    /// A hub's whole device list, after a (re)subscribe or its re-register.
    fn apply_snapshot(&mut self, node: &str, devices: Vec<(String, String)>) {
        let now = self.net.now;
        let Some(p) = self.net.remote.as_mut() else {
            return;
        };
        p.seen(node, now);
        let listed: std::collections::HashSet<(&str, &str)> = devices
            .iter()
            .map(|(u, c)| (u.as_str(), c.as_str()))
            .collect();
        let mut gone = Vec::new();
        for (user, client) in p.devices_of(node) {
            if !listed.contains(&(&*user, &*client)) {
                gone.extend(p.remove(node, &user, &client));
            }
        }
        self.proxies_gone(gone);
        for (user, client) in &devices {
            self.remote_up(node, user, client, false);
        }
    }

    /// Proxies whose devices went: what they held fails (and is retried).
    fn proxies_gone(&mut self, gone: impl IntoIterator<Item = ConnId>) {
        let now = self.net.now;
        for id in gone {
            self.engine
                .conn_removed(now, id, FailureReason::ConnError, &mut self.net);
        }
    }

    fn drop_node(&mut self, node: &str) {
        let mut gone = Vec::new();
        if let Some(p) = self.net.remote.as_mut() {
            p.remove_node(node, &mut gone);
        }
        log::info!("cluster: hub {node} gone ({} devices)", gone.len());
        self.proxies_gone(gone);
        if let Some(c) = &self.cluster {
            c.forget(node);
        }
    }

    /// Hubs silent for `presence_ttl` are dead: their devices go.
    fn sweep_silent_nodes(&mut self) {
        let now = self.net.now;
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if now < c.last_sweep + c.ttl / 3 {
            return;
        }
        c.last_sweep = now;
        if !c.up() {
            // Cut off from Redis, this hub hears no heartbeats: that says
            // nothing of the other hubs. The snapshot at reconnect decides.
            return;
        }
        let ttl = c.ttl;
        let silent = self
            .net
            .remote
            .as_ref()
            .map(|p| p.silent(now, ttl))
            .unwrap_or_default();
        for node in silent {
            self.drop_node(&node);
        }
    }

    /// Publishes this turn's tracked frames for proxies and the outcomes
    /// owed to other hubs; a frame that cannot go fails its attempt now.
    fn flush_remote(&mut self) {
        // Settling a failure may pull a proxy's backlog in: new frames.
        for _ in 0..16 {
            if self.net.remote_out.is_empty() {
                break;
            }
            let out = std::mem::take(&mut self.net.remote_out);
            for (conn, payload, tag) in &out {
                if !self.publish_deliver(*conn, payload, *tag) {
                    let now = self.net.now;
                    let error = Some(FailureReason::ClusterUnavailable);
                    let Hub { engine, net, .. } = self;
                    engine.remote_outcome(now, *conn, *tag, error, net);
                }
            }
            let mut out = out;
            out.clear();
            if self.net.remote_out.is_empty() {
                self.net.remote_out = out;
            }
        }
        let mut owed = Vec::new();
        self.engine
            .drain_remote_outcomes(|o| owed.push((o.node.clone(), o.ticket, o.error)));
        for (node, ticket, error) in owed {
            self.publish_outcome(&node, ticket, error);
        }
    }

    fn publish_deliver(
        &mut self,
        conn: ConnId,
        payload: &Payload,
        tag: crate::delivery::Tag,
    ) -> bool {
        let (Some(p), Some(c)) = (self.net.remote.as_ref(), self.cluster.as_mut()) else {
            return false;
        };
        let Some(dev) = p.get(conn) else {
            return false;
        };
        let require_ack = self.engine.require_ack_of(tag.delivery).unwrap_or(false);
        let Some(message_id) = self.engine.message_id_of(tag.delivery) else {
            return false;
        };
        let wire = Wire::Deliver {
            origin: &c.node.clone(),
            ticket: Some(Ticket { conn, tag }),
            user: &dev.user,
            client: &dev.client,
            require_ack,
            message_id: &message_id,
            binary: payload.data_opcode() == Some(OpCode::Binary),
            body: payload.body(),
        };
        c.publish(Channel::Node(dev.node.clone()), &wire)
    }

    /// Forwards a plain send to the hubs holding its receivers; returns how
    /// many remote devices it was for. Failures are reported as
    /// `cluster_unavailable` and counted.
    pub(super) fn forward(&mut self, target: Target<'_>, payload: &Payload) -> usize {
        let Some(c) = self.cluster.as_mut() else {
            return 0;
        };
        let me = c.node.clone();
        let binary = payload.data_opcode() == Some(OpCode::Binary);
        let body = payload.body();
        match target {
            Target::All => {
                let wire = Wire::Broadcast {
                    origin: &me,
                    except: "",
                    binary,
                    body,
                };
                usize::from(c.publish(Channel::All, &wire))
            }
            Target::Group(group) | Target::GroupExcept { group, .. } => {
                let wire = Wire::Group {
                    origin: &me,
                    group,
                    binary,
                    body,
                };
                usize::from(c.publish(Channel::All, &wire))
            }
            Target::User(user) | Target::Device { user, .. } => {
                let client = match target {
                    Target::Device { client, .. } => client,
                    _ => "",
                };
                let mut nodes: Vec<Arc<str>> = Vec::new();
                let mut devices = 0;
                for d in self.net.remote.iter().flat_map(|p| p.of_user(user)) {
                    if client.is_empty() || &*d.client == client {
                        devices += 1;
                        if !nodes.contains(&d.node) {
                            nodes.push(d.node.clone());
                        }
                    }
                }
                let mut failed = false;
                for node in nodes {
                    let wire = Wire::Deliver {
                        origin: &me,
                        ticket: None,
                        user,
                        client,
                        require_ack: false,
                        message_id: "",
                        binary,
                        body,
                    };
                    failed |= !c.publish(Channel::Node(node), &wire);
                }
                if failed {
                    self.report_plain(
                        FailureReason::ClusterUnavailable,
                        usize::MAX,
                        Some(user),
                        payload,
                    );
                }
                devices
            }
            Target::Conn(_) => 0,
        }
    }

    /// A client's broadcast (`"*"`) to the other hubs' connections but
    /// those of the sender's user.
    pub(super) fn forward_to_others(&mut self, user: &str, payload: &Payload) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let wire = Wire::Broadcast {
            origin: &c.node.clone(),
            except: user,
            binary: payload.data_opcode() == Some(OpCode::Binary),
            body: payload.body(),
        };
        if !c.publish(Channel::All, &wire) {
            self.report_plain(
                FailureReason::ClusterUnavailable,
                usize::MAX,
                Some(user),
                payload,
            );
        }
    }

    /// Tells the hubs holding `user` (or one device) to kick it.
    pub(super) fn forward_kick(&mut self, user: &str, client: &str, reason: &str) -> usize {
        let Some(c) = self.cluster.as_mut() else {
            return 0;
        };
        let mut nodes: Vec<Arc<str>> = Vec::new();
        let mut n = 0;
        for d in self.net.remote.iter().flat_map(|p| p.of_user(user)) {
            if client.is_empty() || &*d.client == client {
                n += 1;
                if !nodes.contains(&d.node) {
                    nodes.push(d.node.clone());
                }
            }
        }
        for node in nodes {
            c.publish(
                Channel::Node(node),
                &Wire::Kick {
                    user,
                    client,
                    reason,
                },
            );
        }
        n
    }

    /// Kicks local devices of `user` (all, or `client`) for another hub.
    fn kick_local(&mut self, user: &str, client: &str, reason: &str) {
        if client.is_empty() {
            self.kick_user_local(user, reason);
        } else if let Some(key) = self.net.registry.device(user, client) {
            self.kick_key(key, reason, DisconnectReason::Kicked);
        }
    }

    /// A local device opened or closed: the other hubs hear of it, and a
    /// stale picture of the same device elsewhere is dropped.
    pub(super) fn announce_device(&mut self, user: &Arc<str>, client: &Arc<str>, up: bool) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.device(user, client, up);
        if up {
            let mut gone = Vec::new();
            if let Some(p) = self.net.remote.as_mut() {
                p.remove_device(user, client, &mut gone);
            }
            self.proxies_gone(gone);
        }
    }

    /// Whether `user` has devices on other hubs.
    pub(super) fn remote_devices(&self, user: &str) -> bool {
        self.net
            .remote
            .as_ref()
            .is_some_and(|p| p.of_user(user).next().is_some())
    }
}
