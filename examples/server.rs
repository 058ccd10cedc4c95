//! The demo hub: clients relay text messages to each other by `receiver`
//! (a user, or with `receiver_type: "group"` a group they joined), and a
//! small web page at `/` connects, joins groups, sends and shows what
//! arrives.
//!
//! The hub routes the messages itself (its built-in relay, `relay: true`,
//! always on here): stamping, routing, `require_ack` with retry and the
//! sender's `send_result` notice need no host code and allocate nothing
//! per message. The host only watches: a relay filter prints who sent what
//! to whom, and for `require_ack` messages the final `SendResult` is sent
//! to the sender as a `send_timeline` notice (each attempt, for the page).
//!
//! ```text
//! cargo run --release --example server -- [--addr HOST:PORT] [--config FILE]
//!     [--tls-cert FILE --tls-key FILE [--tls-addr HOST:PORT]]
//!     [--cluster redis://HOST:PORT [--node-id NAME]]
//! ```
//!
//! With `--tls-cert` and `--tls-key` the page and the hub are also served
//! over `https://` / `wss://` (on 127.0.0.1:8443 unless `--tls-addr` says
//! otherwise), and the certificate is reloaded when either file changes
//! (checked every second) or on SIGHUP (`kill -HUP <pid>`, Unix); open
//! connections keep theirs.
//!
//! With `--cluster` the hub joins the other hubs using the same Redis: a
//! user on one reaches users on the others (see the README's cluster section).

use std::process::ExitCode;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use wshub::config::{ClusterConfig, TlsConfig};
use wshub::{ConnId, DefaultHub, HubConfig, HubEvent, Message, RelayVerdict, SendResult};

const USAGE: &str = "usage: server [--addr HOST:PORT] [--config FILE] \
                     [--tls-cert FILE --tls-key FILE [--tls-addr HOST:PORT]] \
                     [--cluster redis://HOST:PORT [--node-id NAME]]";
const DEMO_PAGE: &str = include_str!("assets/demo.html");

struct Options {
    addr: Option<String>,
    config: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    tls_addr: Option<String>,
    cluster: Option<String>,
    node_id: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        addr: None,
        config: None,
        tls_cert: None,
        tls_key: None,
        tls_addr: None,
        cluster: None,
        node_id: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => opts.addr = Some(value("--addr")?),
            "--config" => opts.config = Some(value("--config")?),
            "--tls-cert" => opts.tls_cert = Some(value("--tls-cert")?),
            "--tls-key" => opts.tls_key = Some(value("--tls-key")?),
            "--tls-addr" => opts.tls_addr = Some(value("--tls-addr")?),
            "--cluster" => opts.cluster = Some(value("--cluster")?),
            "--node-id" => opts.node_id = Some(value("--node-id")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if opts.tls_cert.is_some() != opts.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    if opts.node_id.is_some() && opts.cluster.is_none() {
        return Err("--node-id needs --cluster".into());
    }
    Ok(opts)
}

/// Applies `--addr`, `--tls-cert`, `--tls-key`, `--tls-addr`, `--cluster`
/// and `--node-id`.
fn apply_options(opts: &Options, config: &mut HubConfig) -> Result<(), String> {
    let parse = |name: &str, addr: &str| {
        addr.parse()
            .map_err(|_| format!("{name} {addr:?} is not HOST:PORT (for example 127.0.0.1:8080)"))
    };
    if let Some(addr) = &opts.addr {
        config.listen = parse("--addr", addr)?;
    }
    if let (Some(cert), Some(key)) = (&opts.tls_cert, &opts.tls_key) {
        config.tls = Some(TlsConfig::new(cert, key));
    }
    if let Some(addr) = &opts.tls_addr {
        config.tls_listen = parse("--tls-addr", addr)?;
    }
    if let Some(url) = &opts.cluster {
        let mut cluster = ClusterConfig::new(url);
        if let Some(id) = &opts.node_id {
            cluster.node_id = id.clone();
        }
        config.cluster = Some(cluster);
    }
    Ok(())
}

/// A flag raised by SIGHUP: the signal handler only sets it, the loop
/// reloads (nothing but an atomic store is safe in a handler).
fn sighup_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, flag.clone()) {
        eprintln!("SIGHUP will not reload the certificate: {e}");
    }
    flag
}

/// Reloads the certificate, saying why and how it went.
fn reload(hub: &mut DefaultHub, why: &str) {
    match hub.reload_tls() {
        Ok(()) => println!("TLS certificate reloaded ({why})"),
        Err(e) => eprintln!("TLS reload ({why}) failed, old certificate kept: {e}"),
    }
}

/// The certificate files' modification times, to notice a renewal.
fn tls_stamp(config: &HubConfig) -> Option<Vec<SystemTime>> {
    let tls = config.tls.as_ref()?;
    [&tls.cert_file, &tls.key_file]
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut config = match &opts.config {
        Some(path) => match HubConfig::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {path}: {e}");
                return ExitCode::from(2);
            }
        },
        None => HubConfig::default(),
    };
    if let Err(e) = apply_options(&opts, &mut config) {
        eprintln!("error: {e}\n{USAGE}");
        return ExitCode::from(2);
    }
    config.relay = true;
    let mut hub = match DefaultHub::bind(config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    hub.add_page("/", "text/html; charset=utf-8", DEMO_PAGE.as_bytes());
    // A demo: any client may join any group (a real host checks who asks).
    hub.set_group_policy(|_: &wshub::GroupRequest<'_>| true);
    // The relay filter sees every message before the hub routes it: who
    // sent a `require_ack` message is remembered (by the id the hub gave
    // it) so that its timeline can be told; everything is relayed.
    let (acked_tx, acked) = crossbeam_channel::unbounded();
    hub.set_relay_filter(move |m| {
        // Read by borrowing from the message (no allocation unless its
        // strings carry escapes).
        let Ok(shown) = serde_json::from_str::<Shown<'_>>(m.json) else {
            return RelayVerdict::Relay;
        };
        let group = if m.to_group { "group " } else { "" };
        println!(
            "{} -> {group}{}: {}",
            m.sender.user_id, m.receiver, shown.content
        );
        if m.require_ack {
            let _ = acked_tx.send((shown.message_id.into_owned(), m.conn));
        }
        RelayVerdict::Relay
    });
    // Final delivery results come back on the hub thread; the loop below
    // tells each sender its message's timeline.
    let (results_tx, results) = crossbeam_channel::unbounded();
    hub.on_send_result(move |_, r| {
        let _ = results_tx.send(r.clone());
    });
    println!(
        "wshub demo on http://{}/  (WebSocket endpoint /ws?user_id=NAME)",
        hub.local_addr()
    );
    if let Some(addr) = hub.tls_local_addr() {
        println!("wshub demo over TLS on https://{addr}/  (wss:// endpoint /ws?user_id=NAME)");
    }
    if hub.config().auth.effective_mode() == wshub::config::AuthMode::Query {
        println!(
            "note: identities are unauthenticated (auth.mode: query): any client may claim any user_id"
        );
    }
    let mut stamp = tls_stamp(hub.config());
    let mut checked = Instant::now();
    let hup = sighup_flag();

    let mut senders = HashMap::new();
    let result = (|| -> std::io::Result<()> {
        while !hub.is_finished() {
            hub.poll(Some(Duration::from_millis(200)))?;
            while let Some(event) = hub.next_event() {
                handle_event(event);
            }
            senders.extend(acked.try_iter());
            while let Ok(r) = results.try_recv() {
                report_result(&mut hub, &mut senders, &r);
            }
            if hup.swap(false, Ordering::AcqRel) {
                if hub.tls_local_addr().is_some() {
                    reload(&mut hub, "SIGHUP");
                    // The files as reloaded: no second reload for them.
                    stamp = tls_stamp(hub.config());
                } else {
                    println!("SIGHUP: no TLS certificate to reload");
                }
            }
            if stamp.is_some() && checked.elapsed() >= Duration::from_secs(1) {
                checked = Instant::now();
                let now = tls_stamp(hub.config());
                if now.is_some() && now != stamp {
                    stamp = now;
                    reload(&mut hub, "files changed");
                }
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// What the console shows of a relayed message, borrowed from its JSON.
#[derive(serde::Deserialize)]
struct Shown<'a> {
    /// The id the hub gave it.
    #[serde(borrow)]
    message_id: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Cow<'a, str>,
}

/// Tells the sender of a `require_ack` message its timeline: each attempt
/// (when it started, how long it took, how it ended). The hub's own
/// `send_result` notice has already told it the outcome.
fn report_result(hub: &mut DefaultHub, senders: &mut HashMap<String, ConnId>, r: &SendResult) {
    let message_id = r.message_id.as_deref().unwrap_or_default().to_owned();
    let Some(&conn) = senders.get(&message_id) else {
        return;
    };
    let kept = r.stored_offline && !r.replayed;
    let outcome = match (r.final_error, kept) {
        (_, true) => "stored offline".to_owned(),
        (None, _) => "delivered".to_owned(),
        (Some(e), _) => format!("failed ({})", e.name()),
    };
    println!(
        "{message_id}: {outcome} after {} attempt(s){}",
        r.attempts.len(),
        if r.replayed { " (replayed)" } else { "" }
    );
    if !kept {
        // Done; a stored message reports again when replayed or expired.
        senders.remove(&message_id);
    }
    let first = r.attempts.first().map(|a| a.start_time);
    let timeline: Vec<serde_json::Value> = r
        .attempts
        .iter()
        .map(|a| {
            let at = first
                .and_then(|f| a.start_time.duration_since(f).ok())
                .unwrap_or_default();
            serde_json::json!({
                "attempt": a.attempt_number,
                "at_ms": at.as_millis() as u64,
                "duration_ms": a.duration.as_millis() as u64,
                "error": a.error.map(|e| e.name()),
            })
        })
        .collect();
    let notice = Message::notice(
        "send_timeline",
        serde_json::json!({
            "message_id": message_id,
            "replayed": r.replayed,
            "stored_offline": r.stored_offline,
            "timeline": timeline,
        }),
    );
    let _ = hub.send_to_client(conn, &notice);
}

/// Connects and disconnects, on the console (the hub routes the messages).
fn handle_event(event: HubEvent) {
    match event {
        HubEvent::Connected { identity, .. } => {
            println!("+ {} ({})", identity.user_id, identity.client_id);
        }
        HubEvent::Disconnected {
            identity, reason, ..
        } => {
            println!("- {} ({}): {reason}", identity.user_id, identity.client_id);
        }
        _ => {}
    }
}
