//! The HTTP/1.1 side of the hub: reading a request head that arrives in
//! pieces, validating a WebSocket opening handshake (RFC 6455 §4.2), and
//! writing the few responses sent before a connection upgrades or closes.
//!
//! Everything here is stateless: the hub keeps the bytes read so far and calls
//! [`parse_request`] again after each read. That re-parses the whole prefix
//! every time, which is cheap because `max_head` bounds it and httparse
//! rejects non-HTTP input within the first few bytes, so a misdirected TLS
//! client or port scanner is turned away at once instead of holding a
//! connection slot until the head limit or a timeout.
//!
//! ```
//! use wshub::http::{parse_request, websocket_accept, write_switching_protocols};
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

use std::fmt;

/// Most header lines a request may carry; one more is
/// [`HttpError::TooManyHeaders`].
///
/// Browsers send 10–20 on a WebSocket upgrade; 32 leaves room for proxies and
/// cookies while keeping the parser's scratch array on the stack small.
///
/// ```
/// let mut head = String::from("GET / HTTP/1.1\r\n");
/// for i in 0..=wshub::http::MAX_HEADERS {
///     head.push_str(&format!("X-{i}: v\r\n"));
/// }
/// head.push_str("\r\n");
/// assert_eq!(
///     wshub::http::parse_request(head.as_bytes(), 8192).unwrap_err(),
///     wshub::http::HttpError::TooManyHeaders,
/// );
/// ```
pub const MAX_HEADERS: usize = 32;

/// Longest method token accepted. httparse only rejects a method at its first
/// non-token byte, so without this a stream of letters ("AAAA…") would be
/// buffered up to `max_head` before being recognised as garbage. Registered
/// methods are at most 17 bytes long ("UPDATEREDIRECTREF"); the hub serves GET.
const MAX_METHOD_LEN: usize = 17;

/// Why a request head could not be read. Answer it with
/// [`HttpError::write_response`] and close the connection.
///
/// ```
/// use wshub::http::{parse_request, HttpError};
/// let err = parse_request(b"\x16\x03\x01", 8192).unwrap_err();
/// assert_eq!(err, HttpError::Malformed);
/// assert_eq!(err.status(), 400);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpError {
    /// The bytes are not an HTTP/1.x request head (e.g. a TLS ClientHello, an
    /// HTTP/2 preface, or a bad request line or header).
    Malformed,
    /// The head did not end within `max_head` bytes.
    HeadTooLarge,
    /// The head has more than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
}

impl HttpError {
    /// The HTTP status to answer with: 400 for [`HttpError::Malformed`], 431
    /// (Request Header Fields Too Large) otherwise.
    ///
    /// ```
    /// assert_eq!(wshub::http::HttpError::HeadTooLarge.status(), 431);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed => 400,
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => 431,
        }
    }

    /// Appends the matching error response (see [`write_error`]) to `out`.
    ///
    /// ```
    /// let mut out = Vec::new();
    /// wshub::http::HttpError::Malformed.write_response(&mut out);
    /// assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    /// ```
    pub fn write_response(&self, out: &mut Vec<u8>) {
        write_error(out, self.status(), &self.to_string());
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::Malformed => "malformed HTTP request",
            HttpError::HeadTooLarge => "request head too large",
            HttpError::TooManyHeaders => "too many request headers",
        })
    }
}

impl std::error::Error for HttpError {}

/// A parsed request head, owning its data so the read buffer can be reused.
///
/// ```
/// let (req, _) = wshub::http::parse_request(
///     b"GET /health/live?verbose=1 HTTP/1.1\r\nHost: h\r\n\r\n",
///     8192,
/// )
/// .unwrap()
/// .unwrap();
/// assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "/health/live"));
/// assert_eq!(req.query, "verbose=1");
/// assert_eq!(req.header("host"), Some("h"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, case preserved (methods are case-sensitive: `get` is not
    /// `GET`).
    pub method: String,
    /// The request target's path, still percent-encoded, without query or
    /// fragment. An absolute-form target (`http://host/p?q`, as sent to a
    /// proxy) is reduced to its path, `/` if it has none.
    pub path: String,
    /// The raw query, without the `?`; empty if there is none. Read
    /// parameters with [`Request::query_param`].
    pub query: String,
    /// The minor version of HTTP/1.x: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    /// The header lines in order, names as sent, values with surrounding
    /// whitespace removed. Values are bytes because HTTP allows non-UTF-8
    /// (obs-text) in them.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    /// The value of the first header named `name` (compared
    /// case-insensitively), or `None` if there is none or its value is not
    /// UTF-8.
    ///
    /// ```
    /// let (req, _) = wshub::http::parse_request(b"GET / HTTP/1.1\r\nX-Token: abc\r\n\r\n", 64)
    ///     .unwrap()
    ///     .unwrap();
    /// assert_eq!(req.header("x-token"), Some("abc"));
    /// assert_eq!(req.header("X-Other"), None);
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        let (_, value) = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
        std::str::from_utf8(value).ok()
    }

    /// Whether any header named `name` lists `token` among its
    /// comma-separated values, both compared case-insensitively. A field may
    /// be split over several header lines (RFC 9110 §5.3), so all are checked.
    ///
    /// ```
    /// let (req, _) = wshub::http::parse_request(
    ///     b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n",
    ///     256,
    /// )
    /// .unwrap()
    /// .unwrap();
    /// assert!(req.header_has_token("connection", "upgrade"));
    /// assert!(!req.header_has_token("connection", "close"));
    /// ```
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, value)| value.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }

    /// The first query parameter named `name`, decoded with
    /// [`percent_decode`] (so `+` is a space). Names are decoded before they
    /// are compared; a parameter without `=` has the empty value.
    ///
    /// Returns `None` if the parameter is absent, or if the value of its
    /// first occurrence is not validly encoded (a bad `%` escape, or bytes
    /// that are not UTF-8). Later duplicates are never consulted, so a
    /// malformed first value cannot be papered over by a second one.
    ///
    /// ```
    /// let (req, _) = wshub::http::parse_request(
    ///     b"GET /ws?user_id=%E5%BC%A0+san&client_id&bad=%zz HTTP/1.1\r\n\r\n",
    ///     256,
    /// )
    /// .unwrap()
    /// .unwrap();
    /// assert_eq!(req.query_param("user_id").as_deref(), Some("张 san"));
    /// assert_eq!(req.query_param("client_id").as_deref(), Some(""));
    /// assert_eq!(req.query_param("bad"), None);
    /// assert_eq!(req.query_param("user_type"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .find(|(key, _)| {
                // Skip the allocation in the usual case of a plain key.
                if key.contains(['%', '+']) {
                    percent_decode(key).as_deref() == Some(name)
                } else {
                    *key == name
                }
            })
            .and_then(|(_, value)| percent_decode(value))
    }

    /// Whether the client asks to switch to WebSocket: an `Upgrade` header
    /// listing `websocket` (case-insensitive). This only routes the request;
    /// [`websocket_accept`] decides whether the handshake is valid.
    ///
    /// ```
    /// let (req, _) = wshub::http::parse_request(b"GET /ws HTTP/1.1\r\nUpgrade: WebSocket\r\n\r\n", 256)
    ///     .unwrap()
    ///     .unwrap();
    /// assert!(req.is_websocket_upgrade());
    /// ```
    pub fn is_websocket_upgrade(&self) -> bool {
        self.header_has_token("upgrade", "websocket")
    }
}

/// Parses the request head at the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete (read more and call again
/// with all bytes so far), or the request and the head's length in bytes.
/// Bytes after the head (e.g. a first WebSocket frame the client sent without
/// waiting for the 101) are not part of it and must be kept by the caller.
///
/// At most `max_head` bytes are examined: a head that has not ended by then
/// is [`HttpError::HeadTooLarge`]. Input that cannot be HTTP/1.x is
/// [`HttpError::Malformed`] as soon as that is evident, usually at its first
/// byte.
///
/// ```
/// use wshub::http::{parse_request, HttpError};
///
/// let buf = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n\x81\x80";
/// assert_eq!(parse_request(&buf[..10], 8192), Ok(None));
/// let (_, head_len) = parse_request(buf, 8192).unwrap().unwrap();
/// assert_eq!(&buf[head_len..], b"\x81\x80");
///
/// assert_eq!(parse_request(b"HELLO\r\n\r\n", 8192), Err(HttpError::Malformed));
/// assert_eq!(parse_request(b"GET /aaaaaaaa", 8), Err(HttpError::HeadTooLarge));
/// ```
pub fn parse_request(buf: &[u8], max_head: usize) -> Result<Option<(Request, usize)>, HttpError> {
    // Parsing only the first `max_head` bytes bounds the work per call even
    // when the caller's buffer holds more.
    let buf = &buf[..buf.len().min(max_head)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => {
            Ok(Some((Request::from_parsed(&parsed)?, head_len)))
        }
        Ok(httparse::Status::Partial) => {
            if parsed.method.is_none() && unterminated_method_len(buf) > MAX_METHOD_LEN {
                Err(HttpError::Malformed)
            } else if buf.len() >= max_head {
                Err(HttpError::HeadTooLarge)
            } else {
                Ok(None)
            }
        }
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::TooManyHeaders),
        Err(_) => Err(HttpError::Malformed),
    }
}

/// Bytes of method read so far, past the empty lines that httparse skips
/// before a request line (RFC 9112 §2.2).
fn unterminated_method_len(buf: &[u8]) -> usize {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    buf.len() - start
}

impl Request {
    fn from_parsed(parsed: &httparse::Request<'_, '_>) -> Result<Request, HttpError> {
        // httparse fills all three before it reports a complete head.
        let (Some(method), Some(target), Some(version)) =
            (parsed.method, parsed.path, parsed.version)
        else {
            return Err(HttpError::Malformed);
        };
        let (path, query) = split_target(target);
        Ok(Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            version,
            headers: parsed
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.trim_ascii().to_vec()))
                .collect(),
        })
    }
}

/// Splits a request target into path and query.
fn split_target(target: &str) -> (&str, &str) {
    // Absolute-form must be accepted by servers (RFC 9112 §3.2.2); routing
    // only needs what follows the authority.
    let target = match target.find("://") {
        Some(i) if !target.starts_with('/') => {
            let rest = &target[i + 3..];
            rest.find(['/', '?']).map_or("", |j| &rest[j..])
        }
        _ => target,
    };
    // Clients must not send a fragment; one that does still gets routed.
    let target = target.split_once('#').map_or(target, |(t, _)| t);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    (if path.is_empty() { "/" } else { path }, query)
}

/// Decodes one `application/x-www-form-urlencoded` component, the encoding
/// browsers and `URLSearchParams` use for queries: `%XX` becomes the byte
/// `0xXX` (either hex case) and `+` a space.
///
/// Returns `None` for a `%` not followed by two hex digits, or if the decoded
/// bytes are not UTF-8. Identities taken from a query end up in logs and
/// messages, so refusing is safer than guessing (lossy decoding would let two
/// different byte strings map to the same user id).
///
/// ```
/// use wshub::http::percent_decode;
/// assert_eq!(percent_decode("%E5%BC%A0%E4%B8%89").as_deref(), Some("张三"));
/// assert_eq!(percent_decode("a%2Bb+c").as_deref(), Some("a+b c"));
/// assert_eq!(percent_decode("100%"), None);
/// assert_eq!(percent_decode("%FF"), None);
/// ```
pub fn percent_decode(s: &str) -> Option<String> {
    if !s.contains(['%', '+']) {
        return Some(s.to_owned());
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'+' => b' ',
            b'%' => {
                let hi = hex_digit(bytes.next()?)?;
                let lo = hex_digit(bytes.next()?)?;
                (hi << 4) | lo
            }
            _ => b,
        });
    }
    String::from_utf8(out).ok()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Why a request is not an acceptable WebSocket opening handshake. Answer it
/// with [`HandshakeError::write_response`] and close the connection.
///
/// ```
/// use wshub::http::{parse_request, websocket_accept, HandshakeError};
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
    /// assert_eq!(wshub::http::HandshakeError::UnsupportedVersion.status(), 426);
    /// assert_eq!(wshub::http::HandshakeError::MissingKey.status(), 400);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }

    /// Appends the matching error response to `out`. A 426 carries
    /// `Sec-WebSocket-Version: 13` (RFC 6455 §4.4) and `Upgrade: websocket`
    /// (RFC 9110 §15.5.22) so the client can retry correctly.
    ///
    /// ```
    /// let mut out = Vec::new();
    /// wshub::http::HandshakeError::UnsupportedVersion.write_response(&mut out);
    /// let text = String::from_utf8(out).unwrap();
    /// assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    /// assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    /// ```
    pub fn write_response(&self, out: &mut Vec<u8>) {
        let extra: &[(&str, &str)] = match self {
            HandshakeError::UnsupportedVersion => {
                &[("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")]
            }
            _ => &[],
        };
        write_response(
            out,
            self.status(),
            TEXT_PLAIN,
            self.to_string().as_bytes(),
            extra,
        );
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
/// `Sec-WebSocket-Accept` value for [`write_switching_protocols`].
///
/// Subprotocols and extensions the client offers are ignored: not echoing
/// them declines them, which every client must accept.
///
/// ```
/// use wshub::http::{parse_request, websocket_accept};
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

/// Content type used for plain-text error bodies.
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Appends the `101 Switching Protocols` response that completes a
/// handshake; `accept` comes from [`websocket_accept`]. WebSocket frames may
/// follow it directly on the same connection.
///
/// ```
/// let mut out = Vec::new();
/// wshub::http::write_switching_protocols(&mut out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// assert_eq!(
///     out,
///     b"HTTP/1.1 101 Switching Protocols\r\n\
///       Upgrade: websocket\r\n\
///       Connection: Upgrade\r\n\
///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
/// );
/// ```
pub fn write_switching_protocols(out: &mut Vec<u8>, accept: &str) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    push_field(out, accept);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends a complete response to `out`: status line, `Content-Type` (left
/// out if `content_type` is empty), `Content-Length`,
/// `Cache-Control: no-store`, `Connection: close`, then `extra_headers` in
/// order, then `body`.
///
/// The hub closes the connection after every non-101 response, and says so,
/// so that clients neither pipeline a second request nor wait for one. A
/// status outside 100–999 is sent as 500, since it cannot be put on the
/// wire. CR, LF and NUL in header names and values are replaced by spaces,
/// so a caller-supplied string cannot inject headers or a body.
///
/// ```
/// let mut out = Vec::new();
/// wshub::http::write_response(&mut out, 200, "application/json", b"{}", &[("Retry-After", "5")]);
/// assert_eq!(
///     out,
///     b"HTTP/1.1 200 OK\r\n\
///       Content-Type: application/json\r\n\
///       Content-Length: 2\r\n\
///       Cache-Control: no-store\r\n\
///       Connection: close\r\n\
///       Retry-After: 5\r\n\r\n{}",
/// );
/// ```
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    body: &[u8],
    extra_headers: &[(&str, &str)],
) {
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
    for (name, value) in extra_headers {
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
/// wshub::http::write_error(&mut out, 404, "not found");
/// assert!(out.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
/// assert!(out.ends_with(b"\r\n\r\nnot found"));
/// ```
pub fn write_error(out: &mut Vec<u8>, status: u16, message: &str) {
    write_response(out, status, TEXT_PLAIN, message.as_bytes(), &[]);
}

/// The standard reason phrase for `status`, or `""` for codes the hub never
/// sends (an empty reason phrase is valid HTTP/1.1).
///
/// ```
/// assert_eq!(wshub::http::reason_phrase(431), "Request Header Fields Too Large");
/// assert_eq!(wshub::http::reason_phrase(299), "");
/// ```
pub fn reason_phrase(status: u16) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    const MAX: usize = 8192;

    const CHROME: &[u8] = b"GET /ws?user_id=alice&client_id=phone&user_type=agent HTTP/1.1\r\n\
        Host: localhost:8080\r\n\
        Connection: Upgrade\r\n\
        Pragma: no-cache\r\n\
        Cache-Control: no-cache\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
        Chrome/124.0.0.0 Safari/537.36\r\n\
        Upgrade: websocket\r\n\
        Origin: http://localhost:8080\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Accept-Encoding: gzip, deflate, br, zstd\r\n\
        Accept-Language: en-US,en;q=0.9\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

    const FIREFOX: &[u8] = b"GET /ws?user_id=bob HTTP/1.1\r\n\
        Host: localhost:8080\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0\r\n\
        Accept: */*\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Origin: http://localhost:8080\r\n\
        Sec-WebSocket-Extensions: permessage-deflate\r\n\
        Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
        Connection: keep-alive, Upgrade\r\n\
        Sec-Fetch-Mode: websocket\r\n\
        Pragma: no-cache\r\n\
        Upgrade: websocket\r\n\r\n";

    fn parse(buf: &[u8]) -> Request {
        let (req, len) = parse_request(buf, MAX).unwrap().expect("complete");
        assert_eq!(len, buf.len());
        req
    }

    /// A minimal valid upgrade with one header line replaced or removed.
    fn upgrade_with(replace: &str, with: Option<&str>) -> Request {
        let mut head = String::from("GET /ws HTTP/1.1\r\n");
        for line in [
            "Host: h",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ] {
            let line = if line.starts_with(replace) {
                with
            } else {
                Some(line)
            };
            if let Some(line) = line {
                head.push_str(line);
                head.push_str("\r\n");
            }
        }
        head.push_str("\r\n");
        parse(head.as_bytes())
    }

    fn accept(req: &Request) -> Result<String, HandshakeError> {
        websocket_accept(req)
    }

    #[test]
    fn parses_chrome_upgrade() {
        let req = parse(CHROME);
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/ws");
        assert_eq!(req.query, "user_id=alice&client_id=phone&user_type=agent");
        assert_eq!(req.version, 1);
        assert_eq!(req.headers.len(), 12);
        assert_eq!(
            req.headers[0],
            ("Host".to_owned(), b"localhost:8080".to_vec())
        );
        assert_eq!(req.header("ORIGIN"), Some("http://localhost:8080"));
        assert!(req.is_websocket_upgrade());
        assert_eq!(req.query_param("user_id").as_deref(), Some("alice"));
        assert_eq!(req.query_param("client_id").as_deref(), Some("phone"));
        assert_eq!(req.query_param("user_type").as_deref(), Some("agent"));
        assert_eq!(accept(&req).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn firefox_keep_alive_upgrade_accepted() {
        let req = parse(FIREFOX);
        assert!(req.is_websocket_upgrade());
        // Checked against Python's hashlib/base64 for this key.
        assert_eq!(accept(&req).unwrap(), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    }

    #[test]
    fn byte_by_byte() {
        for head in [CHROME, FIREFOX] {
            for i in 0..head.len() {
                assert_eq!(parse_request(&head[..i], MAX), Ok(None), "prefix {i}");
            }
            let (_, len) = parse_request(head, MAX).unwrap().unwrap();
            assert_eq!(len, head.len());
        }
    }

    #[test]
    fn trailing_bytes_are_not_part_of_head() {
        // A masked text frame "hi" sent right behind the handshake.
        let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        let mut buf = CHROME.to_vec();
        buf.extend_from_slice(&frame);
        let (_, len) = parse_request(&buf, MAX).unwrap().unwrap();
        assert_eq!(len, CHROME.len());
        assert_eq!(&buf[len..], frame);
        // Even when the buffer is longer than max_head.
        buf.resize(3 * MAX, 0);
        assert_eq!(parse_request(&buf, MAX).unwrap().unwrap().1, CHROME.len());
    }

    #[test]
    fn leading_empty_lines_and_bare_lf() {
        let req = parse(b"\r\n\nGET /x HTTP/1.0\nHost: h\n\n");
        assert_eq!((req.path.as_str(), req.version), ("/x", 0));
        assert_eq!(accept(&req), Err(HandshakeError::NotHttp11));
    }

    /// Shortest prefix of `input` that is rejected, if any.
    fn rejected_after(input: &[u8]) -> Option<(usize, HttpError)> {
        (1..=input.len()).find_map(|i| parse_request(&input[..i], MAX).err().map(|e| (i, e)))
    }

    #[test]
    fn garbage_is_rejected_early() {
        let long_token = [b'A'; 200];
        let cases: &[(&[u8], usize)] = &[
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 1), // TLS ClientHello
            (b"\x00\xff\x13\x37\xde\xad\xbe\xef", 1),
            (b"HELLO\r\n\r\n", 6),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 12), // HTTP/2 preface
            (b"GET / FTP/1.1\r\n\r\n", 7),
            (b"GET  / HTTP/1.1\r\n\r\n", 5),
            (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 20),
            (b"GET / HTTP/1.1 extra\r\n\r\n", 15),
            (b"SSH-2.0-OpenSSH_9.6\r\n", MAX_METHOD_LEN + 1),
            (&long_token, MAX_METHOD_LEN + 1),
        ];
        for &(input, at) in cases {
            assert_eq!(
                rejected_after(input),
                Some((at, HttpError::Malformed)),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(HttpError::Malformed.status(), 400);
    }

    #[test]
    fn head_too_large() {
        let mut buf = b"GET /".to_vec();
        buf.resize(2000, b'a');
        assert_eq!(parse_request(&buf[..1023], 1024), Ok(None));
        assert_eq!(
            parse_request(&buf[..1024], 1024),
            Err(HttpError::HeadTooLarge)
        );
        assert_eq!(parse_request(&buf, 1024), Err(HttpError::HeadTooLarge));
        // The limit is on the head, whatever the caller has buffered.
        assert_eq!(
            parse_request(CHROME, CHROME.len() - 1),
            Err(HttpError::HeadTooLarge)
        );
        assert_eq!(
            parse_request(CHROME, CHROME.len()).unwrap().unwrap().1,
            CHROME.len()
        );
        assert_eq!(parse_request(b"", 0), Err(HttpError::HeadTooLarge));
        assert_eq!(HttpError::HeadTooLarge.status(), 431);
    }

    #[test]
    fn too_many_headers() {
        let head = |n: usize| {
            let mut s = String::from("GET / HTTP/1.1\r\n");
            for i in 0..n {
                s.push_str(&format!("X-H{i}: {i}\r\n"));
            }
            s + "\r\n"
        };
        assert_eq!(
            parse(head(MAX_HEADERS).as_bytes()).headers.len(),
            MAX_HEADERS
        );
        let err = parse_request(head(MAX_HEADERS + 1).as_bytes(), MAX).unwrap_err();
        assert_eq!((err, err.status()), (HttpError::TooManyHeaders, 431));
    }

    #[test]
    fn rfc6455_example_key() {
        let req = upgrade_with("X-Unused", None);
        assert_eq!(accept(&req).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn bad_keys() {
        let req = upgrade_with("Sec-WebSocket-Key", None);
        assert_eq!(accept(&req), Err(HandshakeError::MissingKey));
        for bad in [
            "",
            "abc",
            "dGhlIHNhbXBsZSBub25jZQ",     // unpadded
            "dGhlIHNhbXBsZSBub25jZQ=",    // 23 chars
            "dGhlIHNhbXBsZSBub25jZQ===",  // 25 chars
            "dGhlIHNhbXBsZSBub25jZ===",   // 21 significant chars
            "dGhlIHNhbXBsZSBub25jZ-==",   // URL-safe alphabet
            "dGhlIHNhbXBsZSBub25jZQ=A",   // padding in the wrong place
            "dGhlIHNhbXBsZSBub25jZQ==AA", // too long
        ] {
            let line = format!("Sec-WebSocket-Key: {bad}");
            let req = upgrade_with("Sec-WebSocket-Key", Some(&line));
            let err = accept(&req).unwrap_err();
            assert!(
                matches!(err, HandshakeError::InvalidKey | HandshakeError::MissingKey),
                "{bad:?}: {err:?}"
            );
            assert_eq!(err.status(), 400);
        }
        // A repeated key is ambiguous, even if both copies are valid.
        let req = upgrade_with(
            "Sec-WebSocket-Key",
            Some(
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            ),
        );
        assert_eq!(accept(&req), Err(HandshakeError::InvalidKey));
    }

    #[test]
    fn wrong_version_is_426() {
        for line in [
            Some("Sec-WebSocket-Version: 8"),
            Some("Sec-WebSocket-Version: 13, 8"),
            None,
        ] {
            let req = upgrade_with("Sec-WebSocket-Version", line);
            let err = accept(&req).unwrap_err();
            assert_eq!(
                (err, err.status()),
                (HandshakeError::UnsupportedVersion, 426)
            );
            let mut out = Vec::new();
            err.write_response(&mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
                "{text}"
            );
            assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
        }
    }

    #[test]
    fn handshake_requirements() {
        let cases = [
            (
                "Connection",
                Some("Connection: keep-alive"),
                HandshakeError::MissingConnectionUpgrade,
            ),
            ("Connection", None, HandshakeError::MissingConnectionUpgrade),
            (
                "Connection",
                Some("Connection: upgrades"),
                HandshakeError::MissingConnectionUpgrade,
            ),
            ("Upgrade", None, HandshakeError::MissingUpgradeWebsocket),
            (
                "Upgrade",
                Some("Upgrade: h2c"),
                HandshakeError::MissingUpgradeWebsocket,
            ),
        ];
        for (replace, with, want) in cases {
            assert_eq!(accept(&upgrade_with(replace, with)), Err(want), "{with:?}");
        }
        let mut req = upgrade_with("X-Unused", None);
        req.method = "POST".into();
        assert_eq!(accept(&req), Err(HandshakeError::NotGet));
        req.method = "get".into();
        assert_eq!(accept(&req), Err(HandshakeError::NotGet));
        req.method = "GET".into();
        req.version = 0;
        assert_eq!(accept(&req), Err(HandshakeError::NotHttp11));
    }

    #[test]
    fn handshake_is_case_insensitive() {
        let req = parse(
            b"GET /ws HTTP/1.1\r\nhost: h\r\nUPGRADE: WebSocket\r\nconnection: keep-alive,UPGRADE\r\n\
              sec-websocket-version: 13\r\nSEC-WEBSOCKET-KEY:  dGhlIHNhbXBsZSBub25jZQ==  \r\n\r\n",
        );
        assert_eq!(accept(&req).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        // Tokens spread over several header lines count too.
        let req = parse(
            b"GET /ws HTTP/1.1\r\nConnection: keep-alive\r\nConnection: Upgrade\r\n\
              Upgrade: h2c, websocket\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        );
        assert_eq!(accept(&req).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn targets() {
        let split = split_target;
        assert_eq!(split("/"), ("/", ""));
        assert_eq!(split("/ws?"), ("/ws", ""));
        assert_eq!(split("/ws?a=1?b"), ("/ws", "a=1?b"));
        assert_eq!(split("/p#frag"), ("/p", ""));
        assert_eq!(split("http://h:1/ws?u=1"), ("/ws", "u=1"));
        assert_eq!(split("https://h?u=1"), ("/", "u=1"));
        assert_eq!(split("http://h"), ("/", ""));
        assert_eq!(split("*"), ("*", ""));
        assert_eq!(split("/a?x=http://b/c"), ("/a", "x=http://b/c"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("").as_deref(), Some(""));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(
            percent_decode("%E5%BC%A0%E4%B8%89").as_deref(),
            Some("张三")
        );
        assert_eq!(percent_decode("%e5%bc%a0").as_deref(), Some("张"));
        assert_eq!(percent_decode("a%2Bb").as_deref(), Some("a+b"));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%25%26%3D").as_deref(), Some("%&="));
        assert_eq!(percent_decode("é").as_deref(), Some("é"));
        for bad in [
            "%",
            "%2",
            "a%zz",
            "%g0",
            "%+1",
            "%FF",
            "%C3",
            "%C3%28",
            "%ED%A0%80",
        ] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_params() {
        let req = parse(
            b"GET /ws?&&user%5Fid=%E7%94%A8%E6%88%B7+1&dup=a&dup=b&flag&empty=&bad=%ZZ&bad=ok&x=1%2B1 \
              HTTP/1.1\r\n\r\n",
        );
        assert_eq!(req.query_param("user_id").as_deref(), Some("用户 1"));
        assert_eq!(req.query_param("dup").as_deref(), Some("a"));
        assert_eq!(req.query_param("flag").as_deref(), Some(""));
        assert_eq!(req.query_param("empty").as_deref(), Some(""));
        assert_eq!(req.query_param("bad"), None);
        assert_eq!(req.query_param("x").as_deref(), Some("1+1"));
        assert_eq!(req.query_param("missing"), None);
        assert_eq!(req.query_param("").as_deref(), None);
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n").query_param("user_id"),
            None
        );
    }

    #[test]
    fn header_lookup() {
        let req = parse(b"GET / HTTP/1.1\r\nX-A: one\r\nx-a: two\r\nX-Bin: \xff\r\n\r\n");
        assert_eq!(req.header("X-A"), Some("one"));
        assert_eq!(req.header("x-bin"), None);
        assert_eq!(req.headers[2].1, b"\xff");
        assert!(!req.is_websocket_upgrade());
    }

    #[test]
    fn response_bytes() {
        let mut out = b"kept".to_vec();
        write_error(&mut out, 404, "no such route");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "keptHTTP/1.1 404 Not Found\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 13\r\n\
             Cache-Control: no-store\r\n\
             Connection: close\r\n\r\n\
             no such route"
        );

        let mut out = Vec::new();
        write_switching_protocols(&mut out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );

        let mut out = Vec::new();
        write_response(&mut out, 7, "", b"", &[("X-Evil", "a\r\nSet-Cookie: x")]);
        assert_eq!(
            out,
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nCache-Control: no-store\r\n\
              Connection: close\r\nX-Evil: a  Set-Cookie: x\r\n\r\n"
        );
    }

    #[test]
    fn responses_parse_back() {
        for status in [
            200, 400, 401, 403, 404, 405, 408, 413, 426, 429, 431, 500, 503,
        ] {
            assert!(!reason_phrase(status).is_empty(), "{status}");
            let mut out = Vec::new();
            write_error(&mut out, status, "msg");
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut headers);
            let len = resp.parse(&out).unwrap().unwrap();
            assert_eq!(resp.code, Some(status));
            assert_eq!(resp.reason, Some(reason_phrase(status)));
            assert_eq!(&out[len..], b"msg");
        }
        for err in [
            HttpError::Malformed,
            HttpError::HeadTooLarge,
            HttpError::TooManyHeaders,
        ] {
            let mut out = Vec::new();
            err.write_response(&mut out);
            let status = format!("HTTP/1.1 {} ", err.status());
            assert!(out.starts_with(status.as_bytes()));
        }
    }

    /// Exercises everything a hub would call on a parsed request.
    fn use_request(buf: &[u8], max_head: usize) {
        if let Ok(Some((req, len))) = parse_request(buf, max_head) {
            assert!(len <= buf.len().min(max_head));
            let _ = websocket_accept(&req);
            let _ = req.is_websocket_upgrade();
            let _ = (req.query_param("user_id"), req.header("host"));
        }
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // Bytes weighted toward HTTP syntax so that random input gets past
        // the request line now and then.
        let alphabet = b"GET /?&=%+:,\r\n\r\nHTTP/1.1 ws aZ09\xff\x00\t";
        for _ in 0..20_000 {
            let len = rng.index(300);
            let buf: Vec<u8> = if rng.index(2) == 0 {
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                (0..len)
                    .map(|_| alphabet[rng.index(alphabet.len())])
                    .collect()
            };
            use_request(&buf, 1 + rng.index(400));
            let _ = percent_decode(&String::from_utf8_lossy(&buf));
        }
        for _ in 0..20_000 {
            let base = if rng.index(2) == 0 { CHROME } else { FIREFOX };
            let mut buf = base[..rng.index(base.len() + 1)].to_vec();
            for _ in 0..rng.index(4) {
                if !buf.is_empty() {
                    let i = rng.index(buf.len());
                    buf[i] = rng.next() as u8;
                }
            }
            let max_head = if rng.index(4) == 0 {
                rng.index(base.len() + 10)
            } else {
                MAX
            };
            use_request(&buf, max_head);
        }
    }
}
