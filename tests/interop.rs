//! Interop with independent clients and a real browser, over loopback:
//! Python `websockets`, Node `ws`, and headless Chromium driven by
//! playwright-core on the demo page of `examples/server.rs`. All three
//! negotiate permessage-deflate, and each test checks that they did.
//!
//! The clients live in `tests/interop/` (`npm ci` there installs `ws` and
//! `playwright-core`; `pip install websockets`; Debian's `chromium`). `.ci/run`
//! installs them all. Without them these tests skip and say why on stderr;
//! under `CI=true` a missing tool fails the test instead.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestHub, connect, recv_type, send, test_config};
use wshub::{CloseCode, DisconnectReason, HubEvent};

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Skips (printing why, past libtest's capture) or, under CI=true, fails.
fn unavailable(test: &str, reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {reason} (CI=true: a missing tool is a failure, not a skip)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// Whether `cmd args…` runs and exits 0 (a probe for an installed tool).
fn probe(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn node_module(name: &str) -> Result<(), String> {
    if !probe("node", &["--version"]) {
        return Err("node is not installed".into());
    }
    if !interop_dir().join("node_modules").join(name).is_dir() {
        return Err(format!(
            "npm package {name} is not installed (run `npm ci` in tests/interop)"
        ));
    }
    Ok(())
}

/// Waits for `child` to exit (at most `limit`), killing it past that; returns
/// its output for the failure message.
fn finish(mut child: Child, limit: Duration) -> (bool, String) {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("child output");
    let text = format!(
        "status {status:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (status.is_some_and(|s| s.success()), text)
}

/// One independent client, `user`, against a relaying hub, with a Rust
/// tungstenite client as its peer: the peer's message (with `require_ack`)
/// reaches it, it ACKs, its own message reaches the peer, a JSON ping gets a
/// pong, and it closes with 1000.
fn exchange_with(program: &str, script: &str, user: &str) {
    exchange(program, script, user, None);
}

/// Files of a `wss://` listener: certificate chain, key, and the CA that
/// the independent client verifies them with.
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

/// [`exchange_with`], the independent client over `wss://` when `tls` is
/// given.
fn exchange(program: &str, script: &str, user: &str, tls: Option<&TlsFiles>) {
    let mut config = test_config();
    if let Some(tls) = tls {
        config.tls = Some(wshub::config::TlsConfig::new(&tls.cert, &tls.key));
        config.tls_listen = "127.0.0.1:0".parse().unwrap();
    }
    let hub = TestHub::start(config);
    let base = match hub.tls_addr {
        Some(a) => format!("wss://localhost:{}", a.port()),
        None => format!("ws://{}", hub.addr),
    };
    let mut rust = connect(hub.addr, "user_id=rust");
    hub.wait_for(
        |e| matches!(e, HubEvent::Connected { identity, .. } if &*identity.user_id == "rust"),
    );

    let mut child = Command::new(program);
    if let Some(tls) = tls {
        child.env("WSHUB_CA", &tls.ca);
    }
    let child = child
        .arg(interop_dir().join(script))
        .args([&base, user, "rust"])
        .current_dir(interop_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {program}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match hub.events.recv_timeout(left) {
            Ok(HubEvent::Connected { identity, .. }) if &*identity.user_id == user => break,
            Ok(_) => {}
            Err(_) => panic!(
                "{script} never connected: {}",
                finish(child, Duration::ZERO).1
            ),
        }
    }
    send(
        &mut rust,
        &format!(
            r#"{{"message_type":"text","message_id":"rust-1","receiver":"{user}","content":"hello {user}","require_ack":true}}"#
        ),
    );
    let reply = recv_type(&mut rust, "text");
    assert_eq!(reply.sender, user, "the hub stamps the sender");
    assert_eq!(reply.content, format!("hello rust from {user}"));

    let (ok, output) = finish(child, Duration::from_secs(15));
    assert!(ok, "{script} failed: {output}");
    let closed = hub.wait_for(
        |e| matches!(e, HubEvent::Disconnected { identity, .. } if &*identity.user_id == user),
    );
    let HubEvent::Disconnected { reason, .. } = closed else {
        unreachable!()
    };
    assert_eq!(reason, DisconnectReason::ClientClosed(CloseCode::NORMAL));
    drop(rust);
    let stats = hub.stop();
    assert_eq!(stats.invalid_messages, 0, "the hub refused a message");
    assert_eq!(stats.protocol_errors, 0);
    assert_eq!(
        stats.deflate_negotiated, 1,
        "permessage-deflate not negotiated"
    );
    assert!(stats.deflate_compressed >= 1, "no compressed message sent");
}

#[test]
fn python_websockets_client() {
    let test = "python_websockets_client";
    if !probe("python3", &["-c", "import websockets.sync.client"]) {
        return unavailable(
            test,
            "python3 with `websockets` (>= 13) is not installed (pip install websockets)",
        );
    }
    exchange_with("python3", "client.py", "py");
}

#[test]
fn node_ws_client() {
    let test = "node_ws_client";
    if let Err(why) = node_module("ws") {
        return unavailable(test, &why);
    }
    exchange_with("node", "client.mjs", "node");
}

/// A CA and a server certificate for localhost, made now.
#[cfg(feature = "tls")]
fn tls_files(name: &str) -> TlsFiles {
    let ca = common::tls::TestCa::new(name);
    let (cert, key, _) = ca.issue("server", "localhost");
    TlsFiles {
        cert,
        key,
        ca: ca.ca_file,
    }
}

#[cfg(feature = "tls")]
#[test]
fn python_websockets_client_over_wss() {
    let test = "python_websockets_client_over_wss";
    if !probe("python3", &["-c", "import websockets.sync.client"]) {
        return unavailable(
            test,
            "python3 with `websockets` (>= 13) is not installed (pip install websockets)",
        );
    }
    exchange("python3", "client.py", "pys", Some(&tls_files("py")));
}

#[cfg(feature = "tls")]
#[test]
fn node_ws_client_over_wss() {
    let test = "node_ws_client_over_wss";
    if let Err(why) = node_module("ws") {
        return unavailable(test, &why);
    }
    exchange("node", "client.mjs", "nodes", Some(&tls_files("node")));
}

/// The demo server's page in headless Chromium: two pages as alice and bob
/// exchange messages (one with `require_ack`, auto-ACKed by the page), the
/// logs show them, a JSON ping shows its pong; screenshots go to
/// `target/artifacts/demo.png` and `demo-bob.png`.
#[test]
fn demo_page_in_chromium() {
    demo_in_chromium("demo_page_in_chromium", &[], "http://", "demo");
}

/// The same over `https://` and `wss://`: the demo server started with
/// `--tls-cert`/`--tls-key` (made now), Chromium told to ignore that the
/// test CA is not one it trusts. Screenshots: `demo-tls.png`, `demo-tls-bob.png`.
#[cfg(feature = "tls")]
#[test]
fn demo_page_in_chromium_over_wss() {
    let ca = common::tls::TestCa::new("chromium");
    let (cert, key, _) = ca.issue("server", "localhost");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let args = [
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--tls-addr",
        "127.0.0.1:0",
    ];
    demo_in_chromium(
        "demo_page_in_chromium_over_wss",
        &args,
        "https://",
        "demo-tls",
    );
}

/// Starts the demo server with `args`, opens its page at the banner's
/// `scheme` URL in Chromium (browser.mjs) and checks the relay.
fn demo_in_chromium(test: &str, args: &[&str], scheme: &str, shot_name: &str) {
    if let Err(why) = node_module("playwright-core") {
        return unavailable(test, &why);
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return unavailable(
            test,
            &format!("no Chromium at {chromium} (apt-get install chromium, or set CHROMIUM)"),
        );
    }
    // `cargo test` builds the examples next to the test binaries' directory:
    // target/<profile>/deps/interop-… → target/<profile>/examples/server.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let server_bin = profile_dir.join("examples").join("server");
    if !server_bin.exists() {
        return unavailable(
            test,
            &format!(
                "{} is not built (plain `cargo test` builds it, `--test interop` alone does not)",
                server_bin.display()
            ),
        );
    }
    let artifacts = profile_dir.parent().unwrap().join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join(format!("{shot_name}.png"));
    let _ = std::fs::remove_file(&shot);

    let mut server = Reap(
        Command::new(&server_bin)
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("demo server starts"),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    // The banner: the http:// line, then the https:// one with TLS.
    let url = (0..3)
        .map_while(|_| lines.next()?.ok())
        .find_map(|line| {
            let url = line.split_whitespace().find(|w| w.starts_with(scheme));
            url.map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no {scheme} URL in the banner"));
    // The server's log, for the relay check below.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let browser = Command::new("node")
        .arg(interop_dir().join("browser.mjs"))
        .args([url.as_str(), shot.to_str().unwrap()])
        .env("CHROMIUM", &chromium)
        .current_dir(interop_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let (ok, output) = finish(browser, Duration::from_secs(90));
    drop(server);
    let log = log.join().unwrap();
    assert!(
        ok,
        "browser test failed: {output}\nserver log:\n{}",
        log.join("\n")
    );

    for line in [
        "alice -> bob: hello bob from alice",
        "bob -> alice: hi alice, bob here",
    ] {
        assert!(
            log.iter().any(|l| l == line),
            "the server did not relay {line:?}:\n{}",
            log.join("\n")
        );
    }
    for path in [shot.clone(), artifacts.join(format!("{shot_name}-bob.png"))] {
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is no PNG",
            path.display()
        );
    }
}

/// A child process killed when the test ends, even by a panic: a leftover
/// server would outlive the test run (and hold its output pipe open).
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
