//! Chaos soak over real sockets: hundreds of clients exchange `require_ack`
//! messages through a fault-injecting proxy (added latency, stalls, resets
//! in mid-frame, half-open connections, slow readers), reconnecting with
//! their own client ids, for a bounded time. Then every message the hub
//! accepted is reconciled: delivered and ACKed, or reported failed to its
//! sender (the relay's result callback) with a reason. None may be lost
//! silently, none reported delivered that its receiver never saw and ACKed.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `WSHUB_SOAK_SECS` | 20 | seconds of traffic (the drain adds a few) |
//! | `WSHUB_SOAK_CLIENTS` | 200 | clients (two devices per user) |
//! | `WSHUB_SOAK_SEED` | 1 | the proxy's and clients' seed |
//!
//! The reconciliation report is printed (`-- --nocapture` to see it on a
//! pass); RELIABILITY.md has the figures of a CI-length and a longer run.

mod common;
mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{stats, test_config, try_connect};
use support::is_timeout;
use support::proxy::{Counts, Proxy, Rng};
use tungstenite::Message as WsMessage;
use wshub::reason::FailureReason;
use wshub::{Hub, HubConfig, HubEvent, HubHandle, Message, SendResult};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A message the hub accepted from a client.
#[derive(Debug, Clone)]
struct Accepted {
    token: String,
    to: String,
}

/// What the relay (the hub's host) saw: accepted messages and every result.
#[derive(Default)]
struct RelayLog {
    accepted: HashMap<String, Accepted>,
    /// Sends the hub refused to start (reported to the sender at once).
    refused: HashMap<String, String>,
    results: HashMap<String, Vec<SendResult>>,
}

impl RelayLog {
    /// The final result of `id`: the last one, unless it says the offline
    /// store kept the message (`user_offline` and `stored_offline`: its
    /// replay, expiry or eviction comes later).
    fn outcome(&self, id: &str) -> Option<&SendResult> {
        self.results
            .get(id)
            .and_then(|v| v.last())
            .filter(|r| !(r.stored_offline && r.final_error == Some(FailureReason::UserOffline)))
    }

    fn resolved(&self) -> bool {
        self.accepted
            .keys()
            .all(|id| self.refused.contains_key(id) || self.outcome(id).is_some())
    }
}

/// What the receivers saw of one token.
#[derive(Default)]
struct Seen {
    users: HashSet<String>,
    /// Message ids it came under, and those the receiver ACKed.
    ids: HashSet<String>,
    acked: HashSet<String>,
    /// Receipts by device (more than one: a resend).
    receipts: HashMap<usize, u32>,
}

/// What the clients did.
#[derive(Default)]
struct Ledger {
    /// Tokens written by their senders (not all reach the hub).
    sent: HashSet<String>,
    seen: HashMap<String, Seen>,
}

#[derive(Default)]
struct ClientCounts {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    breaks: AtomicU64,
    same_id_reconnects: AtomicU64,
    away: AtomicU64,
    skipped_acks: AtomicU64,
}

/// The hub on its own thread, relaying every client message with retry
/// (honouring `require_ack`) as a host would, and logging every result.
struct RelayHub {
    addr: SocketAddr,
    handle: HubHandle,
    log: Arc<Mutex<RelayLog>>,
    thread: Option<JoinHandle<()>>,
}

impl RelayHub {
    fn start(config: HubConfig) -> RelayHub {
        let log: Arc<Mutex<RelayLog>> = Arc::default();
        let (ready_tx, ready) = crossbeam_channel::bounded(1);
        let results = log.clone();
        let relay = log.clone();
        let thread = std::thread::spawn(move || {
            let mut hub = Hub::<16>::bind(config).expect("hub binds");
            hub.on_send_result(move |_, r| {
                if let Some(id) = &r.message_id {
                    let mut log = results.lock().unwrap();
                    log.results
                        .entry(id.to_string())
                        .or_default()
                        .push(r.clone());
                }
            });
            ready_tx.send((hub.local_addr(), hub.handle())).unwrap();
            hub.run(|hub, ev| {
                if let HubEvent::Message { message, .. } = ev
                    && message.message_type == "text"
                    && !message.receiver.is_empty()
                {
                    let id = message.message_id.clone();
                    relay.lock().unwrap().accepted.insert(
                        id.clone(),
                        Accepted {
                            token: message.content.clone(),
                            to: message.receiver.clone(),
                        },
                    );
                    let to = message.receiver.clone();
                    if let Err(e) = hub.send_to_user_with_retry(&to, &message) {
                        relay.lock().unwrap().refused.insert(id, e.to_string());
                    }
                }
            })
            .expect("hub runs");
        });
        let (addr, handle) = ready.recv_timeout(Duration::from_secs(30)).unwrap();
        RelayHub {
            addr,
            handle,
            log,
            thread: Some(thread),
        }
    }
}

impl Drop for RelayHub {
    fn drop(&mut self) {
        let _ = self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Shared {
    proxy: SocketAddr,
    users: usize,
    seed: u64,
    sending: AtomicBool,
    stop: AtomicBool,
    ledger: Mutex<Ledger>,
    counts: ClientCounts,
}

/// One device: connects through the proxy, sends tokens to other users,
/// reads and ACKs what it gets, reconnects (same client id) whenever its
/// connection breaks, and now and then while it still works.
fn client(idx: usize, s: &Shared) {
    let user = format!("u{}", idx / 2);
    let query = format!("user_id={user}&client_id=d{}", idx % 2);
    let mut rng = Rng::new(s.seed ^ (idx as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut n = 0u64;
    let deaf = idx % 25 == 7;
    // Old connections kept open (unread) after a same-id reconnect.
    let mut zombies: Vec<(Instant, common::Client)> = Vec::new();
    let mut broke = false;
    'connect: while !s.stop.load(Ordering::Relaxed) {
        zombies.retain(|(until, _)| Instant::now() < *until);
        if std::mem::take(&mut broke) {
            s.counts.breaks.fetch_add(1, Ordering::Relaxed);
            if s.sending.load(Ordering::Relaxed) && rng.chance(30) {
                // Gone for longer than the hub's client timeout: a
                // half-open connection of ours is found by its silence.
                let back = Instant::now() + rng.millis(3_000, 8_000);
                while Instant::now() < back && !s.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let mut ws = match try_connect(s.proxy, &query) {
            Ok(ws) => ws,
            Err(_) => {
                s.counts.connect_failures.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(rng.millis(20, 200));
                continue;
            }
        };
        s.counts.connects.fetch_add(1, Ordering::Relaxed);
        let _ = ws
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(20)));
        let _ = ws.get_ref().set_write_timeout(Some(Duration::from_secs(2)));
        let mut next_send = Instant::now() + rng.millis(50, 500);
        loop {
            if s.stop.load(Ordering::Relaxed) {
                break 'connect;
            }
            match ws.read() {
                Ok(WsMessage::Text(t)) => {
                    let Ok(m) = serde_json::from_str::<Message>(t.as_str()) else {
                        continue;
                    };
                    if m.message_type != "text" || !m.content.starts_with("tok-") {
                        continue;
                    }
                    {
                        let mut l = s.ledger.lock().unwrap();
                        let seen = l.seen.entry(m.content.clone()).or_default();
                        seen.users.insert(user.clone());
                        seen.ids.insert(m.message_id.clone());
                        *seen.receipts.entry(idx).or_default() += 1;
                    }
                    if deaf || !rng.chance(97) {
                        // A receiver that forgets to ACK: ack_timeout, retries
                        // (a deaf device never ACKs: its user's messages fail).
                        s.counts.skipped_acks.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let ack = format!(
                        r#"{{"message_type":"ack","message_id":"{}"}}"#,
                        m.message_id
                    );
                    match ws.send(WsMessage::text(ack)) {
                        Ok(()) => {}
                        Err(e) if is_timeout(&e) => {}
                        Err(_) => {
                            broke = true;
                            continue 'connect;
                        }
                    }
                    let mut l = s.ledger.lock().unwrap();
                    if let Some(seen) = l.seen.get_mut(&m.content) {
                        seen.acked.insert(m.message_id.clone());
                    }
                }
                Ok(WsMessage::Close(_)) => {
                    broke = true;
                    continue 'connect;
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => {
                    broke = true;
                    continue 'connect;
                }
            }
            if s.sending.load(Ordering::Relaxed) && Instant::now() >= next_send {
                n += 1;
                let token = format!("tok-{idx}-{n}");
                let mut to = rng.below(s.users as u64) as usize;
                if to == idx / 2 {
                    to = (to + 1) % s.users;
                }
                s.ledger.lock().unwrap().sent.insert(token.clone());
                let json = format!(
                    r#"{{"message_type":"text","receiver":"u{to}","content":"{token}","require_ack":true}}"#
                );
                match ws.send(WsMessage::text(json)) {
                    Ok(()) => {}
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => {
                        broke = true;
                        continue 'connect;
                    }
                }
                next_send = Instant::now() + rng.millis(100, 700);
                if rng.chance(1) {
                    // Away for a while: long enough, with the user's other
                    // device away too, to be stored offline and expire.
                    s.counts.away.fetch_add(1, Ordering::Relaxed);
                    drop(ws);
                    std::thread::sleep(rng.millis(1_000, 6_000));
                    continue 'connect;
                }
                if rng.chance(1) {
                    // Connect again as the same device while this one lives.
                    s.counts.same_id_reconnects.fetch_add(1, Ordering::Relaxed);
                    zombies.push((Instant::now() + rng.millis(200, 3_000), ws));
                    continue 'connect;
                }
            }
            match ws.flush() {
                Ok(()) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => {
                    broke = true;
                    continue 'connect;
                }
            }
        }
    }
}

fn soak_config() -> HubConfig {
    let mut c = test_config();
    c.ack_timeout = Duration::from_millis(800);
    c.retry.max_retries = 3;
    c.retry.base_delay = Duration::from_millis(100);
    c.retry.max_delay = Duration::from_millis(800);
    c.send_timeout = Duration::from_secs(3);
    // A peer that vanished without a FIN is found by its silence.
    c.client_timeout = Duration::from_secs(4);
    c.heartbeat_interval = Duration::from_secs(1);
    c.offline_queue_per_user = 50;
    c.offline_ttl = Duration::from_secs(3);
    c
}

#[test]
fn every_message_is_delivered_and_acked_or_reported_failed_under_network_faults() {
    let secs = env("WSHUB_SOAK_SECS", 20);
    let clients = env("WSHUB_SOAK_CLIENTS", 200).max(4) as usize;
    let seed = env("WSHUB_SOAK_SEED", 1);
    let started = Instant::now();
    let config = soak_config();
    let client_timeout = config.client_timeout;
    let hub = RelayHub::start(config);
    let mut proxy = Proxy::start(hub.addr, seed, client_timeout * 2);
    let shared = Arc::new(Shared {
        proxy: proxy.addr,
        users: clients / 2,
        seed,
        sending: AtomicBool::new(true),
        stop: AtomicBool::new(false),
        ledger: Mutex::default(),
        counts: ClientCounts::default(),
    });
    let threads: Vec<JoinHandle<()>> = (0..clients)
        .map(|i| {
            let s = shared.clone();
            std::thread::Builder::new()
                .name(format!("client-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || client(i, &s))
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));

    // Drain: no new messages, no new faults; wait until every accepted
    // message has its final result and the hub holds nothing.
    shared.sending.store(false, Ordering::Relaxed);
    proxy.calm();
    let drain_started = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_stats;
    loop {
        last_stats = stats(hub.addr);
        let quiet = last_stats["pending_deliveries"] == 0 && last_stats["offline_held"] == 0;
        if quiet && hub.log.lock().unwrap().resolved() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let drain = drain_started.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    proxy.stop();

    let report = reconcile(&hub.log.lock().unwrap(), &shared.ledger.lock().unwrap());
    let p = proxy.counts();
    let c = &shared.counts;
    let g = |n: &AtomicU64| n.load(Ordering::Relaxed);
    println!(
        "chaos soak: {clients} clients, {secs} s of traffic + {:.1} s drain, seed {seed}, \
         {:.1} s in all",
        drain.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "  faults: {} proxied connections: {} clean, {} latency, {} slow readers, {} stalls, \
         {} resets mid-frame, {} half-open; {} same-id reconnects, {} devices away for \
         seconds, {} skipped ACKs",
        Counts::get(&p.connections),
        Counts::get(&p.clean),
        Counts::get(&p.latency),
        Counts::get(&p.slow),
        Counts::get(&p.stalls),
        Counts::get(&p.resets),
        Counts::get(&p.half_open),
        g(&c.same_id_reconnects),
        g(&c.away),
        g(&c.skipped_acks),
    );
    println!(
        "  clients: {} connects, {} failed connects, {} broken connections",
        g(&c.connects),
        g(&c.connect_failures),
        g(&c.breaks)
    );
    println!("{report}");
    println!(
        "  hub: retries {}, retry successes {}, failures reported {} (queue_full {}, \
         user_offline {}, conn_error {}, ack_timeout {}, send_timeout {}, \
         connection_timeout {}), offline stored {} / replayed {} / expired {}, \
         idle timeouts {}, handler drops {}",
        last_stats["retries"],
        last_stats["retry_successes"],
        last_stats["total_failures"],
        last_stats["queue_full_count"],
        last_stats["offline_count"],
        last_stats["conn_error_count"],
        last_stats["ack_timeouts"],
        last_stats["send_timeouts"],
        last_stats["connection_timeouts"],
        last_stats["offline_stored"],
        last_stats["offline_replayed"],
        last_stats["offline_expired"],
        last_stats["idle_timeouts"],
        last_stats["handler_dropped"],
    );
    assert!(report.accepted > 0, "no traffic reached the hub");
    assert_eq!(report.unresolved, 0, "messages without a final result");
    assert_eq!(report.false_successes, 0, "successes nobody saw and ACKed");
    assert_eq!(
        report.phantoms, 0,
        "tokens seen that the hub never accepted"
    );
    assert_eq!(report.reasonless, 0, "failures without a reason");
}

#[derive(Debug, Default)]
struct Report {
    sent: usize,
    accepted: usize,
    lost_before_hub: usize,
    delivered: usize,
    delivered_via_store: usize,
    retried_successes: usize,
    failed: HashMap<&'static str, usize>,
    failed_but_seen: usize,
    refused: usize,
    unresolved: usize,
    false_successes: usize,
    phantoms: usize,
    reasonless: usize,
    duplicates: usize,
    total_retries: u64,
    examples: Vec<String>,
}

fn reconcile(log: &RelayLog, ledger: &Ledger) -> Report {
    let mut r = Report {
        sent: ledger.sent.len(),
        accepted: log.accepted.len(),
        ..Report::default()
    };
    let accepted_tokens: HashSet<&str> = log.accepted.values().map(|a| a.token.as_str()).collect();
    r.lost_before_hub = ledger
        .sent
        .iter()
        .filter(|t| !accepted_tokens.contains(t.as_str()))
        .count();
    r.phantoms = ledger
        .seen
        .keys()
        .filter(|t| !accepted_tokens.contains(t.as_str()))
        .count();
    r.duplicates = ledger
        .seen
        .values()
        .flat_map(|s| s.receipts.values())
        .map(|&n| n as usize - 1)
        .sum();
    for (id, a) in &log.accepted {
        for res in log.results.get(id).into_iter().flatten() {
            r.total_retries += u64::from(res.total_retries);
        }
        if log.refused.contains_key(id) {
            r.refused += 1;
            continue;
        }
        let Some(res) = log.outcome(id) else {
            r.unresolved += 1;
            if r.examples.len() < 10 {
                r.examples.push(format!(
                    "unresolved {id} ({}): results {:?}",
                    a.token,
                    log.results.get(id)
                ));
            }
            continue;
        };
        let seen = ledger
            .seen
            .get(&a.token)
            .filter(|s| s.users.contains(&a.to) && s.ids.contains(id));
        if res.success {
            if seen.is_some_and(|s| s.acked.contains(id)) {
                r.delivered += 1;
                r.delivered_via_store += usize::from(res.replayed);
                r.retried_successes += usize::from(res.total_retries > 0);
            } else {
                r.false_successes += 1;
                if r.examples.len() < 10 {
                    r.examples.push(format!(
                        "false success {id} ({} to {}): {res:?}, seen {}",
                        a.token,
                        a.to,
                        seen.is_some()
                    ));
                }
            }
        } else {
            let reason = res.final_error.map_or("none", FailureReason::name);
            if res.final_error.is_none() {
                r.reasonless += 1;
            }
            *r.failed.entry(reason).or_default() += 1;
            r.failed_but_seen += usize::from(seen.is_some());
        }
    }
    r
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let failed: usize = self.failed.values().sum();
        let mut reasons: Vec<_> = self.failed.iter().collect();
        reasons.sort();
        writeln!(
            f,
            "  messages: {} sent, {} lost before reaching the hub (sender's connection \
             broke), {} accepted by the hub",
            self.sent, self.lost_before_hub, self.accepted
        )?;
        writeln!(
            f,
            "  accepted: {} delivered and ACKed ({} after retries, {} by way of the offline \
             store), {failed} reported failed {reasons:?} ({} of them seen by the receiver, \
             unconfirmed), {} refused at once; {} duplicate receipts; {} retries",
            self.delivered,
            self.retried_successes,
            self.delivered_via_store,
            self.failed_but_seen,
            self.refused,
            self.duplicates,
            self.total_retries
        )?;
        write!(
            f,
            "  silent losses: {}, false successes: {}, phantoms: {}, failures without a \
             reason: {}",
            self.unresolved, self.false_successes, self.phantoms, self.reasonless
        )?;
        for e in &self.examples {
            write!(f, "\n    {e}")?;
        }
        Ok(())
    }
}
