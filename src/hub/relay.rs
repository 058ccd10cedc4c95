//! The built-in relay (`relay: true`): client messages routed by the hub
//! itself, as go-wsc's hub does, without allocating per message.
//!
//! While a connection's frames are decoded (the decoder borrows it), each
//! relayable message is stamped straight into a pooled frame and queued
//! here with what routing needs; once the read is over the queue is routed:
//! to a user or one device (plain, or with `require_ack` through the
//! delivery engine), to a group (members only), or to everyone (`"*"`, only
//! with `client_broadcast`). A host filter may drop a message or take it
//! over (then it arrives as a `HubEvent::Message`).

use crate::auth::Identity;
use crate::delivery::engine::SenderNotice;
use crate::delivery::ids::IdBuf;
use crate::delivery::{Envelope, MessageId, SendResult, Waiter};
use crate::error::SendError;
use crate::event::{ConnId, HubEvent};
use crate::failure::reason::FailureReason;
use crate::message::relay::{ClientMessage, Stamp, write_relayed};
use crate::message::{FramePool, Message, Payload, StampCache};
use crate::ws::OpCode;

use super::{Hub, Target};

/// What the relay filter sees of a message before it is routed.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RelayView<'a> {
    /// The sending connection.
    pub conn: ConnId,
    /// The sender, from the handshake.
    pub sender: &'a Identity,
    /// `message_type`.
    pub message_type: &'a str,
    /// `receiver` (a user, a group, or `"*"`).
    pub receiver: &'a str,
    /// `receiver_client`, or empty.
    pub receiver_client: &'a str,
    /// Whether it goes to a group (`receiver_type: "group"`).
    pub to_group: bool,
    /// `require_ack`.
    pub require_ack: bool,
    /// The message as it will go out (JSON, stamped by the hub).
    pub json: &'a str,
}

/// What the relay filter decides for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayVerdict {
    /// Route it.
    Relay,
    /// Drop it silently (counted as `relay_dropped`).
    Drop,
    /// Hand it to the host as a `HubEvent::Message` (the host routes or
    /// rewrites it; this allocates, as any host-routed message does).
    ToHost,
}

pub(crate) type RelayFilter = Box<dyn FnMut(&RelayView<'_>) -> RelayVerdict + Send>;

/// One relayable message, read and stamped, waiting to be routed.
#[derive(Debug)]
struct Relayed {
    from: ConnId,
    /// Taken when routed, so the pool sees the frame free once the rings
    /// have written it.
    payload: Option<Payload>,
    /// Reused across messages (cleared, then filled): no allocation once
    /// the longest receiver name has been seen.
    receiver: String,
    receiver_client: String,
    message_type: String,
    id: MessageId,
    require_ack: bool,
    to_group: bool,
}

/// Pooled frames: one per connection slot, at least this many...
const POOL_MIN_SLOTS: usize = 64;
/// ...and at most this many: more frames in flight at once only cost pool
/// misses (counted), never memory the pool keeps.
const POOL_MAX_SLOTS: usize = 2048;
/// Largest frame buffer the pool keeps (a chat message is far smaller);
/// longer relayed messages are made outside the pool. With the slot cap,
/// the pool keeps at most 2,048 × 8 KiB = 16 MiB, whatever clients send.
const POOL_MAX_FRAME: usize = 8 * 1024;

impl Relayed {
    /// The stamped frame as the delivery engine takes it: no decoded
    /// `Message`, only the frame and what routing needs (ids inline).
    fn envelope(&self, payload: Payload) -> Envelope {
        Envelope {
            message: None,
            payload,
            id: self.id.clone(),
            require_ack: self.require_ack,
            only: (!self.receiver_client.is_empty()).then(|| MessageId::new(&self.receiver_client)),
        }
    }
}

/// The relay's queue and frame pool.
#[derive(Debug)]
pub(crate) struct RelayQueue {
    items: Vec<Relayed>,
    len: usize,
    pool: FramePool,
    clock: StampCache,
}

impl RelayQueue {
    pub(crate) fn new(slots: usize) -> RelayQueue {
        RelayQueue {
            items: Vec::new(),
            len: 0,
            pool: FramePool::new(slots.clamp(POOL_MIN_SLOTS, POOL_MAX_SLOTS), POOL_MAX_FRAME),
            clock: StampCache::default(),
        }
    }

    /// Stamps `m` from `identity` into a pooled frame and queues it.
    pub(crate) fn push(
        &mut self,
        from: ConnId,
        identity: &Identity,
        m: &ClientMessage<'_>,
        trust_ids: bool,
    ) {
        let hub_id = IdBuf::next();
        let own = m.message_id.as_deref().filter(|id| !id.is_empty());
        let (message_id, client_id) = match own {
            Some(id) if trust_ids => (id, m.id.as_deref()),
            _ => (hub_id.as_str(), own.or(m.id.as_deref())),
        };
        let now = self.clock.now();
        let stamp = Stamp {
            message_id,
            client_id,
            sender: &identity.user_id,
            sender_type: &identity.user_type,
            create_at: now.as_str(),
        };
        let payload = self.pool.text(|out| write_relayed(out, m, &stamp));
        let to_group = m.to_group();
        let id = MessageId::new(message_id);
        if self.len == self.items.len() {
            self.items.push(Relayed {
                from,
                payload: Some(payload),
                receiver: String::new(),
                receiver_client: String::new(),
                message_type: String::new(),
                id,
                require_ack: m.require_ack,
                to_group,
            });
        } else {
            let r = &mut self.items[self.len];
            r.from = from;
            r.payload = Some(payload);
            r.id = id;
            r.require_ack = m.require_ack;
            r.to_group = to_group;
        }
        let r = &mut self.items[self.len];
        for (s, v) in [
            (&mut r.receiver, &*m.receiver),
            (&mut r.receiver_client, &*m.receiver_client),
            (&mut r.message_type, &*m.message_type),
        ] {
            s.clear();
            s.push_str(v);
        }
        self.len += 1;
    }

    /// Frames made outside the pool because every pooled one was in use.
    pub(crate) fn pool_misses(&self) -> u64 {
        self.pool.misses()
    }

    /// A pooled frame carrying `body` (received text and binary messages
    /// handed to the host, pongs): a host that sends it on, or drops it,
    /// allocates nothing per message.
    pub(crate) fn frame(&mut self, opcode: OpCode, body: &[u8]) -> Payload {
        self.pool.copy(opcode, body)
    }
}

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// Sets the relay filter: it sees every message the built-in relay is
    /// about to route (`relay: true`) and may let it through, drop it, or
    /// hand it to the host. Keep it quick: it runs on the hub thread.
    ///
    /// ```no_run
    /// use wshub::{DefaultHub, HubConfig, RelayVerdict};
    /// let mut config = HubConfig::default();
    /// config.relay = true;
    /// let mut hub = DefaultHub::bind(config)?;
    /// hub.set_relay_filter(|m| {
    ///     if m.message_type == "admin" { RelayVerdict::ToHost } else { RelayVerdict::Relay }
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_relay_filter(
        &mut self,
        f: impl FnMut(&RelayView<'_>) -> RelayVerdict + Send + 'static,
    ) {
        self.relay_filter = Some(Box::new(f));
    }

    /// Routes what the last read queued for the relay.
    pub(super) fn route_relayed(&mut self) {
        if self.relay.len == 0 {
            return;
        }
        // Taken out so routing may use the hub; put back (with its
        // strings' capacity) after.
        let mut items = std::mem::take(&mut self.relay.items);
        let len = std::mem::replace(&mut self.relay.len, 0);
        for r in &mut items[..len] {
            if let Some(payload) = r.payload.take() {
                self.route_one(r, payload);
            }
        }
        self.relay.items = items;
    }

    fn route_one(&mut self, r: &Relayed, payload: Payload) {
        // Borrowed, not cloned: most relays need the sender only to know
        // it is still open (three reference counts a message otherwise).
        let Some(sender) = self.net.open(r.from).and_then(|c| c.identity.as_ref()) else {
            return;
        };
        if let Some(filter) = &mut self.relay_filter {
            let view = RelayView {
                conn: r.from,
                sender,
                message_type: &r.message_type,
                receiver: &r.receiver,
                receiver_client: &r.receiver_client,
                to_group: r.to_group,
                require_ack: r.require_ack,
                json: payload.as_str().unwrap_or_default(),
            };
            match filter(&view) {
                RelayVerdict::Relay => {}
                RelayVerdict::Drop => {
                    self.stats.relay_dropped += 1;
                    return;
                }
                RelayVerdict::ToHost => {
                    if let Ok(message) = serde_json::from_slice::<Message>(payload.body()) {
                        self.events.push_back(HubEvent::Message {
                            conn: r.from,
                            identity: sender.clone(),
                            message: Box::new(message),
                        });
                    }
                    return;
                }
            }
        }
        self.stats.relayed += 1;
        if r.to_group {
            if !self.is_member(r.from, &r.receiver) {
                return self.notice_error(r.from, "permission", "not a member of this group");
            }
            let sent = if r.require_ack {
                // One tracked delivery per member device, as the host's
                // group sends with retry (results to `on_send_result`).
                let env = r.envelope(payload);
                self.send_envelope_to_group_with_retry(&r.receiver, &env, Some(r.from))
            } else {
                let target = Target::GroupExcept {
                    group: &r.receiver,
                    except: r.from,
                };
                self.send(target, &payload)
            };
            if let Err(e) = sent {
                self.relay_refused(r.from, &e);
            }
        } else if r.receiver == "*" {
            if !self.config.client_broadcast {
                return self.notice_error(r.from, "validation", "broadcast is not allowed");
            }
            let user = std::sync::Arc::clone(&sender.user_id);
            self.send_to_others_local(&user, &payload);
            self.forward_to_others(&user, &payload);
        } else if r.require_ack {
            let env = r.envelope(payload);
            let waiter = Waiter::Sender(r.from);
            if let Err(e) = self.start_delivery(&r.receiver, env, waiter, None) {
                self.relay_refused(r.from, &e);
            }
        } else {
            let target = Target::user_or_device(&r.receiver, &r.receiver_client);
            if let Err(e) = self.send(target, &payload) {
                self.relay_refused(r.from, &e);
            }
        }
    }

    /// A relay the hub could not route: the sender is told why, unless the
    /// failure handlers already have it (an offline user, full rings: the
    /// receiver's trouble, reported and counted there as for any send).
    fn relay_refused(&mut self, from: ConnId, e: &SendError) {
        if matches!(e, SendError::UserOffline | SendError::QueueFull { .. }) {
            return;
        }
        let reason = match e {
            // The sender named a device its receiver does not have.
            SendError::NoSuchClient => "validation",
            _ => SendResult::refused(e)
                .final_error
                .map_or("validation", FailureReason::name),
        };
        log::debug!("relay from {from} refused: {e}");
        self.notice_error(from, reason, &e.to_string());
    }

    /// Every open connection of this hub but those of `user`.
    pub(super) fn send_to_others_local(&mut self, user: &str, payload: &Payload) {
        let mut keys = std::mem::take(&mut self.broadcast_keys);
        keys.clear();
        keys.extend(self.net.registry.keys());
        for &key in &keys {
            let mine = self
                .net
                .conns
                .get(key)
                .and_then(|c| c.identity.as_ref())
                .is_some_and(|i| &*i.user_id == user);
            if !mine && !self.net.enqueue_key(key, payload, None) {
                self.report_plain(FailureReason::QueueFull, key, None, payload);
            }
        }
        self.broadcast_keys = keys;
    }

    /// Tells connection `to` its message was refused.
    fn notice_error(&mut self, to: ConnId, reason: &str, detail: &str) {
        self.stats.invalid_messages += 1;
        let notice = Message::notice(
            crate::message::kind::ERROR,
            serde_json::json!({ "reason": reason, "detail": detail }),
        );
        if let (Ok(p), Some(conn)) = (Payload::json(&notice), self.net.live(to))
            && !conn.outbox.push_control(p)
        {
            self.stats.control_dropped += 1;
        }
        self.net.mark_dirty(to.index());
    }
}

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// Tells senders of relayed `require_ack` messages how they fared: a
    /// `send_result` notice each, written into a pooled frame.
    pub(super) fn flush_sender_notices(&mut self) {
        let Hub {
            engine,
            relay,
            net,
            stats,
            ..
        } = self;
        engine.drain_sender_notices(|n| {
            if net.open(n.to).is_none() {
                return; // The sender has gone: nobody to tell.
            }
            let payload = relay.pool.text(|out| write_send_result(out, n));
            if !net.enqueue_key(n.to.index(), &payload, None) {
                // The sender's ring is full: counted like any hub notice
                // that finds no room.
                stats.control_dropped += 1;
            }
        });
    }
}

/// `{"message_type":"send_result","data":{...}}` for one relayed message.
fn write_send_result(out: &mut Vec<u8>, n: &SenderNotice) {
    use std::io::Write as _;
    let id = n.message_id.as_deref().unwrap_or_default();
    let _ = write!(
        out,
        r#"{{"message_type":"send_result","data":{{"message_id":"{id}","success":{},"attempts":{},"total_retries":{},"total_time_ms":{},"stored_offline":{},"final_error":"#,
        n.success,
        n.attempts,
        n.attempts.saturating_sub(1),
        n.total_ms,
        n.stored_offline,
    );
    match n.final_error {
        Some(e) => {
            let _ = write!(out, r#""{}"}}}}"#, e.name());
        }
        None => out.extend_from_slice(b"null}}"),
    }
}
