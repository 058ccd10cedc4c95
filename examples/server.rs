//! The demo hub: clients relay text messages to each other by `receiver`, and
//! a small web page at `/` connects, sends and shows what arrives.
//!
//! ```text
//! cargo run --release --example server -- [--addr HOST:PORT] [--config FILE]
//! ```

use std::process::ExitCode;

use std::collections::HashMap;
use std::time::Duration;

use wshub::{ConnId, DefaultHub, DeliveryId, HubConfig, HubEvent, Message};

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

    let mut senders: HashMap<DeliveryId, (ConnId, String)> = HashMap::new();
    let result = (|| -> std::io::Result<()> {
        while !hub.is_finished() {
            hub.poll(Some(Duration::from_millis(200)))?;
            while let Some(event) = hub.next_event() {
                handle_event(&mut hub, &mut senders, event);
            }
            while let Ok((id, r)) = results.try_recv() {
                let Some((conn, message_id)) = senders.remove(&id) else {
                    continue;
                };
                match r.final_error {
                    None => println!(
                        "{message_id}: delivered after {} attempt(s)",
                        r.attempts.len()
                    ),
                    Some(e) => println!(
                        "{message_id}: failed ({}) after {} attempt(s)",
                        e.name(),
                        r.attempts.len()
                    ),
                }
                let notice = Message::notice(
                    "send_result",
                    serde_json::json!({
                        "message_id": message_id,
                        "success": r.success,
                        "attempts": r.attempts.len(),
                        "total_retries": r.total_retries,
                        "total_time_ms": r.total_time.as_millis() as u64,
                        "final_error": r.final_error.map(|e| e.name()),
                    }),
                );
                let _ = hub.send_to_client(conn, &notice);
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

/// Relays application messages with retry (honouring the sender's
/// `require_ack`); remembers who sent what so the result can be reported.
fn handle_event(
    hub: &mut DefaultHub,
    senders: &mut HashMap<DeliveryId, (ConnId, String)>,
    event: HubEvent,
) {
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
                    senders.insert(id, (conn, message.message_id.clone()));
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
        HubEvent::Text { .. } | HubEvent::Binary { .. } => {}
    }
}
