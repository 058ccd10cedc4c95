//! The servers under test, each doing exactly the same job: `echo` sends every
//! text or binary message back to its sender; `broadcast` sends every
//! message to every open connection (the sender too); `relay` routes JSON
//! chat messages between users (see [`relay`]). Each runs on one thread:
//! wshub's own loop, and a current-thread tokio runtime for the peers (the
//! fair single-core setup).
//!
//! A server prints `PORT <n>` once it listens, then answers lines on stdin:
//! `stats` → `STATS heap=<bytes> queue_full=<n> lagged=<n>`. End of stdin
//! ends the process.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use wshub::{Hub, HubConfig, HubEvent, Target};

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

/// Runs server `name` in `mode` until the parent closes stdin.
pub fn serve(name: &str, mode: &str) -> std::io::Result<()> {
    let broadcast = match mode {
        "echo" => false,
        "broadcast" => true,
        "relay" => {
            return match name {
                "wshub" => crate::relay::serve_wshub(),
                "tt" => tokio_main(crate::relay::serve_tt()),
                "fws" => tokio_main(crate::relay::serve_fws()),
                _ => Err(std::io::Error::other(format!("unknown server {name}"))),
            };
        }
        _ => return Err(std::io::Error::other(format!("unknown mode {mode}"))),
    };
    match name {
        "wshub" => serve_wshub(broadcast),
        "tt" => tokio_main(serve_tt(broadcast)),
        "fws" => tokio_main(serve_fws(broadcast)),
        _ => Err(std::io::Error::other(format!("unknown server {name}"))),
    }
}

fn serve_wshub(broadcast: bool) -> std::io::Result<()> {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = 11_000;
    config.max_connections_per_ip = 0;
    config.max_message_size = 64 * 1024;
    let mut hub = Hub::<64, 512>::bind(config).map_err(std::io::Error::other)?;
    hub.set_json_protocol(false);
    announce(hub.local_addr().port());
    stdin_thread(false);
    loop {
        hub.poll(Some(Duration::from_millis(50)))?;
        while let Some(ev) = hub.next_event() {
            let (conn, payload) = match ev {
                HubEvent::Text { conn, text, .. } => (conn, text),
                HubEvent::Binary { conn, data, .. } => (conn, data),
                _ => continue,
            };
            let target = if broadcast {
                Target::All
            } else {
                Target::Conn(conn)
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

async fn serve_tt(broadcast: bool) -> std::io::Result<()> {
    use tokio_tungstenite::tungstenite::Message;
    let listener = listen().await?;
    let (tx, _) = broadcast::channel::<Message>(BACKLOG);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            if !broadcast {
                let mut ws = ws;
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        break;
                    }
                }
                return;
            }
            let (mut sink, mut stream) = ws.split();
            let mut rx = tx.subscribe();
            tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = tx.send(msg);
                    }
                }
            });
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
                if sink.feed(msg).await.is_err() {
                    break;
                }
                while let Ok(m) = rx.try_recv() {
                    if sink.feed(m).await.is_err() {
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

async fn serve_fws(broadcast: bool) -> std::io::Result<()> {
    use fastwebsockets::{Frame, OpCode, Role, WebSocket};
    let listener = listen().await?;
    let (tx, _) = broadcast::channel::<Bytes>(BACKLOG);
    let tx = Arc::new(tx);
    loop {
        let (mut stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        tokio::spawn(async move {
            if fws_handshake(&mut stream).await.is_err() {
                return;
            }
            let mut ws = WebSocket::after_handshake(stream, Role::Server);
            ws.set_auto_close(true);
            ws.set_auto_pong(true);
            if !broadcast {
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
