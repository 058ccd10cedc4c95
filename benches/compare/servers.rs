//! The servers under test, each doing exactly the same job: `echo` sends every
//! text or binary message back to its sender; `broadcast` sends every
//! message to every open connection (the sender too); `group` puts each
//! connection whose handshake says `group_id=g` in room `g` and sends every
//! message to room `g` (wshub with its groups, the peers with a map room →
//! member senders, as a chat server built on them keeps); `deflate` is
//! `broadcast` with permessage-deflate for clients that offer it (wshub's
//! `broadcast` does that already; tokio-tungstenite 0.30 has no deflate
//! support, so its `deflate` server compresses in each connection's writer,
//! see `serve_tt`); `tls-echo` is `echo` over `wss://` (wshub's own TLS
//! listener, tokio-tungstenite behind tokio-rustls; fastwebsockets is not in
//! the TLS runs); `relay` routes JSON chat messages between users (see
//! [`relay`]). Each runs on one thread: wshub's own loop, and a
//! current-thread tokio runtime for the peers (the fair single-core setup).
//!
//! A server prints `PORT <n>` once it listens, then answers lines on stdin:
//! `stats` → `STATS heap=<bytes> queue_full=<n> lagged=<n>`. End of stdin
//! ends the process.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use wshub::config::TlsConfig;
use wshub::{Hub, HubConfig, HubEvent, Target};

use crate::tls::Files;

/// Messages a slow receiver may fall behind in the peers' broadcast channel:
/// the same as wshub's ring, so overload costs every server the same.
const BACKLOG: usize = 64;

/// Counters the servers publish for the `stats` command.
pub struct Counters {
    pub queue_full: AtomicU64,
    pub lagged: AtomicU64,
    pub want_stats: AtomicBool,
}

pub static COUNTERS: Counters = Counters {
    queue_full: AtomicU64::new(0),
    lagged: AtomicU64::new(0),
    want_stats: AtomicBool::new(false),
};

/// Prints the counters (from whichever thread notices the request first).
pub(crate) fn print_stats() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "STATS heap={} queue_full={} lagged={}",
        crate::alloc::live_bytes(),
        COUNTERS.queue_full.load(Ordering::Relaxed),
        COUNTERS.lagged.load(Ordering::Relaxed),
    );
    let _ = out.flush();
}

/// Answers `stats` on stdin; exits on end of input (the parent is gone).
pub(crate) fn stdin_thread(answer_here: bool) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "stats" {
                if answer_here {
                    print_stats();
                } else {
                    COUNTERS.want_stats.store(true, Ordering::Release);
                }
            }
        }
        std::process::exit(0);
    });
}

pub(crate) fn announce(port: u16) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "PORT {port}");
    let _ = out.flush();
}

/// What a server does with the messages it gets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Echo,
    Broadcast,
    Group,
    /// Broadcast, compressed for clients that offer permessage-deflate.
    Deflate,
}

/// The room every `group` connection asks for, and the senders' target.
const ROOM: &str = "g";

/// Runs server `name` in mode `mode_name` until the parent closes stdin.
pub fn serve(name: &str, mode_name: &str) -> std::io::Result<()> {
    let (mode, tls) = match mode_name {
        "echo" => (Mode::Echo, None),
        "broadcast" => (Mode::Broadcast, None),
        "group" => (Mode::Group, None),
        "deflate" => (Mode::Deflate, None),
        "relay" => {
            return match name {
                "wshub" => crate::relay::serve_wshub(),
                "tt" => tokio_main(crate::relay::serve_tt()),
                "fws" => tokio_main(crate::relay::serve_fws()),
                _ => Err(std::io::Error::other(format!("unknown server {name}"))),
            };
        }
        "tls-echo" => (
            Mode::Echo,
            Some(Files::from_env().ok_or_else(|| {
                std::io::Error::other(format!("tls-echo needs {}", crate::tls::DIR_VAR))
            })?),
        ),
        _ => {
            return Err(std::io::Error::other(format!("unknown mode {mode_name}")));
        }
    };
    match (name, mode, tls) {
        ("wshub", _, tls) => serve_wshub(mode, tls),
        ("tt", _, None) => tokio_main(serve_tt(mode)),
        // Only `tls-echo` brings files: the TLS peer is an echo server.
        ("tt", _, Some(files)) => tokio_main(serve_tt_tls(files.server_config()?)),
        ("fws", Mode::Deflate, None) => Err(std::io::Error::other("fastwebsockets has no deflate")),
        ("fws", _, None) => tokio_main(serve_fws(mode)),
        _ => Err(std::io::Error::other(format!(
            "unknown server {name} (in mode {mode_name})"
        ))),
    }
}

/// The group a handshake asks for (`group_id=` in the query).
fn asked_group(path_and_query: &str) -> Option<String> {
    let query = path_and_query.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("group_id="))
        .map(str::to_owned)
}

fn serve_wshub(mode: Mode, tls: Option<Files>) -> std::io::Result<()> {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = 11_000;
    config.max_connections_per_ip = 0;
    config.max_message_size = 64 * 1024;
    if let Some(files) = &tls {
        config.tls = Some(TlsConfig::new(files.cert(), files.key()));
        config.tls_listen = "127.0.0.1:0".parse().unwrap();
    }
    let mut hub = Hub::<64, 512>::bind(config).map_err(std::io::Error::other)?;
    hub.set_json_protocol(false);
    // The `group_id` handshake parameter joins only where the host allows.
    hub.set_group_policy(|_: &wshub::GroupRequest<'_>| true);
    announce(hub.tls_local_addr().unwrap_or(hub.local_addr()).port());
    stdin_thread(false);
    loop {
        hub.poll(Some(Duration::from_millis(50)))?;
        while let Some(ev) = hub.next_event() {
            let (conn, payload) = match ev {
                HubEvent::Text { conn, text, .. } => (conn, text),
                HubEvent::Binary { conn, data, .. } => (conn, data),
                _ => continue,
            };
            let target = match mode {
                Mode::Echo => Target::Conn(conn),
                Mode::Broadcast | Mode::Deflate => Target::All,
                Mode::Group => Target::Group(ROOM),
            };
            let _ = hub.send(target, &payload);
        }
        if COUNTERS.want_stats.swap(false, Ordering::AcqRel) {
            COUNTERS
                .queue_full
                .store(hub.stats().queue_full_count, Ordering::Relaxed);
            print_stats();
        }
    }
}

pub(crate) fn tokio_main(
    fut: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    stdin_thread(true);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(fut)
}

pub(crate) async fn listen() -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(listener.local_addr()?.port());
    Ok(listener)
}

// ---- tokio-tungstenite ----------------------------------------------------

/// Rooms of a peer server: room → (connection number, its writer's queue).
type Rooms<T> = Arc<Mutex<HashMap<String, Vec<(u64, mpsc::Sender<T>)>>>>;

/// Queues `msg` for every member of `room`; a full queue drops it (counted
/// like wshub's `queue_full`).
fn send_to_room<T: Clone>(rooms: &Rooms<T>, room: &str, msg: &T) {
    let rooms = rooms.lock().unwrap();
    for (_, tx) in rooms.get(room).into_iter().flatten() {
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(msg.clone()) {
            COUNTERS.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn leave_room<T>(rooms: &Rooms<T>, room: &str, id: u64) {
    let mut rooms = rooms.lock().unwrap();
    if let Some(members) = rooms.get_mut(room) {
        members.retain(|(m, _)| *m != id);
        if members.is_empty() {
            rooms.remove(room);
        }
    }
}

/// The permessage-deflate answer of the hand-made tokio-tungstenite
/// extension: no context takeover either way, as wshub asks.
const TT_DEFLATE: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

thread_local! {
    /// The tokio-tungstenite server's compressor (one thread; reset per
    /// message, so it keeps no context between messages or connections).
    static TT_DEFLATER: std::cell::RefCell<flate2::Compress> =
        std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::new(3), false));
}

/// `msg` compressed as one permessage-deflate frame (RSV1 set).
fn tt_compress(
    msg: &tokio_tungstenite::tungstenite::Message,
) -> tokio_tungstenite::tungstenite::Message {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let (data, opcode) = match msg {
        Message::Text(t) => (t.as_bytes(), Data::Text),
        Message::Binary(b) => (&b[..], Data::Binary),
        _ => return msg.clone(),
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    TT_DEFLATER.with(|z| {
        let mut z = z.borrow_mut();
        z.reset();
        let mut input = data;
        loop {
            let before = z.total_in();
            let _ = z.compress_vec(input, &mut out, flate2::FlushCompress::Sync);
            input = &input[(z.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
    });
    out.truncate(out.len().saturating_sub(4)); // the 00 00 ff ff tail
    let mut frame = Frame::message(out, OpCode::Data(opcode), true);
    frame.header_mut().rsv1 = true;
    Message::Frame(frame)
}

/// tokio-tungstenite: `accept_hdr_async`, whose callback reads the group a
/// handshake asks for and, in `deflate` mode, accepts a permessage-deflate
/// offer. tungstenite 0.30 has no permessage-deflate, so that mode does it
/// by hand the way a per-connection extension would: each connection's
/// writer compresses every message it sends (once per recipient), with the
/// context reset per message (context takeover would keep ~300 KB of
/// compressor per connection: 3 GB at 10,000).
async fn serve_tt(mode: Mode) -> std::io::Result<()> {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = listen().await?;
    let (tx, _) = broadcast::channel::<Message>(BACKLOG);
    let rooms: Rooms<Message> = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        let rooms = rooms.clone();
        next_id += 1;
        let id = next_id;
        tokio::spawn(async move {
            let mut group = None;
            let mut deflate = false;
            // The error type is tungstenite's `ErrorResponse`, not ours.
            #[allow(clippy::result_large_err)]
            let callback = |req: &Request, mut resp: Response| {
                group = req
                    .uri()
                    .path_and_query()
                    .and_then(|p| asked_group(p.as_str()));
                let offered = req
                    .headers()
                    .get_all("sec-websocket-extensions")
                    .iter()
                    .any(|v| v.to_str().is_ok_and(|v| v.contains("permessage-deflate")));
                if mode == Mode::Deflate && offered {
                    deflate = true;
                    resp.headers_mut()
                        .insert("sec-websocket-extensions", TT_DEFLATE.parse().unwrap());
                }
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                return;
            };
            if mode == Mode::Echo {
                tt_echo(ws).await;
                return;
            }
            let (mut sink, mut stream) = ws.split();
            if mode == Mode::Group {
                let (qtx, mut qrx) = mpsc::channel::<Message>(BACKLOG);
                if let Some(g) = &group {
                    rooms
                        .lock()
                        .unwrap()
                        .entry(g.clone())
                        .or_default()
                        .push((id, qtx));
                }
                let reader_rooms = rooms.clone();
                tokio::spawn(async move {
                    while let Some(Ok(msg)) = stream.next().await {
                        if msg.is_text() || msg.is_binary() {
                            send_to_room(&reader_rooms, ROOM, &msg);
                        }
                    }
                    if let Some(g) = group {
                        leave_room(&reader_rooms, &g, id);
                    }
                });
                while let Some(msg) = qrx.recv().await {
                    if sink.feed(msg).await.is_err() {
                        return;
                    }
                    while let Ok(m) = qrx.try_recv() {
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                }
                return;
            }
            let mut rx = tx.subscribe();
            tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = tx.send(msg);
                    }
                }
            });
            let prepare = |m: Message| if deflate { tt_compress(&m) } else { m };
            // Feed what is ready, then flush once: the batching a careful
            // tokio-tungstenite server does.
            loop {
                let msg = match rx.recv().await {
                    Ok(m) => m,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        COUNTERS.lagged.fetch_add(n, Ordering::Relaxed);
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if sink.feed(prepare(msg)).await.is_err() {
                    break;
                }
                while let Ok(m) = rx.try_recv() {
                    if sink.feed(prepare(m)).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    break;
                }
            }
        });
    }
}

/// tokio-tungstenite's echo: every text or binary message sent back.
async fn tt_echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: tokio_tungstenite::WebSocketStream<S>) {
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            break;
        }
    }
}

/// tokio-tungstenite's echo over `wss://`: tokio-rustls accepts, then the
/// same WebSocket handshake and echo as the plain server.
async fn serve_tt_tls(config: Arc<rustls::ServerConfig>) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = listen().await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            if let Ok(ws) = tokio_tungstenite::accept_async(tls).await {
                tt_echo(ws).await;
            }
        });
    }
}

// ---- fastwebsockets ---------------------------------------------------------

/// The HTTP upgrade for fastwebsockets (its own `upgrade` feature needs
/// hyper; this is the same exchange, and not part of what is measured).
/// Returns the request's path (with its query).
pub(crate) async fn fws_handshake(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let end = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if head.len() > 8192 {
            return Err(std::io::Error::other("head too large"));
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&head[..end]).map_err(std::io::Error::other)?;
    let key = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
        .ok_or_else(|| std::io::Error::other("no key"))?;
    let accept = tungstenite::handshake::derive_accept_key(key.value);
    let path = req.path.unwrap_or("/").to_owned();
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(resp.as_bytes()).await?;
    Ok(path)
}

async fn serve_fws(mode: Mode) -> std::io::Result<()> {
    use fastwebsockets::{Frame, OpCode, Role, WebSocket};
    let listener = listen().await?;
    let (tx, _) = broadcast::channel::<Bytes>(BACKLOG);
    let tx = Arc::new(tx);
    let rooms: Rooms<Bytes> = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (mut stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        let rooms = rooms.clone();
        next_id += 1;
        let id = next_id;
        tokio::spawn(async move {
            let Ok(path) = fws_handshake(&mut stream).await else {
                return;
            };
            let group = asked_group(&path);
            let mut ws = WebSocket::after_handshake(stream, Role::Server);
            ws.set_auto_close(true);
            ws.set_auto_pong(true);
            if mode == Mode::Echo {
                while let Ok(frame) = ws.read_frame().await {
                    let echo = match frame.opcode {
                        OpCode::Close => break,
                        OpCode::Text | OpCode::Binary => true,
                        _ => false,
                    };
                    if echo && ws.write_frame(frame).await.is_err() {
                        break;
                    }
                }
                return;
            }
            let (mut rd, mut wr) = ws.split(|s| s.into_split());
            if mode == Mode::Group {
                let (qtx, mut qrx) = mpsc::channel::<Bytes>(BACKLOG);
                if let Some(g) = &group {
                    rooms
                        .lock()
                        .unwrap()
                        .entry(g.clone())
                        .or_default()
                        .push((id, qtx));
                }
                let reader_rooms = rooms.clone();
                tokio::spawn(async move {
                    let mut ignore =
                        |_: Frame<'_>| std::future::ready(Ok::<(), std::convert::Infallible>(()));
                    while let Ok(frame) = rd.read_frame(&mut ignore).await {
                        match frame.opcode {
                            OpCode::Close => break,
                            OpCode::Text | OpCode::Binary => {
                                let msg = Bytes::copy_from_slice(&frame.payload);
                                send_to_room(&reader_rooms, ROOM, &msg);
                            }
                            _ => {}
                        }
                    }
                    if let Some(g) = group {
                        leave_room(&reader_rooms, &g, id);
                    }
                });
                while let Some(msg) = qrx.recv().await {
                    let frame = Frame::text(fastwebsockets::Payload::Borrowed(&msg));
                    if wr.write_frame(frame).await.is_err() {
                        break;
                    }
                }
                return;
            }
            let mut rx = tx.subscribe();
            let txr = tx.clone();
            tokio::spawn(async move {
                let mut ignore =
                    |_: Frame<'_>| std::future::ready(Ok::<(), std::convert::Infallible>(()));
                while let Ok(frame) = rd.read_frame(&mut ignore).await {
                    match frame.opcode {
                        OpCode::Close => break,
                        OpCode::Text | OpCode::Binary => {
                            let _ = txr.send(Bytes::copy_from_slice(&frame.payload));
                        }
                        _ => {}
                    }
                }
            });
            loop {
                let msg = match rx.recv().await {
                    Ok(m) => m,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        COUNTERS.lagged.fetch_add(n, Ordering::Relaxed);
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let frame = Frame::text(fastwebsockets::Payload::Borrowed(&msg));
                if wr.write_frame(frame).await.is_err() {
                    break;
                }
            }
        });
    }
}
