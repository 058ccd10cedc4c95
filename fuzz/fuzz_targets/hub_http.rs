//! The handshake and health routes of a real hub: the input is sent as the
//! first bytes of a loopback connection (then a FIN), and the hub, driven on
//! this thread, must answer with a well-formed HTTP status line (or nothing,
//! for an incomplete head), close, and keep no connection behind.
//!
//! The first byte picks the hub: odd for one in `auth.mode: jwt` (so the
//! token path, `?token=` and `Authorization: Bearer`, sits behind every
//! upgrade), even for the query-string default.
#![no_main]

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wshub::{DefaultHub, HubConfig};

/// Statuses the hub may answer a request with.
const STATUSES: &[&[u8]] = &[
    b"101", b"200", b"400", b"401", b"403", b"404", b"405", b"426", b"431", b"503",
];

fn hub(jwt: bool) -> (DefaultHub, SocketAddr) {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_message_size = 4096;
    config.handshake_timeout = Duration::from_secs(2);
    if jwt {
        config.auth.mode = Some(wshub::config::AuthMode::Jwt);
        config.auth.jwt.secret = Some("fuzz-secret-fuzz-secret-fuzz-secret!".into());
        config.auth.jwt.audience = Some("fuzz".into());
    }
    let mut hub = DefaultHub::bind(config).expect("hub binds");
    hub.add_page("/", "text/html", &b"<p>demo</p>"[..]);
    let addr = hub.local_addr();
    (hub, addr)
}

thread_local! {
    static QUERY_HUB: RefCell<(DefaultHub, SocketAddr)> = RefCell::new(hub(false));
    static JWT_HUB: RefCell<(DefaultHub, SocketAddr)> = RefCell::new(hub(true));
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let which = if pick & 1 == 1 { &JWT_HUB } else { &QUERY_HUB };
    which.with(|cell| {
        let (hub, addr) = &mut *cell.borrow_mut();
        let mut client = TcpStream::connect(*addr).expect("loopback connect");
        // Small inputs fit the socket buffers; larger ones are cut (the hub
        // reads at most an 8 KiB head anyway).
        client.set_nonblocking(true).unwrap();
        let _ = client.write(data);
        let _ = client.shutdown(Shutdown::Write);

        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        let mut eof = false;
        for _ in 0..2000 {
            hub.poll(Some(Duration::from_millis(1))).expect("poll");
            while hub.next_event().is_some() {}
            match client.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => response.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    eof = true;
                    break;
                }
                Err(e) => panic!("reading the response: {e}"),
            }
        }
        assert!(eof, "the hub kept the connection open after the client's FIN");
        if !response.is_empty() {
            assert!(
                response.starts_with(b"HTTP/1.1 ")
                    && response.len() >= 12
                    && STATUSES.contains(&&response[9..12]),
                "bad status line: {:?}",
                String::from_utf8_lossy(&response[..response.len().min(80)])
            );
        }
        assert_eq!(hub.connections(), 0, "an upgraded connection was left open");
    });
});
