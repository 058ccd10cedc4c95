//! The demo hub: clients relay text messages to each other by `receiver`, and
//! a small web page at `/` connects, sends and shows what arrives.
//!
//! ```text
//! cargo run --release --example server -- [--addr HOST:PORT] [--config FILE]
//! ```

use std::process::ExitCode;

use wshub::{DefaultHub, HubConfig, HubEvent, Message, SendError};

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
    println!(
        "wshub demo on http://{}/  (WebSocket endpoint /ws?user_id=NAME)",
        hub.local_addr()
    );

    let result = hub.run(|hub, event| match event {
        HubEvent::Connected { identity, .. } => {
            println!("+ {} ({})", identity.user_id, identity.client_id);
        }
        HubEvent::Disconnected { identity, reason, .. } => {
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
            match hub.send_to_user(&to, &message) {
                Ok(n) => println!("{} -> {to}: {} ({n} device(s))", message.sender, message.content),
                Err(e) => {
                    println!("{} -> {to}: failed: {e}", message.sender);
                    let reason = match e {
                        SendError::UserOffline => "user_offline",
                        SendError::QueueFull { .. } => "queue_full",
                        SendError::MessageTooLarge { .. } => "message_too_large",
                        _ => "conn_error",
                    };
                    let notice = Message::notice(
                        "error",
                        serde_json::json!({"reason": reason, "detail": e.to_string(), "receiver": to}),
                    );
                    let _ = hub.send_to_client(conn, &notice);
                }
            }
        }
        HubEvent::Text { .. } | HubEvent::Binary { .. } => {}
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
