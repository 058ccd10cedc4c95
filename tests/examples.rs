//! The example programs as a user runs them: options, config files, exit
//! codes, and the failure-handler demo end to end.

#[cfg(feature = "tls")]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `cargo test` builds the examples beside the test binaries' directory.
fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent()?.parent()?.join("examples").join(name);
    if bin.exists() {
        return Some(bin);
    }
    let why = format!(
        "{} is not built (plain `cargo test` builds it)",
        bin.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

fn run(bin: &PathBuf, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().expect("example runs")
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wshub-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn server_refuses_bad_options_and_config_files_with_a_message_and_exit_2() {
    let Some(server) = example("server") else {
        return;
    };
    let bad_yaml = temp_file("bad.yaml", "wsc:\n  max_retries: 3\n  base_delay: fast\n");
    let unknown = temp_file("unknown.yaml", "wsc:\n  max_retrys: 3\n");
    let missing = std::env::temp_dir().join("wshub-no-such-config.yaml");
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["--bogus"], "unknown option"),
        (vec!["--addr"], "--addr needs a value"),
        (vec!["--addr", "not-an-address"], "HOST:PORT"),
        (vec!["--config", bad_yaml.to_str().unwrap()], "base_delay"),
        (vec!["--config", unknown.to_str().unwrap()], "max_retrys"),
    ];
    for (args, says) in cases {
        let out = run(&server, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(says),
            "{args:?} should say {says:?}: {stderr}"
        );
    }
    let out = run(&server, &["--config", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wshub-no-such-config.yaml"));
}

#[test]
fn server_serves_with_the_seed_config_file() {
    let Some(server) = example("server") else {
        return;
    };
    let seed = temp_file(
        "seed.yaml",
        "wsc:\n  max_retries: 5\n  base_delay: 200ms\n  backoff_factor: 2.0\n  retryable_errors:\n    - \"queue_full\"\n    - \"timeout\"\n  non_retryable_errors:\n    - \"user_offline\"\n",
    );
    let mut child = Command::new(&server)
        .args(["--config", seed.to_str().unwrap(), "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines.next().expect("a banner").unwrap();
    let addr = banner
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .map(|a| a.trim_end_matches('/').to_owned())
        .expect("the address in the banner");
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /health/retry-config HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let body = resp.split_once("\r\n\r\n").unwrap().1;
    let rc: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(rc["max_retries"], 5);
    assert_eq!(rc["base_delay"], "200ms");
    assert_eq!(
        rc["retryable_errors"],
        serde_json::json!(["queue_full", "timeout"])
    );
}

#[test]
fn failure_handlers_demo_provokes_each_failure_and_exits() {
    let Some(bin) = example("failure_handlers") else {
        return;
    };
    let mut child = Command::new(&bin)
        .args(["--addr", "127.0.0.1:0", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the demo did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "offline send: success=false error=Some(UserOffline)",
        "unacked send: attempts=3 error=Some(Timeout(Ack))",
        "connection of phone broke with demo-conn pending",
        "stored offline message demo-conn for flaky",
        "failure statistics after",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

/// The demo server reloads its certificate on SIGHUP: new `wss://`
/// connections get the new one, an open connection keeps its session and
/// goes on working. The new files keep the old modification times, so the
/// file watcher has nothing to see: only the signal can have reloaded.
#[cfg(all(unix, feature = "tls"))]
#[test]
fn server_reloads_its_certificate_on_sighup() {
    use common::tls::{TestCa, tls_stream, wss_connect};
    use std::sync::mpsc;

    let Some(server) = example("server") else {
        return;
    };
    let ca = TestCa::new("sighup");
    let (cert, key, first) = ca.issue("live", "first");
    let (new_cert, new_key, second) = ca.issue("next", "second");
    let mut child = Command::new(&server)
        .args(["--addr", "127.0.0.1:0", "--tls-addr", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Every stdout line, read on a thread of its own.
    let (tx, lines) = mpsc::channel::<String>();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(_) => panic!("the server never printed {what:?}"),
            }
        }
    };
    let banner = wait_for("over TLS on https://");
    let addr: std::net::SocketAddr = banner
        .split_whitespace()
        .find_map(|w| w.strip_prefix("https://"))
        .map(|a| a.trim_end_matches('/'))
        .and_then(|a| a.parse().ok())
        .expect("the TLS address in the banner");
    let client = ca.client_config(None);
    let served = |s: &common::tls::TlsStream| s.conn.peer_certificates().unwrap()[0].clone();

    let mut old = wss_connect(addr, "user_id=old", client.clone()).unwrap();
    assert_eq!(served(old.get_ref()), first);

    // Swap the files, keeping their modification times.
    for (from, to) in [(&new_cert, &cert), (&new_key, &key)] {
        let mtime = std::fs::metadata(to).unwrap().modified().unwrap();
        std::fs::copy(from, to).unwrap();
        std::fs::File::options()
            .write(true)
            .open(to)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    // Longer than the watcher's one-second period: it did not reload.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(served(&tls_stream(addr, client.clone()).unwrap()), first);

    let kill = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    wait_for("TLS certificate reloaded (SIGHUP)");
    assert_eq!(served(&tls_stream(addr, client).unwrap()), second);

    // The connection opened before the reload still works, on its session.
    old.send(tungstenite::Message::Ping(b"still here".to_vec().into()))
        .unwrap();
    let pong = loop {
        match old.read().unwrap() {
            tungstenite::Message::Pong(p) => break p,
            _ => continue,
        }
    };
    assert_eq!(&pong[..], b"still here");
    assert_eq!(served(old.get_ref()), first);
    let _ = child.kill();
    let _ = child.wait();
}
