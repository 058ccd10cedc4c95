//! The seed's failure handlers, in Rust, on a running hub: a logging handler,
//! metrics with periodic statistics, an offline store and a timeout alerter.
//!
//! ```text
//! cargo run --example failure_handlers -- [--addr HOST:PORT] [--demo]
//! ```
//!
//! With `--demo` it also connects a few clients of its own, provokes each
//! kind of failure (offline user, missed ACK, broken connection, full ring),
//! prints the statistics and exits.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wshub::{
    ConnectionErrorHandler, DefaultHub, Failure, FailureReason, HubConfig, Message,
    QueueFullHandler, SendFailureHandler, TimeoutHandler, TimeoutKind, UserOfflineHandler,
};

/// go-wsc's `BasicFailureHandler`: log every failure and branch on its reason.
struct BasicFailureHandler;

impl SendFailureHandler for BasicFailureHandler {
    fn handle_send_failure(
        &self,
        msg: &Message,
        recipient: &str,
        reason: FailureReason,
        err: &Failure,
    ) {
        println!(
            "send failed: to={recipient} reason={} id={} ({err})",
            reason.as_str(),
            msg.message_id
        );
        match reason {
            FailureReason::UserOffline => {
                println!("  -> keep as offline message: {}", msg.message_id)
            }
            FailureReason::QueueFull => {
                println!("  -> queue full, retry later: {}", msg.message_id)
            }
            FailureReason::Timeout(_) => println!("  -> timed out: {}", msg.message_id),
            _ => println!("  -> generic failure"),
        }
    }
}

/// go-wsc's `MetricsFailureHandler`: counters by reason, statistics every
/// 10 failures and on demand.
struct MetricsFailureHandler {
    started: Instant,
    total: AtomicU64,
    queue_full: AtomicU64,
    offline: AtomicU64,
    timeout: AtomicU64,
    conn_error: AtomicU64,
}

impl MetricsFailureHandler {
    fn new() -> Self {
        MetricsFailureHandler {
            started: Instant::now(),
            total: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            offline: AtomicU64::new(0),
            timeout: AtomicU64::new(0),
            conn_error: AtomicU64::new(0),
        }
    }

    fn print_statistics(&self) {
        let total = self.total.load(Ordering::Relaxed).max(1) as f64;
        let pct = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64 / total * 100.0;
        println!(
            "failure statistics after {:.1}s: total={} queue_full={:.0}% offline={:.0}% timeout={:.0}% conn_error={:.0}%",
            self.started.elapsed().as_secs_f64(),
            self.total.load(Ordering::Relaxed),
            pct(&self.queue_full),
            pct(&self.offline),
            pct(&self.timeout),
            pct(&self.conn_error),
        );
    }
}

impl SendFailureHandler for MetricsFailureHandler {
    fn handle_send_failure(
        &self,
        _msg: &Message,
        _to: &str,
        reason: FailureReason,
        _err: &Failure,
    ) {
        let n = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let counter = match reason {
            FailureReason::QueueFull => &self.queue_full,
            FailureReason::UserOffline => &self.offline,
            FailureReason::Timeout(_) => &self.timeout,
            FailureReason::ConnError => &self.conn_error,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(10) {
            self.print_statistics();
        }
    }
}

/// go-wsc's `DatabaseOfflineHandler`, with a map standing in for the
/// database: at most `max_per_user` messages per user, oldest dropped first.
struct OfflineStore {
    max_per_user: usize,
    messages: Mutex<HashMap<String, Vec<Message>>>,
}

impl UserOfflineHandler for OfflineStore {
    fn handle_user_offline(&self, msg: &Message, user_id: &str, _err: &Failure) {
        let mut all = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        let list = all.entry(user_id.to_owned()).or_default();
        if list.len() >= self.max_per_user {
            list.remove(0);
        }
        list.push(msg.clone());
        println!(
            "stored offline message {} for {user_id} ({} kept)",
            msg.message_id,
            list.len()
        );
    }
}

/// A spill-over for full rings (go-wsc used Redis).
struct QueueFullSpill;

impl QueueFullHandler for QueueFullSpill {
    fn handle_queue_full(&self, msg: &Message, recipient: &str, queue_type: &str, _err: &Failure) {
        println!(
            "queue full ({queue_type}) for {recipient}: spilled {}",
            msg.message_id
        );
    }
}

/// go-wsc's `ConnectionErrorHandler`: counts breaks per device.
#[derive(Default)]
struct ConnectionErrors {
    per_client: Mutex<HashMap<String, u32>>,
}

impl ConnectionErrorHandler for ConnectionErrors {
    fn handle_connection_error(&self, msg: &Message, client_id: &str, err: &Failure) {
        let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(client_id.to_owned()).or_default();
        *n += 1;
        println!(
            "connection of {client_id} broke with {} pending ({err}); break #{n}",
            msg.message_id
        );
    }
}

/// go-wsc's `TimeoutHandler`: alerts when one recipient times out too often.
struct TimeoutAlerter {
    threshold: u32,
    counts: Mutex<HashMap<(String, TimeoutKind), u32>>,
}

impl TimeoutHandler for TimeoutAlerter {
    fn handle_timeout(
        &self,
        msg: &Message,
        recipient: &str,
        kind: TimeoutKind,
        d: Duration,
        _err: &Failure,
    ) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry((recipient.to_owned(), kind)).or_default();
        *n += 1;
        println!(
            "{} for {recipient} after {d:?}: {}",
            kind.as_str(),
            msg.message_id
        );
        if *n >= self.threshold {
            println!("ALERT: {recipient} hit {} {n} times", kind.as_str());
            *n = 0;
        }
    }
}

fn main() -> ExitCode {
    let mut addr = "127.0.0.1:8080".to_owned();
    let mut demo = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => match args.next() {
                Some(v) => addr = v,
                None => return usage("--addr needs a value"),
            },
            "--demo" => demo = true,
            other => return usage(&format!("unknown option {other:?}")),
        }
    }
    let mut config = HubConfig::default();
    config.listen = match addr.parse() {
        Ok(a) => a,
        Err(_) => return usage(&format!("{addr:?} is not HOST:PORT")),
    };
    config.ack_timeout = Duration::from_millis(300);
    config.retry.base_delay = Duration::from_millis(50);
    config.retry.max_retries = 2;
    let mut hub = match DefaultHub::bind(config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let metrics = Arc::new(MetricsFailureHandler::new());
    hub.add_send_failure_handler(BasicFailureHandler);
    hub.add_send_failure_handler(metrics.clone());
    hub.add_queue_full_handler(QueueFullSpill);
    hub.add_user_offline_handler(Arc::new(OfflineStore {
        max_per_user: 1000,
        messages: Mutex::default(),
    }));
    hub.add_connection_error_handler(Arc::new(ConnectionErrors::default()));
    hub.add_timeout_handler(TimeoutAlerter {
        threshold: 5,
        counts: Mutex::default(),
    });
    hub.on_send_result(|id, r| {
        println!(
            "{id}: success={} attempts={} retries={} time={:?} error={:?}",
            r.success,
            r.attempts.len(),
            r.total_retries,
            r.total_time,
            r.final_error.map(|e| e.name())
        );
    });
    println!("hub with failure handlers on ws://{}/ws", hub.local_addr());
    if demo {
        let addr = hub.local_addr();
        let handle = hub.handle();
        std::thread::spawn(move || run_demo(addr, handle));
    }
    let result = hub.run(|hub, event| {
        if let wshub::HubEvent::Message { message, .. } = event {
            let to = message.receiver.clone();
            let _ = hub.send_to_user_with_retry(&to, &message);
        }
    });
    metrics.print_statistics();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("error: {why}\nusage: failure_handlers [--addr HOST:PORT] [--demo]");
    ExitCode::from(2)
}

/// Provokes each failure kind against the hub, then shuts it down.
fn run_demo(addr: std::net::SocketAddr, handle: wshub::HubHandle) {
    let connect = |query: &str| {
        let stream = std::net::TcpStream::connect(addr).expect("connect");
        tungstenite::client(format!("ws://{addr}/ws?{query}"), stream)
            .expect("handshake")
            .0
    };
    // 1. An offline user.
    let r = handle
        .send_to_user_with_retry("nobody", &Message::text("nobody", "are you there?"))
        .expect("hub running")
        .wait();
    println!(
        "offline send: success={} error={:?}",
        r.success, r.final_error
    );
    // 2. A device that never ACKs: resent, then ack_timeout.
    let mut quiet = connect("user_id=quiet");
    let mut m = Message::text("quiet", "please ack");
    m.message_id = "demo-ack".into();
    m.require_ack = true;
    let pending = handle
        .send_to_user_with_retry("quiet", &m)
        .expect("hub running");
    let _ = quiet.read();
    let r = pending.wait();
    println!(
        "unacked send: attempts={} error={:?}",
        r.attempts.len(),
        r.final_error
    );
    // 3. A device that disconnects before it ACKs: conn_error.
    let mut flaky = connect("user_id=flaky&client_id=phone");
    m.message_id = "demo-conn".into();
    let pending = handle
        .send_to_user_with_retry("flaky", &m)
        .expect("hub running");
    let _ = flaky.read();
    drop(flaky);
    let r = pending.wait();
    println!(
        "broken connection: attempts={} error={:?}",
        r.attempts.len(),
        r.final_error
    );
    let _ = handle.shutdown();
}
