//! Deliveries with retry: the per-message record behind
//! `send_to_user_with_retry`, and the [`SendResult`] it ends with.
//!
//! A delivery is (message, user). Each attempt offers the message to every
//! connected device of the user that has not taken it yet (or to
//! `receiver_client` only); a device takes it when the frame is written to
//! its socket or, with `require_ack`, when that device ACKs it. The attempt
//! ends when every device it targeted has taken or failed it; failed devices
//! are retried after the policy's backoff, waiting in the timing wheel.
//!
//! The engine that runs them is a sans-IO state machine ([`engine`]): the
//! hub feeds it events and it answers through the rings and the failure
//! handlers. Its records live in a table whose slots, and their vectors, are
//! reused: after warm-up a delivery allocates nothing on the hub thread.

mod acks;
pub(crate) mod engine;
pub(crate) mod ids;

pub use ids::MessageId;
mod lanes;
mod offline;
mod record;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub(crate) use engine::{Engine, EngineConfig, Net};
pub(crate) use record::{RemoteWaiter, Tag, Waiter};

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::SendError;
use crate::failure::reason::FailureReason;
use crate::message::{Message, Payload};

/// Names one delivery; stale once its `SendResult` has been produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryId {
    pub(crate) index: u32,
    // Never zero, so that `Option<Tag>` in every ring entry costs no extra
    // word (the niche holds `None`).
    pub(crate) generation: NonZeroU32,
}

impl DeliveryId {
    /// Names no delivery: the id results carry for a stored offline message
    /// that expired or was evicted (its delivery ended long before).
    pub const NONE: DeliveryId = DeliveryId {
        index: u32::MAX,
        generation: NonZeroU32::MAX,
    };
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "delivery#{}.{}", self.index, self.generation)
    }
}

/// One attempt of a delivery (go-wsc's `SendAttempt`).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct SendAttempt {
    /// 1 for the first attempt.
    pub attempt_number: u32,
    /// When the attempt started (wall clock).
    pub start_time: SystemTime,
    /// How long it took to succeed or fail.
    pub duration: Duration,
    /// Why it failed (the first device failure), if it did.
    pub error: Option<FailureReason>,
    /// Whether every targeted device took the message.
    pub success: bool,
}

/// The final outcome of a delivery (go-wsc's `SendResult`).
///
/// ```
/// let r = wshub::SendResult::default();
/// assert!(!r.success && r.attempts.is_empty());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SendResult {
    /// Whether the message finally reached every device it was for.
    pub success: bool,
    /// Every attempt, in order.
    pub attempts: Vec<SendAttempt>,
    /// `attempts.len() - 1`.
    pub total_retries: u32,
    /// From the first attempt's start to the final outcome.
    pub total_time: Duration,
    /// Why it finally failed.
    pub final_error: Option<FailureReason>,
    /// The message's `message_id` (hub-assigned unless the sender set one).
    pub message_id: Option<MessageId>,
    /// The user was offline and the offline store kept the message: it is
    /// replayed when the user connects, and that replay's own result (or
    /// its expiry or eviction) reaches the result callback later.
    pub stored_offline: bool,
    /// This result is of a stored offline message (its replay, expiry or
    /// eviction), not of the send that stored it.
    pub replayed: bool,
}

impl SendResult {
    /// A result with room for `attempts` attempts, so that filling it on the
    /// hub thread allocates nothing.
    pub fn with_capacity(attempts: usize) -> SendResult {
        SendResult {
            attempts: Vec::with_capacity(attempts),
            ..SendResult::default()
        }
    }

    pub(crate) fn reset(&mut self) {
        self.success = false;
        self.attempts.clear();
        self.total_retries = 0;
        self.total_time = Duration::ZERO;
        self.final_error = None;
        self.message_id = None;
        self.stored_offline = false;
        self.replayed = false;
    }
}

/// A message encoded once, with the message itself kept for handlers.
///
/// Build it on any thread; sending it from the hub thread allocates nothing.
///
/// ```
/// let env = wshub::Envelope::new(wshub::Message::text("bob", "hi")).unwrap();
/// assert_eq!(env.message().receiver, "bob");
/// ```
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The message, when it was built from one (always, for envelopes a
    /// host makes; the hub's own relay keeps only the frame and the facts
    /// below, and the handlers' workers decode the frame when they need it).
    pub(crate) message: Option<Arc<Message>>,
    pub(crate) payload: Payload,
    pub(crate) id: MessageId,
    /// `require_ack` of the message.
    pub(crate) require_ack: bool,
    /// `receiver_client` of the message, if set: the one device it is for.
    pub(crate) only: Option<MessageId>,
}

impl Envelope {
    /// Encodes `message` as a JSON text frame. A message without a
    /// `message_id` gets a fresh one (unique, not guessable), so that its
    /// receivers can ACK it.
    pub fn new(mut message: Message) -> Result<Envelope, SendError> {
        if message.message_id.is_empty() {
            message.message_id = ids::new_message_id();
        }
        let payload = Payload::json(&message).map_err(|e| SendError::Encode(e.to_string()))?;
        Ok(Envelope {
            id: MessageId::new(&message.message_id),
            require_ack: message.require_ack,
            only: (!message.receiver_client.is_empty())
                .then(|| MessageId::new(&message.receiver_client)),
            message: Some(Arc::new(message)),
            payload,
        })
    }

    /// The message's id.
    pub fn message_id(&self) -> &str {
        &self.id
    }

    /// The same message marked as replayed from the offline store.
    pub(crate) fn for_offline(self) -> Envelope {
        let message = match &self.message {
            Some(m) => (**m).clone(),
            None => match serde_json::from_slice::<Message>(self.payload.body()) {
                Ok(m) => m,
                Err(_) => return self,
            },
        };
        if message.source == "offline" {
            return self;
        }
        let mut m = message;
        m.source = "offline".to_owned();
        match Payload::json(&m) {
            Ok(payload) => Envelope {
                message: Some(Arc::new(m)),
                payload,
                ..self
            },
            Err(_) => self,
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        // Envelopes a host can hold are built by `new`, which keeps it.
        self.message
            .as_deref()
            .expect("an envelope built by Envelope::new keeps its message")
    }

    /// The encoded frame.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }
}

impl SendResult {
    /// The result a waiter gets when the hub stopped before answering.
    pub(crate) fn hub_gone() -> SendResult {
        SendResult::refused(&SendError::ShuttingDown)
    }

    /// The result of a delivery that could not start (no attempt made).
    pub(crate) fn refused(why: &SendError) -> SendResult {
        let reason = match why {
            SendError::MessageTooLarge { .. } => FailureReason::MessageTooLarge,
            SendError::Encode(_) => FailureReason::Validation,
            SendError::UserOffline => FailureReason::UserOffline,
            SendError::QueueFull { .. } => FailureReason::QueueFull,
            SendError::TooManyPending { .. } => FailureReason::RateLimited,
            SendError::ClusterUnavailable => FailureReason::ClusterUnavailable,
            SendError::NoSuchClient | SendError::ShuttingDown => FailureReason::ChannelClosed,
        };
        SendResult {
            success: false,
            final_error: Some(reason),
            ..SendResult::default()
        }
    }
}
