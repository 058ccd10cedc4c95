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

#[test]
fn an_idle_connection_costs_at_most_4_kib_of_heap() {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = IDLE + 16;
    config.max_connections_per_ip = 0;
    config.max_connections_per_user = IDLE;
    let mut hub = DefaultHub::bind(config).unwrap();
    let addr = hub.local_addr();

    // Clients on another thread: raw handshakes, then silence.
    let clients = std::thread::spawn(move || {
        let mut socks = Vec::with_capacity(IDLE);
        for i in 0..IDLE {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(
                s,
                "GET /ws?user_id=u{}&client_id=d{i} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n",
                i % 50
            )
            .unwrap();
            socks.push(s);
        }
        for s in &mut socks {
            let mut head = [0u8; 129];
            s.read_exact(&mut head).unwrap();
            assert!(head.starts_with(b"HTTP/1.1 101"));
        }
        socks
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
    let socks = clients.join().unwrap();
    assert_eq!(open, IDLE);
    assert_eq!(hub.connections(), IDLE);

    let per_conn = held as f64 / IDLE as f64;
    println!("heap held by the hub for {IDLE} idle connections: {held} B ({per_conn:.0} B each)");
    assert!(
        per_conn <= 4096.0,
        "{per_conn:.0} B of heap per idle connection"
    );
    drop(socks);
}
