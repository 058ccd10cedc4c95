//! Validating a WebSocket opening handshake (RFC 6455 §4.2.1) and deriving
//! its accept key.

use std::fmt;

use super::Request;
use crate::ws::deflate::{self, Negotiated};

/// Why a request is not an acceptable WebSocket opening handshake. Answer it
/// with [`write_error`](super::write_error), passing its
/// [`status`](HandshakeError::status) and its `Display` text (a 426 then
/// names the version to use), and close the connection.
///
/// ```
/// use wshub::__private::ws::{parse_request, websocket_accept, HandshakeError};
/// let (req, _) = parse_request(b"GET /ws HTTP/1.1\r\nHost: h\r\n\r\n", 8192).unwrap().unwrap();
/// let err = websocket_accept(&req).unwrap_err();
/// assert_eq!(err, HandshakeError::MissingConnectionUpgrade);
/// assert_eq!(err.status(), 400);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The method is not `GET`.
    NotGet,
    /// The request is HTTP/1.0; the handshake needs HTTP/1.1.
    NotHttp11,
    /// No `Connection` header lists `upgrade`.
    MissingConnectionUpgrade,
    /// No `Upgrade` header lists `websocket`.
    MissingUpgradeWebsocket,
    /// `Sec-WebSocket-Version` is absent or not `13`, the only version
    /// defined (RFC 6455 §4.4); the response tells the client which to use.
    UnsupportedVersion,
    /// There is no `Sec-WebSocket-Key`.
    MissingKey,
    /// `Sec-WebSocket-Key` is not the base64 form of 16 bytes, or is repeated.
    InvalidKey,
}

impl HandshakeError {
    /// The HTTP status to answer with: 426 (Upgrade Required) for
    /// [`HandshakeError::UnsupportedVersion`], 400 otherwise.
    ///
    /// ```
    /// assert_eq!(wshub::__private::ws::HandshakeError::UnsupportedVersion.status(), 426);
    /// assert_eq!(wshub::__private::ws::HandshakeError::MissingKey.status(), 400);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::NotGet => "WebSocket handshake must use GET",
            HandshakeError::NotHttp11 => "WebSocket handshake requires HTTP/1.1",
            HandshakeError::MissingConnectionUpgrade => "missing `Connection: Upgrade`",
            HandshakeError::MissingUpgradeWebsocket => "missing `Upgrade: websocket`",
            HandshakeError::UnsupportedVersion => "unsupported WebSocket version (13 required)",
            HandshakeError::MissingKey => "missing Sec-WebSocket-Key",
            HandshakeError::InvalidKey => "invalid Sec-WebSocket-Key",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// Checks a WebSocket opening handshake (RFC 6455 §4.2.1) and returns the
/// `Sec-WebSocket-Accept` value for [`write_switching_protocols`](super::write_switching_protocols).
///
/// Subprotocols the client offers are ignored: not echoing them declines
/// them, which every client must accept. Extensions are answered separately
/// ([`negotiate_deflate`]).
///
/// ```
/// use wshub::__private::ws::{parse_request, websocket_accept};
/// let head = b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
///              Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
///              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
/// let (req, _) = parse_request(head, 8192).unwrap().unwrap();
/// assert_eq!(websocket_accept(&req).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn websocket_accept(req: &Request) -> Result<String, HandshakeError> {
    if req.method != "GET" {
        return Err(HandshakeError::NotGet);
    }
    if req.version != 1 {
        return Err(HandshakeError::NotHttp11);
    }
    if !req.header_has_token("connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    if !req.is_websocket_upgrade() {
        return Err(HandshakeError::MissingUpgradeWebsocket);
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let mut keys = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, v)| v.as_slice());
    let key = match (keys.next(), keys.next()) {
        (None, _) => return Err(HandshakeError::MissingKey),
        (Some(key), None) if is_valid_key(key) => key,
        _ => return Err(HandshakeError::InvalidKey),
    };
    Ok(tungstenite::handshake::derive_accept_key(key))
}

/// The permessage-deflate offer to accept, if the client made an acceptable
/// one (see [`deflate::negotiate`]): every `Sec-WebSocket-Extensions` header
/// is read, in order. Header values that are not UTF-8 are skipped.
///
/// ```
/// use wshub::__private::ws::{negotiate_deflate, parse_request};
/// let head = b"GET /ws HTTP/1.1\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
/// let (req, _) = parse_request(head, 8192).unwrap().unwrap();
/// assert!(negotiate_deflate(&req).is_some());
/// ```
pub fn negotiate_deflate(req: &Request) -> Option<Negotiated> {
    deflate::negotiate(
        req.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok()),
    )
}

/// Whether `key` is base64 of 16 bytes: 22 significant characters and `==`.
/// The last character's 4 unused bits are not required to be zero, as lenient
/// decoders (and therefore some clients' peers) do not require it either.
fn is_valid_key(key: &[u8]) -> bool {
    let is_b64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    match key.split_at_checked(22) {
        Some((body, b"==")) => body.iter().all(is_b64),
        _ => false,
    }
}
