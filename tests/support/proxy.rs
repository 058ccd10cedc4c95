//! A fault-injecting TCP proxy on loopback, between real clients and a real
//! hub. Each connection it accepts gets one fault mode, drawn from a seeded
//! generator: none, added latency, a stall, a reset in mid-frame, a
//! half-open connection (the client vanishes without a FIN reaching the
//! hub), or a slow reader. Two threads pump each connection; everything
//! stops by itself when the proxy is stopped or dropped.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// SplitMix64: a small seeded generator (the tests' own copy).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    pub fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    None,
    /// Every chunk waits this long, both ways.
    Latency(Duration),
    /// After `after`, one direction stops for `hold` (nothing read, so the
    /// sender's buffers fill), then resumes.
    Stall {
        after: Duration,
        hold: Duration,
        upstream: bool,
    },
    /// After `after`, the next chunk from the hub is cut in the middle and
    /// both sides are reset (RST, no FIN).
    Reset {
        after: Duration,
    },
    /// After `after`, the client side is reset and the hub side kept open
    /// in silence: the hub sees a peer that vanished without a FIN.
    HalfOpen {
        after: Duration,
    },
    /// The hub's bytes reach the client `chunk` at a time, `pause` apart.
    Slow {
        chunk: usize,
        pause: Duration,
    },
}

/// Faults injected, by kind (counted when they happen).
#[derive(Debug, Default)]
pub struct Counts {
    pub connections: AtomicU64,
    pub clean: AtomicU64,
    pub latency: AtomicU64,
    pub stalls: AtomicU64,
    pub resets: AtomicU64,
    pub half_open: AtomicU64,
    pub slow: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

impl Counts {
    fn add(n: &AtomicU64, by: u64) {
        n.fetch_add(by, Ordering::Relaxed);
    }

    pub fn get(n: &AtomicU64) -> u64 {
        n.load(Ordering::Relaxed)
    }
}

struct Shared {
    upstream: SocketAddr,
    stop: AtomicBool,
    /// No new faults: new connections are clean, pending resets and
    /// half-opens do not fire.
    calm: AtomicBool,
    counts: Counts,
    /// Hub sides of half-open connections, held in silence.
    limbo: Mutex<Vec<(Instant, TcpStream)>>,
    hold: Duration,
}

pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy to `upstream`; half-open hub sides are held for `hold`.
    pub fn start(upstream: SocketAddr, seed: u64, hold: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            stop: AtomicBool::new(false),
            calm: AtomicBool::new(false),
            counts: Counts::default(),
            limbo: Mutex::new(Vec::new()),
            hold,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(listener, s, seed))
            .unwrap();
        Proxy {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn counts(&self) -> &Counts {
        &self.shared.counts
    }

    /// No new faults from now on.
    pub fn calm(&self) {
        self.shared.calm.store(true, Ordering::Relaxed);
    }

    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.limbo.lock().unwrap().clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pick(rng: &mut Rng) -> Fault {
    match rng.below(100) {
        0..=44 => Fault::None,
        45..=59 => Fault::Latency(rng.millis(1, 40)),
        60..=69 => Fault::Stall {
            after: rng.millis(200, 5_000),
            hold: rng.millis(300, 3_000),
            upstream: rng.chance(50),
        },
        70..=79 => Fault::Reset {
            after: rng.millis(100, 5_000),
        },
        80..=87 => Fault::HalfOpen {
            after: rng.millis(200, 5_000),
        },
        _ => Fault::Slow {
            chunk: 64 + rng.below(1_024) as usize,
            pause: rng.millis(10, 120),
        },
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, seed: u64) {
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        {
            let mut limbo = shared.limbo.lock().unwrap();
            limbo.retain(|(since, _)| since.elapsed() < shared.hold);
        }
        let client = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        n += 1;
        let mut rng = Rng::new(seed ^ n.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let fault = if shared.calm.load(Ordering::Relaxed) {
            Fault::None
        } else {
            pick(&mut rng)
        };
        let c = &shared.counts;
        Counts::add(&c.connections, 1);
        match fault {
            Fault::None => Counts::add(&c.clean, 1),
            Fault::Latency(_) => Counts::add(&c.latency, 1),
            Fault::Slow { .. } => Counts::add(&c.slow, 1),
            _ => {}
        }
        let Ok(hub) = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2)) else {
            continue;
        };
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        let _ = hub.set_nodelay(true);
        let conn = Arc::new(Conn {
            dead: AtomicBool::new(false),
            started: Instant::now(),
            fault,
            shared: shared.clone(),
            cut: Mutex::new(Some(rng.clone())),
        });
        for upstream in [true, false] {
            let (from, to) = match (client.try_clone(), hub.try_clone()) {
                (Ok(c), Ok(h)) if upstream => (c, h),
                (Ok(c), Ok(h)) => (h, c),
                _ => break,
            };
            let conn = conn.clone();
            let _ = std::thread::Builder::new()
                .name("proxy-pump".into())
                .stack_size(64 * 1024)
                .spawn(move || pump(from, to, upstream, &conn));
        }
    }
}

/// One proxied connection.
struct Conn {
    dead: AtomicBool,
    started: Instant,
    fault: Fault,
    shared: Arc<Shared>,
    /// The generator for where a reset cuts (taken by the one that fires).
    cut: Mutex<Option<Rng>>,
}

impl Conn {
    fn stopped(&self) -> bool {
        self.dead.load(Ordering::Relaxed) || self.shared.stop.load(Ordering::Relaxed)
    }

    fn calm(&self) -> bool {
        self.shared.calm.load(Ordering::Relaxed)
    }
}

/// Closes `s` with a reset (SO_LINGER 0) once every handle is dropped.
fn reset_on_close(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// Copies `from` to `to` (`upstream`: client to hub), applying the fault.
fn pump(mut from: TcpStream, mut to: TcpStream, upstream: bool, conn: &Conn) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = to.set_write_timeout(Some(Duration::from_secs(5)));
    let counts = &conn.shared.counts;
    let mut buf = vec![0u8; 16 * 1024];
    let mut stalled = false;
    loop {
        if conn.stopped() {
            break;
        }
        let age = conn.started.elapsed();
        match conn.fault {
            Fault::Stall {
                after,
                hold,
                upstream: dir,
            } if dir == upstream && age >= after && age < after + hold => {
                if !stalled {
                    stalled = true;
                    Counts::add(&counts.stalls, 1);
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Fault::HalfOpen { after } if age >= after && !conn.calm() => {
                if !conn.dead.swap(true, Ordering::Relaxed) {
                    Counts::add(&counts.half_open, 1);
                    // The client side goes with a reset; the hub side stays
                    // open and silent until the hold ends.
                    let (client, hub) = if upstream { (&from, &to) } else { (&to, &from) };
                    reset_on_close(client);
                    if let Ok(h) = hub.try_clone() {
                        conn.shared.limbo.lock().unwrap().push((Instant::now(), h));
                    }
                }
                break;
            }
            _ => {}
        }
        let limit = match conn.fault {
            Fault::Slow { chunk, .. } if !upstream => chunk,
            _ => buf.len(),
        };
        let n = match from.read(&mut buf[..limit]) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => {
                conn.dead.store(true, Ordering::Relaxed);
                reset_on_close(&to);
                break;
            }
        };
        let mut len = n;
        let mut reset = false;
        match conn.fault {
            Fault::Latency(d) => std::thread::sleep(d),
            Fault::Slow { pause, .. } if !upstream => std::thread::sleep(pause),
            Fault::Reset { after }
                if !upstream && conn.started.elapsed() >= after && !conn.calm() && n > 1 =>
            {
                if let Some(mut rng) = conn.cut.lock().unwrap().take() {
                    // Cut inside this chunk: a frame arrives in part.
                    len = 1 + rng.below(n as u64 - 1) as usize;
                    reset = true;
                }
            }
            _ => {}
        }
        if to.write_all(&buf[..len]).is_err() {
            conn.dead.store(true, Ordering::Relaxed);
            reset_on_close(&from);
            break;
        }
        Counts::add(
            if upstream {
                &counts.bytes_up
            } else {
                &counts.bytes_down
            },
            len as u64,
        );
        if reset {
            Counts::add(&counts.resets, 1);
            conn.dead.store(true, Ordering::Relaxed);
            reset_on_close(&from);
            reset_on_close(&to);
            break;
        }
    }
}
