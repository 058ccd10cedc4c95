//! Groups from other threads: the [`HubHandle`] calls and the commands
//! they queue. Names are made `Arc`s here, on the calling thread, so the
//! hub thread creates a group without allocating.

use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::delivery::Envelope;
use crate::event::ConnId;
use crate::handle::{Command, Dest, HandleError, HubHandle, encode};
use crate::message::{Message, Payload};

/// A group command for the hub thread.
#[derive(Debug)]
pub(crate) enum GroupCommand {
    Join {
        conn: ConnId,
        group: Arc<str>,
    },
    Leave {
        conn: ConnId,
        group: Arc<str>,
    },
    JoinUser {
        user: Arc<str>,
        group: Arc<str>,
        sticky: bool,
    },
    LeaveUser {
        user: Arc<str>,
        group: Arc<str>,
    },
    Members {
        group: Arc<str>,
        reply: Sender<Vec<ConnId>>,
    },
    GroupsOf {
        conn: ConnId,
        reply: Sender<Vec<Arc<str>>>,
    },
    SendWithRetry {
        group: Arc<str>,
        envelope: Envelope,
        except: Option<ConnId>,
    },
}

impl HubHandle {
    fn group_command(&self, cmd: GroupCommand) -> Result<(), HandleError> {
        self.submit(Command::Group(cmd))
    }

    /// Puts connection `conn` in `group` (see [`Hub::join_group`]). A refusal
    /// (limits, a closed connection) is logged and counted in
    /// `command_errors`.
    ///
    /// [`Hub::join_group`]: crate::Hub::join_group
    pub fn join_group(&self, conn: ConnId, group: &str) -> Result<(), HandleError> {
        self.group_command(GroupCommand::Join {
            conn,
            group: group.into(),
        })
    }

    /// Takes connection `conn` out of `group`.
    pub fn leave_group(&self, conn: ConnId, group: &str) -> Result<(), HandleError> {
        self.group_command(GroupCommand::Leave {
            conn,
            group: group.into(),
        })
    }

    /// Puts every open device of `user` in `group`; with `sticky`, devices
    /// that connect later join too, until [`leave_user`](Self::leave_user).
    pub fn join_user(&self, user: &str, group: &str, sticky: bool) -> Result<(), HandleError> {
        self.group_command(GroupCommand::JoinUser {
            user: user.into(),
            group: group.into(),
            sticky,
        })
    }

    /// Takes every device of `user` out of `group`, and ends a standing
    /// membership.
    pub fn leave_user(&self, user: &str, group: &str) -> Result<(), HandleError> {
        self.group_command(GroupCommand::LeaveUser {
            user: user.into(),
            group: group.into(),
        })
    }

    /// The members of `group`, oldest first; blocks until the hub thread
    /// answers (`Closed` if it stops first).
    pub fn members(&self, group: &str) -> Result<Vec<ConnId>, HandleError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.group_command(GroupCommand::Members {
            group: group.into(),
            reply,
        })?;
        rx.recv().map_err(|_| HandleError::Closed)
    }

    /// The groups connection `conn` is in; blocks like [`members`](Self::members).
    pub fn groups_of(&self, conn: ConnId) -> Result<Vec<Arc<str>>, HandleError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.group_command(GroupCommand::GroupsOf { conn, reply })?;
        rx.recv().map_err(|_| HandleError::Closed)
    }

    /// Sends `msg` to every member of `group`, encoded once (here), except
    /// connection `except` when given (the sender of a client message).
    ///
    /// ```no_run
    /// # fn demo(handle: wshub::HubHandle) -> Result<(), wshub::HandleError> {
    /// handle.send_to_group("lobby", &wshub::Message::text("", "welcome"), None)?;
    /// # Ok(()) }
    /// ```
    pub fn send_to_group(
        &self,
        group: &str,
        msg: &Message,
        except: Option<ConnId>,
    ) -> Result<(), HandleError> {
        self.send_payload_to_group(group, encode(msg)?, except)
    }

    /// [`send_to_group`](Self::send_to_group) for an encoded payload.
    pub fn send_payload_to_group(
        &self,
        group: &str,
        payload: Payload,
        except: Option<ConnId>,
    ) -> Result<(), HandleError> {
        self.submit(Command::Send {
            dest: Dest::Group(group.into(), except),
            payload,
        })
    }

    /// Sends `msg` to every member of `group` with the retry policy: one
    /// delivery per member device, all sharing one encoded frame. Each
    /// result goes to the hub's `on_send_result` callback.
    pub fn send_to_group_with_retry(
        &self,
        group: &str,
        msg: &Message,
        except: Option<ConnId>,
    ) -> Result<(), HandleError> {
        let envelope =
            Envelope::new(msg.clone()).map_err(|e| HandleError::Encode(e.to_string()))?;
        self.group_command(GroupCommand::SendWithRetry {
            group: group.into(),
            envelope,
            except,
        })
    }
}
