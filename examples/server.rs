//! The demo hub: clients relay text messages to each other by `receiver`
//! (a user, or with `receiver_type: "group"` a group they joined), and a
//! small web page at `/` connects, joins groups, sends and shows what
//! arrives.
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

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use wshub::config::{ClusterConfig, TlsConfig};
use wshub::{ConnId, DefaultHub, DeliveryId, HubConfig, HubEvent, Message, SendResult};

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
    // Final delivery results come back on the hub thread; the loop below
    // tells each sender how its message fared.
    let (results_tx, results) = crossbeam_channel::unbounded();
    hub.on_send_result(move |id, r| {
        let _ = results_tx.send((id, r.clone()));
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

    let mut senders = Senders::default();
    let result = (|| -> std::io::Result<()> {
        while !hub.is_finished() {
            hub.poll(Some(Duration::from_millis(200)))?;
            while let Some(event) = hub.next_event() {
                handle_event(&mut hub, &mut senders, event);
            }
            while let Ok((id, r)) = results.try_recv() {
                report_result(&mut hub, &mut senders, id, &r);
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

/// Who sent what, so that each result can be told to its sender: by
/// delivery while it runs, by message id while the offline store keeps it.
#[derive(Default)]
struct Senders {
    running: HashMap<DeliveryId, Sender>,
    stored: HashMap<String, Sender>,
}

/// A sender's connection and the id its client gave the message.
struct Sender {
    conn: ConnId,
    client_id: String,
}

/// Tells the sender how its message fared, with a timeline of its attempts.
fn report_result(hub: &mut DefaultHub, senders: &mut Senders, id: DeliveryId, r: &SendResult) {
    let message_id = r.message_id.as_deref().unwrap_or_default().to_owned();
    let sender = match senders.running.remove(&id) {
        Some(s) => s,
        None => match senders.stored.remove(&message_id) {
            Some(s) => s,
            None => return,
        },
    };
    let outcome = match (r.final_error, r.stored_offline && !r.replayed) {
        (_, true) => "stored offline".to_owned(),
        (None, _) => "delivered".to_owned(),
        (Some(e), _) => format!("failed ({})", e.name()),
    };
    println!(
        "{message_id}: {outcome} after {} attempt(s){}",
        r.attempts.len(),
        if r.replayed { " (replayed)" } else { "" }
    );
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
        "send_result",
        serde_json::json!({
            "message_id": message_id,
            "id": sender.client_id,
            "success": r.success,
            "attempts": r.attempts.len(),
            "total_retries": r.total_retries,
            "total_time_ms": r.total_time.as_millis() as u64,
            "final_error": r.final_error.map(|e| e.name()),
            "stored_offline": r.stored_offline,
            "replayed": r.replayed,
            "timeline": timeline,
        }),
    );
    let conn = sender.conn;
    if r.stored_offline && !r.replayed {
        // Its replay (or expiry) reports again later, under the same id.
        senders.stored.insert(message_id, sender);
    }
    let _ = hub.send_to_client(conn, &notice);
}

/// Relays application messages with retry (honouring the sender's
/// `require_ack`); remembers who sent what so the result can be reported.
fn handle_event(hub: &mut DefaultHub, senders: &mut Senders, event: HubEvent) {
    match event {
        HubEvent::Connected { identity, .. } => {
            println!("+ {} ({})", identity.user_id, identity.client_id);
        }
        HubEvent::Disconnected {
            identity, reason, ..
        } => {
            println!("- {} ({}): {reason}", identity.user_id, identity.client_id);
        }
        HubEvent::Message { conn, message, .. } => {
            if message.receiver.is_empty() {
                let notice = Message::notice(
                    "error",
                    serde_json::json!({"reason": "validation", "detail": "receiver is required"}),
                );
                let _ = hub.send_to_client(conn, &notice);
                return;
            }
            let to = message.receiver.clone();
            if message.receiver_type == wshub::message::RECEIVER_TYPE_GROUP {
                return relay_to_group(hub, conn, &message);
            }
            match hub.send_to_user_with_retry(&to, &message) {
                Ok(id) => {
                    println!("{} -> {to}: {}", message.sender, message.content);
                    let client_id = message.id.clone();
                    senders.running.insert(id, Sender { conn, client_id });
                }
                Err(e) => {
                    let notice = Message::notice(
                        "error",
                        serde_json::json!({"reason": "validation", "detail": e.to_string()}),
                    );
                    let _ = hub.send_to_client(conn, &notice);
                }
            }
        }
        _ => {}
    }
}

/// A client's group message goes to the other members, if the sender is
/// one; the sender hears how many got it. (The hub's built-in relay will
/// do this itself once it lands.)
fn relay_to_group(hub: &mut DefaultHub, conn: ConnId, message: &Message) {
    let group = &message.receiver;
    let notice = if !hub.is_member(conn, group) {
        Message::notice(
            "error",
            serde_json::json!({"reason": "permission", "group": group, "detail": "join the group first"}),
        )
    } else {
        let result = hub.send_to_group(group, message, Some(conn));
        println!("{} -> group {group}: {}", message.sender, message.content);
        Message::notice(
            "group_result",
            serde_json::json!({
                "group": group,
                "id": message.id,
                "delivered_to": result.as_ref().ok(),
                "error": result.err().map(|e| e.to_string()),
            }),
        )
    };
    let _ = hub.send_to_client(conn, &notice);
}
