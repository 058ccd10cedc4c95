//! criterion micro-benchmarks of the hot-path pieces:
//! `cargo bench --bench micro` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use wshub::__private::retry::SplitMix64;
use wshub::__private::util::{RingQueue, TimerWheel};
use wshub::retry::{Jitter, RetryPolicy};
use wshub::{Hub, HubConfig, Message, Payload, Target};

fn ring(c: &mut Criterion) {
    let payload = Payload::text("hello");
    let mut q: RingQueue<Payload, 64> = RingQueue::new();
    for _ in 0..32 {
        q.push_back(payload.clone()).unwrap();
    }
    c.bench_function("ring push+pop (64 slots, half full, Payload)", |b| {
        b.iter(|| {
            q.push_back(black_box(payload.clone())).unwrap();
            black_box(q.pop_front())
        })
    });
}

/// A wheel of 512 slots with `pending` timers spread over 100 s.
fn wheel_with(pending: usize) -> (TimerWheel<u64, 512>, Instant) {
    let tick = Duration::from_millis(10);
    let start = Instant::now();
    let mut w = TimerWheel::with_capacity(tick, start, pending + 16);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..pending {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = start + Duration::from_millis(1000 + rng % 100_000);
        w.insert(at, i as u64);
    }
    (w, start)
}

fn timers(c: &mut Criterion) {
    for pending in [1usize, 1_000_000] {
        let (mut w, start) = wheel_with(pending);
        let at = start + Duration::from_secs(30);
        c.bench_function(&format!("wheel insert+cancel ({pending} pending)"), |b| {
            b.iter(|| {
                let k = w.insert(black_box(at), 7);
                black_box(w.cancel(k))
            })
        });
        c.bench_function(&format!("wheel next_deadline ({pending} pending)"), |b| {
            b.iter(|| black_box(black_box(&w).next_deadline()))
        });
        // A turn: advance one 10 ms tick; whatever fires is re-armed 100 s
        // later, so the number pending stays constant.
        let mut now = start;
        c.bench_function(&format!("wheel turn, one tick ({pending} pending)"), |b| {
            b.iter(|| {
                now += Duration::from_millis(10);
                while let Some(v) = w.poll(now) {
                    w.insert(now + Duration::from_secs(100), v);
                }
            })
        });
    }
}

/// `next_deadline` at its worst: one timer, in the slot just behind the
/// cursor, so a scan would pass every other slot first.
fn next_deadline_far(c: &mut Criterion) {
    let tick = Duration::from_millis(10);
    let start = Instant::now();
    let mut w: TimerWheel<u64, 512> = TimerWheel::with_capacity(tick, start, 1);
    w.insert(start + tick * 512, 1);
    c.bench_function("wheel next_deadline (1 pending, one rotation away)", |b| {
        b.iter(|| black_box(black_box(&w).next_deadline()))
    });
}

fn backoff(c: &mut Criterion) {
    let mut policy = RetryPolicy::default();
    policy.jitter = Jitter::None;
    let mut rng = SplitMix64::new(1);
    c.bench_function("RetryPolicy::delay_for (no jitter)", |b| {
        b.iter(|| black_box(policy.delay_for(black_box(3), &mut rng)))
    });
    policy.jitter = Jitter::Full;
    c.bench_function("RetryPolicy::delay_for (full jitter)", |b| {
        b.iter(|| black_box(policy.delay_for(black_box(3), &mut rng)))
    });
}

fn encode(c: &mut Criterion) {
    let mut msg = Message::text("bob", "hello, this is a chat message of a typical size");
    msg.sender = "alice".into();
    msg.message_id = "m-000000001".into();
    c.bench_function("Payload::json (chat message)", |b| {
        b.iter(|| black_box(Payload::json(black_box(&msg)).unwrap()))
    });
}

/// Routing to one user with four devices, on a real hub: `send` (route and
/// enqueue into four rings) and a `poll` turn that writes the four frames.
fn route(c: &mut Criterion) {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = 16;
    let mut hub = Hub::<64, 512>::bind(config).unwrap();
    let addr = hub.local_addr();
    let mut readers = Vec::new();
    for d in 0..4 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /ws?user_id=u&client_id=d{d} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        readers.push(s);
    }
    while hub.connections() < 4 {
        hub.poll(Some(Duration::from_millis(10))).unwrap();
        while hub.next_event().is_some() {}
    }
    // Drain the devices' sockets on their own threads (until the hub goes).
    let threads: Vec<_> = readers
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            })
        })
        .collect();
    let payload = Payload::json(&Message::text("u", "hello")).unwrap();
    c.bench_function("route to a user with 4 devices (send + write turn)", |b| {
        b.iter_batched(
            || (),
            |()| {
                let n = hub.send(Target::User("u"), &payload).unwrap_or(0);
                hub.poll(Some(Duration::ZERO)).unwrap();
                black_box(n)
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function(
        "route to a user with 4 devices (send only, 32 per turn)",
        |b| {
            let mut i = 0u32;
            b.iter(|| {
                let n = hub.send(Target::User("u"), &payload).unwrap_or(0);
                i += 1;
                if i.is_multiple_of(32) {
                    hub.poll(Some(Duration::ZERO)).unwrap();
                }
                black_box(n)
            })
        },
    );
    drop(hub);
    for t in threads {
        let _ = t.join();
    }
}

/// A chat message of about 1 KB, JSON as go-wsc clients send it.
fn chat_json() -> Vec<u8> {
    let mut m = Message::text("bob", "");
    m.content = (0..12)
        .map(|i| {
            format!(
                "line {i}: the sensor in room {} reads {}.{} C; ",
                i * 7,
                20 + i,
                i
            )
        })
        .collect();
    m.data = Some(serde_json::json!({"room": "lab", "tags": ["a", "b"], "seq": 42}));
    m.message_id = "3f2a9c0e7d1b4a5f".into();
    m.sender = "alice".into();
    m.create_at = "2026-11-30T16:00:00.000Z".into();
    serde_json::to_vec(&m).unwrap()
}

/// permessage-deflate: the cost and ratio of the shared compressor at each
/// level, and of inflating (sizes are printed once).
fn deflate(c: &mut Criterion) {
    use wshub::__private::ws::deflate::{Deflater, Inflater};
    let json = chat_json();
    let mut out = Vec::new();
    for level in [1, 3, 6, 9] {
        let mut d = Deflater::new(level);
        out.clear();
        d.compress(&json, &mut out);
        println!("deflate level {level}: {} B -> {} B", json.len(), out.len());
        c.bench_function(&format!("deflate/compress_1k_json_level{level}"), |b| {
            b.iter(|| {
                out.clear();
                d.compress(black_box(&json), &mut out);
            })
        });
    }
    let mut compressed = Vec::new();
    Deflater::new(3).compress(&json, &mut compressed);
    let mut inflater = Inflater::new();
    c.bench_function("deflate/inflate_1k_json", |b| {
        b.iter(|| {
            inflater
                .inflate(black_box(&compressed), 1 << 20)
                .unwrap()
                .len()
        })
    });
}

criterion_group!(
    benches,
    ring,
    timers,
    next_deadline_far,
    backoff,
    encode,
    route,
    deflate
);
criterion_main!(benches);
