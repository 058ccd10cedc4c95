//! The delivery records: one slot per delivery not yet final, reused with
//! its vectors' capacity so that steady-state deliveries allocate nothing.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crossbeam_channel::Sender;

use super::{DeliveryId, Envelope, MessageId, SendResult};
use crate::event::ConnId;
use crate::failure::reason::FailureReason;
use crate::message::Payload;
use crate::util::timer::TimerKey;

/// Links a queued frame (or a backlog entry, or an ACK-index entry) to its
/// delivery and target device.
///
/// Invariant: an attempt ends only when none of its tags remains in a ring,
/// a backlog or the ACK index, so a tag never outlives its attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag {
    pub delivery: DeliveryId,
    pub target: u16,
}

/// Where one device stands in the current attempt.
///
/// ```text
///  Backlogged ─(ring space, window)─► Queued ─(written)─► AwaitingAck ─(ACK)─► Taken
///       │                               │  └──(written, no ACK needed)──────────►┘
///       └──────────── any ──────────────┴──► Failed(reason)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetState {
    /// Waiting in the connection's backlog for ring space or ACK window.
    Backlogged,
    /// In the device's ring.
    Queued,
    /// Written; waiting for the device's ACK.
    AwaitingAck,
    /// The device has it.
    Taken,
    /// This attempt failed for the device.
    Failed(FailureReason),
}

impl TargetState {
    /// Still to hear from in this attempt.
    pub(super) fn is_outstanding(self) -> bool {
        matches!(
            self,
            TargetState::Backlogged | TargetState::Queued | TargetState::AwaitingAck
        )
    }
}

/// One device of the current attempt.
#[derive(Debug)]
pub(crate) struct DeliveryTarget {
    pub conn: ConnId,
    pub client_id: Arc<str>,
    pub state: TargetState,
    pub ack_timer: Option<TimerKey>,
    /// Counted in its connection's ACK window (a `require_ack` frame queued
    /// or written and not yet settled), at this position of the window list.
    pub window_pos: Option<u32>,
}

/// Who waits for the result.
#[derive(Debug)]
pub(crate) enum Waiter {
    /// The hub's result callback (or nobody).
    Loop,
    /// A thread blocked in `PendingSend::wait`.
    Thread(Sender<SendResult>),
    /// The client whose message the built-in relay delivers: told the
    /// result in a `send_result` notice (and the result callback runs too).
    Sender(ConnId),
    /// Another hub of the cluster, whose delivery this one attempt serves:
    /// the outcome goes back to it; it retries and reports, not this hub.
    Remote(RemoteWaiter),
}

/// The hub a cluster delivery came from, and its ticket there.
#[derive(Debug, Clone)]
pub(crate) struct RemoteWaiter {
    pub node: Arc<str>,
    pub ticket: crate::cluster::wire::Ticket,
}

impl Waiter {
    /// Whether another hub waits (one attempt, no local retry or report).
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self, Waiter::Remote(_))
    }
}

/// One delivery: (message, user).
#[derive(Debug)]
pub(crate) struct Delivery {
    pub generation: u32,
    /// Start order, hub-wide: retries of one user go out in this order.
    pub seq: u64,
    pub envelope: Option<Envelope>,
    pub user: Option<Arc<str>>,
    /// The one device (client id) this delivery is for, when the sender
    /// named it apart from the message (a group member); otherwise the
    /// message's `receiver_client`, when set.
    pub only: Option<Arc<str>>,
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
    /// A replay of a stored offline message (its outcome goes to the
    /// result callback; the sender already had its first result).
    pub replay: bool,
}

impl Delivery {
    fn empty(now: Instant) -> Delivery {
        Delivery {
            generation: 0,
            seq: 0,
            envelope: None,
            user: None,
            only: None,
            require_ack: false,
            targets: Vec::new(),
            taken: Vec::new(),
            started: now,
            attempt_started: now,
            attempt_started_wall: SystemTime::UNIX_EPOCH,
            result: SendResult::default(),
            waiter: Waiter::Loop,
            retry_timer: None,
            replay: false,
        }
    }

    /// The encoded frame (an open record always holds its envelope).
    pub(super) fn payload(&self) -> &Payload {
        &self.envelope().payload
    }

    /// The message id ACKs must name.
    pub(super) fn message_id(&self) -> &str {
        &self.envelope().id
    }

    /// The message id, for the ACK index.
    pub(super) fn message_id_arc(&self) -> MessageId {
        self.envelope().id.clone()
    }

    fn envelope(&self) -> &Envelope {
        self.envelope
            .as_ref()
            .expect("the table hands out open records only")
    }

    /// Devices still to hear from in this attempt.
    pub(super) fn outstanding(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| t.state.is_outstanding())
            .count()
    }
}

/// The delivery records. Slots are reused with their vectors' capacity.
#[derive(Debug, Default)]
pub(crate) struct DeliveryTable {
    slots: Vec<Delivery>,
    free: Vec<u32>,
    active: usize,
}

impl DeliveryTable {
    /// A table with `capacity` slots ready (more are added on demand, up to
    /// the engine's `max_pending_deliveries`).
    pub(super) fn with_capacity(capacity: usize) -> DeliveryTable {
        DeliveryTable {
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            active: 0,
        }
    }

    /// Takes a free record (growing the table when none is free).
    pub(super) fn open(&mut self, now: Instant, envelope: Envelope) -> DeliveryId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Delivery::empty(now));
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

    pub(super) fn get(&self, id: DeliveryId) -> Option<&Delivery> {
        self.slots
            .get(id.index as usize)
            .filter(|d| d.generation == id.generation.get() && d.envelope.is_some())
    }

    pub(super) fn get_mut(&mut self, id: DeliveryId) -> Option<&mut Delivery> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|d| d.generation == id.generation.get() && d.envelope.is_some())
    }

    /// The target a tag names, if its delivery is still open.
    pub(super) fn target_mut(&mut self, tag: Tag) -> Option<&mut DeliveryTarget> {
        self.get_mut(tag.delivery)?
            .targets
            .get_mut(usize::from(tag.target))
    }

    /// Frees a record, keeping its vectors' capacity.
    pub(super) fn close(&mut self, id: DeliveryId) {
        let Some(d) = self.get_mut(id) else { return };
        d.envelope = None;
        d.user = None;
        d.only = None;
        d.targets.clear();
        d.taken.clear();
        d.waiter = Waiter::Loop;
        d.retry_timer = None;
        d.replay = false;
        d.generation = d.generation.wrapping_add(1);
        self.free.push(id.index);
        self.active -= 1;
    }

    /// Deliveries not yet final.
    pub(super) fn active(&self) -> usize {
        self.active
    }

    /// The ids of every delivery not yet final (shutdown only: a scan).
    pub(super) fn active_ids(&self) -> impl Iterator<Item = DeliveryId> + '_ {
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
