//! The offline store: messages for users with no connection, kept until the
//! user connects (then replayed as tracked deliveries), their time-to-live
//! passes, or a cap evicts them.
//!
//! Bounded three ways: per user (`offline_queue_per_user`, the user's oldest
//! goes first) and hub-wide in messages and bytes (`offline_max_messages`,
//! `offline_max_bytes`, the hub's oldest goes first). Every way out but the
//! replay is reported to the caller, who makes it a final failure.
//!
//! Invariant: `order` lists every stored message in store order, plus stale
//! entries of messages already gone (replayed, evicted, expired). A live
//! entry is the front of its user's queue when it is the oldest live one,
//! so eviction and expiry are O(1) each; stale entries are skipped when met
//! and compacted away when they outnumber the live ones.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Envelope, MessageId};
use crate::message::{Message, Payload};

/// One stored message: its frame and id only. The decoded `Message` is
/// dropped (it would double the memory a message costs) and decoded again
/// from the frame when the message is replayed.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) payload: Payload,
    pub(crate) id: MessageId,
    /// The one device it is for (`receiver_client`), if any.
    pub(crate) only: Option<MessageId>,
    pub(crate) since: Instant,
    /// Where the message stands among all the hub's deliveries (their start
    /// order): a replay goes out in this order with the retries it meets.
    pub(crate) origin: u64,
    seq: u64,
}

impl Stored {
    /// The message again, for its replay (`None` only if the frame, which
    /// the hub encoded itself, no longer decodes).
    pub(crate) fn envelope(&self) -> Option<Envelope> {
        let message: Message = serde_json::from_slice(self.payload.body()).ok()?;
        Some(Envelope {
            require_ack: message.require_ack,
            only: (!message.receiver_client.is_empty())
                .then(|| MessageId::new(&message.receiver_client)),
            message: Some(Arc::new(message)),
            payload: self.payload.clone(),
            id: self.id.clone(),
        })
    }
}

/// Why a stored message left the store other than by replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gone {
    /// A cap made room for a newer message.
    Evicted,
    /// It outlived `offline_ttl`.
    Expired,
}

/// The store's limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OfflineLimits {
    pub per_user: usize,
    pub max_messages: usize,
    pub max_bytes: usize,
    pub ttl: Duration,
}

#[derive(Debug)]
pub(crate) struct OfflineStore {
    limits: OfflineLimits,
    users: HashMap<Arc<str>, VecDeque<Stored>>,
    order: VecDeque<(Arc<str>, u64)>,
    messages: usize,
    bytes: usize,
    next_seq: u64,
}

impl OfflineStore {
    pub(super) fn new(limits: OfflineLimits) -> OfflineStore {
        OfflineStore {
            limits,
            users: HashMap::new(),
            order: VecDeque::new(),
            messages: 0,
            bytes: 0,
            next_seq: 0,
        }
    }

    /// Whether messages are kept at all.
    pub(super) fn enabled(&self) -> bool {
        self.limits.per_user > 0 && self.limits.max_messages > 0 && self.limits.max_bytes > 0
    }

    pub(super) fn messages(&self) -> usize {
        self.messages
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps `envelope` for `user`; whatever a cap pushes out goes to `gone`.
    /// Returns false when the message cannot be kept at all (disabled, or
    /// larger than the whole store).
    pub(super) fn store(
        &mut self,
        now: Instant,
        user: &Arc<str>,
        envelope: Envelope,
        origin: u64,
        gone: &mut impl FnMut(Arc<str>, Stored, Gone),
    ) -> bool {
        let size = envelope.payload.len();
        let Envelope {
            payload, id, only, ..
        } = envelope;
        if !self.enabled() || size > self.limits.max_bytes {
            return false;
        }
        let queue = self.users.entry(user.clone()).or_default();
        if queue.len() >= self.limits.per_user
            && let Some(old) = queue.pop_front()
        {
            self.messages -= 1;
            self.bytes -= old.payload.len();
            gone(user.clone(), old, Gone::Evicted);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        queue.push_back(Stored {
            payload,
            id,
            only,
            since: now,
            origin,
            seq,
        });
        self.order.push_back((user.clone(), seq));
        self.messages += 1;
        self.bytes += size;
        while self.messages > self.limits.max_messages || self.bytes > self.limits.max_bytes {
            match self.pop_oldest() {
                Some((u, s)) => gone(u, s, Gone::Evicted),
                None => break,
            }
        }
        if self.order.len() > 2 * self.messages + 64 {
            self.rebuild();
        }
        true
    }

    /// Removes and returns everything kept for `user`, oldest first.
    pub(super) fn take(&mut self, user: &str) -> Option<VecDeque<Stored>> {
        let queue = self.users.remove(user)?;
        self.messages -= queue.len();
        self.bytes -= queue.iter().map(|s| s.payload.len()).sum::<usize>();
        Some(queue)
    }

    /// Puts back what a replay could not start, in front of anything newer.
    pub(super) fn restore(&mut self, user: &Arc<str>, mut rest: VecDeque<Stored>) {
        if rest.is_empty() {
            return;
        }
        self.messages += rest.len();
        self.bytes += rest.iter().map(|s| s.payload.len()).sum::<usize>();
        let queue = self.users.entry(user.clone()).or_default();
        rest.append(queue);
        // A replay may have taken them out of store order (it goes in send
        // order): a user's queue stays in store order, oldest first.
        rest.make_contiguous().sort_by_key(|s| s.seq);
        *queue = rest;
        // Rare (a replay cut short by the pending-delivery cap, or messages
        // for one device that is not connected): list the store again in
        // store order rather than patch `order`.
        self.rebuild();
    }

    /// Removes every message older than the time-to-live.
    pub(super) fn expire(&mut self, now: Instant, gone: &mut impl FnMut(Arc<str>, Stored, Gone)) {
        while let Some((user, seq)) = self.order.front() {
            let live = self
                .users
                .get(user)
                .and_then(|q| q.front())
                .filter(|s| s.seq == *seq);
            match live {
                None => {
                    self.order.pop_front();
                }
                Some(s) if now.saturating_duration_since(s.since) >= self.limits.ttl => {
                    if let Some((u, s)) = self.pop_oldest() {
                        gone(u, s, Gone::Expired);
                    }
                }
                Some(_) => return,
            }
        }
    }

    /// The oldest live message, removed.
    fn pop_oldest(&mut self) -> Option<(Arc<str>, Stored)> {
        while let Some((user, seq)) = self.order.pop_front() {
            let Some(queue) = self.users.get_mut(&user) else {
                continue;
            };
            if queue.front().is_none_or(|s| s.seq != seq) {
                continue;
            }
            let s = queue.pop_front()?;
            if queue.is_empty() {
                self.users.remove(&user);
            }
            self.messages -= 1;
            self.bytes -= s.payload.len();
            return Some((user, s));
        }
        None
    }

    /// Checks the store's bookkeeping and caps (the engine's self-audit).
    #[cfg(test)]
    pub(super) fn audit(&self) -> Result<(), String> {
        let l = &self.limits;
        let mut messages = 0;
        let mut bytes = 0;
        for (user, queue) in &self.users {
            if queue.is_empty() {
                return Err(format!("offline store: empty queue kept for {user}"));
            }
            if queue.len() > l.per_user {
                return Err(format!(
                    "offline store: {} messages for {user}, cap {}",
                    queue.len(),
                    l.per_user
                ));
            }
            if !queue
                .iter()
                .zip(queue.iter().skip(1))
                .all(|(a, b)| a.seq < b.seq)
            {
                return Err(format!("offline store: {user}'s queue out of order"));
            }
            for s in queue {
                if !self.order.iter().any(|(u, seq)| u == user && *seq == s.seq) {
                    return Err(format!(
                        "offline store: {user}#{} missing from order",
                        s.seq
                    ));
                }
            }
            messages += queue.len();
            bytes += queue.iter().map(|s| s.payload.len()).sum::<usize>();
        }
        if (messages, bytes) != (self.messages, self.bytes) {
            return Err(format!(
                "offline store counts {} messages / {} bytes, holds {messages} / {bytes}",
                self.messages, self.bytes
            ));
        }
        if messages > l.max_messages || bytes > l.max_bytes {
            return Err(format!(
                "offline store over its caps: {messages} messages / {bytes} bytes \
                 (caps {} / {})",
                l.max_messages, l.max_bytes
            ));
        }
        if !self
            .order
            .iter()
            .zip(self.order.iter().skip(1))
            .all(|(a, b)| a.1 < b.1)
        {
            return Err("offline store: order not in store order".into());
        }
        Ok(())
    }

    /// `order` anew from the live messages, in store order: O(n log n), run
    /// when stale entries outnumber live ones (so O(log n) per store).
    fn rebuild(&mut self) {
        let mut live: Vec<(Arc<str>, u64)> = self
            .users
            .iter()
            .flat_map(|(u, q)| q.iter().map(move |s| (u.clone(), s.seq)))
            .collect();
        live.sort_unstable_by_key(|(_, seq)| *seq);
        self.order.clear();
        self.order.extend(live);
    }
}
