//! What a failure is, and the five handler kinds that receive one.

use std::borrow::Cow;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::delivery::DeliveryId;
use crate::event::ConnId;
use crate::failure::reason::{FailureReason, TimeoutKind};
use crate::message::{Message, Payload};

/// One failed attempt to deliver one message to one recipient.
///
/// It is also the `err` every handler receives: it implements `Display` and
/// `std::error::Error`.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Why it failed.
    pub reason: FailureReason,
    /// The user the message was for.
    pub recipient: Arc<str>,
    /// The device, when the failure is about one connection.
    pub client_id: Option<Arc<str>>,
    /// The connection, when the failure is about one connection.
    pub conn: Option<ConnId>,
    /// The delivery (for `send_*_with_retry`), to match with its `SendResult`.
    pub delivery: Option<DeliveryId>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Whether the retry policy will try again.
    pub will_retry: bool,
    /// For timeouts: the deadline that expired (`ack_timeout`,
    /// `send_timeout`, the client timeout).
    pub waited: Duration,
    message: Option<Arc<Message>>,
    payload: Payload,
}

impl Failure {
    pub(crate) fn new(
        reason: FailureReason,
        recipient: Arc<str>,
        message: Option<Arc<Message>>,
        payload: Payload,
    ) -> Failure {
        Failure {
            reason,
            recipient,
            client_id: None,
            conn: None,
            delivery: None,
            attempt: 1,
            will_retry: false,
            waited: Duration::ZERO,
            message,
            payload,
        }
    }

    /// The message that failed. Sends of a pre-encoded [`Payload`] are decoded
    /// here, on the worker thread; a payload that is not a JSON message comes
    /// back as a message whose `content` is its text.
    pub fn message(&self) -> Cow<'_, Message> {
        if let Some(m) = &self.message {
            return Cow::Borrowed(m);
        }
        match serde_json::from_slice::<Message>(self.payload.body()) {
            Ok(m) => Cow::Owned(m),
            Err(_) => Cow::Owned(Message {
                content: String::from_utf8_lossy(self.payload.body()).into_owned(),
                ..Message::default()
            }),
        }
    }

    /// The encoded frame that failed.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} for {}", self.reason.name(), self.recipient)?;
        if let Some(c) = &self.client_id {
            write!(f, " ({c})")?;
        }
        write!(f, " on attempt {}", self.attempt)?;
        if self.reason.timeout_kind().is_some() {
            write!(f, " after {:?}", self.waited)?;
        }
        if self.will_retry {
            f.write_str(", will retry")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// go-wsc's general handler: sees every failure.
///
/// ```
/// use wshub::failure::{Failure, SendFailureHandler};
/// use wshub::{Message, reason::FailureReason};
/// struct Log;
/// impl SendFailureHandler for Log {
///     fn handle_send_failure(&self, msg: &Message, recipient: &str, reason: FailureReason, err: &Failure) {
///         eprintln!("{} to {recipient} failed: {} ({err})", msg.message_id, reason.as_str());
///     }
/// }
/// ```
pub trait SendFailureHandler: Send + Sync {
    /// Called for every failure.
    fn handle_send_failure(
        &self,
        msg: &Message,
        recipient: &str,
        reason: FailureReason,
        err: &Failure,
    );
}

/// A recipient's outbound ring was full (`queue_full`).
pub trait QueueFullHandler: Send + Sync {
    /// `queue_type` names the queue: `"client"` (a device's ring).
    fn handle_queue_full(&self, msg: &Message, recipient: &str, queue_type: &str, err: &Failure);
}

/// The user had no open connection (`user_offline`): store the message.
pub trait UserOfflineHandler: Send + Sync {
    /// Called for every message to an offline user.
    fn handle_user_offline(&self, msg: &Message, user_id: &str, err: &Failure);
}

/// A connection broke with the message queued or unacknowledged (`conn_error`).
pub trait ConnectionErrorHandler: Send + Sync {
    /// `client_id` is the device whose connection broke.
    fn handle_connection_error(&self, msg: &Message, client_id: &str, err: &Failure);
}

/// A deadline expired: `ack_timeout`, `send_timeout` or `connection_timeout`.
pub trait TimeoutHandler: Send + Sync {
    /// `duration` is the deadline that expired.
    fn handle_timeout(
        &self,
        msg: &Message,
        recipient: &str,
        timeout_type: TimeoutKind,
        duration: Duration,
        err: &Failure,
    );
}

/// The registered handlers; copied on write, shared with in-flight jobs.
#[derive(Default, Clone)]
pub(crate) struct HandlerSet {
    pub send_failure: Vec<Arc<dyn SendFailureHandler>>,
    pub queue_full: Vec<Arc<dyn QueueFullHandler>>,
    pub user_offline: Vec<Arc<dyn UserOfflineHandler>>,
    pub conn_error: Vec<Arc<dyn ConnectionErrorHandler>>,
    pub timeout: Vec<Arc<dyn TimeoutHandler>>,
}

impl HandlerSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.send_failure.is_empty()
            && self.queue_full.is_empty()
            && self.user_offline.is_empty()
            && self.conn_error.is_empty()
            && self.timeout.is_empty()
    }

    /// Runs every matching handler; returns how many panicked.
    pub(crate) fn dispatch(&self, failure: &Failure) -> u64 {
        let msg = failure.message();
        let recipient = &*failure.recipient;
        let mut panics = 0;
        let mut guard = |name: &str, f: &mut dyn FnMut()| {
            if catch_unwind(AssertUnwindSafe(f)).is_err() {
                panics += 1;
                log::error!("{name} handler panicked on {failure}");
            }
        };
        match failure.reason {
            FailureReason::QueueFull => {
                for h in &self.queue_full {
                    guard("queue_full", &mut || {
                        h.handle_queue_full(&msg, recipient, "client", failure)
                    });
                }
            }
            FailureReason::UserOffline => {
                for h in &self.user_offline {
                    guard("user_offline", &mut || {
                        h.handle_user_offline(&msg, recipient, failure)
                    });
                }
            }
            FailureReason::ConnError => {
                let client = failure.client_id.as_deref().unwrap_or(recipient);
                for h in &self.conn_error {
                    guard("conn_error", &mut || {
                        h.handle_connection_error(&msg, client, failure)
                    });
                }
            }
            FailureReason::Timeout(kind) => {
                for h in &self.timeout {
                    guard("timeout", &mut || {
                        h.handle_timeout(&msg, recipient, kind, failure.waited, failure)
                    });
                }
            }
            _ => {}
        }
        for h in &self.send_failure {
            guard("send_failure", &mut || {
                h.handle_send_failure(&msg, recipient, failure.reason, failure)
            });
        }
        panics
    }
}

// A handler shared with the host (to read its counters, say) is registered
// as an `Arc` of it.
impl<T: SendFailureHandler + ?Sized> SendFailureHandler for Arc<T> {
    fn handle_send_failure(&self, msg: &Message, to: &str, reason: FailureReason, err: &Failure) {
        (**self).handle_send_failure(msg, to, reason, err)
    }
}

impl<T: QueueFullHandler + ?Sized> QueueFullHandler for Arc<T> {
    fn handle_queue_full(&self, msg: &Message, to: &str, queue_type: &str, err: &Failure) {
        (**self).handle_queue_full(msg, to, queue_type, err)
    }
}

impl<T: UserOfflineHandler + ?Sized> UserOfflineHandler for Arc<T> {
    fn handle_user_offline(&self, msg: &Message, user_id: &str, err: &Failure) {
        (**self).handle_user_offline(msg, user_id, err)
    }
}

impl<T: ConnectionErrorHandler + ?Sized> ConnectionErrorHandler for Arc<T> {
    fn handle_connection_error(&self, msg: &Message, client_id: &str, err: &Failure) {
        (**self).handle_connection_error(msg, client_id, err)
    }
}

impl<T: TimeoutHandler + ?Sized> TimeoutHandler for Arc<T> {
    fn handle_timeout(
        &self,
        msg: &Message,
        to: &str,
        kind: TimeoutKind,
        duration: Duration,
        err: &Failure,
    ) {
        (**self).handle_timeout(msg, to, kind, duration, err)
    }
}
