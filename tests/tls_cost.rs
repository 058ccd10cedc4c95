//! What a `wss://` connection costs the hub thread, counted exactly by a
//! global allocator: heap held per idle TLS connection, and allocations per
//! delivered message once warm (rustls' buffered API allocates per record;
//! the README's TLS section says where).
#![cfg(feature = "tls")]

mod common;

mod support;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tls::{TestCa, tls_stream, wss_connect};
use tungstenite::Message as WsMessage;
use wshub::config::TlsConfig;
use wshub::{DefaultHub, HubConfig, HubEvent, Message, Payload, Target};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const IDLE: usize = 300;

/// The allocator's counters are process-wide: one measurement at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn config(ca: &TestCa, max: usize) -> HubConfig {
    let (cert, key, _) = ca.issue("server", "localhost");
    let mut c = HubConfig::default();
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.tls = Some(TlsConfig::new(cert, key));
    c.tls_listen = "127.0.0.1:0".parse().unwrap();
    c.max_connections = max + 16;
    // Every client connects from 127.0.0.1.
    c.max_connections_per_ip = 0;
    c.max_connections_per_user = max;
    c
}

fn poll_until(hub: &mut DefaultHub, n: usize) -> usize {
    let mut open = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while open < n && Instant::now() < deadline {
        hub.poll(Some(Duration::from_millis(5))).unwrap();
        while let Some(ev) = hub.next_event() {
            open += usize::from(matches!(ev, HubEvent::Connected { .. }));
        }
    }
    open
}

/// Heap the hub thread holds per idle, upgraded `wss://` connection
/// (everything: slot share, rustls session, its buffers, the session
/// resumption cache entry). Printed for the README; bounded so a
/// regression shows.
#[test]
fn an_idle_tls_connection_costs_a_few_kib_of_heap() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ca = TestCa::new("idle");
    let mut hub = DefaultHub::bind(config(&ca, IDLE)).unwrap();
    let addr = hub.tls_local_addr().unwrap();
    let client = ca.client_config(None);
    let clients = std::thread::spawn(move || {
        let mut socks = Vec::with_capacity(IDLE);
        for i in 0..IDLE {
            let mut s = tls_stream(addr, client.clone()).unwrap();
            write!(
                s,
                "GET /ws?user_id=u{}&client_id=d{i} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n",
                i % 50
            )
            .unwrap();
            let mut head = [0u8; 129];
            s.read_exact(&mut head).unwrap();
            assert!(head.starts_with(b"HTTP/1.1 101"));
            socks.push(s);
        }
        socks
    });
    let mut open = 0;
    let (_, held) = counting_alloc::measure(|| {
        open = poll_until(&mut hub, IDLE);
        for _ in 0..20 {
            hub.poll(Some(Duration::from_millis(1))).unwrap();
        }
    });
    let socks = clients.join().unwrap();
    assert_eq!(open, IDLE);
    let per_conn = held as f64 / IDLE as f64;
    println!("heap held for {IDLE} idle TLS connections: {held} B ({per_conn:.0} B each)");
    // Measured 7.8 KiB: the plain connection's share, the boxed rustls
    // session, and the 4 KiB record buffer rustls keeps between reads.
    assert!(
        per_conn <= 10.0 * 1024.0,
        "{per_conn:.0} B per idle TLS connection"
    );
    drop(socks);
}

/// Allocations per delivered message over TLS, warm: one message per turn,
/// so each is a TLS record of its own, and rustls' buffered API allocates
/// that record's buffer (nothing else does: the plain path's zero stays).
#[test]
fn tls_delivery_allocations_are_bounded_per_message() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ca = TestCa::new("alloc");
    let mut hub = DefaultHub::bind(config(&ca, 8)).unwrap();
    let addr = hub.tls_local_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (received, stop, client) = (received.clone(), stop.clone(), ca.client_config(None));
        std::thread::spawn(move || {
            let mut ws = wss_connect(addr, "user_id=r", client).unwrap();
            ws.get_mut()
                .sock
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                match ws.read() {
                    Ok(WsMessage::Text(_)) => {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) if support::is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
        })
    };
    assert_eq!(poll_until(&mut hub, 1), 1);
    let payload = Payload::json(&Message::text("r", "steady state over TLS")).unwrap();
    let mut sent = 0u64;
    let mut deliver = |hub: &mut DefaultHub, n: u64| {
        for _ in 0..n {
            hub.send(Target::User("r"), &payload).unwrap();
            sent += 1;
            // One message a turn: the worst case, a record each.
            let deadline = Instant::now() + Duration::from_secs(10);
            while received.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
                hub.poll(Some(Duration::from_millis(1))).unwrap();
            }
        }
    };
    deliver(&mut hub, 50);
    let n = 1000;
    let (allocations, _) = counting_alloc::measure(|| deliver(&mut hub, n));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(received.load(Ordering::Relaxed), 50 + n);
    let per = allocations as f64 / n as f64;
    println!("{allocations} allocations on the hub thread for {n} TLS deliveries ({per:.2} each)");
    assert!(allocations <= n, "{per:.2} allocations per TLS delivery");
}
