//! Frames of an open (or closing) connection: control frames answered in
//! place, ACKs handed to the engine, messages handed to the host.

use std::collections::VecDeque;

use super::{AckBuf, Hub};
use crate::auth::Identity;
use crate::config::HubConfig;
use crate::conn::Conn;
use crate::conn::Phase;
use crate::conn::outbox::CloseWhen;
use crate::conn::outbox::Outbox;
use crate::delivery::ids::IdBuf;
use crate::event::ConnId;
use crate::event::{DisconnectReason, HubEvent};
use crate::message::relay::{ClientMessage, Unrelayable};
use crate::message::{Control, Message, Payload, kind};
use crate::stats::Stats;
use crate::ws::{CloseCode, Frame, OpCode};

/// What one inbound frame asks of the hub, decided while the decoder still
/// borrows the connection and carried out after.
enum After {
    Nothing,
    /// The peer sent a close frame (with this code).
    PeerClosed(CloseCode),
    /// The peer broke the protocol: close with this code.
    Violation(CloseCode, &'static str),
}

/// What handling one connection's frames may touch, borrowed from the hub
/// beside the connection's decoder (which holds the frames).
struct Inbound<'a, const Q: usize> {
    conn: ConnId,
    identity: Option<&'a Identity>,
    open: bool,
    outbox: &'a mut Outbox<Q>,
    events: &'a mut VecDeque<HubEvent>,
    stats: &'a mut Stats,
    acks: &'a mut AckBuf,
    group_ops: &'a mut super::groups::GroupOps,
    /// The built-in relay's queue and frame pool (its queue is used only
    /// when `relay_on`; the pool always).
    relay: &'a mut super::relay::RelayQueue,
    relay_on: bool,
    config: &'a HubConfig,
    json: bool,
}

impl<const Q: usize> Inbound<'_, Q> {
    /// Handles one frame; `Some` ends the read (close or violation).
    fn frame(&mut self, frame: Frame<'_>) -> Option<After> {
        match frame {
            Frame::Close(close) => {
                return Some(After::PeerClosed(
                    close.map_or(CloseCode::STATUS, |c| c.code),
                ));
            }
            // Once closing, only ACKs and the close reply still count.
            Frame::Text(text) if !self.open => {
                if self.identity.is_some()
                    && let Some(Control::Ack(message_id)) = Control::probe(text)
                {
                    self.acks.push(self.conn, message_id);
                }
            }
            _ if !self.open => {}
            Frame::Ping(data) => {
                let pong = self.relay.frame(OpCode::Pong, data);
                self.control(pong)
            }
            Frame::Pong(_) => {}
            Frame::Text(text) => self.text(text),
            Frame::Binary(data) => {
                if let Some(identity) = self.identity {
                    self.stats.messages_in += 1;
                    self.events.push_back(HubEvent::Binary {
                        conn: self.conn,
                        identity: identity.clone(),
                        data: self.relay.frame(OpCode::Binary, data),
                    });
                }
            }
        }
        None
    }

    fn text(&mut self, text: &str) {
        let Some(identity) = self.identity else {
            return;
        };
        if !self.json {
            self.stats.messages_in += 1;
            self.events.push_back(HubEvent::Text {
                conn: self.conn,
                identity: identity.clone(),
                text: self.relay.frame(OpCode::Text, text.as_bytes()),
            });
            return;
        }
        // With the relay on, its one borrowed parse also answers pings and
        // ACKs (the probe's scans were a tenth of a relayed message's work).
        if self.relay_on && self.relayed(identity, text) {
            return;
        }
        // Pings and ACKs without allocating; the rest through the decoder.
        match Control::probe(text) {
            Some(Control::Ping) => return self.control(pong_payload()),
            Some(Control::Ack(message_id)) => return self.acks.push(self.conn, message_id),
            None => {}
        }
        match Message::decode(text) {
            Ok(msg) if msg.message_type == kind::PING => self.control(pong_payload()),
            Ok(msg) if msg.message_type == kind::ACK => self.acks.push(self.conn, &msg.message_id),
            Ok(msg) if msg.message_type == kind::JOIN || msg.message_type == kind::LEAVE => {
                self.group_request(&msg)
            }
            Ok(msg) if kind::is_reserved(&msg.message_type) => {
                // Only the hub speaks these: relayed, a forged `kick_out`
                // or `error` would look like the hub's own to its receiver.
                self.stats.reserved_types += 1;
                let detail = format!(
                    "message_type {:?} is reserved for the hub",
                    msg.message_type
                );
                self.invalid(detail);
            }
            Ok(msg) => self.message(identity, msg),
            Err(e) => self.invalid(e.to_string()),
        }
    }

    /// Answers an invalid message with a `validation` error; nothing is
    /// relayed and the connection stays open.
    fn invalid(&mut self, detail: String) {
        self.stats.invalid_messages += 1;
        let notice = Message::notice(
            kind::ERROR,
            serde_json::json!({"reason": "validation", "detail": detail}),
        );
        if let Ok(p) = Payload::json(&notice)
            && p.len() <= self.config.max_message_size
        {
            self.control(p);
        }
    }

    /// Queues `text` for the built-in relay when it is a relayable message
    /// (read by borrowing, stamped into a pooled frame), or answers it when
    /// it is a ping or an ACK; false leaves it to the probe and the full
    /// decoder (joins, leaves, and malformed messages, which get its
    /// detailed error).
    fn relayed(&mut self, identity: &Identity, text: &str) -> bool {
        let m = match ClientMessage::parse(text) {
            Ok(m) => m,
            Err(Unrelayable::NoReceiver) => {
                self.invalid("receiver is required".to_owned());
                return true;
            }
            Err(Unrelayable::Malformed) => return false,
        };
        match (&*m.message_type, m.message_id.as_deref()) {
            (kind::PING, _) => {
                self.control(pong_payload());
                return true;
            }
            (kind::ACK, Some(id)) if !id.is_empty() => {
                self.acks.push(self.conn, id);
                return true;
            }
            _ if m.is_control() => return false,
            _ => {}
        }
        if kind::is_reserved(&m.message_type) {
            self.stats.reserved_types += 1;
            let detail = format!("message_type {:?} is reserved for the hub", m.message_type);
            self.invalid(detail);
            return true;
        }
        self.stats.messages_in += 1;
        let trust = self.config.trust_client_message_ids;
        self.relay.push(self.conn, identity, &m, trust);
        true
    }

    /// An application message: stamped by the hub, handed to the host.
    fn message(&mut self, identity: &Identity, mut msg: Message) {
        if !self.config.trust_client_message_ids || msg.message_id.is_empty() {
            // The hub names every message it routes; the client's own id
            // travels on in `id`.
            if msg.id.is_empty() {
                msg.id = std::mem::take(&mut msg.message_id);
            }
            msg.message_id = IdBuf::next().as_str().to_owned();
        }
        msg.sender = identity.user_id.to_string();
        msg.sender_type = identity.user_type.to_string();
        // The hub's to say: a client's `source: "offline"` or back-dated
        // `create_at` would pass for the hub's own on the way out.
        msg.create_at = crate::message::rfc3339_now();
        msg.source.clear();
        self.stats.messages_in += 1;
        self.events.push_back(HubEvent::Message {
            conn: self.conn,
            identity: identity.clone(),
            message: Box::new(msg),
        });
    }

    /// A `join` / `leave` message: carried out after the read (the group
    /// store is not borrowed here); one without `data.group` is invalid.
    fn group_request(&mut self, msg: &Message) {
        let Some(group) = super::groups::requested_group(msg) else {
            self.stats.invalid_messages += 1;
            return self.invalid("a join or leave needs data.group".to_owned());
        };
        let action = if msg.message_type == kind::JOIN {
            crate::group::GroupAction::Join
        } else {
            crate::group::GroupAction::Leave
        };
        self.group_ops.push(self.conn, action, group);
    }

    /// Queues a control frame or notice; a full control lane is counted.
    fn control(&mut self, frame: Payload) {
        if !self.outbox.push_control(frame) {
            self.stats.control_dropped += 1;
        }
    }
}

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// Decodes the frames in `scratch[..n]` for connection `key`.
    pub(super) fn on_frames(&mut self, key: usize, n: usize) {
        let Hub {
            net,
            scratch,
            inflater,
            events,
            stats,
            config,
            json_protocol,
            acks,
            group_ops,
            relay,
            ..
        } = self;
        let conn = &mut net.conns[key];
        let Conn {
            decoder,
            outbox,
            identity,
            id,
            phase,
            dirty: conn_dirty,
            ..
        } = conn;
        let mut inbound = Inbound {
            conn: *id,
            identity: identity.as_ref(),
            open: matches!(phase, Phase::Open),
            outbox,
            events,
            stats,
            acks,
            group_ops,
            relay,
            relay_on: config.relay,
            config,
            json: *json_protocol,
        };
        let mut after = After::Nothing;
        let mut feed = decoder.feed_inflating(&mut scratch[..n], inflater);
        loop {
            match feed.next_frame() {
                Ok(Some(frame)) => {
                    if let Some(a) = inbound.frame(frame) {
                        after = a;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::debug!("{}: protocol error: {e}", inbound.conn);
                    after = After::Violation(e.close_code(), "protocol error");
                    break;
                }
            }
        }
        drop(feed);
        if inbound.outbox.has_pending() && !*conn_dirty {
            *conn_dirty = true;
            net.dirty.push(key);
        }
        // ACKs count while the connection closes too: until it is gone.
        let now = self.net.now;
        for (conn, message_id) in self.acks.iter() {
            self.engine.acked(now, conn, message_id, &mut self.net);
        }
        self.acks.clear();
        self.run_group_ops();
        self.route_relayed();
        match after {
            After::Nothing => {}
            After::PeerClosed(code) => self.on_peer_close(key, code),
            After::Violation(code, why) => {
                self.stats.protocol_errors += 1;
                self.close_conn(
                    key,
                    DisconnectReason::ProtocolError(code),
                    code,
                    why,
                    CloseWhen::Now,
                );
            }
        }
    }

    pub(super) fn on_peer_close(&mut self, key: usize, code: CloseCode) {
        let conn = &mut self.net.conns[key];
        match conn.phase {
            // We closed first and this is the reply: the handshake is done.
            Phase::Closing { reason, .. } if conn.outbox.close_sent() => {
                self.remove_conn(key, reason.unwrap_or(DisconnectReason::ClientClosed(code)));
            }
            Phase::Closing { .. } => {
                if let Phase::Closing { peer_closed, .. } = &mut conn.phase {
                    *peer_closed = true;
                }
            }
            _ => {
                // Echo the code (RFC 6455 5.5.1); STATUS (1005) means none was given.
                let reply = if code == CloseCode::STATUS {
                    CloseCode::NORMAL
                } else {
                    code
                };
                self.close_conn(
                    key,
                    DisconnectReason::ClientClosed(code),
                    reply,
                    "",
                    CloseWhen::Now,
                );
                if let Some(Phase::Closing { peer_closed, .. }) =
                    self.net.conns.get_mut(key).map(|c| &mut c.phase)
                {
                    *peer_closed = true;
                }
            }
        }
    }
}

/// go-wsc's JSON pong, encoded once per thread.
fn pong_payload() -> Payload {
    thread_local! {
        static PONG: Payload = Payload::json(&Message {
            message_type: kind::PONG.to_owned(),
            ..Message::default()
        })
        .expect("a plain message always encodes");
    }
    PONG.with(Payload::clone)
}
