//! The HTTP/1.1 side of a WebSocket server: reading a request head that
//! arrives in pieces (`request`), validating a WebSocket opening handshake
//! (RFC 6455 §4.2, `upgrade`), and writing the few responses sent before a
//! connection upgrades or closes (`response`).
//!
//! Everything here is stateless: the caller keeps the bytes read so far and
//! calls [`parse_request`] again after each read. That re-parses the whole prefix
//! every time, which is cheap because `max_head` bounds it and httparse
//! rejects non-HTTP input within the first few bytes, so a misdirected TLS
//! client or port scanner is turned away at once instead of holding a
//! connection slot until the head limit or a timeout.
//!
//! ```
//! use wshub::__private::ws::{parse_request, websocket_accept, write_switching_protocols};
//!
//! let buf = b"GET /ws?user_id=alice HTTP/1.1\r\n\
//!             Host: example.com\r\n\
//!             Upgrade: websocket\r\n\
//!             Connection: Upgrade\r\n\
//!             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!             Sec-WebSocket-Version: 13\r\n\r\n";
//! let (req, head_len) = parse_request(buf, 8192).unwrap().expect("complete head");
//! assert_eq!(head_len, buf.len());
//! assert_eq!(req.query_param("user_id").as_deref(), Some("alice"));
//!
//! let mut out = Vec::new();
//! write_switching_protocols(&mut out, &websocket_accept(&req).unwrap());
//! assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! ```

mod request;
mod response;
mod upgrade;

pub use request::{HttpError, Request, head_worth_parsing, parse_request, percent_decode};
pub use response::{
    write_error, write_response, write_switching_protocols, write_switching_protocols_with,
};
pub use upgrade::{HandshakeError, negotiate_deflate, websocket_accept};

#[cfg(test)]
mod tests;
