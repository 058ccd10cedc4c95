//! Reading a request head that arrives in pieces, and what a handler reads
//! from it: path, query parameters, headers.

use std::fmt;

/// Most header lines a request may carry; one more is
/// [`HttpError::TooManyHeaders`].
///
/// Browsers send 10–20 on a WebSocket upgrade; 32 leaves room for proxies and
/// cookies while keeping the parser's scratch array on the stack small.
pub(super) const MAX_HEADERS: usize = 32;

/// Longest method token accepted. httparse only rejects a method at its first
/// non-token byte, so without this a stream of letters ("AAAA…") would be
/// buffered up to `max_head` before being recognised as garbage. Registered
/// methods are at most 17 bytes long ("UPDATEREDIRECTREF"); the hub serves GET.
pub(super) const MAX_METHOD_LEN: usize = 17;

/// Why a request head could not be read. Answer it with
/// [`write_error`](super::write_error), passing its
/// [`status`](HttpError::status) and its `Display` text, and close the
/// connection.
///
/// ```
/// use wshub::__private::ws::{parse_request, HttpError};
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
    /// The head has more than `MAX_HEADERS` (32) header lines.
    TooManyHeaders,
}

impl HttpError {
    /// The HTTP status to answer with: 400 for [`HttpError::Malformed`], 431
    /// (Request Header Fields Too Large) otherwise.
    ///
    /// ```
    /// assert_eq!(wshub::__private::ws::HttpError::HeadTooLarge.status(), 431);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed => 400,
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => 431,
        }
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

/// A parsed HTTP request head, owning its data so the read buffer can be
/// reused. The hub's authenticator gets one for every WebSocket upgrade.
///
/// Its fields are public, so a test can build one:
///
/// ```
/// let req = wshub::Request {
///     method: "GET".into(),
///     path: "/ws".into(),
///     query: "user_id=alice".into(),
///     version: 1,
///     headers: vec![("Host".into(), b"example.com".to_vec())],
/// };
/// assert_eq!(req.query_param("user_id").as_deref(), Some("alice"));
/// assert_eq!(req.header("host"), Some("example.com"));
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
    /// let req = wshub::Request {
    ///     method: "GET".into(),
    ///     path: "/".into(),
    ///     query: String::new(),
    ///     version: 1,
    ///     headers: vec![("X-Token".into(), b"abc".to_vec())],
    /// };
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
    /// let req = wshub::Request {
    ///     method: "GET".into(),
    ///     path: "/".into(),
    ///     query: String::new(),
    ///     version: 1,
    ///     headers: vec![("Connection".into(), b"keep-alive, Upgrade".to_vec())],
    /// };
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

    /// The first query parameter named `name`, percent-decoded as browsers
    /// and `URLSearchParams` encode it (`application/x-www-form-urlencoded`,
    /// so `+` is a space). Names are decoded before they are compared; a
    /// parameter without `=` has the empty value.
    ///
    /// Returns `None` if the parameter is absent, or if the value of its
    /// first occurrence is not validly encoded (a bad `%` escape, or bytes
    /// that are not UTF-8). Later duplicates are never consulted, so a
    /// malformed first value cannot be papered over by a second one.
    ///
    /// ```
    /// let req = wshub::Request {
    ///     method: "GET".into(),
    ///     path: "/ws".into(),
    ///     query: "user_id=%E5%BC%A0+san&client_id&bad=%zz".into(),
    ///     version: 1,
    ///     headers: Vec::new(),
    /// };
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
    /// the handshake checks decide whether it is a valid upgrade.
    ///
    /// ```
    /// let req = wshub::Request {
    ///     method: "GET".into(),
    ///     path: "/ws".into(),
    ///     query: String::new(),
    ///     version: 1,
    ///     headers: vec![("Upgrade".into(), b"WebSocket".to_vec())],
    /// };
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
/// use wshub::__private::ws::{parse_request, HttpError};
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

/// Whether a request head that has grown from `old_len` to `buf.len()`
/// bytes is worth parsing now: its end (an empty line) has arrived, it
/// reached `max_head`, or its length crossed a power of two.
///
/// Parsing on every segment would re-parse up to `max_head` bytes for each
/// one (a head sent byte by byte: 8 KiB × 8 KiB of work). This scans only the
/// new bytes (plus three of overlap) for the empty line, and parses a still
/// partial head a logarithmic number of times, so that garbage is still
/// refused early: the total work stays linear in the head's length.
///
/// ```
/// use wshub::__private::ws::head_worth_parsing;
/// assert!(!head_worth_parsing(b"GET / HTTP/1.1\r\nHost: x", 20, 8192));
/// assert!(head_worth_parsing(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 25, 8192));
/// assert!(head_worth_parsing(b"GET / HTTP/1.1\n\n", 15, 8192));
/// ```
pub fn head_worth_parsing(buf: &[u8], old_len: usize, max_head: usize) -> bool {
    let from = old_len.saturating_sub(3).min(buf.len());
    let ended = buf[from..].windows(2).enumerate().any(|(i, w)| {
        w == b"\n\n" || (w == b"\r\n" && i + from >= 1 && buf[i + from - 1] == b'\n')
    });
    let crossed = old_len.checked_next_power_of_two() != buf.len().checked_next_power_of_two();
    ended || crossed || old_len == 0 || buf.len() >= max_head
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
pub(super) fn split_target(target: &str) -> (&str, &str) {
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
/// use wshub::__private::ws::percent_decode;
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
