//! The demo hub: clients relay text messages to each other by `receiver`, and
//! a small web page at `/` connects, sends and shows what arrives.
//!
//! ```text
//! cargo run --release --example server -- [--addr HOST:PORT] [--config FILE]
//! ```

use std::process::ExitCode;

use std::collections::HashMap;
use std::time::Duration;

use wshub::{ConnId, DefaultHub, DeliveryId, HubConfig, HubEvent, Message, SendResult};

const USAGE: &str = "usage: server [--addr HOST:PORT] [--config FILE]";
const DEMO_PAGE: &str = include_str!("assets/demo.html");

struct Options {
    addr: Option<String>,
    config: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        addr: None,
        config: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => opts.addr = Some(value("--addr")?),
            "--config" => opts.config = Some(value("--config")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(opts)
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
    if let Some(addr) = opts.addr {
        match addr.parse() {
            Ok(a) => config.listen = a,
            Err(_) => {
                eprintln!(
                    "error: --addr {addr:?} is not HOST:PORT (for example 127.0.0.1:8080)\n{USAGE}"
                );
                return ExitCode::from(2);
            }
        }
    }
    let mut hub = match DefaultHub::bind(config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    hub.add_page("/", "text/html; charset=utf-8", DEMO_PAGE.as_bytes());
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
    if hub.config().auth.effective_mode() == wshub::config::AuthMode::Query {
        println!(
            "note: identities are unauthenticated (auth.mode: query): any client may claim any user_id"
        );
    }

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
