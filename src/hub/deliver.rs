//! Deliveries with retry, ACKs, timeouts and the failures they report.
//!
//! Every failure — of a plain send or of one attempt of a delivery — becomes
//! a [`Failure`], is counted by reason, and goes to the handler pool. A
//! delivery's attempt ends when each device it targeted has taken or failed
//! the message; the retry policy then decides, and a retry waits in the
//! timing wheel.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Hub, Lifecycle, TimerEvent};
use crate::conn::live;
use crate::conn::outbox::Outbound;
use crate::delivery::{
    DeliveryId, DeliveryTarget, Envelope, SendAttempt, SendResult, Tag, TargetState, Waiter,
};
use crate::error::SendError;
use crate::event::{ConnId, DisconnectReason};
use crate::failure::reason::{FailureReason, TimeoutKind};
use crate::failure::{
    ConnectionErrorHandler, Failure, QueueFullHandler, SendFailureHandler, TimeoutHandler,
    UserOfflineHandler,
};
use crate::message::{Message, Payload};
use crate::retry::RetryDecision;

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// Adds a general failure handler (sees every failure).
    pub fn add_send_failure_handler(&mut self, h: impl SendFailureHandler + 'static) {
        self.pool.update(|s| s.send_failure.push(Arc::new(h)));
    }

    /// Adds a `queue_full` handler.
    pub fn add_queue_full_handler(&mut self, h: impl QueueFullHandler + 'static) {
        self.pool.update(|s| s.queue_full.push(Arc::new(h)));
    }

    /// Adds a `user_offline` handler (it gets every message to an offline user).
    pub fn add_user_offline_handler(&mut self, h: impl UserOfflineHandler + 'static) {
        self.pool.update(|s| s.user_offline.push(Arc::new(h)));
    }

    /// Adds a `conn_error` handler.
    pub fn add_connection_error_handler(&mut self, h: impl ConnectionErrorHandler + 'static) {
        self.pool.update(|s| s.conn_error.push(Arc::new(h)));
    }

    /// Adds a timeout handler (`ack_timeout`, `send_timeout`, `connection_timeout`).
    pub fn add_timeout_handler(&mut self, h: impl TimeoutHandler + 'static) {
        self.pool.update(|s| s.timeout.push(Arc::new(h)));
    }

    /// Sets the callback that receives, on the hub thread, the final
    /// [`SendResult`] of every delivery started on the hub thread
    /// (`send_to_user_with_retry`). Keep it quick.
    pub fn on_send_result(&mut self, f: impl FnMut(DeliveryId, &SendResult) + Send + 'static) {
        self.result_callback = Some(Box::new(f));
    }

    /// Sends `msg` to `user` with the configured retry policy; the final
    /// [`SendResult`] goes to the [`on_send_result`](Self::on_send_result)
    /// callback. Encodes `msg` (one allocation); use
    /// [`send_envelope_with_retry`](Self::send_envelope_with_retry) with a
    /// pre-built [`Envelope`] to allocate nothing here.
    pub fn send_to_user_with_retry(
        &mut self,
        user: &str,
        msg: &Message,
    ) -> Result<DeliveryId, SendError> {
        let env = Envelope::new(msg.clone())?;
        self.send_envelope_with_retry(user, &env)
    }

    /// [`send_to_user_with_retry`](Self::send_to_user_with_retry) for an
    /// already encoded message. `msg.receiver_client`, when set, narrows the
    /// delivery to that device.
    ///
    /// Errors only when the delivery cannot start (shutting down, too large);
    /// everything else — offline, full rings, broken connections, missed
    /// ACKs — ends in the `SendResult`.
    pub fn send_envelope_with_retry(
        &mut self,
        user: &str,
        env: &Envelope,
    ) -> Result<DeliveryId, SendError> {
        self.start_delivery(user, env.clone(), Waiter::Loop, None)
    }

    /// Deliveries not yet final.
    pub fn pending_deliveries(&self) -> usize {
        self.deliveries.active()
    }

    pub(super) fn start_delivery(
        &mut self,
        user: &str,
        env: Envelope,
        waiter: Waiter,
        result: Option<SendResult>,
    ) -> Result<DeliveryId, SendError> {
        if self.lifecycle != Lifecycle::Running {
            return Err(SendError::ShuttingDown);
        }
        if env.payload.len() > self.config.max_message_size {
            let err = SendError::MessageTooLarge {
                size: env.payload.len(),
                limit: self.config.max_message_size,
            };
            let failure = Failure::new(
                FailureReason::MessageTooLarge,
                Arc::from(user),
                Some(env.message.clone()),
                env.payload.clone(),
            );
            self.report(failure);
            return Err(err);
        }
        self.now = Instant::now();
        let user: Arc<str> = match self.registry.user_key(user) {
            Some(u) => u.clone(),
            None => Arc::from(user),
        };
        let require_ack = env.message.require_ack;
        let capacity = self.config.retry.max_retries as usize + 1;
        let id = self.deliveries.open(self.now, env);
        let d = self.deliveries.get_mut(id).expect("just opened");
        d.user = Some(user);
        d.require_ack = require_ack;
        d.waiter = waiter;
        match result {
            Some(r) => d.result = r,
            None => d.result.attempts.reserve(capacity),
        }
        self.start_attempt(id);
        Ok(id)
    }

    /// Offers the message to every device still missing it.
    fn start_attempt(&mut self, id: DeliveryId) {
        let now = self.now;
        let Hub {
            deliveries,
            registry,
            conns,
            ..
        } = self;
        let Some(d) = deliveries.get_mut(id) else {
            return;
        };
        d.attempt_started = now;
        d.attempt_started_wall = SystemTime::now();
        d.retry_timer = None;
        d.targets.clear();
        let (Some(user), Some(env)) = (d.user.as_ref(), d.envelope.as_ref()) else {
            return;
        };
        let only = env.message.receiver_client.as_str();
        for dev in registry.devices(user) {
            if !only.is_empty() && &*dev.client_id != only {
                continue;
            }
            if d.taken.iter().any(|c| c == &dev.client_id) {
                continue;
            }
            let Some(conn) = conns.get(dev.key).filter(|c| c.is_open()) else {
                continue;
            };
            d.targets.push(DeliveryTarget {
                key: dev.key,
                conn: conn.id,
                client_id: dev.client_id.clone(),
                state: TargetState::Queued,
                ack_timer: None,
            });
        }
        let payload = env.payload.clone();
        for i in 0..d.targets.len() {
            let key = self.deliveries.get(id).map_or(0, |d| d.targets[i].key);
            let tag = Tag {
                delivery: id,
                target: i as u16,
            };
            if self.enqueue(key, &payload, Some(tag)).is_err()
                && let Some(d) = self.deliveries.get_mut(id)
            {
                d.targets[i].state = TargetState::Failed(FailureReason::QueueFull);
            }
        }
        if self
            .deliveries
            .get(id)
            .is_some_and(|d| d.outstanding() == 0)
        {
            self.finish_attempt(id);
        }
    }

    /// Every device of the attempt has answered: success, retry or give up.
    fn finish_attempt(&mut self, id: DeliveryId) {
        let now = self.now;
        let Some(d) = self.deliveries.get_mut(id) else {
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
            self.finalize(id, None);
            return;
        };
        let elapsed = now.saturating_duration_since(d.started);
        let decision = if self.lifecycle == Lifecycle::Running {
            self.config.retry.should_retry(
                reason,
                attempt_number - 1,
                elapsed,
                &mut self.budget,
                &mut self.rng,
            )
        } else {
            RetryDecision::GiveUp(crate::retry::GiveUpReason::NotRetryable)
        };
        let will_retry = matches!(decision, RetryDecision::Retry { .. });
        self.report_attempt_failures(id, attempt_number, will_retry);
        match decision {
            RetryDecision::Retry { delay } => {
                self.stats.retries += 1;
                let key = self.timers.insert(now + delay, TimerEvent::Retry(id));
                if let Some(d) = self.deliveries.get_mut(id) {
                    d.retry_timer = Some(key);
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
                self.finalize(id, Some(reason));
            }
        }
    }

    fn report_attempt_failures(&mut self, id: DeliveryId, attempt: u32, will_retry: bool) {
        let Some(d) = self.deliveries.get(id) else {
            return;
        };
        let (Some(user), Some(env)) = (d.user.clone(), d.envelope.clone()) else {
            return;
        };
        let mut failures: Vec<Failure> = Vec::new();
        let base = |reason| {
            let mut f = Failure::new(
                reason,
                user.clone(),
                Some(env.message.clone()),
                env.payload.clone(),
            );
            f.delivery = Some(id);
            f.attempt = attempt;
            f.will_retry = will_retry;
            f
        };
        if d.targets.is_empty() {
            if d.taken.is_empty() {
                failures.push(base(FailureReason::UserOffline));
            }
        } else {
            for t in &d.targets {
                if let TargetState::Failed(reason) = t.state {
                    let mut f = base(reason);
                    f.client_id = Some(t.client_id.clone());
                    f.conn = Some(t.conn);
                    f.waited = self.waited(reason);
                    failures.push(f);
                }
            }
        }
        for f in failures {
            self.report(f);
        }
    }

    /// The deadline behind a timeout reason.
    fn waited(&self, reason: FailureReason) -> Duration {
        match reason.timeout_kind() {
            Some(TimeoutKind::Ack) => self.config.ack_timeout,
            Some(TimeoutKind::Send) => self.config.send_timeout,
            Some(TimeoutKind::Connection) => self.config.client_timeout,
            _ => Duration::ZERO,
        }
    }

    fn finalize(&mut self, id: DeliveryId, error: Option<FailureReason>) {
        let now = self.now;
        let Hub {
            deliveries,
            stats,
            budget,
            result_callback,
            timers,
            ..
        } = self;
        let Some(d) = deliveries.get_mut(id) else {
            return;
        };
        if let Some(t) = d.retry_timer.take() {
            timers.cancel(t);
        }
        for t in &mut d.targets {
            if let Some(k) = t.ack_timer.take() {
                timers.cancel(k);
            }
        }
        let r = &mut d.result;
        r.success = error.is_none();
        r.total_retries = (r.attempts.len() as u32).saturating_sub(1);
        r.total_time = now.saturating_duration_since(d.started);
        r.final_error = error;
        if r.success {
            stats.deliveries_succeeded += 1;
            if r.total_retries > 0 {
                stats.retry_successes += 1;
            }
            budget.on_success();
        } else {
            stats.final_failures += 1;
        }
        let store_offline = error == Some(FailureReason::UserOffline);
        let offline = store_offline
            .then(|| d.user.clone().zip(d.envelope.clone()))
            .flatten();
        match std::mem::replace(&mut d.waiter, Waiter::Loop) {
            Waiter::Loop => {
                if let Some(cb) = result_callback {
                    cb(id, &d.result);
                }
            }
            Waiter::Thread(tx) => {
                // Moves the result to the waiting thread; the slot gets an
                // empty one (no allocation until it is used again).
                let _ = tx.try_send(std::mem::take(&mut d.result));
            }
        }
        deliveries.close(id);
        if let Some((user, env)) = offline {
            self.store_offline(&user, Some(&env.message), &env.payload);
        }
    }

    /// A tagged frame reached the socket.
    pub(super) fn on_written(&mut self, key: usize, tag: Tag) {
        let ack_timeout = self.config.ack_timeout;
        let now = self.now;
        let Some(d) = self.deliveries.get_mut(tag.delivery) else {
            return;
        };
        let require_ack = d.require_ack;
        let Some(t) = d.targets.get_mut(tag.target as usize) else {
            return;
        };
        if t.state != TargetState::Queued {
            return;
        }
        if require_ack {
            t.state = TargetState::AwaitingAck;
            t.ack_timer = Some(
                self.timers
                    .insert(now + ack_timeout, TimerEvent::AckTimeout(tag)),
            );
            if let Some(conn) = self.conns.get_mut(key) {
                conn.awaiting_acks.push(tag);
            }
        } else {
            t.state = TargetState::Taken;
            if d.outstanding() == 0 {
                self.finish_attempt(tag.delivery);
            }
        }
    }

    /// One device failed its part of an attempt.
    pub(super) fn target_failed(&mut self, tag: Tag, reason: FailureReason) {
        let Some(d) = self.deliveries.get_mut(tag.delivery) else {
            return;
        };
        let Some(t) = d.targets.get_mut(tag.target as usize) else {
            return;
        };
        if !matches!(t.state, TargetState::Queued | TargetState::AwaitingAck) {
            return;
        }
        if let Some(k) = t.ack_timer.take() {
            self.timers.cancel(k);
        }
        t.state = TargetState::Failed(reason);
        if d.outstanding() == 0 {
            self.finish_attempt(tag.delivery);
        }
    }

    /// A client ACKed `message_id`: only its own pending deliveries count.
    pub(super) fn on_ack(&mut self, key: usize, message_id: &str) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let deliveries = &self.deliveries;
        let Some(pos) = conn.awaiting_acks.iter().position(|tag| {
            deliveries
                .get(tag.delivery)
                .and_then(|d| d.message())
                .is_some_and(|m| m.message_id == message_id)
        }) else {
            log::debug!(
                "{}: ack for unknown message {message_id:?} ignored",
                conn.id
            );
            return;
        };
        let tag = conn.awaiting_acks.swap_remove(pos);
        let Some(d) = self.deliveries.get_mut(tag.delivery) else {
            return;
        };
        let Some(t) = d.targets.get_mut(tag.target as usize) else {
            return;
        };
        if let Some(k) = t.ack_timer.take() {
            self.timers.cancel(k);
        }
        t.state = TargetState::Taken;
        if d.outstanding() == 0 {
            self.finish_attempt(tag.delivery);
        }
    }

    pub(super) fn on_ack_timeout(&mut self, tag: Tag) {
        let Some(d) = self.deliveries.get_mut(tag.delivery) else {
            return;
        };
        let Some(t) = d.targets.get_mut(tag.target as usize) else {
            return;
        };
        if t.state != TargetState::AwaitingAck {
            return;
        }
        t.ack_timer = None;
        let conn_id = t.conn;
        if let Some(conn) = live(&mut self.conns, conn_id)
            && let Some(pos) = conn.awaiting_acks.iter().position(|x| *x == tag)
        {
            conn.awaiting_acks.swap_remove(pos);
        }
        self.target_failed(tag, FailureReason::Timeout(TimeoutKind::Ack));
    }

    pub(super) fn on_retry_timer(&mut self, id: DeliveryId) {
        if let Some(d) = self.deliveries.get_mut(id) {
            d.retry_timer = None;
            self.start_attempt(id);
        }
    }

    /// A frame of connection `conn` (user `user`) failed: its delivery's
    /// device fails, or, for a plain send, the failure is reported.
    pub(super) fn fail_outbound(
        &mut self,
        out: Outbound,
        reason: FailureReason,
        user: &Arc<str>,
        client: &Arc<str>,
        conn: ConnId,
    ) {
        match out.tag {
            Some(tag) => self.target_failed(tag, reason),
            None => {
                let mut f = Failure::new(reason, user.clone(), None, out.payload);
                f.client_id = Some(client.clone());
                f.conn = Some(conn);
                f.waited = self.waited(reason);
                self.report(f);
            }
        }
    }

    /// Fails everything a closing connection still holds: queued frames and
    /// unacknowledged deliveries.
    pub(super) fn fail_conn_leftovers(
        &mut self,
        conn: &mut crate::conn::Conn<QUEUE>,
        why: DisconnectReason,
    ) {
        let reason = match why {
            DisconnectReason::IdleTimeout => FailureReason::Timeout(TimeoutKind::Connection),
            _ => FailureReason::ConnError,
        };
        let Some(identity) = conn.identity.clone() else {
            return;
        };
        let mut abandoned = 0u64;
        for out in conn.outbox.drain_data() {
            abandoned += 1;
            self.fail_outbound(out, reason, &identity.user_id, &identity.client_id, conn.id);
        }
        if abandoned > 0 {
            self.stats.dropped_on_close += abandoned;
            log::debug!("{}: {abandoned} queued message(s) failed: {why}", conn.id);
        }
        for tag in std::mem::take(&mut conn.awaiting_acks) {
            self.target_failed(tag, reason);
        }
    }

    /// `send_timeout` check for one connection: fail what waited too long.
    pub(super) fn on_send_timeout(&mut self, id: ConnId) {
        let timeout = millis(self.config.send_timeout);
        let now = self.clock_ms();
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        conn.timers.send = None;
        let Some(identity) = conn.identity.clone() else {
            return;
        };
        let mut expired = Vec::new();
        conn.outbox
            .expire(now, timeout, &mut |out| expired.push(out));
        self.arm_send_timer(id.index());
        for out in expired {
            self.fail_outbound(
                out,
                FailureReason::Timeout(TimeoutKind::Send),
                &identity.user_id,
                &identity.client_id,
                id,
            );
        }
    }

    /// Arms the `send_timeout` check for the oldest waiting frame, if any.
    pub(super) fn arm_send_timer(&mut self, key: usize) {
        let timeout = millis(self.config.send_timeout);
        let now_ms = self.clock_ms();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.timers.send.is_some() {
            return;
        }
        if let Some(oldest) = conn.outbox.oldest_waiting() {
            let left = timeout.saturating_sub(now_ms.wrapping_sub(oldest));
            let at = self.now + Duration::from_millis(u64::from(left));
            conn.timers.send = Some(self.timers.insert(at, TimerEvent::SendTimeout(conn.id)));
        }
    }

    /// Counts a failure by reason and hands it to the handler pool.
    pub(super) fn report(&mut self, failure: Failure) {
        let s = &mut self.stats;
        s.total_failures += 1;
        match failure.reason {
            FailureReason::QueueFull => s.queue_full_count += 1,
            FailureReason::UserOffline => s.offline_count += 1,
            FailureReason::ConnError => s.conn_error_count += 1,
            FailureReason::Timeout(kind) => {
                s.timeout_count += 1;
                match kind {
                    TimeoutKind::Ack => s.ack_timeouts += 1,
                    TimeoutKind::Send => s.send_timeouts += 1,
                    _ => s.connection_timeouts += 1,
                }
            }
            _ => s.other_failures += 1,
        }
        log::debug!("failure: {failure}");
        self.pool.submit(failure);
    }

    /// Keeps a message for an offline user (bounded; the oldest goes first).
    pub(super) fn store_offline(
        &mut self,
        user: &Arc<str>,
        msg: Option<&Message>,
        payload: &Payload,
    ) {
        let cap = self.config.offline_queue_per_user;
        if cap == 0 {
            return;
        }
        let mut m = match msg {
            Some(m) => m.clone(),
            None => match serde_json::from_slice::<Message>(payload.body()) {
                Ok(m) => m,
                Err(_) => return,
            },
        };
        m.source = "offline".to_owned();
        let Ok(p) = Payload::json(&m) else { return };
        let queue = self.offline.entry(user.clone()).or_default();
        if queue.len() >= cap {
            queue.pop_front();
            self.stats.offline_dropped += 1;
            log::warn!("offline queue of {user} full: oldest message dropped");
        }
        queue.push_back(p);
        self.stats.offline_stored += 1;
    }

    /// Replays a reconnecting user's offline messages to connection `key`.
    pub(super) fn replay_offline(&mut self, key: usize, user: &str) {
        let Some(mut queue) = self.offline.remove(user) else {
            return;
        };
        while let Some(p) = queue.pop_front() {
            if self.enqueue(key, &p, None).is_err() {
                queue.push_front(p);
                break;
            }
            self.stats.offline_replayed += 1;
        }
        if let (false, Some(user)) = (queue.is_empty(), self.registry.user_key(user).cloned()) {
            self.offline.insert(user, queue);
        }
    }

    /// Ends every delivery still waiting (shutdown): retries are not made.
    pub(super) fn abandon_deliveries(&mut self) {
        let ids: Vec<DeliveryId> = self.deliveries.active_ids().collect();
        for id in ids {
            if self
                .deliveries
                .get(id)
                .is_some_and(|d| d.retry_timer.is_some())
            {
                self.finalize(id, Some(FailureReason::ChannelClosed));
            }
        }
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
            SendError::NoSuchClient | SendError::ShuttingDown => FailureReason::ChannelClosed,
        };
        SendResult {
            success: false,
            final_error: Some(reason),
            ..SendResult::default()
        }
    }
}

/// A duration in whole milliseconds for the ring's 32-bit clock (saturating).
fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
