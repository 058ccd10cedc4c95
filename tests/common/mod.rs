//! Shared by the integration tests: a hub on its own thread, real clients over
//! loopback.
#![allow(dead_code)]

#[cfg(feature = "tls")]
pub mod tls;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};
use tungstenite::protocol::WebSocket;
use tungstenite::{Message as WsMessage, client::IntoClientRequest};
use wshub::{Hub, HubConfig, HubEvent, HubHandle, Message};

/// A config for tests: loopback, port 0, short timeouts.
pub fn test_config() -> HubConfig {
    let mut c = HubConfig::default();
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.handshake_timeout = Duration::from_secs(5);
    c.shutdown_timeout = Duration::from_secs(2);
    c
}

/// With `WSHUB_TEST_LOG=debug` (or `info`, `trace`, ...) the hubs' log
/// lines go to stderr, with the time, to see what a failing test's hub did.
fn init_log() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            m.level() <= log::max_level()
        }
        fn log(&self, r: &log::Record<'_>) {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            eprintln!(
                "{}.{:06} {} {}",
                t.as_secs(),
                t.subsec_micros(),
                r.level(),
                r.args()
            );
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    let Some(level) = std::env::var("WSHUB_TEST_LOG")
        .ok()
        .and_then(|l| l.parse::<log::LevelFilter>().ok())
    else {
        return;
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

pub struct TestHub {
    pub addr: SocketAddr,
    /// The `wss://` listener, when the config has `tls`.
    pub tls_addr: Option<SocketAddr>,
    pub handle: HubHandle,
    pub events: Receiver<HubEvent>,
    thread: Option<JoinHandle<wshub::Stats>>,
}

impl TestHub {
    /// Starts a hub that relays every application message with a `receiver`
    /// to that user, and reports every event to `events`.
    pub fn start(config: HubConfig) -> TestHub {
        Self::start_with::<{ wshub::DEFAULT_QUEUE }>(config, |_| {})
    }

    /// Like `start`, with rings of `Q` frames and a chance to set the hub up
    /// on its own thread first.
    pub fn start_with<const Q: usize>(
        config: HubConfig,
        setup: impl FnOnce(&mut Hub<Q>) + Send + 'static,
    ) -> TestHub {
        init_log();
        let (tx, events) = unbounded();
        let (ready_tx, ready) = unbounded();
        let thread = std::thread::spawn(move || {
            let mut hub = Hub::<Q>::bind(config).expect("hub binds");
            setup(&mut hub);
            ready_tx
                .send((hub.local_addr(), hub.tls_local_addr(), hub.handle()))
                .unwrap();
            hub.run(|hub, ev| {
                if let HubEvent::Message { message, .. } = &ev
                    && !message.receiver.is_empty()
                    && message.message_type != "no_relay"
                {
                    let _ = hub.send_to_user(&message.receiver.clone(), message);
                }
                let _ = tx.send(ev);
            })
            .expect("hub runs");
            hub.stats()
        });
        let (addr, tls_addr, handle) = ready
            .recv_timeout(Duration::from_secs(10))
            .expect("hub starts");
        TestHub {
            addr,
            tls_addr,
            handle,
            events,
            thread: Some(thread),
        }
    }

    /// The next event, within 5 s.
    pub fn event(&self) -> HubEvent {
        self.events
            .recv_timeout(Duration::from_secs(5))
            .expect("an event within 5 s")
    }

    /// Skips events until `pred` matches one (within 5 s).
    pub fn wait_for(&self, mut pred: impl FnMut(&HubEvent) -> bool) -> HubEvent {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = self
                .events
                .recv_timeout(left)
                .expect("the awaited event within 5 s");
            if pred(&ev) {
                return ev;
            }
        }
    }

    /// Shuts the hub down and returns its final stats.
    pub fn stop(mut self) -> wshub::Stats {
        self.handle.shutdown().unwrap();
        self.thread.take().unwrap().join().expect("hub thread")
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.handle.shutdown();
            let _ = t.join();
        }
    }
}

pub type Client = WebSocket<TcpStream>;

/// Connects a tungstenite client to `ws://addr/ws?query`.
pub fn connect(addr: SocketAddr, query: &str) -> Client {
    try_connect(addr, query).expect("client connects")
}

pub fn try_connect(addr: SocketAddr, query: &str) -> Result<Client, tungstenite::Error> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let req = format!("ws://{addr}/ws?{query}")
        .into_client_request()
        .unwrap();
    tungstenite::client(req, stream)
        .map(|(ws, _)| ws)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => panic!("blocking handshake interrupted"),
        })
}

/// The next text message, decoded; skips pings and pongs.
pub fn recv<S: Read + Write>(ws: &mut WebSocket<S>) -> Message {
    loop {
        match ws.read().expect("a message") {
            WsMessage::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON message"),
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The next text message of the given type, skipping others.
pub fn recv_type<S: Read + Write>(ws: &mut WebSocket<S>, message_type: &str) -> Message {
    loop {
        let m = recv(ws);
        if m.message_type == message_type {
            return m;
        }
    }
}

pub fn send<S: Read + Write>(ws: &mut WebSocket<S>, json: &str) {
    ws.send(WsMessage::text(json)).expect("send");
}

/// Reads until the connection ends; returns the close code the server sent.
pub fn expect_close(ws: &mut Client) -> Option<u16> {
    loop {
        match ws.read() {
            Ok(WsMessage::Close(frame)) => {
                let code = frame.map(|f| u16::from(f.code));
                // Complete the close handshake.
                let _ = ws.flush();
                return code.or(Some(1005));
            }
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {
                return None;
            }
            Err(tungstenite::Error::Io(e)) => panic!("connection not closed cleanly: {e}"),
            Err(e) => panic!("unexpected error waiting for close: {e}"),
        }
    }
}

/// A client that speaks raw bytes: for malformed input.
pub struct RawClient {
    pub stream: TcpStream,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        RawClient { stream }
    }

    /// Performs the upgrade for `query`; panics unless the answer is 101.
    pub fn upgrade(addr: SocketAddr, query: &str) -> RawClient {
        let mut c = RawClient::connect(addr);
        c.send(
            format!(
                "GET /ws?{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        );
        let head = c.read_head();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads an HTTP response head.
    pub fn read_head(&mut self) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match self.stream.read(&mut byte) {
                Ok(0) => break,
                Ok(_) => head.push(byte[0]),
                Err(e) => panic!(
                    "reading response head: {e} (got {:?})",
                    String::from_utf8_lossy(&head)
                ),
            }
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    /// Reads everything until the server closes; returns it.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let _ = self.stream.read_to_end(&mut all);
        all
    }

    /// Reads one server frame: (opcode, payload).
    pub fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut h = [0u8; 2];
        self.stream.read_exact(&mut h).ok()?;
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            self.stream.read_exact(&mut b).ok()?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            self.stream.read_exact(&mut b).ok()?;
            len = u64::from_be_bytes(b);
        }
        let mut payload = vec![0u8; len as usize];
        self.stream.read_exact(&mut payload).ok()?;
        Some((h[0] & 0x0f, payload))
    }

    /// Reads frames until a close frame; returns its code.
    pub fn read_close_code(&mut self) -> Option<u16> {
        while let Some((op, payload)) = self.read_frame() {
            if op == 0x8 {
                return Some(if payload.len() >= 2 {
                    u16::from_be_bytes([payload[0], payload[1]])
                } else {
                    1005
                });
            }
        }
        None
    }
}

/// A masked client frame.
pub fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![first_byte];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// A plain HTTP GET on the hub's port: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut c = RawClient::connect(addr);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let all = String::from_utf8_lossy(&c.read_to_end()).into_owned();
    let status = all.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = all
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The hub's counters, read through its health endpoint.
pub fn stats(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = http_get(addr, "/health/failure-stats");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("stats JSON")
}

/// Polls `stats` until `field` reaches `at_least` (within 5 s).
pub fn wait_stat(addr: SocketAddr, field: &str, at_least: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = stats(addr);
        if s[field].as_u64().unwrap_or(0) >= at_least {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{field} stayed below {at_least}: {s}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
