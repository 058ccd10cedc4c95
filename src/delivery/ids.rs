//! Message ids the hub assigns: unique across restarts and nodes, not
//! guessable, made without allocating.
//!
//! An id is 64 bits of a keyed hash (SipHash with the process's random
//! keys, from `std`'s `RandomState`) of a process-wide counter, followed by
//! the counter itself: 24 lowercase hex digits. Without the keys the first
//! half cannot be predicted from ids seen before; the counter makes ids of
//! one process distinct, and the keyed half makes ids of different
//! processes collide with probability 2^-64.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Length of a hub-assigned message id.
pub(crate) const ID_LEN: usize = 24;

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn keys() -> &'static RandomState {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new)
}

/// A fresh message id, written into a fixed buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdBuf([u8; ID_LEN]);

impl IdBuf {
    pub(crate) fn next() -> IdBuf {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let secret = keys().hash_one(n);
        let mut buf = [0u8; ID_LEN];
        hex(&mut buf[..16], secret);
        hex(&mut buf[16..], n & 0xffff_ffff);
        IdBuf(buf)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for IdBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fresh message id as a `String` (for messages built off the hub thread).
pub(crate) fn new_message_id() -> String {
    IdBuf::next().as_str().to_owned()
}

fn hex(out: &mut [u8], mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_hex_and_not_sequential() {
        let a = IdBuf::next();
        let b = IdBuf::next();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), ID_LEN);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        // The keyed halves of consecutive ids share no obvious prefix.
        assert_ne!(a.as_str()[..8], b.as_str()[..8]);
        let many: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_message_id()).collect();
        assert_eq!(many.len(), 10_000);
    }
}

/// A message's id, as results and the engine carry it: inline when it is
/// short (every hub-assigned id is), shared otherwise, so that copying it
/// into a result allocates nothing.
///
/// ```
/// let r = wshub::SendResult::default();
/// assert!(r.message_id.is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MessageId(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(std::sync::Arc<str>),
}

/// Longest id kept inline.
const INLINE: usize = 30;

impl MessageId {
    /// The id `s` (allocates only when longer than 30 bytes).
    pub fn new(s: &str) -> MessageId {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            MessageId(Repr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            MessageId(Repr::Shared(s.into()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Built from a `&str` cut at its own length: always UTF-8.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Shared(s) => s,
        }
    }
}

impl std::ops::Deref for MessageId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for MessageId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl From<IdBuf> for MessageId {
    fn from(id: IdBuf) -> MessageId {
        MessageId::new(id.as_str())
    }
}

#[cfg(test)]
mod message_id_tests {
    use super::*;

    #[test]
    fn short_ids_are_inline_and_long_ones_shared() {
        let hub = MessageId::from(IdBuf::next());
        assert!(matches!(hub.0, Repr::Inline { .. }));
        assert_eq!(hub.len(), ID_LEN);
        let long = "x".repeat(31);
        let m = MessageId::new(&long);
        assert!(matches!(m.0, Repr::Shared(_)));
        assert_eq!(&*m, long.as_str());
        assert_eq!(MessageId::new("é"), *"é");
    }
}
