//! Zero allocations per delivered message on the hub thread, counted exactly
//! by a global allocator that counts only while the hub thread asks it to.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tungstenite::Message as WsMessage;
use wshub::{DefaultHub, HubConfig, HubEvent, Message, Payload, Target};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
mod support;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// Runs `f` with allocation counting on for this thread; returns the count.
fn count_allocations(f: impl FnOnce()) -> u64 {
    counting_alloc::measure(f).0
}

/// A client on its own thread that reads (and counts text messages) until
/// `stop` is set.
fn spawn_reader(
    addr: std::net::SocketAddr,
    query: String,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    spawn_client(addr, query, stop, Some(received), false)
}

/// A client on its own thread until `stop`: counts the text messages it
/// gets (when given a counter) and, with `ack`, ACKs those that ask for it.
fn spawn_client(
    addr: std::net::SocketAddr,
    query: String,
    stop: Arc<AtomicBool>,
    received: Option<Arc<AtomicU64>>,
    ack: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws?{query}"), stream).unwrap();
        while !stop.load(Ordering::Relaxed) {
            match ws.read() {
                Ok(WsMessage::Text(t)) => {
                    if ack {
                        let m: Message = serde_json::from_str(t.as_str()).unwrap();
                        if m.require_ack {
                            let ack = format!(
                                r#"{{"message_type":"ack","message_id":"{}"}}"#,
                                m.message_id
                            );
                            ws.send(WsMessage::text(ack)).unwrap();
                        }
                    }
                    if let Some(r) = &received {
                        r.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(e) if support::is_timeout(&e) => {}
                Err(_) => break,
            }
        }
    })
}

fn wait_connected(hub: &mut DefaultHub, n: usize) {
    let mut connected = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while connected < n && Instant::now() < deadline {
        hub.poll(Some(Duration::from_millis(10))).unwrap();
        while let Some(ev) = hub.next_event() {
            connected += usize::from(matches!(ev, HubEvent::Connected { .. }));
        }
    }
    assert_eq!(connected, n);
}

#[test]
fn routing_and_delivering_allocates_nothing_on_the_hub_thread() {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = 64;
    let mut hub = DefaultHub::bind(config).unwrap();
    let addr = hub.local_addr();

    // Four users, the first with two devices; each client counts what it reads.
    const CLIENTS: usize = 5;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for i in 0..CLIENTS {
        let query = match i {
            0 => "user_id=u0&client_id=a".to_string(),
            1 => "user_id=u0&client_id=b".to_string(),
            n => format!("user_id=u{}", n - 1),
        };
        readers.push(spawn_reader(addr, query, stop.clone(), received.clone()));
    }
    wait_connected(&mut hub, CLIENTS);

    let payload = Payload::json(&Message::text("u0", "steady state")).unwrap();
    let users = ["u0", "u1", "u2", "u3"];
    // One round: each user once (u0 has two devices) and one broadcast.
    let per_round = (users.len() + 1) as u64 + CLIENTS as u64;
    let round = |hub: &mut DefaultHub| {
        for user in users {
            // Rings never fill here: the loop below waits for delivery.
            hub.send(Target::User(user), &payload).unwrap();
        }
        hub.send(Target::All, &payload).unwrap();
        hub.poll(Some(Duration::ZERO)).unwrap();
    };
    let deliver = |hub: &mut DefaultHub, rounds: u64, expected_total: u64| {
        for _ in 0..rounds {
            round(hub);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while received.load(Ordering::Relaxed) < expected_total && Instant::now() < deadline {
            hub.poll(Some(Duration::from_millis(1))).unwrap();
        }
    };

    // Warm-up: let every buffer and table reach its working size.
    deliver(&mut hub, 10, 10 * per_round);
    assert_eq!(received.load(Ordering::Relaxed), 10 * per_round);

    let rounds = 2_000;
    let mut stats_before = None;
    let allocations = count_allocations(|| {
        stats_before = Some(hub.stats().messages_out);
        let mut total = 10 * per_round;
        for _ in 0..rounds / 10 {
            total += 10 * per_round;
            deliver(&mut hub, 10, total);
        }
    });
    let delivered = hub.stats().messages_out - stats_before.unwrap();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(delivered, rounds * per_round, "every message was delivered");
    assert_eq!(
        allocations, 0,
        "{allocations} allocations on the hub thread for {delivered} deliveries"
    );
}

#[test]
fn first_try_successful_deliveries_with_retry_allocate_nothing_on_the_hub_thread() {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = 64;
    let mut hub = DefaultHub::bind(config).unwrap();
    let addr = hub.local_addr();
    let outcomes = Outcomes::watch(&mut hub);

    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    let ignored = Arc::new(AtomicU64::new(0));
    for query in [
        "user_id=r0&client_id=a",
        "user_id=r0&client_id=b",
        "user_id=r1",
    ] {
        readers.push(spawn_reader(
            addr,
            query.to_owned(),
            stop.clone(),
            ignored.clone(),
        ));
    }
    wait_connected(&mut hub, 3);

    let to_r0 = wshub::Envelope::new(Message::text("r0", "with retry")).unwrap();
    let to_r1 = wshub::Envelope::new(Message::text("r1", "with retry")).unwrap();
    let batch = |hub: &mut DefaultHub, batches: u64| {
        outcomes.batches(hub, batches, |hub, i| {
            let (user, env) = if i % 2 == 0 {
                ("r0", &to_r0)
            } else {
                ("r1", &to_r1)
            };
            hub.send_envelope_with_retry(user, env).unwrap();
        })
    };
    batch(&mut hub, 5);
    let allocations = count_allocations(|| batch(&mut hub, 200));
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(outcomes.other.load(Ordering::Relaxed), 0);
    assert_eq!(
        outcomes.first_try.load(Ordering::Relaxed),
        2050,
        "every delivery succeeded first time"
    );
    assert_eq!(
        allocations, 0,
        "{allocations} allocations on the hub thread for 2,000 deliveries"
    );
}

/// Final results as the hub reports them: first-try successes, and the
/// rest.
struct Outcomes {
    first_try: Arc<AtomicU64>,
    other: Arc<AtomicU64>,
}

impl Outcomes {
    fn watch(hub: &mut DefaultHub) -> Outcomes {
        let (first_try, other) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (f, o) = (first_try.clone(), other.clone());
        hub.on_send_result(move |_id, result| {
            let first = result.success && result.attempts.len() == 1;
            let counter = if first { &f } else { &o };
            counter.fetch_add(1, Ordering::Relaxed);
        });
        Outcomes { first_try, other }
    }

    fn ended(&self) -> u64 {
        self.first_try.load(Ordering::Relaxed) + self.other.load(Ordering::Relaxed)
    }

    /// `batches` times: ten deliveries started by `start(hub, i)`, all
    /// settled (polling) before the next ten.
    fn batches(
        &self,
        hub: &mut DefaultHub,
        batches: u64,
        mut start: impl FnMut(&mut DefaultHub, usize),
    ) {
        for _ in 0..batches {
            let target = self.ended() + 10;
            for i in 0..10 {
                start(hub, i);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.ended() < target && Instant::now() < deadline {
                hub.poll(Some(Duration::from_millis(1))).unwrap();
            }
        }
    }
}

/// The path the review found allocating: a `require_ack` delivery with
/// retry, written, ACKed by the client (a JSON frame read and matched) and
/// reported a success — with `max_retries: 10`, so results hold 11 attempts.
#[test]
fn acknowledged_deliveries_with_retry_allocate_nothing_on_the_hub_thread() {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = 64;
    config.retry.max_retries = 10;
    let mut hub = DefaultHub::bind(config).unwrap();
    let addr = hub.local_addr();
    let outcomes = Outcomes::watch(&mut hub);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [
        "user_id=r0&client_id=a",
        "user_id=r0&client_id=b",
        "user_id=r1",
    ]
    .into_iter()
    .map(|q| spawn_client(addr, q.to_owned(), stop.clone(), None, true))
    .collect();
    wait_connected(&mut hub, 3);

    // Every message gets its own (hub-assigned) id; built before counting.
    let envelopes: Vec<(&str, wshub::Envelope)> = (0..2_100)
        .map(|i| {
            let user = if i % 2 == 0 { "r0" } else { "r1" };
            let mut m = Message::text(user, "acknowledged");
            m.require_ack = true;
            (user, wshub::Envelope::new(m).unwrap())
        })
        .collect();
    let mut next = envelopes.iter();
    let mut batch = |hub: &mut DefaultHub, batches: u64| {
        outcomes.batches(hub, batches, |hub, _| {
            let (user, env) = next.next().expect("enough envelopes");
            hub.send_envelope_with_retry(user, env).unwrap();
        })
    };
    batch(&mut hub, 10);
    let allocations = count_allocations(|| batch(&mut hub, 200));
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(outcomes.other.load(Ordering::Relaxed), 0);
    assert_eq!(
        outcomes.first_try.load(Ordering::Relaxed),
        2_100,
        "every delivery ACKed first time"
    );
    assert_eq!(
        allocations, 0,
        "{allocations} allocations on the hub thread for 2,000 acknowledged deliveries"
    );
}

/// `n` raw WebSocket clients on one thread (users `prefix0`…), upgraded in
/// turn and then drained without parsing until `stop`: they only keep the
/// hub's writes flowing. A thread each would be a thousand threads.
fn spawn_drainers(
    addr: std::net::SocketAddr,
    prefix: &'static str,
    n: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut streams = Vec::with_capacity(n);
        for i in 0..n {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(
                s,
                "GET /ws?user_id={prefix}{i} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            )
            .unwrap();
            s.set_nonblocking(true).unwrap();
            streams.push(s);
        }
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            let mut idle = true;
            for s in &mut streams {
                if let Ok(k) = s.read(&mut buf) {
                    idle &= k == 0;
                }
            }
            if idle {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    })
}

/// Joining, leaving and sending to a group of 1,000 members allocate
/// nothing on the hub thread once the group and its member slab exist.
#[test]
fn group_join_leave_and_send_to_a_thousand_members_allocate_nothing() {
    const MEMBERS: usize = 1_000;
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = MEMBERS + 16;
    // Every member connects from 127.0.0.1.
    config.max_connections_per_ip = 0;
    let mut hub = DefaultHub::bind(config).unwrap();
    let addr = hub.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = spawn_drainers(addr, "m", MEMBERS + 1, stop.clone());
    let mut conns = Vec::with_capacity(MEMBERS + 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while conns.len() < MEMBERS + 1 && Instant::now() < deadline {
        hub.poll(Some(Duration::from_millis(10))).unwrap();
        while let Some(ev) = hub.next_event() {
            if let HubEvent::Connected { conn, .. } = ev {
                conns.push(conn);
            }
        }
    }
    assert_eq!(conns.len(), MEMBERS + 1, "every client connected");
    let mover = conns.pop().unwrap();
    for &c in &conns {
        assert_eq!(hub.join_group(c, "big"), Ok(true));
    }
    let payload = Payload::json(&Message::text("", "to the group")).unwrap();
    // One round: the mover leaves and joins again (2 groups: it is also
    // alone in "side", which must survive), and the group gets one message.
    let round = |hub: &mut DefaultHub| {
        assert!(hub.leave_group(mover, "big"));
        assert_eq!(hub.join_group(mover, "side"), Ok(false));
        assert_eq!(hub.join_group(mover, "big"), Ok(true));
        let before = hub.stats().messages_out;
        let queued = hub.send(Target::Group("big"), &payload).unwrap();
        assert_eq!(queued, MEMBERS + 1);
        let deadline = Instant::now() + Duration::from_secs(20);
        while hub.stats().messages_out < before + queued as u64 && Instant::now() < deadline {
            hub.poll(Some(Duration::from_millis(1))).unwrap();
        }
        queued as u64
    };
    hub.join_group(mover, "side").unwrap();
    hub.join_group(mover, "big").unwrap();
    let mut warm = 0;
    for _ in 0..5 {
        warm += round(&mut hub);
    }
    assert_eq!(warm, 5 * (MEMBERS as u64 + 1));
    let before = hub.stats().messages_out;
    let mut sent = 0;
    let allocations = count_allocations(|| {
        for _ in 0..50 {
            sent += round(&mut hub);
        }
    });
    let delivered = hub.stats().messages_out - before;
    stop.store(true, Ordering::Relaxed);
    drainer.join().unwrap();
    assert_eq!(delivered, sent, "every member got every message");
    assert_eq!(hub.stats().memberships, MEMBERS as u64 + 2);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations on the hub thread for 50 joins, leaves and group sends"
    );
}

/// The path users take most: a client's JSON message relayed by the hub
/// (`relay: true`) — to a user, to a user's two devices, to everyone
/// (`"*"`), and with `require_ack` through the receiver's ACK and the
/// `send_result` notice back to the sender — allocates nothing on the hub
/// thread after warm-up.
#[test]
fn relayed_client_messages_allocate_nothing_on_the_hub_thread() {
    let (allocations, s) = relay_batches(relay_config());
    assert_eq!(
        allocations, 0,
        "{allocations} allocations on the hub thread for 300 relayed batches ({} relayed, {} pool misses)",
        s.relayed, s.relay_pool_misses
    );
}

/// With `cluster` set (a Redis of the test's own, no other hub): the
/// relays to this hub's users allocate nothing, as without a cluster; the
/// broadcast, which every hub must get, is copied once into its publish.
#[test]
fn in_a_cluster_only_what_goes_to_other_hubs_allocates() {
    let Some(redis) = support::redis::Redis::start() else {
        return;
    };
    let mut config = relay_config();
    let mut cluster = wshub::config::ClusterConfig::new(redis.url());
    // No presence refresh falls inside the measurement.
    cluster.presence_ttl = Duration::from_secs(600);
    config.cluster = Some(cluster);
    let (allocations, s) = relay_batches(config);
    assert_eq!(s.cluster_up, 1, "linked to Redis");
    assert_eq!(
        allocations, 300,
        "{allocations} allocations on the hub thread for 300 relayed batches, one `\"*\"` each ({} relayed, {} published)",
        s.relayed, s.cluster_sent
    );
}

fn relay_config() -> HubConfig {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = 64;
    config.relay = true;
    config.client_broadcast = true;
    config
}

/// 30 warm-up and 300 measured batches from one client: to a user, to a
/// user's two devices, to `"*"` and with `require_ack` through ACK. Checks
/// everything arrived; returns the hub thread's allocations over the
/// measured batches and the hub's stats.
fn relay_batches(config: HubConfig) -> (u64, wshub::Stats) {
    let mut hub = DefaultHub::bind(config).unwrap();
    let addr = hub.local_addr();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = vec![
        spawn_reader(
            addr,
            "user_id=u0&client_id=a".into(),
            stop.clone(),
            received.clone(),
        ),
        spawn_reader(
            addr,
            "user_id=u0&client_id=b".into(),
            stop.clone(),
            received.clone(),
        ),
        spawn_reader(addr, "user_id=u1".into(), stop.clone(), received.clone()),
    ];
    threads.push(spawn_client(
        addr,
        "user_id=u2".into(),
        stop.clone(),
        Some(received.clone()),
        true,
    ));
    // The sender: a batch on each signal, then it waits for its send_result.
    // Bounded: an array channel, so signalling allocates nothing.
    let (go, batches) = crossbeam_channel::bounded::<()>(1024);
    let results = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, results) = (stop.clone(), results.clone());
        std::thread::spawn(move || {
            let stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let (mut ws, _) =
                tungstenite::client(format!("ws://{addr}/ws?user_id=src"), stream).unwrap();
            let batch = [
                // The client's own ids and trace id are borrowed too.
                r#"{"message_type":"text","receiver":"u1","content":"to a user","id":"c-1","trace_id":"tr-1"}"#,
                r#"{"message_type":"text","receiver":"u0","content":"to two devices","message_id":"own-1"}"#,
                r#"{"message_type":"text","receiver":"*","content":"to everyone"}"#,
                r#"{"message_type":"text","receiver":"u2","content":"ack me","require_ack":true}"#,
            ];
            while !stop.load(Ordering::Relaxed) {
                if batches.recv_timeout(Duration::from_millis(20)).is_ok() {
                    for m in batch {
                        ws.send(WsMessage::text(m)).unwrap();
                    }
                }
                match ws.read() {
                    Ok(WsMessage::Text(t)) if t.as_str().contains("send_result") => {
                        results.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) if support::is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
        })
    };
    wait_connected(&mut hub, 5);
    // Per batch: u1 twice, u0's devices twice each, u2 twice (one ACKed).
    const PER_BATCH: u64 = 8;
    let mut sent = 0u64;
    let mut run = |hub: &mut DefaultHub, n: u64| {
        for _ in 0..n {
            sent += 1;
            go.send(()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while (received.load(Ordering::Relaxed) < sent * PER_BATCH
                || results.load(Ordering::Relaxed) < sent)
                && Instant::now() < deadline
            {
                hub.poll(Some(Duration::from_millis(1))).unwrap();
                while hub.next_event().is_some() {}
            }
        }
    };
    run(&mut hub, 30);
    let allocations = count_allocations(|| run(&mut hub, 300));
    let s = hub.stats();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    sender.join().unwrap();
    assert_eq!(
        received.load(Ordering::Relaxed),
        330 * PER_BATCH,
        "every relay arrived"
    );
    assert_eq!(
        results.load(Ordering::Relaxed),
        330,
        "every sender was told"
    );
    assert_eq!(
        s.deliveries_succeeded, 330,
        "every require_ack message was ACKed"
    );
    (allocations, s)
}

/// A host that handles raw messages itself (JSON protocol off): each text
/// and binary message arrives as a pooled `Payload` and is echoed with
/// `Hub::send` (a reference count), and WebSocket pings are answered with
/// pooled pongs — nothing allocates per message.
#[test]
fn raw_events_echoed_by_the_host_and_pongs_allocate_nothing() {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = 16;
    let mut hub = DefaultHub::bind(config).unwrap();
    hub.set_json_protocol(false);
    let addr = hub.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicU64::new(0));
    let (go, rounds) = crossbeam_channel::bounded::<()>(1024);
    let client = {
        let (stop, echoed) = (stop.clone(), echoed.clone());
        std::thread::spawn(move || {
            let stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let (mut ws, _) =
                tungstenite::client(format!("ws://{addr}/ws?user_id=raw"), stream).unwrap();
            while !stop.load(Ordering::Relaxed) {
                if rounds.recv_timeout(Duration::from_millis(5)).is_ok() {
                    ws.send(WsMessage::text("a text message")).unwrap();
                    ws.send(WsMessage::binary(vec![1u8, 2, 3])).unwrap();
                    ws.send(WsMessage::Ping(vec![9u8; 8].into())).unwrap();
                }
                match ws.read() {
                    // Text, binary and the pong: three per round.
                    Ok(WsMessage::Text(_) | WsMessage::Binary(_) | WsMessage::Pong(_)) => {
                        echoed.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) if support::is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
        })
    };
    wait_connected(&mut hub, 1);
    let mut sent = 0u64;
    let mut run = |hub: &mut DefaultHub, n: u64| {
        for _ in 0..n {
            sent += 1;
            go.send(()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while echoed.load(Ordering::Relaxed) < sent * 3 && Instant::now() < deadline {
                hub.poll(Some(Duration::from_millis(1))).unwrap();
                while let Some(ev) = hub.next_event() {
                    let (conn, payload) = match ev {
                        HubEvent::Text { conn, text, .. } => (conn, text),
                        HubEvent::Binary { conn, data, .. } => (conn, data),
                        _ => continue,
                    };
                    hub.send(Target::Conn(conn), &payload).unwrap();
                }
            }
        }
    };
    // A long warm-up: the frame pool grows, a buffer at a time, whenever
    // the few slots it probes are all still held, until it is large enough
    // for the most frames held at once (timing decides when: 30 rounds
    // left one growth to the measured run in about one run of four).
    run(&mut hub, 300);
    let allocations = count_allocations(|| run(&mut hub, 500));
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    assert_eq!(
        echoed.load(Ordering::Relaxed),
        800 * 3,
        "every echo and pong"
    );
    assert_eq!(
        allocations, 0,
        "{allocations} allocations on the hub thread for 500 rounds of text, binary and ping"
    );
}
