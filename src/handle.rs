//! `HubHandle`: how other threads talk to the hub.
//!
//! Commands go over a bounded crossbeam channel and a `mio::Waker` wakes the
//! loop. Encoding happens on the calling thread, so the hub thread only routes.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Sender, TrySendError};
use mio::Waker;

use crate::delivery::{Envelope, SendResult};
use crate::event::ConnId;
use crate::message::{Message, Payload};

/// Who a command's message is for.
#[derive(Debug, Clone)]
pub(crate) enum Dest {
    User(Arc<str>),
    Device(Arc<str>, Arc<str>),
    Conn(ConnId),
    All,
    /// A group's members, but the one connection (the sender).
    Group(Arc<str>, Option<ConnId>),
}

impl Dest {
    /// The owned form of a target, to cross threads.
    pub(crate) fn of(target: crate::Target<'_>) -> Dest {
        match target {
            crate::Target::User(u) => Dest::User(u.into()),
            crate::Target::Device { user, client } => Dest::Device(user.into(), client.into()),
            crate::Target::Conn(id) => Dest::Conn(id),
            crate::Target::All => Dest::All,
            crate::Target::Group(g) => Dest::Group(g.into(), None),
            crate::Target::GroupExcept { group, except } => Dest::Group(group.into(), Some(except)),
        }
    }

    /// The borrowed form the hub routes with.
    pub(crate) fn target(&self) -> crate::Target<'_> {
        match self {
            Dest::User(u) => crate::Target::User(u),
            Dest::Device(u, c) => crate::Target::Device { user: u, client: c },
            Dest::Conn(id) => crate::Target::Conn(*id),
            Dest::All => crate::Target::All,
            Dest::Group(g, None) => crate::Target::Group(g),
            Dest::Group(g, Some(except)) => crate::Target::GroupExcept {
                group: g,
                except: *except,
            },
        }
    }
}

/// Who a kick is for: the handle offers these two.
#[derive(Debug, Clone)]
pub(crate) enum KickWho {
    User(Arc<str>),
    Conn(ConnId),
}

#[derive(Debug)]
pub(crate) enum Command {
    Send {
        dest: Dest,
        payload: Payload,
    },
    Kick {
        who: KickWho,
        reason: String,
    },
    SendWithRetry {
        user: Arc<str>,
        envelope: Envelope,
        waiter: Sender<SendResult>,
        result: SendResult,
    },
    /// Membership changes, queries and with-retry group sends.
    Group(crate::group::GroupCommand),
    /// Re-read the TLS files (see `Hub::reload_tls`).
    ReloadTls,
}

/// Why a command could not be handed to the hub.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    /// The command queue is full: the hub thread is not keeping up.
    Busy,
    /// The hub is gone.
    Closed,
    /// The message could not be encoded as JSON.
    Encode(String),
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandleError::Busy => f.write_str("hub command queue is full"),
            HandleError::Closed => f.write_str("hub has stopped"),
            HandleError::Encode(e) => write!(f, "message could not be encoded: {e}"),
        }
    }
}

impl std::error::Error for HandleError {}

/// A cheap, cloneable, thread-safe handle to a running hub.
///
/// Every call only queues a command; the hub thread carries it out on its next
/// turn. Outcomes (a full ring, an offline user) are counted in the hub's
/// stats and reported to its failure handlers.
///
/// ```no_run
/// # fn demo(handle: wshub::HubHandle) {
/// let h = handle.clone();
/// std::thread::spawn(move || {
///     h.send_to_user("alice", &wshub::Message::text("alice", "from a worker")).unwrap();
/// });
/// # }
/// ```
#[derive(Clone)]
pub struct HubHandle {
    pub(crate) tx: Sender<Command>,
    pub(crate) waker: Arc<Waker>,
    /// Shutdown is a flag, not a command, so that it gets through even when
    /// the command queue is full.
    pub(crate) shutdown: Arc<AtomicBool>,
    /// Attempts a delivery can make (`max_retries + 1`): results are built
    /// with room for them, so the hub thread never grows one.
    pub(crate) attempts: usize,
}

impl fmt::Debug for HubHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubHandle")
            .field("queued", &self.tx.len())
            .finish()
    }
}

pub(crate) fn encode(msg: &Message) -> Result<Payload, HandleError> {
    Payload::json(msg).map_err(|e| HandleError::Encode(e.to_string()))
}

impl HubHandle {
    pub(crate) fn submit(&self, cmd: Command) -> Result<(), HandleError> {
        match self.tx.try_send(cmd) {
            Ok(()) => {
                // A failed wake means the poller is gone: the hub is stopping.
                self.waker.wake().map_err(|_| HandleError::Closed)
            }
            Err(TrySendError::Full(_)) => Err(HandleError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(HandleError::Closed),
        }
    }

    /// Sends `msg` to every device of `user` (or to `msg.receiver_client`
    /// only, when set).
    pub fn send_to_user(&self, user: &str, msg: &Message) -> Result<(), HandleError> {
        self.submit(Command::Send {
            dest: Dest::of(crate::Target::user_or_device(user, &msg.receiver_client)),
            payload: encode(msg)?,
        })
    }

    /// Sends `msg` to `user` with the hub's retry policy. The message is
    /// encoded here, on the calling thread; [`PendingSend::wait`] blocks until
    /// the final [`SendResult`].
    ///
    /// ```no_run
    /// # fn demo(handle: wshub::HubHandle) -> Result<(), wshub::HandleError> {
    /// let pending = handle.send_to_user_with_retry("alice", &wshub::Message::text("alice", "hi"))?;
    /// let result = pending.wait();
    /// println!("success={} retries={}", result.success, result.total_retries);
    /// # Ok(()) }
    /// ```
    pub fn send_to_user_with_retry(
        &self,
        user: &str,
        msg: &Message,
    ) -> Result<PendingSend, HandleError> {
        let envelope =
            Envelope::new(msg.clone()).map_err(|e| HandleError::Encode(e.to_string()))?;
        let (waiter, rx) = crossbeam_channel::bounded(1);
        self.submit(Command::SendWithRetry {
            user: user.into(),
            envelope,
            waiter,
            // Room for the attempts, so the hub thread fills it without allocating.
            result: SendResult::with_capacity(self.attempts),
        })?;
        Ok(PendingSend { rx })
    }

    /// Sends `msg` to one connection.
    pub fn send_to_client(&self, conn: ConnId, msg: &Message) -> Result<(), HandleError> {
        self.submit(Command::Send {
            dest: Dest::Conn(conn),
            payload: encode(msg)?,
        })
    }

    /// Sends an already encoded payload to every device of `user`.
    pub fn send_payload_to_user(&self, user: &str, payload: Payload) -> Result<(), HandleError> {
        self.submit(Command::Send {
            dest: Dest::User(user.into()),
            payload,
        })
    }

    /// Sends `msg` to every open connection.
    pub fn broadcast(&self, msg: &Message) -> Result<(), HandleError> {
        self.submit(Command::Send {
            dest: Dest::All,
            payload: encode(msg)?,
        })
    }

    /// Kicks every device of `user` (a `kick_out` message, then close).
    pub fn kick_user(&self, user: &str, reason: &str) -> Result<(), HandleError> {
        self.submit(Command::Kick {
            who: KickWho::User(user.into()),
            reason: reason.to_owned(),
        })
    }

    /// Kicks one connection.
    pub fn kick(&self, conn: ConnId, reason: &str) -> Result<(), HandleError> {
        self.submit(Command::Kick {
            who: KickWho::Conn(conn),
            reason: reason.to_owned(),
        })
    }

    /// Asks the hub to read its TLS certificate, key and client CA files
    /// again ([`Hub::reload_tls`](crate::Hub::reload_tls)): new `wss://`
    /// connections use them, open ones keep theirs. A failure keeps the old
    /// certificate, is logged and counted in `tls_reload_errors`.
    pub fn reload_tls(&self) -> Result<(), HandleError> {
        self.submit(Command::ReloadTls)
    }

    /// Starts a graceful shutdown: close 1001 to every client, flush within
    /// the shutdown deadline, then `Hub::run` returns.
    pub fn shutdown(&self) -> Result<(), HandleError> {
        self.shutdown.store(true, Ordering::Release);
        self.waker.wake().map_err(|_| HandleError::Closed)
    }
}

/// The final [`SendResult`] of a delivery started through a [`HubHandle`].
#[derive(Debug)]
pub struct PendingSend {
    rx: crossbeam_channel::Receiver<SendResult>,
}

impl PendingSend {
    /// Blocks until the delivery is final. If the hub stops first, the result
    /// fails with `channel_closed`.
    pub fn wait(self) -> SendResult {
        self.rx.recv().unwrap_or_else(|_| SendResult::hub_gone())
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout` (`None`: the
    /// delivery is still going on).
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> Option<SendResult> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => Some(r),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Some(SendResult::hub_gone()),
        }
    }

    /// The result if the delivery is already final.
    pub fn try_result(&self) -> Option<SendResult> {
        self.rx.try_recv().ok()
    }
}
