//! The bridge to Redis: two threads, fed and heard over crossbeam channels,
//! so the hub's loop never waits on Redis.
//!
//! - The **publisher** owns one connection: it registers this hub's
//!   devices, refreshes their TTL with a heartbeat, and publishes what the
//!   loop hands it, pipelined in batches.
//! - The **subscriber** owns a subscribed connection (this hub's channel,
//!   the presence channel and the all-hubs channel) and a query connection
//!   for snapshots of other hubs' devices; what it hears goes to the loop,
//!   which a `mio::Waker` wakes.
//!
//! Either thread reconnects by itself with capped exponential backoff and
//! says so to the loop, which fails remote sends with `cluster_unavailable`
//! while a link is down.
//!
//! Keys, for a hub `N` and database `db` (pub/sub channels are global to a
//! Redis server, so they carry the database number):
//!
//! | key | what |
//! |---|---|
//! | `wshub:nodes` | set of hub ids that registered (stale ones pruned by readers) |
//! | `wshub:alive:N` | exists while `N` lives (`PX presence_ttl`, refreshed) |
//! | `wshub:devs:N` | set of `N`'s devices (`PX presence_ttl`, refreshed) |
//! | channel `wshub:{db}:presence` | `Up`, `Down`, `Heartbeat`, `Registered`, `Leaving` |
//! | channel `wshub:{db}:all` | `Broadcast`, `Group` |
//! | channel `wshub:{db}:node:N` | `Deliver`, `Outcome`, `Kick` for `N` |

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use mio::Waker;

use super::resp::{Connection, RespError, Value, is_timeout};
use super::wire::Wire;
use crate::config::{ClusterConfig, RedisAddr};

/// Commands waiting for the publisher; past it a remote send fails at once.
const OUT_CAPACITY: usize = 65_536;
/// Messages from the bridge waiting for the loop.
const IN_CAPACITY: usize = 65_536;
/// Commands written in one pipelined batch.
const BATCH: usize = 512;
/// Backoff between reconnects: from the first to the cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// How long a connect, a write or a reply may take.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the subscriber looks up from a quiet socket.
const SUB_TICK: Duration = Duration::from_millis(200);

/// What the loop asks of the publisher.
#[derive(Debug)]
pub(crate) enum Out {
    /// Publish `body` on a channel.
    Publish { channel: Channel, body: Vec<u8> },
    /// A local device opened (registered in this hub's set, then announced).
    DeviceUp { user: Arc<str>, client: Arc<str> },
    /// A local device closed.
    DeviceDown { user: Arc<str>, client: Arc<str> },
}

/// Where a publish goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Channel {
    /// One hub's own channel.
    Node(Arc<str>),
    /// Every hub.
    All,
}

/// Which of the bridge's two links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Publisher,
    Subscriber,
}

/// What the bridge tells the loop.
#[derive(Debug)]
pub(crate) enum In {
    /// A link came up (`true`) or went down.
    Link(Link, bool),
    /// Every device `node` holds (after a (re)subscribe, or when a hub
    /// (re)registers).
    Snapshot {
        node: String,
        devices: Vec<(String, String)>,
    },
    /// The hubs alive at a (re)subscribe, each snapshotted just before:
    /// any other hub the loop knows is gone.
    Synced(Vec<String>),
    /// A message heard on a channel (decoded by the loop).
    Message(Vec<u8>),
    /// Publishes lost because the publisher's link broke under them.
    Lost(u64),
    /// A publish to one hub that no one received (that hub is gone): the
    /// message, for the loop to fail.
    Unheard(Vec<u8>),
}

/// The running bridge; dropping it stops both threads.
pub(crate) struct Bridge {
    pub(crate) out: Sender<Out>,
    pub(crate) inbox: Receiver<In>,
    /// Nodes the loop dropped (their heartbeats stopped): the subscriber
    /// snapshots them again if they come back.
    pub(crate) forget: Sender<String>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("queued", &self.out.len())
            .finish_non_exhaustive()
    }
}

/// Names shared by both threads.
#[derive(Debug, Clone)]
struct Names {
    node: String,
    presence: String,
    all: String,
    mine: String,
    ttl: Duration,
    addr: RedisAddr,
}

impl Names {
    fn node_channel(&self, node: &str) -> String {
        format!("wshub:{}:node:{node}", self.addr.db)
    }
}

impl Bridge {
    /// Starts both threads; they connect in the background.
    pub(crate) fn start(cfg: &ClusterConfig, waker: Arc<Waker>) -> std::io::Result<Bridge> {
        let addr = cfg
            .redis()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let db = addr.db;
        let names = Names {
            node: cfg.node_id.clone(),
            presence: format!("wshub:{db}:presence"),
            all: format!("wshub:{db}:all"),
            mine: format!("wshub:{db}:node:{}", cfg.node_id),
            ttl: cfg.presence_ttl,
            addr,
        };
        let (out, out_rx) = crossbeam_channel::bounded(OUT_CAPACITY);
        // Bounded: a loop that falls behind makes the subscriber wait, and
        // Redis then drops a subscriber that lags too far (its output
        // buffer limit); the reconnect's snapshot puts things right.
        let (in_tx, inbox) = crossbeam_channel::bounded(IN_CAPACITY);
        let (forget, forget_rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = Publisher {
            names: names.clone(),
            rx: out_rx,
            tx: Notify {
                tx: in_tx.clone(),
                waker: waker.clone(),
                stop: stop.clone(),
            },
            stop: stop.clone(),
            devices: HashSet::new(),
        };
        let subscriber = Subscriber {
            names,
            tx: Notify {
                tx: in_tx,
                waker,
                stop: stop.clone(),
            },
            forget: forget_rx,
            stop: stop.clone(),
            known: HashSet::new(),
        };
        let threads = vec![
            std::thread::Builder::new()
                .name("wshub-cluster-pub".into())
                .spawn(move || publisher.run())?,
            std::thread::Builder::new()
                .name("wshub-cluster-sub".into())
                .spawn(move || subscriber.run())?,
        ];
        Ok(Bridge {
            out,
            inbox,
            forget,
            stop,
            threads,
        })
    }

    /// Hands a command to the publisher without waiting; `false` when its
    /// queue is full (or it is gone).
    pub(crate) fn send(&self, out: Out) -> bool {
        match self.out.try_send(out) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The inbox and the waker that tells the loop to look at it.
struct Notify {
    tx: Sender<In>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl Notify {
    /// Hands `msg` to the loop, waiting while its inbox is full (unless the
    /// hub stops meanwhile).
    fn send(&self, mut msg: In) {
        loop {
            match self.tx.send_timeout(msg, SUB_TICK) {
                Ok(()) => {
                    let _ = self.waker.wake();
                    return;
                }
                Err(crossbeam_channel::SendTimeoutError::Timeout(m)) => {
                    // Full: make sure the loop knows there is work.
                    let _ = self.waker.wake();
                    if self.stop.load(Ordering::Acquire) {
                        return;
                    }
                    msg = m;
                }
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return,
            }
        }
    }
}

/// Sleeps `backoff` in short steps (so a stop is seen), then doubles it.
fn back_off(backoff: &mut Duration, stop: &AtomicBool) {
    let until = Instant::now() + *backoff;
    while Instant::now() < until && !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(20));
    }
    *backoff = (*backoff * 2).min(BACKOFF_CAP);
}

struct Publisher {
    names: Names,
    rx: Receiver<Out>,
    tx: Notify,
    stop: Arc<AtomicBool>,
    /// This hub's devices, re-registered after every reconnect.
    devices: HashSet<(Arc<str>, Arc<str>)>,
}

impl Publisher {
    fn run(mut self) {
        let mut backoff = BACKOFF_FIRST;
        while !self.stop.load(Ordering::Acquire) {
            match Connection::open(&self.names.addr, IO_TIMEOUT).and_then(|mut c| {
                self.register(&mut c)?;
                Ok(c)
            }) {
                Ok(mut conn) => {
                    backoff = BACKOFF_FIRST;
                    log::info!("cluster: publisher connected to redis");
                    self.tx.send(In::Link(Link::Publisher, true));
                    let e = self.serve(&mut conn);
                    if self.stop.load(Ordering::Acquire) {
                        self.leave(&mut conn);
                        return;
                    }
                    log::warn!("cluster: publisher lost redis: {e}");
                    self.tx.send(In::Link(Link::Publisher, false));
                }
                Err(e) => {
                    log::debug!("cluster: publisher cannot reach redis: {e}");
                    // Track devices meanwhile; drop publishes (the loop
                    // knows the link is down and fails them itself).
                    let mut lost = 0;
                    while let Ok(out) = self.rx.try_recv() {
                        lost += u64::from(!self.track(&out));
                    }
                    if lost > 0 {
                        self.tx.send(In::Lost(lost));
                    }
                    back_off(&mut backoff, &self.stop);
                }
            }
        }
    }

    /// Registers every device of this hub and announces it.
    fn register(&mut self, c: &mut Connection) -> Result<(), RespError> {
        let devs = self.devs_key();
        c.call(&[b"DEL", devs.as_bytes()])?;
        let members: Vec<Vec<u8>> = self.devices.iter().map(|(u, cl)| member(u, cl)).collect();
        for chunk in members.chunks(1024) {
            let mut args: Vec<&[u8]> = vec![b"SADD", devs.as_bytes()];
            args.extend(chunk.iter().map(Vec::as_slice));
            c.call(&args)?;
        }
        c.call(&[b"SADD", b"wshub:nodes", self.names.node.as_bytes()])?;
        self.heartbeat(c)?;
        let mut body = Vec::new();
        Wire::Registered {
            node: &self.names.node,
        }
        .encode(&mut body);
        c.call(&[b"PUBLISH", self.names.presence.as_bytes(), &body])?;
        Ok(())
    }

    fn devs_key(&self) -> String {
        format!("wshub:devs:{}", self.names.node)
    }

    fn heartbeat(&mut self, c: &mut Connection) -> Result<(), RespError> {
        let ttl = self.names.ttl.as_millis().to_string();
        let alive = format!("wshub:alive:{}", self.names.node);
        c.queue(&[b"SET", alive.as_bytes(), b"1", b"PX", ttl.as_bytes()]);
        c.queue(&[b"PEXPIRE", self.devs_key().as_bytes(), ttl.as_bytes()]);
        let mut body = Vec::new();
        Wire::Heartbeat {
            node: &self.names.node,
        }
        .encode(&mut body);
        c.queue(&[b"PUBLISH", self.names.presence.as_bytes(), &body]);
        c.flush()?;
        for _ in 0..3 {
            if let Value::Error(e) = c.read()? {
                return Err(RespError::Server(e));
            }
        }
        Ok(())
    }

    /// Updates the device set; true for device changes, false for publishes.
    fn track(&mut self, out: &Out) -> bool {
        match out {
            Out::DeviceUp { user, client } => {
                self.devices.insert((user.clone(), client.clone()));
                true
            }
            Out::DeviceDown { user, client } => {
                self.devices.remove(&(user.clone(), client.clone()));
                true
            }
            Out::Publish { .. } => false,
        }
    }

    /// Publishes until the link breaks or the hub stops.
    fn serve(&mut self, c: &mut Connection) -> RespError {
        let beat = self.names.ttl / 3;
        let mut next_beat = Instant::now() + beat;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            if self.stop.load(Ordering::Acquire) {
                return RespError::Protocol("stopping");
            }
            let wait = next_beat.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait.min(SUB_TICK)) {
                Ok(first) => {
                    batch.push(first);
                    while batch.len() < BATCH {
                        match self.rx.try_recv() {
                            Ok(o) => batch.push(o),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = self.write_batch(c, &mut batch) {
                        return e;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return RespError::Protocol("hub gone");
                }
            }
            if Instant::now() >= next_beat {
                if let Err(e) = self.heartbeat(c) {
                    return e;
                }
                next_beat = Instant::now() + beat;
            }
        }
    }

    fn write_batch(&mut self, c: &mut Connection, batch: &mut Vec<Out>) -> Result<(), RespError> {
        let devs = self.devs_key();
        // Per reply, in order: the batch entry of a publish to one hub
        // (whose "0 receivers" means that hub is gone), else `None`.
        let mut replies: Vec<Option<usize>> = Vec::with_capacity(batch.len() * 2);
        let mut publishes = 0u64;
        let mut body = Vec::new();
        for (i, out) in batch.iter().enumerate() {
            self.track(out);
            match out {
                Out::Publish { channel, body } => {
                    let name = match channel {
                        Channel::Node(n) => self.names.node_channel(n),
                        Channel::All => self.names.all.clone(),
                    };
                    c.queue(&[b"PUBLISH", name.as_bytes(), body]);
                    publishes += 1;
                    replies.push(matches!(channel, Channel::Node(_)).then_some(i));
                }
                Out::DeviceUp { user, client } | Out::DeviceDown { user, client } => {
                    let up = matches!(out, Out::DeviceUp { .. });
                    let m = member(user, client);
                    let cmd: &[u8] = if up { b"SADD" } else { b"SREM" };
                    c.queue(&[cmd, devs.as_bytes(), &m]);
                    body.clear();
                    let (node, user, client) = (self.names.node.as_str(), &**user, &**client);
                    if up {
                        Wire::Up { node, user, client }.encode(&mut body);
                    } else {
                        Wire::Down { node, user, client }.encode(&mut body);
                    }
                    c.queue(&[b"PUBLISH", self.names.presence.as_bytes(), &body]);
                    replies.extend([None, None]);
                }
            }
        }
        let mut unheard = Vec::new();
        let written = c.flush().and_then(|()| {
            for &publish in &replies {
                match (c.read()?, publish) {
                    (Value::Error(e), _) => log::warn!("cluster: redis refused a command: {e}"),
                    (Value::Int(0), Some(i)) => unheard.push(i),
                    _ => {}
                }
            }
            Ok(())
        });
        for i in unheard {
            // Nobody listens on that hub's channel: it is gone. The loop
            // fails what it carried now, not at a deadline (or never, for
            // a plain send).
            if let Out::Publish { body, .. } = std::mem::replace(
                &mut batch[i],
                Out::Publish {
                    channel: Channel::All,
                    body: Vec::new(),
                },
            ) {
                self.tx.send(In::Unheard(body));
            }
        }
        batch.clear();
        if written.is_err() && publishes > 0 {
            self.tx.send(In::Lost(publishes));
        }
        written
    }

    /// A goodbye on a clean stop: others forget this hub at once.
    fn leave(&mut self, c: &mut Connection) {
        let mut body = Vec::new();
        Wire::Leaving {
            node: &self.names.node,
        }
        .encode(&mut body);
        let alive = format!("wshub:alive:{}", self.names.node);
        let _ = c.call(&[b"DEL", self.devs_key().as_bytes(), alive.as_bytes()]);
        let _ = c.call(&[b"SREM", b"wshub:nodes", self.names.node.as_bytes()]);
        let _ = c.call(&[b"PUBLISH", self.names.presence.as_bytes(), &body]);
    }
}

/// A device as a member of a hub's set: the wire's length-prefixed strings.
fn member(user: &str, client: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + user.len() + client.len());
    m.extend_from_slice(&(user.len() as u32).to_le_bytes());
    m.extend_from_slice(user.as_bytes());
    m.extend_from_slice(client.as_bytes());
    m
}

fn parse_member(m: &[u8]) -> Option<(String, String)> {
    let len = u32::from_le_bytes(m.get(..4)?.try_into().ok()?) as usize;
    let user = std::str::from_utf8(m.get(4..4 + len)?).ok()?;
    let client = std::str::from_utf8(m.get(4 + len..)?).ok()?;
    Some((user.to_owned(), client.to_owned()))
}

struct Subscriber {
    names: Names,
    tx: Notify,
    forget: Receiver<String>,
    stop: Arc<AtomicBool>,
    /// Hubs snapshotted since the last (re)subscribe.
    known: HashSet<String>,
}

impl Subscriber {
    fn run(mut self) {
        let mut backoff = BACKOFF_FIRST;
        while !self.stop.load(Ordering::Acquire) {
            match self.connect() {
                Ok((mut sub, mut query)) => {
                    backoff = BACKOFF_FIRST;
                    log::info!("cluster: subscribed to redis");
                    self.tx
                        .send(In::Synced(self.known.iter().cloned().collect()));
                    self.tx.send(In::Link(Link::Subscriber, true));
                    let e = self.listen(&mut sub, &mut query);
                    if self.stop.load(Ordering::Acquire) {
                        return;
                    }
                    log::warn!("cluster: subscriber lost redis: {e}");
                    self.tx.send(In::Link(Link::Subscriber, false));
                }
                Err(e) => {
                    log::debug!("cluster: subscriber cannot reach redis: {e}");
                    back_off(&mut backoff, &self.stop);
                }
            }
        }
    }

    /// Subscribes first, then snapshots every live hub, so nothing said
    /// between the two is missed.
    fn connect(&mut self) -> Result<(Connection, Connection), RespError> {
        let mut sub = Connection::open(&self.names.addr, IO_TIMEOUT)?;
        let mut query = Connection::open(&self.names.addr, IO_TIMEOUT)?;
        sub.queue(&[
            b"SUBSCRIBE",
            self.names.mine.as_bytes(),
            self.names.presence.as_bytes(),
            self.names.all.as_bytes(),
        ]);
        sub.flush()?;
        for _ in 0..3 {
            if let Value::Error(e) = sub.read()? {
                return Err(RespError::Server(e));
            }
        }
        self.known.clear();
        let nodes = match query.call(&[b"SMEMBERS", b"wshub:nodes"])? {
            Value::Array(Some(items)) => items,
            _ => Vec::new(),
        };
        for n in nodes.iter().filter_map(Value::bytes) {
            if let Ok(node) = std::str::from_utf8(n)
                && node != self.names.node
            {
                self.snapshot(&mut query, node)?;
            }
        }
        sub.set_read_timeout(Some(SUB_TICK))?;
        Ok((sub, query))
    }

    /// Reads hub `node`'s devices and hands them to the loop; a hub whose
    /// `alive` key is gone is pruned from the set instead.
    fn snapshot(&mut self, q: &mut Connection, node: &str) -> Result<(), RespError> {
        let alive = format!("wshub:alive:{node}");
        if q.call(&[b"EXISTS", alive.as_bytes()])? != Value::Int(1) {
            q.call(&[b"SREM", b"wshub:nodes", node.as_bytes()])?;
            return Ok(());
        }
        let devs = format!("wshub:devs:{node}");
        let devices = match q.call(&[b"SMEMBERS", devs.as_bytes()])? {
            Value::Array(Some(items)) => items
                .iter()
                .filter_map(|m| parse_member(m.bytes()?))
                .collect(),
            _ => Vec::new(),
        };
        self.known.insert(node.to_owned());
        self.tx.send(In::Snapshot {
            node: node.to_owned(),
            devices,
        });
        Ok(())
    }

    fn listen(&mut self, sub: &mut Connection, query: &mut Connection) -> RespError {
        loop {
            if self.stop.load(Ordering::Acquire) {
                return RespError::Protocol("stopping");
            }
            while let Ok(node) = self.forget.try_recv() {
                self.known.remove(&node);
            }
            let push = match sub.read() {
                Ok(v) => v,
                Err(e) if is_timeout(&e) => continue,
                Err(e) => return e,
            };
            let Value::Array(Some(mut parts)) = push else {
                continue;
            };
            if parts.len() != 3 || parts[0].bytes() != Some(b"message") {
                continue;
            }
            let Some(Value::Bulk(Some(body))) = parts.pop() else {
                continue;
            };
            if let Err(e) = self.before_forwarding(&body, query) {
                return e;
            }
            self.tx.send(In::Message(body));
        }
    }

    /// Snapshots a hub heard of for the first time (or re-registering), so
    /// the loop has its devices before anything else from it.
    fn before_forwarding(&mut self, body: &[u8], q: &mut Connection) -> Result<(), RespError> {
        match Wire::decode(body) {
            Ok(Wire::Registered { node }) if node != self.names.node => self.snapshot(q, node),
            Ok(Wire::Heartbeat { node } | Wire::Up { node, .. } | Wire::Down { node, .. })
                if node != self.names.node && !self.known.contains(node) =>
            {
                self.snapshot(q, node)
            }
            Ok(Wire::Leaving { node }) => {
                self.known.remove(node);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_any_names() {
        for (u, c) in [("bob", "phone"), ("", ""), ("a\0b", "é:x")] {
            assert_eq!(
                parse_member(&member(u, c)),
                Some((u.to_owned(), c.to_owned()))
            );
        }
        assert_eq!(parse_member(b"\x09\0\0\0ab"), None);
    }
}
