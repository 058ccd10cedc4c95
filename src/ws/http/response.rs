//! Writing the few responses sent before a connection upgrades or closes.

/// Content type used for plain-text error bodies.
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Appends the `101 Switching Protocols` response that completes a
/// handshake; `accept` comes from [`websocket_accept`](super::websocket_accept). WebSocket frames may
/// follow it directly on the same connection.
///
/// ```
/// let mut out = Vec::new();
/// wshub::__private::ws::write_switching_protocols(&mut out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// assert_eq!(
///     out,
///     b"HTTP/1.1 101 Switching Protocols\r\n\
///       Upgrade: websocket\r\n\
///       Connection: Upgrade\r\n\
///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
/// );
/// ```
pub fn write_switching_protocols(out: &mut Vec<u8>, accept: &str) {
    write_switching_protocols_with(out, accept, None);
}

/// [`write_switching_protocols`] with a `Sec-WebSocket-Extensions` header
/// when `extensions` is given (the answer of
/// [`Negotiated::response`](crate::ws::deflate::Negotiated::response)).
///
/// ```
/// let mut out = Vec::new();
/// wshub::__private::ws::write_switching_protocols_with(&mut out, "k", Some("permessage-deflate"));
/// assert!(out.ends_with(b"Sec-WebSocket-Accept: k\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"));
/// ```
pub fn write_switching_protocols_with(out: &mut Vec<u8>, accept: &str, extensions: Option<&str>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    push_field(out, accept);
    out.extend_from_slice(b"\r\n");
    if let Some(extensions) = extensions {
        push_header(out, "Sec-WebSocket-Extensions", extensions);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a complete response to `out`: status line, `Content-Type` (left
/// out if `content_type` is empty), `Content-Length`,
/// `Cache-Control: no-store`, `Connection: close`, the headers the status
/// requires, then `body`.
///
/// Only 426 (Upgrade Required) requires any: the one upgrade this server
/// offers is WebSocket version 13, so every 426 says so with
/// `Sec-WebSocket-Version: 13` (RFC 6455 §4.4) and `Upgrade: websocket`
/// (RFC 9110 §15.5.22), whichever check refused the client.
///
/// The hub closes the connection after every non-101 response, and says so,
/// so that clients neither pipeline a second request nor wait for one. A
/// status outside 100–999 is sent as 500, since it cannot be put on the
/// wire. CR, LF and NUL in the content type are replaced by spaces, so a
/// caller-supplied string cannot inject headers or a body.
///
/// ```
/// let mut out = Vec::new();
/// wshub::__private::ws::write_response(&mut out, 200, "application/json", b"{}");
/// assert_eq!(
///     out,
///     b"HTTP/1.1 200 OK\r\n\
///       Content-Type: application/json\r\n\
///       Content-Length: 2\r\n\
///       Cache-Control: no-store\r\n\
///       Connection: close\r\n\r\n{}",
/// );
/// ```
pub fn write_response(out: &mut Vec<u8>, status: u16, content_type: &str, body: &[u8]) {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    out.reserve(160 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    if !content_type.is_empty() {
        push_header(out, "Content-Type", content_type);
    }
    push_header(out, "Content-Length", &body.len().to_string());
    out.extend_from_slice(b"Cache-Control: no-store\r\nConnection: close\r\n");
    for (name, value) in status_headers(status) {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Appends an error response with `message` as its `text/plain` body (see
/// [`write_response`]).
///
/// ```
/// let mut out = Vec::new();
/// wshub::__private::ws::write_error(&mut out, 404, "not found");
/// assert!(out.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
/// assert!(out.ends_with(b"\r\n\r\nnot found"));
///
/// let mut out = Vec::new();
/// wshub::__private::ws::write_error(&mut out, 426, "unsupported WebSocket version");
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n"));
/// ```
pub fn write_error(out: &mut Vec<u8>, status: u16, message: &str) {
    write_response(out, status, TEXT_PLAIN, message.as_bytes());
}

/// The headers `status` requires beyond the common ones (see
/// [`write_response`]).
fn status_headers(status: u16) -> &'static [(&'static str, &'static str)] {
    match status {
        426 => &[("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")],
        _ => &[],
    }
}

/// The standard reason phrase for `status`, or `""` for codes the hub never
/// sends (an empty reason phrase is valid HTTP/1.1).
pub(super) fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    push_field(out, name);
    out.extend_from_slice(b": ");
    push_field(out, value);
    out.extend_from_slice(b"\r\n");
}

fn push_field(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().map(|b| match b {
        b'\r' | b'\n' | 0 => b' ',
        _ => b,
    }));
}
