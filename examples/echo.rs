//! An echo server on the hub's own connection machinery: every text or binary
//! message comes back unchanged to the connection that sent it. It is the
//! testee for the Autobahn|Testsuite cases (`scripts/autobahn.sh`).
//!
//! ```text
//! cargo run --release --example echo -- [--addr HOST:PORT]
//! ```
//!
//! Any path is accepted and no `user_id` is needed: every connection gets an
//! identity of its own. Messages up to 64 MiB are accepted, so Autobahn's 9.*
//! cases (up to 16 MiB) run.

use std::process::ExitCode;
use std::time::Duration;

use wshub::{Hub, HubConfig, HubEvent, Identity, Rejection, Request, Target};

const USAGE: &str = "usage: echo [--addr HOST:PORT]";

/// Rings of 1,024 frames: a client that pipelines many small messages (some
/// Autobahn cases do) must not overflow its ring before the echoes drain.
type EchoHub = Hub<1024, 512>;

fn main() -> ExitCode {
    let mut addr = String::from("127.0.0.1:9001");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => match args.next() {
                Some(a) => addr = a,
                None => {
                    eprintln!("error: --addr needs a value\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("error: unknown option {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let mut config = HubConfig::default();
    config.listen = match addr.parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("error: --addr {addr:?} is not HOST:PORT\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    config.ws_path = "*".into();
    config.max_message_size = 64 << 20;
    config.max_frame_size = None;
    // Every message compressed for clients that negotiated permessage-deflate:
    // Autobahn's 12.*/13.* cases send messages from 16 bytes up.
    config.compression.min_size = 0;
    // Server pings in the middle of a test case would be frames the test
    // does not expect; an echo peer is never idle long enough to need them.
    config.heartbeat_interval = Duration::from_secs(3600);
    config.client_timeout = Duration::from_secs(7200);

    let mut hub = match EchoHub::bind(config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    hub.set_json_protocol(false);
    // Every connection is its own anonymous user, so the per-user limit never
    // refuses a test client.
    let mut next = 0u64;
    hub.set_authenticator(move |_req: &Request| -> Result<Identity, Rejection> {
        next += 1;
        let user = format!("echo{next}");
        Ok(Identity::new(&user, "", "user"))
    });
    println!("wshub echo on ws://{}/", hub.local_addr());

    let result = hub.run(|hub, event| {
        let (conn, payload) = match event {
            HubEvent::Text { conn, text, .. } => (conn, text),
            HubEvent::Binary { conn, data, .. } => (conn, data),
            _ => return,
        };
        if let Err(e) = hub.send(Target::Conn(conn), &payload) {
            log::warn!("echo to {conn} failed: {e}");
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
