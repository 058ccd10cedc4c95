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
//! Records live in a table whose slots, and their vectors, are reused: after
//! warm-up a delivery that succeeds first time allocates nothing.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;

use crate::error::SendError;
use crate::event::ConnId;
use crate::failure::reason::FailureReason;
use crate::message::{Message, Payload};
use crate::util::timer::TimerKey;

/// Names one delivery; stale once its `SendResult` has been produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryId {
    pub(crate) index: u32,
    // Never zero, so that `Option<Tag>` in every ring entry costs no extra
    // word (the niche holds `None`).
    pub(crate) generation: NonZeroU32,
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "delivery#{}.{}", self.index, self.generation)
    }
}

/// One attempt of a delivery (go-wsc's `SendAttempt`).
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

    fn reset(&mut self) {
        self.success = false;
        self.attempts.clear();
        self.total_retries = 0;
        self.total_time = Duration::ZERO;
        self.final_error = None;
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
    pub(crate) message: Arc<Message>,
    pub(crate) payload: Payload,
}

impl Envelope {
    /// Encodes `message` as a JSON text frame.
    pub fn new(message: Message) -> Result<Envelope, SendError> {
        let payload = Payload::json(&message).map_err(|e| SendError::Encode(e.to_string()))?;
        Ok(Envelope {
            message: Arc::new(message),
            payload,
        })
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The encoded frame.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }
}

/// Links a queued frame to its delivery and target device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag {
    pub delivery: DeliveryId,
    pub target: u16,
}

/// Where one device stands in the current attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetState {
    /// In the device's ring.
    Queued,
    /// Written; waiting for the device's ACK.
    AwaitingAck,
    /// The device has it.
    Taken,
    /// This attempt failed for the device.
    Failed(FailureReason),
}

#[derive(Debug)]
pub(crate) struct DeliveryTarget {
    pub key: usize,
    pub conn: ConnId,
    pub client_id: Arc<str>,
    pub state: TargetState,
    pub ack_timer: Option<TimerKey>,
}

/// Who waits for the result.
pub(crate) enum Waiter {
    /// The hub's result callback (or nobody).
    Loop,
    /// A thread blocked in `PendingSend::wait`.
    Thread(Sender<SendResult>),
}

pub(crate) struct Delivery {
    pub generation: u32,
    pub envelope: Option<Envelope>,
    pub user: Option<Arc<str>>,
    pub require_ack: bool,
    pub targets: Vec<DeliveryTarget>,
    /// Client ids of the devices that took the message in earlier attempts.
    pub taken: Vec<Arc<str>>,
    pub started: Instant,
    pub attempt_started: Instant,
    pub attempt_started_wall: SystemTime,
    pub result: SendResult,
    pub waiter: Waiter,
    pub retry_timer: Option<TimerKey>,
}

impl Delivery {
    fn empty(generation: u32, now: Instant) -> Delivery {
        Delivery {
            generation,
            envelope: None,
            user: None,
            require_ack: false,
            targets: Vec::new(),
            taken: Vec::new(),
            started: now,
            attempt_started: now,
            attempt_started_wall: SystemTime::UNIX_EPOCH,
            result: SendResult::default(),
            waiter: Waiter::Loop,
            retry_timer: None,
        }
    }

    /// Devices still to hear from in this attempt.
    pub fn outstanding(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| matches!(t.state, TargetState::Queued | TargetState::AwaitingAck))
            .count()
    }

    pub fn message(&self) -> Option<&Arc<Message>> {
        self.envelope.as_ref().map(|e| &e.message)
    }
}

/// The delivery records. Slots are reused with their vectors' capacity, so
/// steady-state deliveries do not allocate.
pub(crate) struct DeliveryTable {
    slots: Vec<Delivery>,
    free: Vec<u32>,
    active: usize,
}

impl DeliveryTable {
    pub fn new() -> DeliveryTable {
        DeliveryTable {
            slots: Vec::new(),
            free: Vec::new(),
            active: 0,
        }
    }

    /// Takes a free record (growing the table when none is free).
    pub fn open(&mut self, now: Instant, envelope: Envelope) -> DeliveryId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Delivery::empty(0, now));
                (self.slots.len() - 1) as u32
            }
        };
        let d = &mut self.slots[index as usize];
        d.generation = d.generation.wrapping_add(1).max(1);
        d.started = now;
        d.envelope = Some(envelope);
        d.result.reset();
        self.active += 1;
        DeliveryId {
            index,
            generation: NonZeroU32::new(d.generation).unwrap_or(NonZeroU32::MIN),
        }
    }

    pub fn get(&self, id: DeliveryId) -> Option<&Delivery> {
        self.slots
            .get(id.index as usize)
            .filter(|d| d.generation == id.generation.get() && d.envelope.is_some())
    }

    pub fn get_mut(&mut self, id: DeliveryId) -> Option<&mut Delivery> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|d| d.generation == id.generation.get() && d.envelope.is_some())
    }

    /// Frees a record, keeping its vectors' capacity.
    pub fn close(&mut self, id: DeliveryId) {
        let Some(d) = self.get_mut(id) else { return };
        d.envelope = None;
        d.user = None;
        d.targets.clear();
        d.taken.clear();
        d.waiter = Waiter::Loop;
        d.retry_timer = None;
        d.generation = d.generation.wrapping_add(1);
        self.free.push(id.index);
        self.active -= 1;
    }

    /// Deliveries not yet final.
    pub fn active(&self) -> usize {
        self.active
    }

    /// The ids of every delivery not yet final.
    pub fn active_ids(&self) -> impl Iterator<Item = DeliveryId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, d)| d.envelope.is_some())
            .filter_map(|(i, d)| {
                Some(DeliveryId {
                    index: i as u32,
                    generation: NonZeroU32::new(d.generation)?,
                })
            })
    }
}
