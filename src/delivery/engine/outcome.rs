//! The end of an attempt and of a delivery: the retry decision, failure
//! reports, the final result, and the offline store's outcomes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Engine, Net, Timer};
use crate::delivery::engine::{RemoteOutcome, SenderNotice};
use crate::delivery::offline::{Gone, Stored};
use crate::delivery::record::{TargetState, Waiter};
use crate::delivery::{DeliveryId, Envelope, SendAttempt, SendResult};
use crate::failure::Failure;
use crate::failure::reason::{FailureReason, TimeoutKind};
use crate::retry::RetryDecision;

impl<const W: usize> Engine<W> {
    /// Every device of the attempt has answered: success, retry or give up.
    pub(super) fn finish_attempt(&mut self, now: Instant, id: DeliveryId, _net: &mut impl Net) {
        let Some(d) = self.table.get_mut(id) else {
            return;
        };
        let first_failure = d.targets.iter().find_map(|t| match t.state {
            TargetState::Failed(r) => Some(r),
            _ => None,
        });
        // No device left to try but one already has it: the user has it.
        let error = match first_failure {
            Some(r) => Some(r),
            None if d.targets.is_empty() && d.taken.is_empty() => Some(FailureReason::UserOffline),
            None => None,
        };
        let attempt_number = d.result.attempts.len() as u32 + 1;
        d.result.attempts.push(SendAttempt {
            attempt_number,
            start_time: d.attempt_started_wall,
            duration: now.saturating_duration_since(d.attempt_started),
            error,
            success: error.is_none(),
        });
        for t in &d.targets {
            if t.state == TargetState::Taken {
                d.taken.push(t.client_id.clone());
            }
        }
        let Some(reason) = error else {
            self.finalize(now, id, None);
            return;
        };
        let elapsed = now.saturating_duration_since(d.started);
        let budget = d
            .user
            .as_ref()
            .and_then(|u| self.budgets.get_mut(u))
            .map(|b| &mut b.budget);
        // Another hub's request: that hub retries and reports.
        let remote = d.waiter.is_remote();
        let decision = match budget {
            Some(_) if remote => RetryDecision::GiveUp(crate::retry::GiveUpReason::NotRetryable),
            Some(budget) if self.running => self.cfg.retry.should_retry(
                reason,
                attempt_number - 1,
                elapsed,
                budget,
                &mut self.rng,
            ),
            _ => RetryDecision::GiveUp(crate::retry::GiveUpReason::NotRetryable),
        };
        let will_retry = matches!(decision, RetryDecision::Retry { .. });
        if !remote {
            self.report_attempt_failures(id, attempt_number, will_retry);
        }
        match decision {
            RetryDecision::Retry { delay } => {
                self.counters.retries += 1;
                let key = self.timers.insert(now + delay, Timer::Retry(id));
                if let Some(d) = self.table.get_mut(id) {
                    d.retry_timer = Some(key);
                    if let Some(user) = &d.user {
                        self.retry_order
                            .entry(user.clone())
                            .or_default()
                            .insert(d.seq, id);
                    }
                }
                log::debug!(
                    "{id}: {} on attempt {attempt_number}, retry in {delay:?}",
                    reason.name()
                );
            }
            RetryDecision::GiveUp(why) => {
                log::debug!(
                    "{id}: {} on attempt {attempt_number}, giving up: {}",
                    reason.name(),
                    why.as_str()
                );
                self.finalize(now, id, Some(reason));
            }
        }
    }

    pub(super) fn report_attempt_failures(
        &mut self,
        id: DeliveryId,
        attempt: u32,
        will_retry: bool,
    ) {
        let Some(d) = self.table.get(id) else {
            return;
        };
        let (Some(user), Some(env)) = (d.user.clone(), d.envelope.clone()) else {
            return;
        };
        let base = |reason| {
            let mut f = Failure::new(
                reason,
                user.clone(),
                env.message.clone(),
                env.payload.clone(),
            );
            f.delivery = Some(id);
            f.attempt = attempt;
            f.will_retry = will_retry;
            f
        };
        if d.targets.is_empty() {
            if d.taken.is_empty() {
                self.reporter.report(base(FailureReason::UserOffline));
            }
            return;
        }
        for i in 0..d.targets.len() {
            let Some(t) = self.table.get(id).map(|d| &d.targets[i]) else {
                return;
            };
            if let TargetState::Failed(reason) = t.state {
                let mut f = base(reason);
                f.client_id = Some(t.client_id.clone());
                f.conn = Some(t.conn);
                f.waited = self.waited(reason);
                self.reporter.report(f);
            }
        }
    }

    /// The deadline behind a timeout reason.
    pub(crate) fn waited(&self, reason: FailureReason) -> Duration {
        match reason.timeout_kind() {
            Some(TimeoutKind::Ack) => self.cfg.ack_timeout,
            Some(TimeoutKind::Send) => self.cfg.send_timeout,
            Some(TimeoutKind::Connection) => self.cfg.client_timeout,
            _ => Duration::ZERO,
        }
    }

    pub(super) fn finalize(&mut self, now: Instant, id: DeliveryId, error: Option<FailureReason>) {
        let Some(d) = self.table.get_mut(id) else {
            return;
        };
        if let Some(t) = d.retry_timer.take() {
            self.timers.cancel(t);
            if let Some(user) = &d.user
                && let Some(waiting) = self.retry_order.get_mut(user)
            {
                waiting.remove(&d.seq);
                if waiting.is_empty() {
                    self.retry_order.remove(user);
                }
            }
        }
        for t in &mut d.targets {
            if let Some(k) = t.ack_timer.take() {
                self.timers.cancel(k);
            }
        }
        let r = &mut d.result;
        r.success = error.is_none();
        r.total_retries = (r.attempts.len() as u32).saturating_sub(1);
        r.total_time = now.saturating_duration_since(d.started);
        r.final_error = error;
        r.message_id = d.envelope.as_ref().map(|e| e.id.clone());
        r.replayed = d.replay;
        if r.success {
            self.counters.succeeded += 1;
            if r.total_retries > 0 {
                self.counters.retry_successes += 1;
            }
        } else {
            self.counters.final_failures += 1;
        }
        let user = d.user.take();
        if let Some(u) = &user
            && let Some(b) = self.budgets.get_mut(u)
        {
            if r.success {
                b.budget.on_success();
            }
            b.deliveries -= 1;
            if b.deliveries == 0 {
                self.budgets.remove(u);
            }
        }
        let keep = error == Some(FailureReason::UserOffline)
            && self.offline.enabled()
            && !d.waiter.is_remote();
        if keep && let (Some(u), Some(env)) = (&user, d.envelope.clone()) {
            let seq = d.seq;
            let stored = self.store(now, u, env, seq);
            if let Some(d) = self.table.get_mut(id) {
                d.result.stored_offline = stored;
            }
        }
        self.hand_over(id);
        self.table.close(id);
    }

    /// Gives a final result to whoever waits for it.
    fn hand_over(&mut self, id: DeliveryId) {
        let Some(d) = self.table.get_mut(id) else {
            return;
        };
        match std::mem::replace(&mut d.waiter, Waiter::Loop) {
            Waiter::Loop => {
                if let Some(cb) = &mut self.on_result {
                    cb(id, &d.result);
                }
            }
            Waiter::Thread(tx) => {
                // Moves the result to the waiting thread; the slot gets an
                // empty one (no allocation until it is used again).
                let _ = tx.try_send(std::mem::take(&mut d.result));
            }
            Waiter::Remote(w) => self.remote_outcomes.push(RemoteOutcome {
                node: w.node,
                ticket: w.ticket,
                error: d.result.final_error,
            }),
            Waiter::Sender(conn) => {
                if let Some(cb) = &mut self.on_result {
                    cb(id, &d.result);
                }
                let r = &d.result;
                self.sender_notices.push(SenderNotice {
                    to: conn,
                    message_id: r.message_id.clone(),
                    success: r.success,
                    attempts: r.attempts.len() as u32,
                    total_ms: r.total_time.as_millis() as u64,
                    final_error: r.final_error,
                    stored_offline: r.stored_offline,
                });
            }
        }
    }

    /// Keeps `env` for `user`; reports what the caps push out.
    pub(super) fn store(
        &mut self,
        now: Instant,
        user: &Arc<str>,
        env: Envelope,
        origin: u64,
    ) -> bool {
        let env = env.for_offline();
        let mut gone = Vec::new();
        let kept = self
            .offline
            .store(now, user, env, origin, &mut |u, s, why| {
                gone.push((u, s, why))
            });
        if kept {
            self.counters.offline_stored += 1;
        }
        for (u, s, why) in gone {
            self.offline_gone(now, u, s, why);
        }
        kept
    }

    /// A stored message left the store unreplayed: a final failure.
    pub(super) fn offline_gone(&mut self, now: Instant, user: Arc<str>, s: Stored, why: Gone) {
        let reason = match why {
            Gone::Evicted => {
                self.counters.offline_evicted += 1;
                FailureReason::OfflineEvicted
            }
            Gone::Expired => {
                self.counters.offline_expired += 1;
                FailureReason::OfflineExpired
            }
        };
        log::debug!("offline message for {user} {}", reason.name());
        let result = SendResult {
            success: false,
            final_error: Some(reason),
            stored_offline: true,
            replayed: true,
            message_id: Some(s.id.clone()),
            ..SendResult::default()
        };
        let _ = now;
        // The handlers' workers decode the message from its frame.
        let failure = Failure::new(reason, user, None, s.payload);
        self.reporter.report(failure);
        if let Some(cb) = &mut self.on_result {
            // Not a delivery of this hub any more: no id of the table.
            cb(DeliveryId::NONE, &result);
        }
    }
}
