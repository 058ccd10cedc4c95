//! Heap per idle connection, everything counted: the connection's share of
//! what `bind` preallocates for `max_connections` (the slab slot with its
//! inline rings, registry buckets, timer-wheel entries, the per-slot lists)
//! plus what the hub allocates when a client connects and then stays idle.
//! Counted exactly by a global allocator on the hub thread, which also says
//! where each live allocation was made. Kernel socket buffers are not heap.

use std::backtrace::Backtrace;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wshub::{DefaultHub, HubConfig, HubEvent};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// Two connection limits: what `bind` allocates for each, less what it
/// allocates regardless, is the preallocation per allowed connection.
const SMALL: usize = 1_000;
const LARGE: usize = 10_000;
/// Clients connected and left idle.
const IDLE: usize = 500;
/// They connect this many at a time, each batch once the hub has reported the
/// one before: a burst of handshakes in one turn grows the hub's event queue,
/// a buffer of the hub bounded by its event limit, not of any connection (it
/// made the figure vary by up to 45 B with the scheduling).
const BATCH: usize = 25;

/// The project's promise, at most 4 KiB per idle connection all counted
/// (DESIGN.md, performance budgets), asserted as it stands: it holds, barely.
///
/// Measured on x86_64 with `DefaultHub` (`Hub<64, 512>`): 3,965 B. Of it
/// 3,855 B is `bind`'s share per allowed connection: 3,596 B of slab (a
/// 3,384 B slot, the `Conn` with its 64-entry ring and 16-entry control lane,
/// times 17/16 for the handshake slots above the limit), 160 B of
/// timer-wheel entries (four of 40 B), 65 B of registry buckets and 34 B of
/// per-slot lists. The other 110 B come with the client: its identity
/// strings (72 B) and its share of the user's device list (38 B). 131 B to
/// spare: a few more ring entries per connection break it (checked with a
/// 68-entry ring: 4,135 B).
const BOUND: f64 = 4096.0;

/// Bytes still live after `f`, by where in wshub they were allocated.
type Breakdown = BTreeMap<String, i64>;

#[test]
fn an_idle_connection_costs_at_most_4_kib_all_counted() {
    let (small, small_total) = bind_heap(SMALL);
    let (large, large_total) = bind_heap(LARGE);
    let slots = (LARGE - SMALL) as f64;
    let (idle, idle_total) = idle_heap();

    println!("per idle connection, in bytes (DefaultHub = Hub<64, 512>):");
    println!("  preallocated by bind, per allowed connection:");
    print_rows(&large, &small, large_total - small_total, slots);
    println!("  allocated when a client connects and stays idle:");
    print_rows(&idle, &Breakdown::new(), idle_total, IDLE as f64);
    let prealloc = (large_total - small_total) as f64 / slots;
    let connected = idle_total as f64 / IDLE as f64;
    let fixed = small_total as f64 - prealloc * SMALL as f64;
    let total = prealloc + connected;
    println!("  {total:>8.1}  per idle connection (bound {BOUND}); bind's fixed part: {fixed:.0}");
    assert!(
        total <= BOUND,
        "{total:.0} B per idle connection, over the {BOUND} B bound"
    );
}

/// Heap `bind` leaves allocated for `max_connections`: by place, and in total.
fn bind_heap(max_connections: usize) -> (Breakdown, i64) {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = max_connections;
    let mut hub = None;
    let (_, total, live) = counting_alloc::measure_traced(|| {
        hub = Some(DefaultHub::bind(config).unwrap());
    });
    drop(hub);
    (by_place(live), total)
}

/// Heap the hub keeps for `IDLE` clients that connected and went quiet, the
/// hub having been bound before (its preallocation is not in this figure).
fn idle_heap() -> (Breakdown, i64) {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = IDLE + 16;
    config.max_connections_per_ip = 0;
    config.max_connections_per_user = IDLE;
    let mut hub = DefaultHub::bind(config).unwrap();
    let opened = Arc::new(AtomicUsize::new(0));
    let clients = idle_clients(hub.local_addr(), opened.clone());
    let mut open = 0;
    let (_, total, live) = counting_alloc::measure_traced(|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while open < IDLE && Instant::now() < deadline {
            hub.poll(Some(Duration::from_millis(5))).unwrap();
            while let Some(ev) = hub.next_event() {
                if matches!(ev, HubEvent::Connected { .. }) {
                    open += 1;
                }
            }
            opened.store(open, Ordering::Release);
        }
        // Let the 101 responses drain so only idle state remains.
        for _ in 0..20 {
            hub.poll(Some(Duration::from_millis(1))).unwrap();
        }
    });
    let socks = clients.join().unwrap();
    assert_eq!(open, IDLE);
    assert_eq!(hub.connections(), IDLE);
    drop(socks);
    (by_place(live), total)
}

/// `IDLE` clients on another thread: raw handshakes (50 users) in batches,
/// each once `opened` says the hub has seen the last; then silence.
fn idle_clients(
    addr: std::net::SocketAddr,
    opened: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Vec<TcpStream>> {
    std::thread::spawn(move || {
        let mut socks = Vec::with_capacity(IDLE);
        for i in 0..IDLE {
            if i % BATCH == 0 {
                let deadline = Instant::now() + Duration::from_secs(20);
                while opened.load(Ordering::Acquire) < i && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
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
    })
}

/// One row per place whose bytes differ between `now` and `before`, the
/// difference divided by `per`, largest first; then what the rows miss of
/// `total` (the net of blocks made before the measurement and freed in it).
fn print_rows(now: &Breakdown, before: &Breakdown, total: i64, per: f64) {
    let mut rows: Vec<(f64, &str)> = now
        .iter()
        .map(|(place, &b)| (b - before.get(place).copied().unwrap_or(0), place))
        .filter(|&(d, _)| d != 0)
        .map(|(d, place)| (d as f64 / per, place.as_str()))
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (bytes, place) in rows.iter().filter(|r| r.0.abs() >= 0.05) {
        println!("  {bytes:>8.1}  {place}");
    }
    let listed: f64 = rows.iter().map(|r| r.0).sum();
    let rest = total as f64 / per - listed;
    if rest.abs() >= 0.05 {
        println!("  {rest:>8.1}  (blocks from before, resized or freed)");
    }
    println!("  {:>8.1}  subtotal", total as f64 / per);
}

/// Sums live allocations by the innermost wshub source line that made them.
fn by_place(live: Vec<(usize, Backtrace)>) -> Breakdown {
    let mut places = Breakdown::new();
    for (size, trace) in live {
        *places.entry(place(&trace)).or_default() += size as i64;
    }
    places
}

/// `src/file.rs:line  the code on that line`, for the innermost frame in
/// this crate's `src/`; without debug info, "elsewhere".
fn place(trace: &Backtrace) -> String {
    let text = trace.to_string();
    let root = env!("CARGO_MANIFEST_DIR");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("at "))
        .map(|at| {
            at.strip_prefix(root)
                .unwrap_or(at)
                .trim_start_matches(['.', '/'])
        })
        .find(|at| at.starts_with("src/"))
        .map(|at| {
            let mut parts = at.rsplitn(3, ':');
            let (_col, line, file) = (parts.next(), parts.next(), parts.next());
            let (Some(line), Some(file)) = (line, file) else {
                return at.to_owned();
            };
            let code = std::fs::read_to_string(format!("{root}/{file}"))
                .ok()
                .and_then(|src| {
                    let n: usize = line.parse().ok()?;
                    src.lines().nth(n - 1).map(|l| l.trim().to_owned())
                })
                .unwrap_or_default();
            format!("{file}:{line}  {code}")
        })
        .unwrap_or_else(|| "elsewhere".to_owned())
}

/// Heap the hub holds per idle connection, every client offering
/// `extensions` (a `Sec-WebSocket-Extensions` value) if given; also whether
/// the hub accepted it.
fn idle_heap_per_conn(extensions: Option<&'static str>) -> (f64, bool) {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = IDLE + 16;
    config.max_connections_per_user = IDLE;
    config.max_connections_per_ip = 0;
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
