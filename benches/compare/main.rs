//! wshub side by side with tokio-tungstenite and fastwebsockets.
//!
//! ```sh
//! cargo bench --bench compare                    # everything, 3 rounds
//! cargo bench --bench compare -- --quick         # 1 round, short windows
//! cargo bench --bench compare -- --only echo,idle --rounds 5 --servers wshub,tt
//! cargo bench --bench compare -- --only group,deflate   # groups; compression
//! cargo bench --bench compare -- --only tls      # wss:// echo and idle, wshub vs tt
//! cargo bench --bench compare -- --only relay --in-flight 1,8
//! ```
//!
//! Every server runs in its own process (this binary, `serve NAME MODE`),
//! pinned to core 0 with `taskset`; the load client runs here, pinned to
//! core 1. For every scenario and round the servers take turns (the order
//! rotates each round) and each gets a fresh process; the table shows
//! medians over the rounds and the ratio wshub / peer from the same run.
//! Everything targets 127.0.0.1 and stops by itself.
//!
//! The `tls` scenarios run echo and idle over `wss://` with a certificate
//! made for the run (`tls.rs`), wshub against tokio-tungstenite behind
//! tokio-rustls (fastwebsockets is left out of them).
//!
//! `COMPARE_WRAP="valgrind --tool=callgrind"` runs each server under a
//! profiler (then only the profile means anything, not the figures).

mod alloc;
mod loadgen;
mod relay;
mod servers;
mod tls;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use loadgen::{Loadgen, Measured, Setup, proc_cpu, proc_cpu_split};

#[global_allocator]
static GLOBAL: alloc::Tracking = alloc::Tracking;

const SERVERS: [&str; 3] = ["wshub", "tt", "fws"];
/// The servers of the `wss://` scenarios (tokio-tungstenite behind
/// tokio-rustls; fastwebsockets has no TLS server here).
const TLS_SERVERS: [&str; 2] = ["wshub", "tt"];

fn label(server: &str) -> &'static str {
    match server {
        "wshub" => "wshub",
        "tt" => "tokio-tungstenite",
        "fws" => "fastwebsockets",
        _ => "?",
    }
}

struct Opts {
    rounds: usize,
    window: Duration,
    warmup: Duration,
    only: Vec<String>,
    servers: Vec<String>,
    pin: bool,
    fanout: Vec<usize>,
    /// The certificate of the `tls` scenarios (made only when they run).
    tls: Option<tls::Files>,
    /// Messages in flight per user in the relay scenarios.
    in_flight: Vec<usize>,
}

/// A server process under test.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

struct ServerStats {
    heap: f64,
    queue_full: f64,
    lagged: f64,
}

impl Server {
    fn start(o: &Opts, name: &str, mode: &str, track_heap: bool) -> Server {
        let pin = o.pin;
        let exe = std::env::current_exe().expect("current exe");
        // COMPARE_WRAP="valgrind --tool=callgrind" profiles the servers.
        let wrap = std::env::var("COMPARE_WRAP").unwrap_or_default();
        let mut wrap = wrap.split_whitespace();
        let mut cmd = if let Some(tool) = wrap.next() {
            let mut c = Command::new(tool);
            c.args(wrap).arg(exe);
            c
        } else if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(["serve", name, mode]);
        if track_heap {
            cmd.arg("--track-heap");
        }
        if let Some(files) = &o.tls {
            cmd.env(tls::DIR_VAR, &files.dir);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start server");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("server announces its port");
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("server {name} said {line:?}"));
        Server {
            child,
            stdin,
            stdout,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn stats(&mut self) -> ServerStats {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "stats").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        ServerStats {
            heap: field("heap"),
            queue_full: field("queue_full"),
            lagged: field("lagged"),
        }
    }

    fn rss(&self) -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb * 1024.0)
    }

    fn cpu(&self) -> f64 {
        proc_cpu(&format!("/proc/{}/stat", self.child.id()))
    }

    /// CPU seconds so far in user space and in the kernel.
    fn cpu_split(&self) -> (f64, f64) {
        proc_cpu_split(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Stops the server before the client closes, so the TIME_WAIT states
    /// land on its side (a fresh port every run) rather than on the
    /// client's ports. Closing stdin makes it exit cleanly (a profiler then
    /// writes its output); it is killed if it has not within 30 s.
    fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One measurement, every figure a scenario may report.
type Rec = BTreeMap<&'static str, f64>;

fn measured(m: &Measured, server_cpu: f64) -> Rec {
    Rec::from([
        ("rate", m.rate),
        ("p50", m.p50_us),
        ("p99", m.p99_us),
        ("client_cpu", m.client_cpu),
        ("server_cpu", server_cpu),
        // Throughput per second of server CPU: robust to other processes
        // taking turns on the server's core (this machine is shared).
        ("per_cpu", m.rate / server_cpu),
        // The same, inverted: server CPU time per message.
        ("cpu_us", server_cpu * 1e6 / m.rate),
        ("missing", m.missing as f64),
        ("sent", m.sent as f64),
        ("stray", m.stray as f64),
        ("wire", m.wire_per_delivery),
        // Server CPU per delivery, in nanoseconds.
        ("ns_per_deliv", server_cpu * 1e9 / m.rate),
    ])
}

/// Opens `n` connections to `s`: `wss://` when `tls`.
fn connect(o: &Opts, s: &Server, n: usize, tls: bool, limit: Duration) -> Loadgen {
    let lg = match o.tls.as_ref().filter(|_| tls) {
        Some(files) => Loadgen::connect_tls(s.addr, n, limit, files.client_config()),
        None => Loadgen::connect(s.addr, n, limit),
    };
    lg.expect("connect")
}

fn run_echo(o: &Opts, server: &str, conns: usize, size: usize, tls: bool) -> Rec {
    let mode = if tls { "tls-echo" } else { "echo" };
    let s = Server::start(o, server, mode, false);
    let mut lg = connect(o, &s, conns, tls, Duration::from_secs(20));
    let (t0, c0) = (Instant::now(), s.cpu());
    let m = lg.echo(size, o.warmup, o.window).expect("echo");
    let cpu = (s.cpu() - c0) / t0.elapsed().as_secs_f64();
    s.stop();
    measured(&m, cpu)
}

fn run_broadcast(o: &Opts, server: &str, receivers: usize) -> Rec {
    let s = Server::start(o, server, "broadcast", false);
    let mut lg = connect(o, &s, receivers + 1, false, Duration::from_secs(60));
    let (t0, c0) = (Instant::now(), s.cpu());
    let m = lg
        .broadcast(64, 4, None, 0.0, o.warmup, o.window)
        .expect("broadcast");
    let cpu = (s.cpu() - c0) / t0.elapsed().as_secs_f64();
    s.stop();
    measured(&m, cpu)
}

/// A send to a group of `members` among `conns` receivers: connection 0
/// sends, every `conns / members`-th other connection is in the group
/// (spread over the server's slots, not a block). `members == conns` with
/// the broadcast server is the broadcast to all, for comparison.
fn run_group(o: &Opts, server: &str, members: usize, conns: usize) -> Rec {
    let all = members == conns;
    let step = conns / members.max(1);
    let member = move |i: usize| i > 0 && (i - 1).is_multiple_of(step) && (i - 1) / step < members;
    let query = move |i: usize| {
        if member(i) {
            "group_id=g".to_owned()
        } else {
            String::new()
        }
    };
    let mode = if all { "broadcast" } else { "group" };
    let s = Server::start(o, server, mode, false);
    let setup = Setup {
        query: &query,
        deflate: false,
    };
    let mut lg =
        Loadgen::connect_with(s.addr, conns + 1, Duration::from_secs(60), &setup).expect("connect");
    if !all {
        lg.set_members(member);
    }
    let (t0, c0) = (Instant::now(), s.cpu());
    let m = lg
        .broadcast(64, 4, None, 0.0, o.warmup, o.window)
        .expect("group send");
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = (s.cpu() - c0) / elapsed;
    s.stop();
    let mut r = measured(&m, cpu);
    // Server CPU per group send (µs): what grows with the members only.
    let sends_per_s = m.sent as f64 / o.window.as_secs_f64();
    r.insert("us_per_send", cpu * 1e6 / sends_per_s);
    r
}

/// A chat-like JSON body of about `len` bytes (compresses 3-5x, like the
/// telemetry and chat traffic permessage-deflate is for).
fn json_body(len: usize) -> Vec<u8> {
    let mut out = String::from(",\"type\":\"telemetry\",\"readings\":[");
    let mut x: u32 = 12345;
    let mut i = 0;
    while out.len() < len.saturating_sub(40) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let v = (x >> 16) % 1000;
        out += &format!(
            "{{\"sensor\":\"site-{}-dev-{}\",\"temp\":{}.{},\"status\":\"ok\"}},",
            i % 7,
            i,
            v / 10,
            v % 10
        );
        i += 1;
    }
    out.pop();
    out += "]}";
    out.into_bytes()
}

/// Broadcast of 1 KiB JSON to `receivers` that offer permessage-deflate
/// (`compressed`) or not; bytes read per delivery and server CPU per
/// delivery. fastwebsockets has no permessage-deflate and sits it out.
fn run_deflate(o: &Opts, server: &str, receivers: usize, compressed: bool) -> Rec {
    let s = Server::start(o, server, "deflate", false);
    let setup = Setup {
        query: &|_| String::new(),
        deflate: compressed,
    };
    let mut lg = Loadgen::connect_with(s.addr, receivers + 1, Duration::from_secs(60), &setup)
        .expect("connect");
    let negotiated = lg.deflated();
    assert_eq!(
        negotiated,
        if compressed { receivers + 1 } else { 0 },
        "{server}: permessage-deflate accepted by {negotiated} connections"
    );
    lg.set_body(json_body(1024));
    let (t0, c0) = (Instant::now(), s.cpu());
    let m = lg
        .broadcast(0, 4, None, 0.0, o.warmup, o.window)
        .expect("deflate broadcast");
    let cpu = (s.cpu() - c0) / t0.elapsed().as_secs_f64();
    s.stop();
    if compressed {
        assert!(lg.inflated() > 0, "{server}: nothing was inflated");
    }
    measured(&m, cpu)
}

/// Closed-loop JSON relay between 100 users in pairs, `in_flight`
/// messages each, after a check that the server stamps as wshub does.
fn run_relay(o: &Opts, server: &str, in_flight: usize) -> Rec {
    let s = Server::start(o, server, "relay", false);
    check_relay(server, s.addr);
    let mut lg = Loadgen::connect(s.addr, 100, Duration::from_secs(20)).expect("connect");
    let (t0, (u0, k0)) = (Instant::now(), s.cpu_split());
    let segs0 = tcp_segments();
    let m = lg.relay(512, in_flight, o.warmup, o.window).expect("relay");
    let secs = t0.elapsed().as_secs_f64();
    let (u1, k1) = s.cpu_split();
    let segs1 = tcp_segments();
    s.stop();
    let mut r = measured(&m, (u1 - u0 + k1 - k0) / secs);
    // The kernel's share per message: the system calls (one read, one
    // write per message at one in flight) are the same for every server.
    r.insert("sys_us", (k1 - k0) / secs * 1e6 / m.rate);
    // Segments that carried no data (pure ACKs), per data segment, on the
    // whole machine (only this run talks): a server that writes a reply
    // long after the read makes both ends send and handle extra ACKs.
    if let (Some((out0, data0)), Some((out1, data1))) = (segs0, segs1) {
        let data = data1.saturating_sub(data0).max(1) as f64;
        let pure = out1
            .saturating_sub(out0)
            .saturating_sub(data1.saturating_sub(data0)) as f64;
        r.insert("pure_acks", pure / data);
    }
    r
}

/// TCP segments sent on this machine, all and those carrying data
/// (`Tcp: OutSegs` of /proc/net/snmp, `TcpExt: TCPOrigDataSent` of
/// /proc/net/netstat); `None` where /proc does not say.
fn tcp_segments() -> Option<(u64, u64)> {
    // Each file has a header line of names and a line of values per group.
    let field = |file: &str, group: &str, name: &str| -> Option<u64> {
        let text = std::fs::read_to_string(file).ok()?;
        let mut lines = text.lines().filter(|l| l.starts_with(group));
        let (names, values) = (lines.next()?, lines.next()?);
        let at = names.split_whitespace().position(|n| n == name)?;
        values.split_whitespace().nth(at)?.parse().ok()
    };
    Some((
        field("/proc/net/snmp", "Tcp:", "OutSegs")?,
        field("/proc/net/netstat", "TcpExt:", "TCPOrigDataSent")?,
    ))
}

/// One message from `check-a` to `check-b` through `server`: it must
/// arrive stamped (sender, sender_type, a message id, create_at) with the
/// client's data, so that every server is measured doing the same work.
fn check_relay(server: &str, addr: SocketAddr) {
    use tungstenite::client::IntoClientRequest;
    let connect = |user: &str| {
        let stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let req = format!("ws://{addr}/ws?user_id={user}")
            .into_client_request()
            .unwrap();
        tungstenite::client(req, stream).expect("handshake").0
    };
    let mut a = connect("check-a");
    let mut b = connect("check-b");
    // The peers register a user once its handshake is done: give them a turn.
    std::thread::sleep(Duration::from_millis(50));
    let sent = r#"{"message_type":"text","receiver":"check-b","data":{"text":"hi"}}"#;
    a.send(tungstenite::Message::text(sent)).unwrap();
    let got = loop {
        match b.read().expect("the relayed message") {
            tungstenite::Message::Text(t) => break t.to_string(),
            _ => continue,
        }
    };
    let v: serde_json::Value = serde_json::from_str(&got).expect("JSON");
    let ok = v["sender"] == "check-a"
        && v["sender_type"] == "user"
        && v["receiver"] == "check-b"
        && v["message_type"] == "text"
        && v["data"]["text"] == "hi"
        && v["message_id"].as_str().is_some_and(|id| id.len() == 24)
        && v["create_at"].as_str().is_some_and(|t| t.len() == 24)
        && got.starts_with(r#"{"message_id":""#);
    assert!(ok, "{server} relayed {got}");
}

fn run_idle(o: &Opts, server: &str, n: usize, tls: bool) -> Rec {
    let mode = if tls { "tls-echo" } else { "echo" };
    let mut s = Server::start(o, server, mode, true);
    std::thread::sleep(Duration::from_millis(200));
    let (rss0, heap0) = (s.rss(), s.stats().heap);
    let lg = connect(o, &s, n, tls, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    let (rss1, heap1) = (s.rss(), s.stats().heap);
    s.stop();
    drop(lg);
    let n = n as f64;
    Rec::from([
        ("rss_per_conn", (rss1 - rss0) / n),
        ("heap_per_conn", (heap1 - heap0) / n),
        ("heap_total_per_conn", heap1 / n),
        ("rss_total", rss1),
    ])
}

/// Open-loop broadcast to `receivers`, a `slow_share` of which stop reading.
fn run_storm(o: &Opts, server: &str, receivers: usize, slow_share: f64) -> Rec {
    let mut s = Server::start(o, server, "broadcast", false);
    let mut lg = connect(o, &s, receivers + 1, false, Duration::from_secs(60));
    let before = s.stats();
    // A long warm-up: the slow clients' socket buffers fill first, then
    // their rings (or broadcast backlogs).
    let m = lg
        .broadcast(
            16384,
            0,
            Some(100.0),
            slow_share,
            Duration::from_secs(5),
            o.window * 2,
        )
        .expect("storm");
    let after = s.stats();
    s.stop();
    let mut r = measured(&m, f64::NAN);
    r.insert("queue_full", after.queue_full - before.queue_full);
    r.insert("lagged", after.lagged - before.lagged);
    r
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Results: scenario → server → rounds.
type Results = BTreeMap<(usize, String), BTreeMap<String, Vec<Rec>>>;

fn med(results: &Results, key: &(usize, String), server: &str, field: &str) -> f64 {
    results
        .get(key)
        .and_then(|m| m.get(server))
        .map_or(f64::NAN, |recs| {
            median(recs.iter().filter_map(|r| r.get(field).copied()).collect())
        })
}

fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v >= 100_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("serve") {
        if args.iter().any(|a| a == "--track-heap") {
            alloc::enable();
        }
        if let Err(e) = servers::serve(&args[1], &args[2]) {
            eprintln!("server {}: {e}", args[1]);
            std::process::exit(1);
        }
        return;
    }
    let mut o = Opts {
        rounds: 3,
        window: Duration::from_secs(2),
        warmup: Duration::from_millis(500),
        only: vec![
            "echo".into(),
            "broadcast".into(),
            "relay".into(),
            "idle".into(),
            "storm".into(),
            "tls".into(),
        ],
        servers: SERVERS.iter().map(|s| s.to_string()).collect(),
        pin: true,
        fanout: vec![1000, 10000],
        tls: None,
        in_flight: vec![1, 8],
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {
                o.rounds = 1;
                o.window = Duration::from_secs(1);
                o.warmup = Duration::from_millis(300);
            }
            "--rounds" => o.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--secs" => {
                o.window = Duration::from_secs_f64(
                    it.next().and_then(|v| v.parse().ok()).expect("--secs S"),
                )
            }
            "--only" => {
                o.only = it
                    .next()
                    .expect("--only a,b")
                    .split(',')
                    .map(Into::into)
                    .collect()
            }
            "--servers" => {
                o.servers = it
                    .next()
                    .expect("--servers a,b")
                    .split(',')
                    .map(Into::into)
                    .collect()
            }
            "--no-pin" => o.pin = false,
            "--fanout" => {
                o.fanout = it
                    .next()
                    .expect("--fanout 1000,10000")
                    .split(',')
                    .map(|v| v.parse().expect("a number"))
                    .collect()
            }
            "--in-flight" => {
                o.in_flight = it
                    .next()
                    .expect("--in-flight 1,8")
                    .split(',')
                    .map(|v| v.parse().expect("a number"))
                    .collect()
            }
            _ => {}
        }
    }
    loadgen::self_check();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if o.pin && cores.len() >= 2 && Command::new("taskset").arg("-V").output().is_ok() {
        core_affinity::set_for_current(cores[1]);
        eprintln!(
            "servers pinned to core 0, load client to core {}",
            cores[1].id
        );
    } else {
        o.pin = false;
        eprintln!("not pinned");
    }

    // The scenarios, each with a key that keeps the table in this order.
    let mut scenarios: Vec<(usize, String)> = Vec::new();
    let want = |s: &str| o.only.iter().any(|x| x == s);
    if want("echo") {
        for conns in [100, 500] {
            for size in [20, 512, 16384] {
                scenarios.push((scenarios.len(), format!("echo {conns} conns, {size} B")));
            }
        }
    }
    if want("broadcast") {
        for &n in &o.fanout {
            scenarios.push((scenarios.len(), format!("broadcast to {n}")));
        }
    }
    if want("relay") {
        for &k in &o.in_flight {
            scenarios.push((scenarios.len(), format!("relay 100 users, {k} in flight")));
        }
    }
    if want("idle") {
        scenarios.push((scenarios.len(), "idle 10000".into()));
    }
    if want("storm") {
        scenarios.push((scenarios.len(), "storm calm".into()));
        scenarios.push((scenarios.len(), "storm 10% slow".into()));
    }
    if want("group") {
        for (members, conns) in [(1000, 1000), (1000, 10000), (10000, 10000)] {
            scenarios.push((scenarios.len(), format!("group {members} of {conns}")));
        }
    }
    if want("deflate") {
        for &n in &o.fanout {
            for how in ["plain", "compressed"] {
                scenarios.push((scenarios.len(), format!("deflate to {n} {how}")));
            }
        }
    }
    if want("tls") {
        for conns in [100, 500] {
            for size in [20, 512, 16384] {
                scenarios.push((scenarios.len(), format!("tls echo {conns} conns, {size} B")));
            }
        }
        scenarios.push((scenarios.len(), "tls idle 10000".into()));
        o.tls = Some(tls::Files::generate());
    }

    let mut results: Results = BTreeMap::new();
    let started = Instant::now();
    for round in 0..o.rounds {
        for key in &scenarios {
            // fastwebsockets has no permessage-deflate; the TLS rows leave
            // out the servers without a TLS setup here.
            let servers: Vec<&String> = o
                .servers
                .iter()
                .filter(|s| !(key.1.starts_with("deflate") && *s == "fws"))
                .filter(|s| !key.1.starts_with("tls ") || TLS_SERVERS.contains(&s.as_str()))
                .collect();
            let n = servers.len();
            for i in 0..n {
                let server = servers[(i + round) % n].clone();
                let (tls, name) = match key.1.strip_prefix("tls ") {
                    Some(rest) => (true, rest),
                    None => (false, key.1.as_str()),
                };
                let rec = if let Some(rest) = name.strip_prefix("echo ") {
                    let conns: usize = rest.split(' ').next().unwrap().parse().unwrap();
                    let size: usize = rest.rsplit(' ').nth(1).unwrap().parse().unwrap();
                    run_echo(&o, &server, conns, size, tls)
                } else if let Some(rest) = name.strip_prefix("broadcast to ") {
                    run_broadcast(&o, &server, rest.parse().unwrap())
                } else if let Some(rest) = name.strip_prefix("relay 100 users, ") {
                    run_relay(
                        &o,
                        &server,
                        rest.split(' ').next().unwrap().parse().unwrap(),
                    )
                } else if name.starts_with("idle") {
                    run_idle(&o, &server, 10_000, tls)
                } else if let Some(rest) = name.strip_prefix("group ") {
                    let mut nums = rest.split(" of ").map(|v| v.parse().unwrap());
                    let (members, conns) = (nums.next().unwrap(), nums.next().unwrap());
                    run_group(&o, &server, members, conns)
                } else if let Some(rest) = name.strip_prefix("deflate to ") {
                    let (n, how) = rest.split_once(' ').unwrap();
                    run_deflate(&o, &server, n.parse().unwrap(), how == "compressed")
                } else if name == "storm calm" {
                    run_storm(&o, &server, 100, 0.0)
                } else {
                    run_storm(&o, &server, 100, 0.1)
                };
                eprintln!(
                    "[{:>5.1}s] round {} {:<28} {:<18} {:?}",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    key.1,
                    label(&server),
                    rec.iter()
                        .map(|(k, v)| format!("{k}={}", fmt_num(*v)))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                results
                    .entry(key.clone())
                    .or_default()
                    .entry(server)
                    .or_default()
                    .push(rec);
            }
        }
    }
    print_tables(&o, &scenarios, &results);
}

fn print_tables(o: &Opts, scenarios: &[(usize, String)], results: &Results) {
    let peers: Vec<&String> = o.servers.iter().filter(|s| *s != "wshub").collect();
    let has_wshub = o.servers.iter().any(|s| s == "wshub");
    println!(
        "\nmedians of {} round(s), {:.1} s windows; ratio = wshub / peer\n",
        o.rounds,
        o.window.as_secs_f64()
    );
    /// (scenario prefix, title, [(field, column header)]).
    type Group<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let echo_fields: &[(&str, &str)] = &[
        ("rate", "msg/s"),
        ("per_cpu", "msg/srv-CPU-s"),
        ("p99", "p99 µs"),
        ("server_cpu", "srv CPU"),
        ("client_cpu", "cli CPU"),
    ];
    let idle_fields: &[(&str, &str)] = &[
        ("rss_per_conn", "RSS Δ/conn B"),
        ("heap_per_conn", "heap Δ/conn B"),
        ("heap_total_per_conn", "heap total/conn B"),
    ];
    let groups: [Group; 9] = [
        ("echo", "round trips/s", echo_fields),
        (
            "broadcast",
            "deliveries/s",
            &[
                ("rate", "deliv/s"),
                ("per_cpu", "deliv/srv-CPU-s"),
                ("p50", "p50 µs"),
                ("p99", "p99 µs"),
                ("server_cpu", "srv CPU"),
                ("client_cpu", "cli CPU"),
            ],
        ),
        (
            "relay",
            "JSON messages relayed user to user per second; missing = error replies",
            &[
                ("rate", "msg/s"),
                ("cpu_us", "srv CPU µs/msg"),
                ("sys_us", "of it kernel µs/msg"),
                ("p50", "p50 µs"),
                ("p99", "p99 µs"),
                ("server_cpu", "srv CPU"),
                ("client_cpu", "cli CPU"),
                ("pure_acks", "pure ACKs / data seg"),
                ("missing", "missing"),
            ],
        ),
        ("idle", "per idle connection", idle_fields),
        (
            "storm",
            "healthy receivers, 100 msg/s × 16 KiB to 100, 5 s fill first",
            &[
                ("rate", "deliv/s"),
                ("p50", "p50 µs"),
                ("p99", "p99 µs"),
                ("queue_full", "queue_full"),
                ("lagged", "lagged"),
                ("missing", "missing"),
            ],
        ),
        (
            "group",
            "a group of M among N connections, 64-byte messages, 4 in flight; M = N is broadcast",
            &[
                ("rate", "deliv/s"),
                ("per_cpu", "deliv/srv-CPU-s"),
                ("us_per_send", "srv µs/send"),
                ("p50", "p50 µs"),
                ("p99", "p99 µs"),
                ("stray", "stray"),
                ("missing", "missing"),
            ],
        ),
        (
            "deflate",
            "broadcast of 1 KiB JSON, receivers offering permessage-deflate or not",
            &[
                ("rate", "deliv/s"),
                ("per_cpu", "deliv/srv-CPU-s"),
                ("ns_per_deliv", "srv ns/deliv"),
                ("wire", "wire B/deliv"),
                ("p50", "p50 µs"),
                ("p99", "p99 µs"),
                ("client_cpu", "cli CPU"),
            ],
        ),
        ("tls echo", "wss:// round trips/s", echo_fields),
        ("tls idle", "per idle wss:// connection", idle_fields),
    ];
    for (prefix, title, fields) in groups {
        let rows: Vec<&(usize, String)> = scenarios
            .iter()
            .filter(|k| k.1.starts_with(prefix))
            .collect();
        if rows.is_empty() {
            continue;
        }
        println!("### {prefix} ({title})\n");
        let mut header = String::from("| scenario | server |");
        let mut rule = String::from("|---|---|");
        for (_, h) in fields.iter() {
            header += &format!(" {h} |");
            rule += "---:|";
        }
        let ratio_fields: Vec<&(&str, &str)> = fields
            .iter()
            .filter(|(f, _)| {
                ["rate", "per_cpu", "cpu_us", "rss_per_conn"].contains(f)
                    // The relay's targets include latency.
                    || (prefix == "relay" && *f == "p99")
            })
            .collect();
        if has_wshub {
            for (_, h) in &ratio_fields {
                header += &format!(" wshub/peer ({h}) |");
                rule += "---:|";
            }
        }
        println!("{header}\n{rule}");
        for key in rows {
            for server in &o.servers {
                // The TLS rows leave out the servers that did not run.
                if results.get(key).is_none_or(|m| !m.contains_key(server)) {
                    continue;
                }
                let name = match (prefix.starts_with("tls"), server.as_str()) {
                    (true, "tt") => "tokio-tungstenite + tokio-rustls",
                    _ => label(server),
                };
                let mut line = format!("| {} | {} |", key.1, name);
                for (f, _) in fields.iter() {
                    line += &format!(" {} |", fmt_num(med(results, key, server, f)));
                }
                if has_wshub {
                    for (f, _) in &ratio_fields {
                        let ratio = if server == "wshub" || !peers.contains(&server) {
                            String::new()
                        } else {
                            let w = med(results, key, "wshub", f);
                            let p = med(results, key, server, f);
                            format!("{:.2}", w / p)
                        };
                        line += &format!(" {ratio} |");
                    }
                }
                println!("{line}");
            }
        }
        println!();
    }
}
