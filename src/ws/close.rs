//! Close status codes (RFC 6455 §7.4).

use std::fmt;

/// The status code of a close frame (RFC 6455 §7.4).
///
/// A newtype over the wire value: the constants name the codes the RFC
/// defines, and any other value, such as an application's own code in
/// 4000–4999, is built with [`CloseCode::new`] or `From<u16>`.
/// [`is_valid`](CloseCode::is_valid) says whether a peer may send it.
/// `Display` prints the number.
///
/// # Example
///
/// ```
/// use wshub::CloseCode;
///
/// const KICKED: CloseCode = CloseCode::new(4001);
///
/// assert_eq!(u16::from(CloseCode::NORMAL), 1000);
/// assert_eq!(CloseCode::from(1009), CloseCode::SIZE);
/// assert!(KICKED.is_valid());
/// assert!(!CloseCode::STATUS.is_valid()); // 1005 never goes on the wire
/// assert_eq!(CloseCode::AWAY.to_string(), "1001");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: normal closure; the purpose of the connection is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: going away, e.g. a server shutting down or a client idle too
    /// long.
    pub const AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1003: a kind of data the endpoint cannot accept.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: the close frame carried no status code. Reported locally,
    /// never sent.
    pub const STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection ended without a close frame. Reported locally,
    /// never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with its message type, such as text that is
    /// not UTF-8.
    pub const INVALID: CloseCode = CloseCode(1007);
    /// 1008: a message that violates the endpoint's policy.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a frame or message too big to process.
    pub const SIZE: CloseCode = CloseCode(1009);
    /// 1010: (sent by a client) the server did not negotiate an extension
    /// the client requires.
    pub const EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const ERROR: CloseCode = CloseCode(1011);
    /// 4001 (application range): the connection's token expired; the
    /// client should reconnect with a fresh one.
    pub const TOKEN_EXPIRED: CloseCode = CloseCode(4001);

    /// A close code with this wire value.
    ///
    /// ```
    /// assert_eq!(wshub::CloseCode::new(1000), wshub::CloseCode::NORMAL);
    /// ```
    pub const fn new(code: u16) -> CloseCode {
        CloseCode(code)
    }

    /// Whether a peer may send this code in a close frame (RFC 6455 §7.4).
    ///
    /// Accepts 1000–1003, 1007–1014 and 3000–4999. Rejects codes that are
    /// reserved for local use only (1005, 1006, 1015), unassigned (1004,
    /// 0–999, 1016–2999) or out of range.
    ///
    /// ```
    /// use wshub::CloseCode;
    ///
    /// assert!(CloseCode::NORMAL.is_valid());
    /// assert!(CloseCode::new(4321).is_valid());
    /// assert!(!CloseCode::ABNORMAL.is_valid());
    /// assert!(!CloseCode::new(2000).is_valid());
    /// ```
    pub const fn is_valid(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> CloseCode {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
