//! Cross-hub delivery against same-hub delivery: two hubs (each on its own
//! thread, built-in relay on) linked by a `redis-server` this bench starts
//! on a free port; clients relay JSON messages by `receiver`.
//!
//! ```sh
//! cargo bench --bench cluster                 # 3 rounds
//! cargo bench --bench cluster -- --rounds 1   # quick look
//! ```
//!
//! - **latency**: one pair, strictly one message in flight: alice sends to
//!   bob, bob's client answers to alice; the round trip is two deliveries.
//!   p50/p99 of the round trip over 2,000 of them.
//! - **throughput**: 8 pairs, each sender keeps up to 64 messages in flight
//!   (it waits for its receiver to catch up): deliveries per second over
//!   20,000 per pair.
//!
//! Same-hub: sender and receiver on hub A. Cross-hub: sender on A,
//! receiver on B. Everything runs on loopback and stops by itself; the
//! figures are for comparing the two paths on one machine, not absolute.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tungstenite::{Message as WsMessage, WebSocket};
use wshub::config::ClusterConfig;
use wshub::{DefaultHub, HubConfig, HubHandle};

const PAIRS: usize = 8;
const PER_PAIR: u64 = 20_000;
const WINDOW: u64 = 64;
const ROUND_TRIPS: usize = 2_000;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> (Redis, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (apt install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Redis(child), port)
}

struct HubThread {
    addr: SocketAddr,
    handle: HubHandle,
    thread: Option<JoinHandle<wshub::Stats>>,
}

impl HubThread {
    fn start(redis_port: u16, node: &str) -> HubThread {
        let mut c = HubConfig::default();
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.relay = true;
        c.max_connections_per_ip = 0;
        let mut cluster = ClusterConfig::new(format!("redis://127.0.0.1:{redis_port}"));
        cluster.node_id = node.to_owned();
        c.cluster = Some(cluster);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::spawn(move || {
            let mut hub = DefaultHub::bind(c).expect("hub binds");
            tx.send((hub.local_addr(), hub.handle())).unwrap();
            hub.run(|_, _| {}).expect("hub runs");
            hub.stats()
        });
        let (addr, handle) = rx.recv().unwrap();
        HubThread {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> wshub::Stats {
        self.handle.shutdown().unwrap();
        self.thread.take().unwrap().join().unwrap()
    }
}

type Ws = WebSocket<TcpStream>;

fn connect(addr: SocketAddr, user: &str) -> Ws {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let (ws, _) = tungstenite::client(format!("ws://{addr}/ws?user_id={user}"), stream).unwrap();
    ws
}

fn send_to(ws: &mut Ws, to: &str, n: u64) {
    let msg = format!(
        r#"{{"message_type":"text","receiver":"{to}","content":"m{n}","data":{{"seq":{n},"payload":"0123456789abcdef0123456789abcdef"}}}}"#
    );
    ws.send(WsMessage::text(msg)).unwrap();
}

fn recv_text(ws: &mut Ws) {
    loop {
        match ws.read().unwrap() {
            WsMessage::Text(_) => return,
            _ => continue,
        }
    }
}

/// Waits until `hub` sees `n` devices on other hubs (the pairs' receivers).
fn wait_known(addr: SocketAddr, field_at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TcpStream::connect(addr).unwrap();
        use std::io::{Read, Write};
        s.write_all(b"GET /health/failure-stats HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        let n = body
            .split("\"cluster_remote_devices\":")
            .nth(1)
            .and_then(|r| r.split([',', '}']).next())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if n >= field_at_least {
            return;
        }
        assert!(Instant::now() < deadline, "hubs never saw each other");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// p50 and p99 of round trips between alice on `a` and bob on `b`.
fn latency(a: SocketAddr, b: SocketAddr, tag: &str) -> (Duration, Duration) {
    let (alice_name, bob_name) = (format!("la-{tag}"), format!("lb-{tag}"));
    let mut alice = connect(a, &alice_name);
    let mut bob = connect(b, &bob_name);
    if a != b {
        wait_known(a, 1);
        wait_known(b, 1);
    }
    let mut rtts = Vec::with_capacity(ROUND_TRIPS);
    for n in 0..(ROUND_TRIPS as u64 + 200) {
        let t = Instant::now();
        send_to(&mut alice, &bob_name, n);
        recv_text(&mut bob);
        send_to(&mut bob, &alice_name, n);
        recv_text(&mut alice);
        if n >= 200 {
            rtts.push(t.elapsed());
        }
    }
    rtts.sort();
    (rtts[rtts.len() / 2], rtts[rtts.len() * 99 / 100])
}

/// Deliveries per second, `PAIRS` senders on `a` to receivers on `b`.
fn throughput(a: SocketAddr, b: SocketAddr, tag: &str) -> f64 {
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for p in 0..PAIRS {
        receivers.push(connect(b, &format!("tr-{tag}-{p}")));
        senders.push(connect(a, &format!("ts-{tag}-{p}")));
    }
    if a != b {
        wait_known(a, PAIRS as u64);
    }
    let start = Instant::now();
    let mut threads = Vec::new();
    for (p, (mut tx, mut rx)) in senders.into_iter().zip(receivers).enumerate() {
        let got = Arc::new(AtomicU64::new(0));
        let got2 = got.clone();
        threads.push(std::thread::spawn(move || {
            for _ in 0..PER_PAIR {
                recv_text(&mut rx);
                got2.fetch_add(1, Ordering::Release);
            }
        }));
        let to = format!("tr-{tag}-{p}");
        threads.push(std::thread::spawn(move || {
            for n in 0..PER_PAIR {
                while n - got.load(Ordering::Acquire) >= WINDOW {
                    std::thread::yield_now();
                }
                send_to(&mut tx, &to, n);
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    (PAIRS as u64 * PER_PAIR) as f64 / start.elapsed().as_secs_f64()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One path's figures over the rounds.
struct Row {
    name: &'static str,
    rate: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
}

impl Row {
    fn new(name: &'static str) -> Row {
        Row {
            name,
            rate: Vec::new(),
            p50: Vec::new(),
            p99: Vec::new(),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(3usize);
    let (_redis, port) = start_redis();
    let hub_a = HubThread::start(port, "bench-a");
    let hub_b = HubThread::start(port, "bench-b");
    let mut rows = [Row::new("same hub"), Row::new("cross hub")];
    for round in 0..rounds {
        for (i, row) in rows.iter_mut().enumerate() {
            let b = if i == 0 { hub_a.addr } else { hub_b.addr };
            let tag = format!("{round}{i}");
            let (p50, p99) = latency(hub_a.addr, b, &tag);
            let rate = throughput(hub_a.addr, b, &tag);
            row.rate.push(rate);
            row.p50.push(p50.as_secs_f64() * 1e6);
            row.p99.push(p99.as_secs_f64() * 1e6);
            eprintln!(
                "round {round} {}: {rate:.0} deliveries/s, round trip p50 {p50:?} p99 {p99:?}",
                row.name
            );
        }
    }
    println!("| path | deliveries/s (8 pairs, 64 in flight) | round trip p50 | round trip p99 |");
    println!("|---|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} µs | {:.0} µs |",
            r.name,
            median(&r.rate),
            median(&r.p50),
            median(&r.p99)
        );
    }
    let (same, cross) = (&rows[0], &rows[1]);
    println!(
        "\ncross/same: throughput {:.2}x, p50 +{:.0} µs, p99 +{:.0} µs (per round trip of two deliveries)",
        median(&cross.rate) / median(&same.rate),
        median(&cross.p50) - median(&same.p50),
        median(&cross.p99) - median(&same.p99),
    );
    let a = hub_a.stop();
    let b = hub_b.stop();
    println!(
        "hub A: {} published, {} unavailable; hub B: {} received",
        a.cluster_sent, a.cluster_unavailable, b.cluster_received
    );
}
