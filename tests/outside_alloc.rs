//! Allocations counted from outside the process: `scripts/malloc_count.c`,
//! built here with the C compiler and preloaded (`LD_PRELOAD`) into the demo
//! server (`examples/server.rs`, which relays with the hub's built-in
//! relay), counts every malloc, calloc, realloc and aligned allocation in
//! the whole process. After a warm-up, relaying thousands more messages
//! must not add a single one.
//!
//! tests/alloc.rs counts the same thing from inside (a Rust global
//! allocator, hub thread only); this checks the shipped binary as it runs,
//! every thread included, with nothing able to allocate behind the Rust
//! allocator's back.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Client, connect};
use tungstenite::Message as WsMessage;

/// `cargo test` builds the examples beside the test binaries' directory.
fn demo_server() -> Option<PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent()?.parent()?.join("examples").join("server");
    if bin.exists() {
        return Some(bin);
    }
    skip_or_fail(&format!(
        "{} is not built (plain `cargo test` builds it)",
        bin.display()
    ));
    None
}

/// Outside CI a missing tool skips the test (saying so); in CI it fails.
fn skip_or_fail(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// Builds the preload library with the C compiler (`$CC`, else `cc`).
fn build_counter() -> Option<PathBuf> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/malloc_count.c");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("malloc_count.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .output();
    match built {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => panic!(
            "{cc} could not build {}: {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            skip_or_fail(&format!("no C compiler ({cc}: {e})"));
            None
        }
    }
}

/// The demo server under the counter: its address, and its count lines.
struct Counted {
    child: Child,
    addr: SocketAddr,
    counts: mpsc::Receiver<u64>,
}

impl Counted {
    fn start(server: &PathBuf, counter: &PathBuf) -> Counted {
        let mut child = Command::new(server)
            .args(["--addr", "127.0.0.1:0"])
            .env("LD_PRELOAD", counter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo server starts");
        // Its console: the address first, then a line per relayed message
        // (read all along, so that a full pipe never blocks the hub).
        let (addr_tx, addr_rx) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("wshub demo on http://")
                    && let Some(addr) = rest.split('/').next()
                {
                    let _ = addr_tx.send(addr.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let (count_tx, counts) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let n = line
                    .strip_prefix("malloc_count ")
                    .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("allocs=")))
                    .and_then(|n| n.parse().ok());
                match n {
                    Some(n) => {
                        let _ = count_tx.send(n);
                    }
                    None => eprintln!("server: {line}"),
                }
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the demo server says where it listens");
        Counted {
            child,
            addr,
            counts,
        }
    }

    /// The process's allocations so far (SIGUSR1 makes the counter say).
    fn allocations(&self) -> u64 {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-USR1", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -USR1 {pid}");
        self.counts
            .recv_timeout(Duration::from_secs(10))
            .expect("the counter answers SIGUSR1")
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` messages from `from` to `to` and back, one in flight at a time,
/// each read by its receiver stamped by the hub.
fn relay(a: &mut Client, b: &mut Client, n: usize) {
    let to_b = r#"{"message_type":"text","receiver":"bob","content":"hello bob","data":{"n":1}}"#;
    let to_a = r#"{"message_type":"text","receiver":"alice","content":"hi alice","id":"c-1"}"#;
    for i in 0..n {
        let (from, to, text, sender) = if i % 2 == 0 {
            (&mut *a, &mut *b, to_b, "\"sender\":\"alice\"")
        } else {
            (&mut *b, &mut *a, to_a, "\"sender\":\"bob\"")
        };
        from.send(WsMessage::text(text)).unwrap();
        loop {
            match to.read().expect("the relayed message") {
                WsMessage::Text(t) => {
                    assert!(t.as_str().contains(sender), "{t}");
                    break;
                }
                WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn the_demo_server_relays_without_allocating_counted_from_outside() {
    let (Some(server), Some(counter)) = (demo_server(), build_counter()) else {
        return;
    };
    let hub = Counted::start(&server, &counter);
    let mut alice = connect(hub.addr, "user_id=alice");
    let mut bob = connect(hub.addr, "user_id=bob");
    // Warm-up: the frame pool, the rings, the console's buffer.
    relay(&mut alice, &mut bob, 2_000);
    let before = hub.allocations();
    const N: u64 = 10_000;
    relay(&mut alice, &mut bob, N as usize);
    let after = hub.allocations();
    println!(
        "{} allocations in the demo server for {N} relayed messages after warm-up \
         ({before} before)",
        after - before
    );
    assert_eq!(
        after - before,
        0,
        "{} allocations for {N} relayed messages (whole process, counted by LD_PRELOAD)",
        after - before
    );
}
