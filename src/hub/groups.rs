//! Groups on the loop: the host's calls (join, leave, query, send), the
//! clients' `join` / `leave` messages and `group_id` handshake parameter
//! (both through the host's [`GroupPolicy`]), and the group commands of
//! [`HubHandle`](crate::HubHandle)s. The store itself is
//! [`crate::group::Groups`].

use std::sync::Arc;

use super::{Hub, Lifecycle};
use crate::delivery::Envelope;
use crate::error::SendError;
use crate::event::ConnId;
use crate::group::{GroupAction, GroupCommand, GroupError, GroupPolicy, GroupRequest, check_name};
use crate::message::{Message, Payload, kind};
use crate::stats::Stats;
use crate::ws::http::Request;

/// The handshake's query parameter naming a group to join (go-wsc's).
const GROUP_PARAM: &str = "group_id";

/// Client `join` / `leave` requests decoded during one read, carried out
/// once the decoder lets go of the connection. The strings are reused.
#[derive(Debug, Default)]
pub(super) struct GroupOps {
    ops: Vec<(ConnId, GroupAction, String)>,
    len: usize,
}

impl GroupOps {
    pub(super) fn push(&mut self, conn: ConnId, action: GroupAction, group: &str) {
        match self.ops.get_mut(self.len) {
            Some(slot) => {
                slot.0 = conn;
                slot.1 = action;
                slot.2.clear();
                slot.2.push_str(group);
            }
            None => self.ops.push((conn, action, group.to_owned())),
        }
        self.len += 1;
    }
}

/// The group a client's `join` / `leave` message names (`data.group`).
pub(super) fn requested_group(msg: &Message) -> Option<&str> {
    msg.data.as_ref()?.get("group")?.as_str()
}

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// Sets the hook that decides which groups clients may join (by a
    /// `join` message or the handshake's `group_id` parameter) and leave.
    /// Without one, clients may leave but never join: the host decides.
    pub fn set_group_policy(&mut self, policy: impl GroupPolicy + 'static) {
        self.group_policy = Box::new(policy);
    }

    /// Puts connection `conn` in `group`, creating the group if needed;
    /// `Ok(false)` if it was a member already. It leaves when it closes.
    ///
    /// Errors: `NoSuchConnection`, `InvalidName`, `TooManyGroups`
    /// (`max_groups`), `TooManyForConnection` (`max_groups_per_connection`).
    pub fn join_group(&mut self, conn: ConnId, group: &str) -> Result<bool, GroupError> {
        self.join_checked(conn, group, None)
    }

    /// Takes connection `conn` out of `group`; false if it was not in it.
    pub fn leave_group(&mut self, conn: ConnId, group: &str) -> bool {
        self.net.open(conn).is_some() && self.groups.leave(conn.index(), group)
    }

    /// Puts every open device of `user` in `group`; returns how many joined
    /// anew. With `sticky`, the user's devices that connect later join too,
    /// until [`leave_user`](Self::leave_user) (at most
    /// `max_groups_per_connection` such groups per user).
    ///
    /// Every device is tried; the first refusal is returned.
    pub fn join_user(
        &mut self,
        user: &str,
        group: &str,
        sticky: bool,
    ) -> Result<usize, GroupError> {
        self.join_user_arc(user, &Arc::from(group), sticky)
    }

    fn join_user_arc(
        &mut self,
        user: &str,
        group: &Arc<str>,
        sticky: bool,
    ) -> Result<usize, GroupError> {
        check_name(group)?;
        if sticky {
            self.sticky.add(user, group).inspect_err(|_| {
                self.stats.group_refusals += 1;
            })?;
        }
        let (mut joined, mut first_error) = (0, None);
        for i in 0..self.net.registry.devices(user).len() {
            let key = self.net.registry.devices(user)[i].key;
            let Some(id) = self.net.conns.get(key).map(|c| c.id) else {
                continue;
            };
            match self.join_checked(id, group, Some(group)) {
                Ok(new) => joined += usize::from(new),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        first_error.map_or(Ok(joined), Err)
    }

    /// Takes every device of `user` out of `group` and ends the user's
    /// standing membership of it; returns how many devices left.
    pub fn leave_user(&mut self, user: &str, group: &str) -> usize {
        self.sticky.remove(user, group);
        let mut left = 0;
        for i in 0..self.net.registry.devices(user).len() {
            let key = self.net.registry.devices(user)[i].key;
            left += usize::from(self.groups.leave(key, group));
        }
        left
    }

    /// The groups connection `conn` is in (none once it closed), the most
    /// recently joined first.
    pub fn groups_of(&self, conn: ConnId) -> impl Iterator<Item = &str> + '_ {
        let key = match self.net.open(conn) {
            Some(_) => conn.index(),
            None => usize::MAX,
        };
        self.groups.groups_of(key).map(|g| &**g)
    }

    /// The members of `group`, in the order they joined.
    pub fn members(&self, group: &str) -> impl Iterator<Item = ConnId> + '_ {
        self.groups.members(group)
    }

    /// How many connections are in `group`.
    pub fn group_len(&self, group: &str) -> usize {
        self.groups.len_of(group)
    }

    /// Whether connection `conn` is in `group`.
    pub fn is_member(&self, conn: ConnId, group: &str) -> bool {
        self.net.open(conn).is_some() && self.groups.is_member(conn.index(), group)
    }

    /// Encodes `msg` once and queues it for every member of `group` but
    /// `except` (the sender of a client's group message). Returns how many
    /// took it; a group without members is `Ok(0)`. Full rings are
    /// `QueueFull`, reported per member like any plain send.
    pub fn send_to_group(
        &mut self,
        group: &str,
        msg: &Message,
        except: Option<ConnId>,
    ) -> Result<usize, SendError> {
        let payload = Payload::json(msg).map_err(|e| SendError::Encode(e.to_string()))?;
        let target = match except {
            Some(except) => super::Target::GroupExcept { group, except },
            None => super::Target::Group(group),
        };
        self.send(target, &payload)
    }

    /// Sends `msg` to every member of `group` but `except` with the retry
    /// policy: one delivery per member device (so each member's failures
    /// reach the handlers and its retries go to that device only), all
    /// sharing one encoded frame. Every result goes to the
    /// [`on_send_result`](Self::on_send_result) callback. Returns how many
    /// deliveries started.
    pub fn send_to_group_with_retry(
        &mut self,
        group: &str,
        msg: &Message,
        except: Option<ConnId>,
    ) -> Result<usize, SendError> {
        let env = Envelope::new(msg.clone())?;
        self.send_envelope_to_group_with_retry(group, &env, except)
    }

    /// [`send_to_group_with_retry`](Self::send_to_group_with_retry) for an
    /// encoded message: allocates nothing after warm-up.
    ///
    /// Errors when a delivery cannot start (shutting down, too large,
    /// `max_pending_deliveries` reached): members refused by the cap are
    /// reported to the handlers (`rate_limited`), the others still start.
    pub fn send_envelope_to_group_with_retry(
        &mut self,
        group: &str,
        env: &Envelope,
        except: Option<ConnId>,
    ) -> Result<usize, SendError> {
        if self.lifecycle != Lifecycle::Running {
            return Err(SendError::ShuttingDown);
        }
        self.stats.group_sends += 1;
        self.net.now = std::time::Instant::now();
        let mut members = std::mem::take(&mut self.group_members);
        members.clear();
        for id in self.groups.members(group).filter(|&m| Some(m) != except) {
            if let Some(i) = self.net.open(id).and_then(|c| c.identity.as_ref()) {
                members.push((i.user_id.clone(), i.client_id.clone()));
            }
        }
        let (mut started, mut refused) = (0, None);
        for (user, client) in members.drain(..) {
            let now = self.net.now;
            match self
                .engine
                .start_for_device(now, &user, &client, env.clone(), &mut self.net)
            {
                Ok(_) => started += 1,
                Err(e) => refused = refused.or(Some(e)),
            }
        }
        self.group_members = members;
        refused.map_or(Ok(started), Err)
    }

    /// The slab keys of `group`'s open members but `except`, into `keys`.
    pub(super) fn group_keys(
        &mut self,
        group: &str,
        except: Option<ConnId>,
        keys: &mut Vec<usize>,
    ) {
        self.stats.group_sends += 1;
        keys.clear();
        keys.extend(
            self.groups
                .members(group)
                .filter(|&m| Some(m) != except)
                .map(ConnId::index),
        );
    }

    /// Joins after the checks every path shares; counts refusals.
    fn join_checked(
        &mut self,
        conn: ConnId,
        group: &str,
        owned: Option<&Arc<str>>,
    ) -> Result<bool, GroupError> {
        let result = match self.net.open(conn) {
            Some(_) => self.groups.join(conn, group, owned),
            None => Err(GroupError::NoSuchConnection),
        };
        if result.is_err() {
            self.stats.group_refusals += 1;
        }
        result
    }

    /// The group a handshake asks to join, checked: `Err` is the status
    /// and reason to refuse the upgrade with.
    pub(super) fn handshake_group(
        &mut self,
        key: usize,
        req: &Request,
        identity: &crate::auth::Identity,
    ) -> Result<Option<String>, (u16, String)> {
        let Some(group) = req.query_param(GROUP_PARAM).filter(|g| !g.is_empty()) else {
            return Ok(None);
        };
        let refuse = |status, e: GroupError| Err((status, format!("{GROUP_PARAM}: {e}")));
        if let Err(e) = check_name(&group) {
            return refuse(400, e);
        }
        let request = GroupRequest {
            identity,
            conn: self.net.conns[key].id,
            group: &group,
            action: GroupAction::JoinAtHandshake,
        };
        if !self.group_policy.allow(&request) {
            self.stats.group_refusals += 1;
            return refuse(403, GroupError::NotAllowed);
        }
        if self.groups.len_of(&group) == 0 && self.groups.count() >= self.config.max_groups {
            self.stats.group_refusals += 1;
            let limit = self.config.max_groups;
            return refuse(503, GroupError::TooManyGroups { limit });
        }
        Ok(Some(group))
    }

    /// The groups an identity carries (a token's `groups` claim), with the
    /// group the handshake's parameter asks for, checked before the
    /// upgrade: names (400), `max_groups_per_connection` (400) and
    /// `max_groups` (503). `Err` is the status and reason to refuse with;
    /// refusing the whole upgrade leaves nothing half joined.
    pub(super) fn check_identity_groups(
        &mut self,
        identity: &crate::auth::Identity,
        asked: Option<&str>,
    ) -> Result<(), (u16, String)> {
        if identity.groups.is_empty() {
            return Ok(());
        }
        let refuse = |status, e: GroupError| Err((status, format!("groups: {e}")));
        let limit = self.config.max_groups_per_connection;
        // Distinct names, at most `limit` of them (so the scan stays short).
        let mut distinct: Vec<&str> = Vec::with_capacity(limit.min(16));
        let mut new_groups = 0;
        for name in identity.groups.iter().map(|g| &**g).chain(asked) {
            if let Err(e) = check_name(name) {
                self.stats.group_refusals += 1;
                return refuse(400, e);
            }
            if distinct.contains(&name) {
                continue;
            }
            if distinct.len() == limit {
                self.stats.group_refusals += 1;
                return refuse(400, GroupError::TooManyForConnection { limit });
            }
            distinct.push(name);
            new_groups += usize::from(self.groups.len_of(name) == 0);
        }
        if self.groups.count() + new_groups > self.config.max_groups {
            self.stats.group_refusals += 1;
            let limit = self.config.max_groups;
            return refuse(503, GroupError::TooManyGroups { limit });
        }
        Ok(())
    }

    /// A connection is open: it joins the groups its identity carries (a
    /// token's `groups`, checked before the upgrade), its user's standing
    /// groups, then the group its handshake asked for. A join that fails
    /// here (the per-connection cap) reaches the client as an `error`
    /// message.
    pub(super) fn groups_on_open(&mut self, key: usize, asked: Option<String>) {
        let Some(id) = self.net.conns.get(key).map(|c| c.id) else {
            return;
        };
        let (user, carried) = match self.net.conns[key].identity.as_ref() {
            Some(i) => (i.user_id.clone(), i.groups.len()),
            None => return,
        };
        for i in 0..carried {
            let group = match self.net.conns[key].identity.as_ref() {
                Some(identity) => identity.groups[i].clone(),
                None => return,
            };
            if let Err(e) = self.join_checked(id, &group, Some(&group)) {
                log::debug!("{id}: group {group} of its identity not joined: {e}");
                self.group_reply(id, &group, Err(e));
            }
        }
        for i in 0..self.sticky.of(&user).len() {
            let group = self.sticky.of(&user)[i].clone();
            if let Err(e) = self.join_checked(id, &group, Some(&group)) {
                log::debug!("{id}: standing group {group} not joined: {e}");
                self.group_reply(id, &group, Err(e));
            }
        }
        if let Some(group) = asked {
            let result = self.join_checked(id, &group, None);
            self.group_reply(id, &group, result.map(|_| kind::JOINED));
        }
    }

    /// Carries out the `join` / `leave` messages of the last read.
    pub(super) fn run_group_ops(&mut self) {
        let mut ops = std::mem::take(&mut self.group_ops);
        for (conn, action, group) in &ops.ops[..ops.len] {
            let result = self.client_group_op(*conn, *action, group);
            self.group_reply(*conn, group, result);
        }
        ops.len = 0;
        self.group_ops = ops;
    }

    fn client_group_op(
        &mut self,
        conn: ConnId,
        action: GroupAction,
        group: &str,
    ) -> Result<&'static str, GroupError> {
        check_name(group).inspect_err(|_| self.stats.group_refusals += 1)?;
        let Some(identity) = self.net.open(conn).and_then(|c| c.identity.as_ref()) else {
            return Err(GroupError::NoSuchConnection);
        };
        let request = GroupRequest {
            identity,
            conn,
            group,
            action,
        };
        if !self.group_policy.allow(&request) {
            self.stats.group_refusals += 1;
            return Err(GroupError::NotAllowed);
        }
        match action {
            GroupAction::Leave if self.groups.leave(conn.index(), group) => Ok(kind::LEFT),
            // Leaving a group one is not in is a no-op, answered as done.
            GroupAction::Leave => Ok(kind::LEFT),
            _ => self.join_checked(conn, group, None).map(|_| kind::JOINED),
        }
    }

    /// Answers a client's group request: `joined` / `left`, or an `error`
    /// with the reason (`permission`, `validation`) and what went wrong.
    fn group_reply(&mut self, conn: ConnId, group: &str, result: Result<&str, GroupError>) {
        if !self.json_protocol {
            return;
        }
        let notice = match result {
            Ok(done) => Message::notice(done, serde_json::json!({ "group": group })),
            Err(e) => Message::notice(
                kind::ERROR,
                serde_json::json!({
                    "reason": e.reason().as_str(),
                    "group": group,
                    "detail": e.to_string(),
                }),
            ),
        };
        let Some(c) = self.net.live(conn) else {
            return;
        };
        if let Ok(p) = Payload::json(&notice)
            && !c.outbox.push_control(p)
        {
            self.stats.control_dropped += 1;
        }
        self.net.mark_dirty(conn.index());
    }

    /// Carries out a group command from a `HubHandle`.
    pub(super) fn group_command(&mut self, cmd: GroupCommand) {
        let outcome = match cmd {
            GroupCommand::Join { conn, group } => {
                self.join_checked(conn, &group, Some(&group)).map(drop)
            }
            GroupCommand::Leave { conn, group } => {
                self.leave_group(conn, &group);
                Ok(())
            }
            GroupCommand::JoinUser {
                user,
                group,
                sticky,
            } => self.join_user_arc(&user, &group, sticky).map(drop),
            GroupCommand::LeaveUser { user, group } => {
                self.leave_user(&user, &group);
                Ok(())
            }
            GroupCommand::Members { group, reply } => {
                let _ = reply.try_send(self.members(&group).collect());
                Ok(())
            }
            GroupCommand::GroupsOf { conn, reply } => {
                let key = if self.net.open(conn).is_some() {
                    conn.index()
                } else {
                    usize::MAX
                };
                let _ = reply.try_send(self.groups.groups_of(key).cloned().collect());
                Ok(())
            }
            GroupCommand::SendWithRetry {
                group,
                envelope,
                except,
            } => {
                if let Err(e) = self.send_envelope_to_group_with_retry(&group, &envelope, except) {
                    self.stats.command_errors += 1;
                    log::warn!("send with retry to group {group} from a handle: {e}");
                }
                Ok(())
            }
        };
        if let Err(e) = outcome {
            self.stats.command_errors += 1;
            log::warn!("group command from a handle refused: {e}");
        }
    }

    /// Adds the group gauges to a stats snapshot.
    pub(super) fn fill_group_stats(&self, s: &mut Stats) {
        s.groups = self.groups.count() as u64;
        s.memberships = self.groups.memberships() as u64;
        s.sticky_memberships = self.sticky.len() as u64;
    }
}
