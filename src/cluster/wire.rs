//! What hubs say to each other through Redis pub/sub.
//!
//! A message is one kind byte, then fields, each a 4-byte little-endian
//! length and its bytes; a WebSocket message's body comes last, unframed.
//! Decoding borrows from the received bytes and checks every length, so a
//! foreign or corrupt publish on a hub's channel is an error, not a panic.

use std::num::NonZeroU32;

use crate::delivery::{DeliveryId, Tag};
use crate::event::ConnId;
use crate::failure::reason::FailureReason;

/// Names one remote device's part of a delivery on the hub that sent it:
/// the proxy connection there and the delivery's tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub conn: ConnId,
    pub tag: Tag,
}

/// A message between hubs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wire<'a> {
    /// `node` holds a new device (presence channel).
    Up {
        node: &'a str,
        user: &'a str,
        client: &'a str,
    },
    /// `node` no longer holds the device (presence channel).
    Down {
        node: &'a str,
        user: &'a str,
        client: &'a str,
    },
    /// `node` is alive (presence channel, every third of `presence_ttl`).
    Heartbeat { node: &'a str },
    /// `node` (re)registered its devices: read them (presence channel).
    Registered { node: &'a str },
    /// `node` shuts down: forget its devices now (presence channel).
    Leaving { node: &'a str },
    /// Deliver to a user's devices on the receiving hub (its own channel):
    /// with a ticket, to one device, tracked, and the result goes back.
    Deliver {
        origin: &'a str,
        ticket: Option<Ticket>,
        user: &'a str,
        client: &'a str,
        require_ack: bool,
        message_id: &'a str,
        binary: bool,
        body: &'a [u8],
    },
    /// The outcome of a tracked `Deliver` (the origin's channel).
    Outcome {
        ticket: Ticket,
        error: Option<FailureReason>,
    },
    /// Kick a user's devices (or one) on the receiving hub.
    Kick {
        user: &'a str,
        client: &'a str,
        reason: &'a str,
    },
    /// To every open connection but those of `except` (a user; empty: none)
    /// (the all-hubs channel).
    Broadcast {
        origin: &'a str,
        except: &'a str,
        binary: bool,
        body: &'a [u8],
    },
    /// To every member of a group (the all-hubs channel).
    Group {
        origin: &'a str,
        group: &'a str,
        binary: bool,
        body: &'a [u8],
    },
}

/// Why a cluster message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireError {
    /// Shorter than its fields say.
    Truncated,
    /// An unknown kind byte.
    UnknownKind(u8),
    /// A text field is not UTF-8.
    NotUtf8,
    /// A field holds a value out of range.
    BadValue,
    /// Bytes after the last field of a message that carries no body.
    Trailing,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated cluster message"),
            WireError::UnknownKind(k) => write!(f, "unknown cluster message kind {k:#04x}"),
            WireError::NotUtf8 => f.write_str("cluster message text not UTF-8"),
            WireError::BadValue => f.write_str("cluster message value out of range"),
            WireError::Trailing => f.write_str("cluster message has trailing bytes"),
        }
    }
}

impl Wire<'_> {
    /// The length of what [`encode`](Self::encode) writes, so that the
    /// publish buffer is allocated once at its size (a guess that grew was
    /// a second allocation per message sent to other hubs).
    pub(crate) fn encoded_len(&self) -> usize {
        // A text field is its length (u32) and its bytes; a ticket four
        // u32s and the target.
        const TICKET: usize = 4 * 4 + std::mem::size_of::<u16>();
        let s = |x: &str| 4 + x.len();
        1 + match *self {
            Wire::Up { node, user, client } | Wire::Down { node, user, client } => {
                s(node) + s(user) + s(client)
            }
            Wire::Heartbeat { node } | Wire::Registered { node } | Wire::Leaving { node } => {
                s(node)
            }
            Wire::Deliver {
                origin,
                ticket,
                user,
                client,
                message_id,
                body,
                ..
            } => {
                let ticket = 1 + ticket.map_or(0, |_| TICKET);
                s(origin) + ticket + s(user) + s(client) + 1 + s(message_id) + 1 + body.len()
            }
            Wire::Outcome { error, .. } => TICKET + s(error.map_or("", FailureReason::name)),
            Wire::Kick {
                user,
                client,
                reason,
            } => s(user) + s(client) + s(reason),
            Wire::Broadcast {
                origin,
                except: name,
                body,
                ..
            }
            | Wire::Group {
                origin,
                group: name,
                body,
                ..
            } => s(origin) + s(name) + 1 + body.len(),
        }
    }

    /// Appends the encoding to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        match *self {
            Wire::Up { node, user, client } => w.kind(b'U').str(node).str(user).str(client),
            Wire::Down { node, user, client } => w.kind(b'X').str(node).str(user).str(client),
            Wire::Heartbeat { node } => w.kind(b'H').str(node),
            Wire::Registered { node } => w.kind(b'R').str(node),
            Wire::Leaving { node } => w.kind(b'L').str(node),
            Wire::Deliver {
                origin,
                ticket,
                user,
                client,
                require_ack,
                message_id,
                binary,
                body,
            } => {
                w.kind(b'D').str(origin);
                match ticket {
                    Some(t) => w.byte(1).ticket(t),
                    None => w.byte(0),
                };
                w.str(user).str(client).byte(u8::from(require_ack));
                w.str(message_id).byte(u8::from(binary)).rest(body)
            }
            Wire::Outcome { ticket, error } => {
                w.kind(b'O').ticket(ticket);
                w.str(error.map_or("", FailureReason::name))
            }
            Wire::Kick {
                user,
                client,
                reason,
            } => w.kind(b'K').str(user).str(client).str(reason),
            Wire::Broadcast {
                origin,
                except,
                binary,
                body,
            } => w
                .kind(b'B')
                .str(origin)
                .str(except)
                .byte(u8::from(binary))
                .rest(body),
            Wire::Group {
                origin,
                group,
                binary,
                body,
            } => {
                w.kind(b'G').str(origin).str(group);
                w.byte(u8::from(binary)).rest(body)
            }
        };
    }

    /// Reads a message, borrowing from `bytes`.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Wire<'_>, WireError> {
        let mut r = Reader(bytes);
        let kind = r.byte()?;
        let wire = match kind {
            b'U' | b'X' => {
                let (node, user, client) = (r.str()?, r.str()?, r.str()?);
                if kind == b'U' {
                    Wire::Up { node, user, client }
                } else {
                    Wire::Down { node, user, client }
                }
            }
            b'H' => Wire::Heartbeat { node: r.str()? },
            b'R' => Wire::Registered { node: r.str()? },
            b'L' => Wire::Leaving { node: r.str()? },
            b'D' => {
                let origin = r.str()?;
                let ticket = match r.byte()? {
                    0 => None,
                    1 => Some(r.ticket()?),
                    _ => return Err(WireError::BadValue),
                };
                Wire::Deliver {
                    origin,
                    ticket,
                    user: r.str()?,
                    client: r.str()?,
                    require_ack: r.flag()?,
                    message_id: r.str()?,
                    binary: r.flag()?,
                    body: r.rest(),
                }
            }
            b'O' => {
                let ticket = r.ticket()?;
                let error = match r.str()? {
                    "" => None,
                    name => Some(name.parse().map_err(|_| WireError::BadValue)?),
                };
                Wire::Outcome { ticket, error }
            }
            b'K' => Wire::Kick {
                user: r.str()?,
                client: r.str()?,
                reason: r.str()?,
            },
            b'B' => Wire::Broadcast {
                origin: r.str()?,
                except: r.str()?,
                binary: r.flag()?,
                body: r.rest(),
            },
            b'G' => Wire::Group {
                origin: r.str()?,
                group: r.str()?,
                binary: r.flag()?,
                body: r.rest(),
            },
            other => return Err(WireError::UnknownKind(other)),
        };
        if !r.0.is_empty() {
            return Err(WireError::Trailing);
        }
        Ok(wire)
    }
}

struct Writer<'o>(&'o mut Vec<u8>);

impl Writer<'_> {
    fn kind(&mut self, k: u8) -> &mut Self {
        self.byte(k)
    }

    fn byte(&mut self, b: u8) -> &mut Self {
        self.0.push(b);
        self
    }

    fn u32(&mut self, n: u32) -> &mut Self {
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }

    fn str(&mut self, s: &str) -> &mut Self {
        // Fields are names and ids, far below 4 GiB.
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    fn ticket(&mut self, t: Ticket) -> &mut Self {
        self.u32(t.conn.index).u32(t.conn.generation);
        self.u32(t.tag.delivery.index)
            .u32(t.tag.delivery.generation.get());
        self.0.extend_from_slice(&t.tag.target.to_le_bytes());
        self
    }

    fn rest(&mut self, body: &[u8]) -> &mut Self {
        self.0.extend_from_slice(body);
        self
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn flag(&mut self) -> Result<bool, WireError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::BadValue),
        }
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| WireError::NotUtf8)
    }

    fn ticket(&mut self) -> Result<Ticket, WireError> {
        let conn = ConnId {
            index: self.u32()?,
            generation: self.u32()?,
        };
        let index = self.u32()?;
        let generation = NonZeroU32::new(self.u32()?).ok_or(WireError::BadValue)?;
        let t = self.take(2)?;
        Ok(Ticket {
            conn,
            tag: Tag {
                delivery: DeliveryId { index, generation },
                target: u16::from_le_bytes([t[0], t[1]]),
            },
        })
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket {
            conn: ConnId {
                index: 70_000,
                generation: 3,
            },
            tag: Tag {
                delivery: DeliveryId {
                    index: 9,
                    generation: NonZeroU32::new(2).unwrap(),
                },
                target: 1,
            },
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let all = [
            Wire::Up {
                node: "a",
                user: "bob",
                client: "phone",
            },
            Wire::Down {
                node: "a",
                user: "bob",
                client: "",
            },
            Wire::Heartbeat { node: "a" },
            Wire::Registered { node: "a" },
            Wire::Leaving { node: "a" },
            Wire::Deliver {
                origin: "b",
                ticket: Some(ticket()),
                user: "bob",
                client: "phone",
                require_ack: true,
                message_id: "m1",
                binary: false,
                body: b"{\"x\":1}",
            },
            Wire::Deliver {
                origin: "b",
                ticket: None,
                user: "bob",
                client: "",
                require_ack: false,
                message_id: "",
                binary: true,
                body: b"",
            },
            Wire::Outcome {
                ticket: ticket(),
                error: Some(FailureReason::UserOffline),
            },
            Wire::Outcome {
                ticket: ticket(),
                error: None,
            },
            Wire::Kick {
                user: "bob",
                client: "",
                reason: "bye",
            },
            Wire::Broadcast {
                origin: "c",
                except: "alice",
                binary: false,
                body: b"hi",
            },
            Wire::Group {
                origin: "c",
                group: "room",
                binary: false,
                body: b"hi",
            },
        ];
        for w in all {
            let mut out = Vec::new();
            w.encode(&mut out);
            assert_eq!(out.len(), w.encoded_len(), "{w:?}");
            assert_eq!(Wire::decode(&out), Ok(w.clone()));
            // Every strict prefix that cuts a header field is refused.
            for cut in 0..out.len() {
                if let Ok(d) = Wire::decode(&out[..cut]) {
                    // Only the trailing body may be cut short.
                    assert!(matches!(
                        d,
                        Wire::Deliver { .. } | Wire::Broadcast { .. } | Wire::Group { .. }
                    ));
                }
            }
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(Wire::decode(b""), Err(WireError::Truncated));
        assert_eq!(Wire::decode(b"Z"), Err(WireError::UnknownKind(b'Z')));
        assert_eq!(
            Wire::decode(b"H\xff\xff\xff\xff"),
            Err(WireError::Truncated)
        );
        assert_eq!(Wire::decode(b"H\x01\0\0\0\xff"), Err(WireError::NotUtf8));
        assert_eq!(Wire::decode(b"H\x01\0\0\0ab"), Err(WireError::Trailing));
    }
}
