use super::request::{MAX_HEADERS, MAX_METHOD_LEN, split_target};
use super::response::reason_phrase;
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
        write_error(&mut out, err.status(), &err.to_string());
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
        assert!(text.contains("\r\nUpgrade: websocket\r\n"), "{text}");
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
    write_response(&mut out, 7, "a\r\nSet-Cookie: x", b"");
    assert_eq!(
        out,
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: a  Set-Cookie: x\r\n\
          Content-Length: 0\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    );

    let mut out = Vec::new();
    write_response(&mut out, 204, "", b"");
    assert_eq!(
        out,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nCache-Control: no-store\r\n\
          Connection: close\r\n\r\n"
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
        // Only a 426 names the protocol to upgrade to.
        let version = resp
            .headers
            .iter()
            .find(|h| h.name == "Sec-WebSocket-Version");
        assert_eq!(
            version.map(|h| h.value),
            (status == 426).then_some(&b"13"[..])
        );
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
