//! What clients may do with groups: the host's hook.
//!
//! Clients ask to join (the `group_id` query parameter of the handshake, or
//! a `join` message) and to leave (a `leave` message). Without a policy
//! every join is refused (secure default: the host decides who hears what)
//! and every leave of a group the connection is in is allowed.

use crate::auth::Identity;
use crate::event::ConnId;

/// What a client asks to do with a group.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAction {
    /// Join, by a `join` message.
    Join,
    /// Join, by the handshake's `group_id` query parameter.
    JoinAtHandshake,
    /// Leave, by a `leave` message.
    Leave,
}

/// One client request, as the [`GroupPolicy`] sees it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub struct GroupRequest<'a> {
    /// Who asks (from the handshake).
    pub identity: &'a Identity,
    /// The connection that asks.
    pub conn: ConnId,
    /// The group.
    pub group: &'a str,
    /// What it asks for.
    pub action: GroupAction,
}

/// Decides whether a client may join or leave a group. It runs on the hub
/// thread: keep it quick. A refusal reaches the client as an `error`
/// message with `reason: "permission"` (a `403` for the handshake).
///
/// Any `FnMut(&GroupRequest<'_>) -> bool + Send` is a policy:
///
/// ```
/// use wshub::{GroupAction, GroupPolicy, GroupRequest};
/// // Anyone may enter `lobby`; agents may enter any room.
/// let policy = |req: &GroupRequest<'_>| {
///     req.action == GroupAction::Leave
///         || req.group == "lobby"
///         || &*req.identity.user_type == "agent"
/// };
/// let _boxed: Box<dyn GroupPolicy> = Box::new(policy);
/// ```
pub trait GroupPolicy: Send {
    /// Whether `req` may go ahead.
    fn allow(&mut self, req: &GroupRequest<'_>) -> bool;
}

impl<F> GroupPolicy for F
where
    F: FnMut(&GroupRequest<'_>) -> bool + Send,
{
    fn allow(&mut self, req: &GroupRequest<'_>) -> bool {
        self(req)
    }
}

/// The policy of a hub that set none: joins refused, leaves allowed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DefaultPolicy;

impl GroupPolicy for DefaultPolicy {
    fn allow(&mut self, req: &GroupRequest<'_>) -> bool {
        req.action == GroupAction::Leave
    }
}
