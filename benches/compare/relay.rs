//! The JSON relay servers: every client is a user (`user_id` in the URL
//! query) and sends chat messages `{"message_type":"text","receiver":"u7",
//! "data":{...}}`; the server routes each to its receiver's connection,
//! stamped with `sender`, `sender_type`, a `message_id` and `create_at`.
//!
//! wshub does it with its built-in relay (`relay: true`), no host code.
//! tokio-tungstenite and fastwebsockets do the same JSON work the way a
//! careful tokio server does: `serde_json` into a message struct (owned
//! strings; `data` kept raw, not parsed into a `Value`), a user → sender
//! map behind a mutex (the tokio chat example's shape), the hub's fields
//! stamped, serialised again, and handed to the receiver's writer task
//! through a bounded channel (64, wshub's ring size; a full one drops and
//! counts `lagged`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use wshub::{Hub, HubConfig};

use crate::servers::{COUNTERS, announce, fws_handshake, listen, print_stats, stdin_thread};

/// A relayed chat message as the peers read and write it (go-wsc's field
/// names; `data` passes through as raw JSON).
#[derive(Deserialize, Serialize)]
struct ChatMessage {
    #[serde(default)]
    message_id: String,
    message_type: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    sender_type: String,
    receiver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    create_at: String,
}

/// The peers' message ids: a counter, 24 hex digits like wshub's.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Reads a client's message and stamps it as sent by `sender`; `None` for
/// anything that is not a chat message (ignored, as wshub ignores nothing
/// but answers with an error the bench never provokes).
fn stamp(text: &[u8], sender: &str) -> Option<(String, String)> {
    let mut m: ChatMessage = serde_json::from_slice(text).ok()?;
    m.sender = sender.to_owned();
    m.sender_type = "user".to_owned();
    m.message_id = format!("{:024x}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    m.create_at = wshub::message::rfc3339_now();
    let out = serde_json::to_string(&m).ok()?;
    Some((m.receiver, out))
}

/// `user_id` from a request path's query (`/ws?user_id=u3&client_id=c3`).
fn user_of(path: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("user_id="))
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
}

/// Users' writer tasks, by user id.
type Users<T> = Arc<Mutex<HashMap<String, mpsc::Sender<T>>>>;

/// Queues `out` for `receiver`'s writer; a full or missing one is counted.
fn route<T>(users: &Users<T>, receiver: &str, out: T) {
    let tx = users.lock().unwrap().get(receiver).cloned();
    match tx.map(|tx| tx.try_send(out)) {
        Some(Ok(())) => {}
        _ => {
            COUNTERS.lagged.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Ring and channel size per connection (wshub's `Hub<64, _>`).
const BACKLOG: usize = 64;

pub fn serve_wshub() -> std::io::Result<()> {
    let mut config = HubConfig::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.max_connections = 11_000;
    config.max_connections_per_ip = 0;
    config.max_message_size = 64 * 1024;
    config.relay = true;
    let mut hub = Hub::<BACKLOG, 512>::bind(config).map_err(std::io::Error::other)?;
    announce(hub.local_addr().port());
    stdin_thread(false);
    loop {
        hub.poll(Some(Duration::from_millis(50)))?;
        // Connects and disconnects only: the relay routes the messages.
        while hub.next_event().is_some() {}
        if COUNTERS.want_stats.swap(false, Ordering::AcqRel) {
            COUNTERS
                .queue_full
                .store(hub.stats().queue_full_count, Ordering::Relaxed);
            print_stats();
        }
    }
}

// ---- tokio-tungstenite ----------------------------------------------------

pub async fn serve_tt() -> std::io::Result<()> {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = listen().await?;
    let users: Users<Message> = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let users = users.clone();
        tokio::spawn(async move {
            let mut user = None;
            // tungstenite's callback type: its error is an HTTP response.
            #[allow(clippy::result_large_err)]
            let callback = |req: &Request, resp: Response| {
                user = user_of(&req.uri().to_string());
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                return;
            };
            let Some(user) = user else { return };
            let (mut sink, mut stream) = ws.split();
            let (tx, mut rx) = mpsc::channel::<Message>(BACKLOG);
            users.lock().unwrap().insert(user.clone(), tx);
            // The writer: feeds what is ready, then flushes once.
            tokio::spawn(async move {
                while let Some(msg) = rx.recv().await {
                    if sink.feed(msg).await.is_err() {
                        return;
                    }
                    while let Ok(m) = rx.try_recv() {
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                }
            });
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Text(text) = msg
                    && let Some((to, out)) = stamp(text.as_bytes(), &user)
                {
                    route(&users, &to, Message::text(out));
                }
            }
            users.lock().unwrap().remove(&user);
        });
    }
}

// ---- fastwebsockets ---------------------------------------------------------

pub async fn serve_fws() -> std::io::Result<()> {
    use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
    let listener = listen().await?;
    let users: Users<Vec<u8>> = Arc::default();
    loop {
        let (mut stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let users = users.clone();
        tokio::spawn(async move {
            let Ok(path) = fws_handshake(&mut stream).await else {
                return;
            };
            let Some(user) = user_of(&path) else { return };
            let mut ws = WebSocket::after_handshake(stream, Role::Server);
            ws.set_auto_close(true);
            ws.set_auto_pong(true);
            let (mut rd, mut wr) = ws.split(|s| s.into_split());
            let (tx, mut rx) = mpsc::channel::<Vec<u8>>(BACKLOG);
            users.lock().unwrap().insert(user.clone(), tx);
            tokio::spawn(async move {
                while let Some(out) = rx.recv().await {
                    if wr
                        .write_frame(Frame::text(Payload::Owned(out)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
            let mut ignore =
                |_: Frame<'_>| std::future::ready(Ok::<(), std::convert::Infallible>(()));
            while let Ok(frame) = rd.read_frame(&mut ignore).await {
                match frame.opcode {
                    OpCode::Close => break,
                    OpCode::Text => {
                        if let Some((to, out)) = stamp(&frame.payload, &user) {
                            route(&users, &to, out.into_bytes());
                        }
                    }
                    _ => {}
                }
            }
            users.lock().unwrap().remove(&user);
        });
    }
}
