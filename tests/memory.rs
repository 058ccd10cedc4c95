//! Heap held per idle connection inside the library, measured exactly: a
//! global allocator tracks the live bytes allocated on the hub thread.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use wshub::{DefaultHub, HubConfig, HubEvent};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const IDLE: usize = 500;

/// Heap the hub holds per idle connection, every client offering
/// `extensions` (a `Sec-WebSocket-Extensions` value) if given; also whether
/// the hub accepted it.
fn idle_heap_per_conn(extensions: Option<&'static str>) -> (f64, bool) {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = IDLE + 16;
    config.max_connections_per_user = IDLE;
    let mut hub = DefaultHub::bind(config).unwrap();
    let addr = hub.local_addr();

    // Clients on another thread: raw handshakes, then silence.
    let clients = std::thread::spawn(move || {
        let mut socks = Vec::with_capacity(IDLE);
        let offer = extensions
            .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
            .unwrap_or_default();
        for i in 0..IDLE {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(
                s,
                "GET /ws?user_id=u{}&client_id=d{i} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n{offer}\r\n",
                i % 50
            )
            .unwrap();
            socks.push(s);
        }
        let mut accepted = true;
        for s in &mut socks {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            assert!(head.starts_with(b"HTTP/1.1 101"));
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            accepted &= head.contains("sec-websocket-extensions: permessage-deflate");
        }
        (socks, accepted)
    });

    let mut open = 0;
    let (_, held) = counting_alloc::measure(|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while open < IDLE && Instant::now() < deadline {
            hub.poll(Some(Duration::from_millis(5))).unwrap();
            while let Some(ev) = hub.next_event() {
                if matches!(ev, HubEvent::Connected { .. }) {
                    open += 1;
                }
            }
        }
        // Let the 101 responses drain so only idle state remains.
        for _ in 0..20 {
            hub.poll(Some(Duration::from_millis(1))).unwrap();
        }
    });
    let (socks, accepted) = clients.join().unwrap();
    assert_eq!(open, IDLE);
    assert_eq!(hub.connections(), IDLE);
    drop(socks);
    (held as f64 / IDLE as f64, accepted)
}

#[test]
fn an_idle_connection_costs_at_most_4_kib_of_heap() {
    let (per_conn, _) = idle_heap_per_conn(None);
    println!("heap held by the hub per idle connection: {per_conn:.0} B");
    assert!(
        per_conn <= 4096.0,
        "{per_conn:.0} B of heap per idle connection"
    );
}

/// permessage-deflate keeps no per-connection compression state: an idle
/// connection that negotiated it costs (almost) what a plain one does.
#[test]
fn compression_adds_under_1_kib_per_idle_connection() {
    let (plain, plain_accepted) = idle_heap_per_conn(None);
    let (deflate, accepted) = idle_heap_per_conn(Some(
        "permessage-deflate; client_max_window_bits, permessage-deflate",
    ));
    assert!(!plain_accepted);
    assert!(accepted, "permessage-deflate was not negotiated");
    println!(
        "heap per idle connection: {plain:.0} B plain, {deflate:.0} B with permessage-deflate"
    );
    assert!(
        deflate <= plain + 1024.0,
        "{deflate:.0} B with compression vs {plain:.0} B without"
    );
}
