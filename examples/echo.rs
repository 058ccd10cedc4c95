//! An echo server on the hub's own connection machinery: every text or binary
//! message comes back unchanged to the connection that sent it. It is the
//! testee for the Autobahn|Testsuite cases (`scripts/autobahn.sh`).
//!
//! ```text
//! cargo run --release --example echo -- [--addr HOST:PORT]
//!     [--tls-cert FILE --tls-key FILE [--tls-addr HOST:PORT]]
//! ```
//!
//! With `--tls-cert` and `--tls-key` it echoes over `wss://` too (on
//! 127.0.0.1:9443 unless `--tls-addr` says otherwise): the Autobahn cases
//! run over TLS through `scripts/tls_bridge.py`.
//!
//! Any path is accepted and no `user_id` is needed: every connection gets an
//! identity of its own. Messages up to 64 MiB are accepted, so Autobahn's 9.*
//! cases (up to 16 MiB) run.

use std::process::ExitCode;
use std::time::Duration;

use wshub::config::TlsConfig;
use wshub::{Hub, HubConfig, HubEvent, Identity, Rejection, Request, Target};

const USAGE: &str =
    "usage: echo [--addr HOST:PORT] [--tls-cert FILE --tls-key FILE [--tls-addr HOST:PORT]]";

/// Rings of 1,024 frames: a client that pipelines many small messages (some
/// Autobahn cases do) must not overflow its ring before the echoes drain.
type EchoHub = Hub<1024, 512>;

/// The command line: listen addresses and the optional TLS files.
struct Options {
    addr: String,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    tls_addr: String,
}

/// `Err("")` asks for the usage text; any other error is for stderr.
fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        addr: "127.0.0.1:9001".into(),
        tls_cert: None,
        tls_key: None,
        tls_addr: "127.0.0.1:9443".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => opts.addr = value("--addr")?,
            "--tls-cert" => opts.tls_cert = Some(value("--tls-cert")?),
            "--tls-key" => opts.tls_key = Some(value("--tls-key")?),
            "--tls-addr" => opts.tls_addr = value("--tls-addr")?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if opts.tls_cert.is_some() != opts.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    Ok(opts)
}

/// The hub configuration the options ask for.
fn config(opts: &Options) -> Result<HubConfig, String> {
    let parse = |name: &str, addr: &str| {
        addr.parse()
            .map_err(|_| format!("{name} {addr:?} is not HOST:PORT"))
    };
    let mut config = HubConfig::default();
    config.listen = parse("--addr", &opts.addr)?;
    if let (Some(cert), Some(key)) = (&opts.tls_cert, &opts.tls_key) {
        config.tls = Some(TlsConfig::new(cert, key));
        config.tls_listen = parse("--tls-addr", &opts.tls_addr)?;
    }
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
    Ok(config)
}

fn main() -> ExitCode {
    let config = match parse_args().and_then(|opts| config(&opts)) {
        Ok(c) => c,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
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
    if let Some(addr) = hub.tls_local_addr() {
        println!("wshub echo on wss://{addr}/");
    }

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
