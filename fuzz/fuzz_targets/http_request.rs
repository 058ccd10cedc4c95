//! The HTTP request path of the handshake: `parse_request` on arbitrary
//! bytes, then what the hub does with a parsed head (WebSocket accept, query
//! parameters, the default authenticator, the responses it writes). Checks
//! that parsing is incremental: a head that parses completely is reported
//! incomplete (never an error) for a prefix that lacks its last byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wshub::__private::ws::{
    HttpError, parse_request, percent_decode, websocket_accept, write_error,
    write_switching_protocols,
};
use wshub::auth::identity_from_query;

const MAX_HEAD: usize = 8 * 1024;

fuzz_target!(|data: &[u8]| {
    match parse_request(data, MAX_HEAD) {
        Ok(None) => assert!(data.len() < MAX_HEAD, "incomplete past the limit"),
        Err(e) => {
            let status = e.status();
            assert!(status == 400 || status == 431, "{e:?} -> {status}");
            let mut out = Vec::new();
            write_error(&mut out, status, &e.to_string());
            assert!(out.starts_with(b"HTTP/1.1 4"));
        }
        Ok(Some((req, len))) => {
            assert!(len > 0 && len <= data.len().min(MAX_HEAD), "head length {len}");
            // The same head cut one byte short was still incomplete (or, past
            // the method limit, malformed — never a different success).
            match parse_request(&data[..len - 1], MAX_HEAD) {
                Ok(None) | Err(HttpError::Malformed) => {}
                other => panic!("prefix of a complete head parsed as {other:?}"),
            }
            // ...and the head alone parses to the same request.
            let (again, len2) = parse_request(&data[..len], MAX_HEAD)
                .expect("head alone parses")
                .expect("head alone is complete");
            assert_eq!(len2, len);
            assert_eq!(again.path, req.path);
            assert_eq!(again.query, req.query);

            let _ = req.is_websocket_upgrade();
            match websocket_accept(&req) {
                Ok(accept) => {
                    assert_eq!(accept.len(), 28, "base64 of a SHA-1");
                    let mut out = Vec::new();
                    write_switching_protocols(&mut out, &accept);
                    assert!(out.starts_with(b"HTTP/1.1 101 "));
                }
                Err(e) => {
                    let mut out = Vec::new();
                    write_error(&mut out, e.status(), &e.to_string());
                    assert!(out.starts_with(b"HTTP/1.1 4"), "{e:?}");
                }
            }
            for name in ["user_id", "client_id", "user_type", "token", ""] {
                let _ = req.query_param(name);
            }
            let _ = percent_decode(&req.path);
            let _ = req.header("host");
            let _ = req.header_has_token("connection", "upgrade");
            if let Err(r) = identity_from_query(&req) {
                assert!((400..500).contains(&r.status), "{r:?}");
            }
        }
    }
});
