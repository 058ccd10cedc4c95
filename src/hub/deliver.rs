//! The loop's side of deliveries: the host's calls that start them and
//! register handlers, and the connection events the engine must hear of.
//! The state machine itself is [`crate::delivery::Engine`].

use std::sync::Arc;
use std::time::Instant;

use super::{Hub, Lifecycle};
use crate::conn::Conn;
use crate::conn::outbox::Outbound;
use crate::delivery::{DeliveryId, Envelope, SendResult, Waiter};
use crate::error::SendError;
use crate::event::{ConnId, DisconnectReason};
use crate::failure::reason::{FailureReason, TimeoutKind};
use crate::failure::{
    ConnectionErrorHandler, Failure, QueueFullHandler, SendFailureHandler, TimeoutHandler,
    UserOfflineHandler,
};
use crate::message::Message;

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// Adds a general failure handler (sees every failure).
    pub fn add_send_failure_handler(&mut self, h: impl SendFailureHandler + 'static) {
        self.engine
            .add_handlers(|s| s.send_failure.push(Arc::new(h)));
    }

    /// Adds a `queue_full` handler.
    pub fn add_queue_full_handler(&mut self, h: impl QueueFullHandler + 'static) {
        self.engine.add_handlers(|s| s.queue_full.push(Arc::new(h)));
    }

    /// Adds a `user_offline` handler (it gets every message to an offline user).
    pub fn add_user_offline_handler(&mut self, h: impl UserOfflineHandler + 'static) {
        self.engine
            .add_handlers(|s| s.user_offline.push(Arc::new(h)));
    }

    /// Adds a `conn_error` handler.
    pub fn add_connection_error_handler(&mut self, h: impl ConnectionErrorHandler + 'static) {
        self.engine.add_handlers(|s| s.conn_error.push(Arc::new(h)));
    }

    /// Adds a timeout handler (`ack_timeout`, `send_timeout`, `connection_timeout`).
    pub fn add_timeout_handler(&mut self, h: impl TimeoutHandler + 'static) {
        self.engine.add_handlers(|s| s.timeout.push(Arc::new(h)));
    }

    /// Sets the callback that receives, on the hub thread, the final
    /// [`SendResult`] of every delivery started on the hub thread
    /// (`send_to_user_with_retry`), and the later outcome of every message
    /// the offline store kept (`replayed: true`). Keep it quick.
    pub fn on_send_result(&mut self, f: impl FnMut(DeliveryId, &SendResult) + Send + 'static) {
        self.engine.on_result(f);
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
    /// Errors only when the delivery cannot start (shutting down, too large,
    /// `max_pending_deliveries` reached); everything else — offline, full
    /// rings, broken connections, missed ACKs — ends in the `SendResult`.
    pub fn send_envelope_with_retry(
        &mut self,
        user: &str,
        env: &Envelope,
    ) -> Result<DeliveryId, SendError> {
        self.start_delivery(user, env.clone(), Waiter::Loop, None)
    }

    /// Deliveries not yet final.
    pub fn pending_deliveries(&self) -> usize {
        self.engine.pending()
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
        self.net.now = Instant::now();
        self.engine
            .start(self.net.now, user, env, waiter, result, &mut self.net)
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
            Some(tag) => self
                .engine
                .failed(self.net.now, conn, tag, reason, &mut self.net),
            None => {
                let mut f = Failure::new(reason, user.clone(), None, out.payload);
                f.client_id = Some(client.clone());
                f.conn = Some(conn);
                f.waited = self.engine.waited(reason);
                self.engine.report(f);
            }
        }
    }

    /// Fails everything a removed connection still holds: queued frames,
    /// its backlog and its unacknowledged deliveries.
    pub(super) fn fail_conn_leftovers(&mut self, conn: &mut Conn<QUEUE>, why: DisconnectReason) {
        let reason = failure_of(why);
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
        self.engine
            .conn_removed(self.net.now, conn.id, reason, &mut self.net);
    }

    /// `send_timeout` check for one connection: fail what waited too long.
    pub(super) fn on_send_timeout(&mut self, id: ConnId) {
        let timeout = self.net.send_timeout_ms();
        let now = self.net.clock_ms();
        let Some(conn) = self.net.live(id) else {
            return;
        };
        conn.timers.send = None;
        let Some(identity) = conn.identity.clone() else {
            return;
        };
        let mut expired = Vec::new();
        conn.outbox
            .expire(now, timeout, &mut |out| expired.push(out));
        self.net.arm_send_timer(id.index());
        let freed = !expired.is_empty();
        for out in expired {
            self.fail_outbound(
                out,
                FailureReason::Timeout(TimeoutKind::Send),
                &identity.user_id,
                &identity.client_id,
                id,
            );
        }
        if freed {
            self.engine.ring_space(self.net.now, id, &mut self.net);
        }
    }
}

/// The failure reason of what a connection held when it went.
pub(super) fn failure_of(why: DisconnectReason) -> FailureReason {
    match why {
        DisconnectReason::IdleTimeout => FailureReason::Timeout(TimeoutKind::Connection),
        _ => FailureReason::ConnError,
    }
}
