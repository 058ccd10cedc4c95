//! The hub: one thread, one `mio::Poll`, every socket and all hub state.
//!
//! A turn of [`Hub::poll`] runs, in this order: flush what earlier calls
//! queued, wait for readiness (or the next timer), accept, read and route
//! (flushing what each connection's read routed before reading the next),
//! run expired timers, carry out commands from other threads, flush again.
//! Data flows one way: socket → decoder → events/routes → rings → socket.

mod accept;
mod close;
mod cluster;
mod deflate;
mod deliver;
mod frames;
mod groups;
mod guard;
mod handshake;
mod health;
mod net;
mod read;
mod relay;
mod route;
mod timers;
#[cfg(feature = "tls")]
mod tls;
mod write;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::auth::{Authenticator, Identity};
use crate::config::HubConfig;
use crate::conn::Conn;
use crate::delivery::{Engine, EngineConfig};
use crate::error::BuildError;
use crate::event::{ConnId, HubEvent};
use crate::handle::{Command, HubHandle};
use crate::message::Payload;
use crate::stats::Stats;

use net::Conns;
pub use relay::{RelayVerdict, RelayView};
pub use route::Target;

/// Default capacity of each client's outbound ring.
pub const DEFAULT_QUEUE: usize = 64;
/// Default number of slots in the timing wheel.
pub const DEFAULT_WHEEL: usize = 512;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const TLS_LISTENER: Token = Token(usize::MAX - 3);
const ADMIN: Token = Token(usize::MAX - 4);
/// The hub-wide read buffer: every connection reads into it in turn.
const SCRATCH: usize = 64 * 1024;
/// Bytes one connection may read in one turn before others get theirs.
const READ_BUDGET: usize = 4 * SCRATCH;
/// Commands from other threads carried out per turn.
const COMMAND_BUDGET: usize = 1024;
/// How long a closing socket waits for the peer before it is dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Largest HTTP request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// The `kick_out` reason of a connection whose device connected again
/// (here or on another hub of the cluster).
const REPLACED: &str = "replaced by a newer connection";
/// Events waiting for the host before reading pauses.
const DEFAULT_EVENT_LIMIT: usize = 4096;

/// A static response served for plain `GET`s on the hub's port.
#[derive(Debug, Clone)]
struct Page {
    path: String,
    content_type: &'static str,
    body: Arc<[u8]>,
}

/// What a timer entry is for. Connection timers carry the `ConnId`, so one
/// that outlives its connection finds a different generation and is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerEvent {
    /// Handshake deadline or close linger of a connection.
    Phase(ConnId),
    /// Idle check of a connection.
    Idle(ConnId),
    /// Server ping to a connection.
    Heartbeat(ConnId),
    /// `send_timeout` check of a connection's oldest queued frame.
    SendTimeout(ConnId),
    /// The connection's token expires.
    Expiry(ConnId),
    /// Accepting failed (out of descriptors); try again.
    AcceptRetry,
    /// The shutdown deadline passed: drop whoever is left.
    ShutdownDeadline,
}

/// The shutdown's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Running,
    Draining,
    Finished,
}

/// A WebSocket hub, driven by the host from its own thread.
///
/// `QUEUE` is the capacity of every client's outbound ring, `WHEEL` the number
/// of slots of the timing wheel (a power of two). [`DefaultHub`] picks both.
///
/// ```no_run
/// use std::time::Duration;
/// use wshub::{DefaultHub, HubConfig, HubEvent};
///
/// let mut hub = DefaultHub::bind(HubConfig::default())?;
/// loop {
///     hub.poll(Some(Duration::from_millis(100)))?;
///     while let Some(event) = hub.next_event() {
///         if let HubEvent::Message { message, .. } = event {
///             let receiver = message.receiver.clone();
///             // Relay to the receiver; a failure is counted and reported.
///             let _ = hub.send_to_user(&receiver, &message);
///         }
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Hub<const QUEUE: usize = DEFAULT_QUEUE, const WHEEL: usize = DEFAULT_WHEEL> {
    poll: Poll,
    mio_events: Events,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    /// The `wss://` listener, when `tls` is configured.
    #[cfg(feature = "tls")]
    tls: Option<tls::TlsListener>,
    /// The `admin_listen` listener: health and metrics only.
    admin_listener: Option<TcpListener>,
    /// Connections per peer address (`max_connections_per_ip`).
    per_ip: guard::PerIp,
    /// Bytes held in partial heads, frames and messages, hub-wide.
    buffered: usize,
    /// `max_buffered_bytes` in force.
    buffered_budget: usize,
    commands: Receiver<Command>,
    handle: HubHandle,
    shutdown_requested: Arc<AtomicBool>,
    /// Connections, registry, connection timers, dirty list, clock.
    net: Conns<QUEUE, WHEEL>,
    /// Deliveries with retry, ACKs, back-pressure, the offline store and
    /// the failure handlers.
    engine: Engine<WHEEL>,
    config: HubConfig,
    auth: Box<dyn Authenticator>,
    pages: Vec<Page>,
    scratch: Box<[u8]>,
    /// Inflates every connection's compressed messages (permessage-deflate).
    inflater: crate::ws::deflate::Inflater,
    events: VecDeque<HubEvent>,
    /// Connections with unread input left over by the read budget.
    read_again: Vec<usize>,
    /// `read_again`'s twin, swapped in while the list is walked.
    read_spare: Vec<usize>,
    next_generation: u32,
    started: Instant,
    stats: Stats,
    lifecycle: Lifecycle,
    accept_paused: bool,
    ping_frame: Payload,
    /// Text frames are go-wsc JSON messages (else handed over as they are).
    json_protocol: bool,
    /// Frames a close-now abandoned, failed right after (reused).
    abandoned: Vec<crate::conn::outbox::Outbound>,
    /// Tagged frames written by the last flush, settled right after it.
    written: Vec<crate::delivery::Tag>,
    /// ACKs decoded this read: (connection, message id).
    acks: AckBuf,
    /// Reused by broadcasts for the keys of the open connections.
    broadcast_keys: Vec<usize>,
    /// Undrained events beyond which the hub stops reading from clients.
    event_limit: usize,
    /// The built-in relay's queue and frame pool (`relay: true`).
    relay: relay::RelayQueue,
    relay_filter: Option<relay::RelayFilter>,
    /// Group memberships of the open connections.
    groups: crate::group::Groups,
    /// Users' standing group memberships (`join_user` with `sticky`).
    sticky: crate::group::Sticky,
    /// What clients may do with groups.
    group_policy: Box<dyn crate::group::GroupPolicy>,
    /// Clients' `join` / `leave` messages of the last read.
    group_ops: groups::GroupOps,
    /// Reused by with-retry group sends for the members' (user, client).
    group_members: Vec<(Arc<str>, Arc<str>)>,
    /// The link to the other hubs (`cluster`), when configured.
    cluster: Option<crate::cluster::Cluster>,
}

impl<const QUEUE: usize, const WHEEL: usize> std::fmt::Debug for Hub<QUEUE, WHEEL> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.net.registry.connections())
            .field("lifecycle", &self.lifecycle)
            .field("pending_events", &self.events.len())
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// A [`Hub`] with the default ring capacity and wheel size.
pub type DefaultHub = Hub;

impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// Validates `config`, binds `config.listen` and preallocates room for
    /// `max_connections` clients.
    pub fn bind(config: HubConfig) -> Result<Self, BuildError> {
        let listener = std::net::TcpListener::bind(config.listen)?;
        Self::from_listener(listener, config)
    }

    /// Like [`bind`](Self::bind), on a listener the host created (for example
    /// bound to port 0, or inherited from a supervisor).
    pub fn from_listener(
        listener: std::net::TcpListener,
        config: HubConfig,
    ) -> Result<Self, BuildError> {
        config.validate().map_err(BuildError::Config)?;
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let local_addr = listener.local_addr()?;
        let auth = guard::authenticator(&config, local_addr)?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let side = SideListeners::bind(&config, &poll)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, commands) = crossbeam_channel::bounded(config.command_queue_capacity);
        let shutdown_requested = Arc::new(AtomicBool::new(false));
        let handle = HubHandle {
            tx,
            waker,
            shutdown: shutdown_requested.clone(),
            attempts: config.retry.max_retries as usize + 1,
        };
        let max = config.max_connections;
        let slots = slot_limit(max);
        let now = Instant::now();
        let engine = Engine::new(EngineConfig::from_hub(&config), slots, now, seed());
        let cluster = match &config.cluster {
            Some(c) => Some(crate::cluster::Cluster::start(
                c,
                handle.waker.clone(),
                now,
            )?),
            None => None,
        };
        Ok(Hub {
            poll,
            mio_events: Events::with_capacity(1024),
            listener: Some(listener),
            local_addr,
            #[cfg(feature = "tls")]
            tls: side.tls,
            admin_listener: side.admin,
            per_ip: guard::PerIp::new(config.max_connections_per_ip, slots),
            buffered: 0,
            buffered_budget: config.buffered_budget(),
            commands,
            handle,
            shutdown_requested,
            net: Conns::new(slots, max, &config, now),
            engine,
            auth,
            pages: Vec::new(),
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            inflater: crate::ws::deflate::Inflater::new(),
            events: VecDeque::with_capacity(64),
            read_again: Vec::with_capacity(slots),
            read_spare: Vec::with_capacity(slots),
            next_generation: 0,
            started: now,
            stats: Stats::default(),
            lifecycle: Lifecycle::Running,
            accept_paused: false,
            ping_frame: Payload::encode(crate::ws::OpCode::Ping, b""),
            json_protocol: true,
            written: Vec::with_capacity(64),
            abandoned: Vec::new(),
            acks: AckBuf::default(),
            broadcast_keys: Vec::with_capacity(max),
            event_limit: DEFAULT_EVENT_LIMIT,
            relay: relay::RelayQueue::new(slots),
            relay_filter: None,
            groups: crate::group::Groups::new(
                slots,
                config.max_groups,
                config.max_groups_per_connection,
            ),
            sticky: crate::group::Sticky::new(
                config.max_groups_per_connection,
                max.saturating_mul(config.max_groups_per_connection),
            ),
            group_policy: Box::new(crate::group::DefaultPolicy),
            group_ops: groups::GroupOps::default(),
            group_members: Vec::new(),
            cluster,
            config,
        })
    }

    /// The address the hub listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the `admin_listen` listener, when configured (with
    /// port 0 in the config, the port the system chose).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The configuration in force (go-wsc's `GetConfig`).
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Replaces the authenticator (the default reads go-wsc's query
    /// parameters, see [`identity_from_query`](crate::auth::identity_from_query)).
    pub fn set_authenticator(&mut self, auth: impl Authenticator + 'static) {
        self.auth = Box::new(auth);
    }

    /// Serves `body` for plain `GET path` requests on the hub's port (the
    /// demo page, a favicon). A later call for the same path replaces it.
    pub fn add_page(&mut self, path: &str, content_type: &'static str, body: impl Into<Arc<[u8]>>) {
        let page = Page {
            path: path.to_owned(),
            content_type,
            body: body.into(),
        };
        match self.pages.iter_mut().find(|p| p.path == path) {
            Some(p) => *p = page,
            None => self.pages.push(page),
        }
    }

    /// Turns go-wsc's JSON protocol off or on (on by default). Off, text
    /// frames reach the host as [`HubEvent::Text`] unparsed, and the hub sends
    /// no JSON of its own (pongs, errors, kick notices): for echo servers and
    /// custom protocols.
    pub fn set_json_protocol(&mut self, on: bool) {
        self.json_protocol = on;
    }

    /// A handle for other threads.
    pub fn handle(&self) -> HubHandle {
        self.handle.clone()
    }

    /// Caps the events waiting for the host (default 4,096). At the cap the
    /// hub stops reading from clients until the host drains some: a flood
    /// is pushed back to its sender by TCP instead of growing memory here.
    /// One read's worth of frames may go past the cap.
    pub fn set_event_limit(&mut self, limit: usize) {
        self.event_limit = limit.max(1);
    }

    /// Events waiting for the host.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// The next event for the host, if any. Drain them after every
    /// [`poll`](Self::poll).
    pub fn next_event(&mut self) -> Option<HubEvent> {
        self.events.pop_front()
    }

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.net.registry.connections()
    }

    /// The identity behind a connection, while it is open.
    pub fn identity(&self, conn: ConnId) -> Option<&Identity> {
        self.conn(conn).and_then(|c| c.identity.as_ref())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        let r = &self.net.registry;
        s.connections = r.connections() as u64;
        s.users = r.users() as u64;
        s.buffered_bytes = self.buffered as u64;
        s.queued = r
            .keys()
            .filter_map(|k| self.net.conns.get(k))
            .map(|c| c.outbox.len() as u64)
            .sum();
        s.deflate_compressed = self.net.twins.compressed;
        self.engine.fill_stats(&mut s);
        s.relay_pool_misses = self.relay.pool_misses();
        self.fill_group_stats(&mut s);
        s.cluster_unavailable = self.engine.cluster_failures();
        if let Some(c) = &self.cluster {
            let k = &c.counters;
            s.cluster_up = u64::from(c.up());
            s.cluster_sent = k.sent;
            s.cluster_received = k.received;
            s.cluster_lost = k.lost;
            s.cluster_unheard = k.unheard;
            s.cluster_malformed = k.malformed;
            s.cluster_link_downs = k.link_downs;
        }
        if let Some(p) = &self.net.remote {
            s.cluster_nodes = p.nodes() as u64;
            s.cluster_remote_devices = p.len() as u64;
            s.cluster_refused_devices = p.refused;
        }
        s
    }

    /// Pending timers (heartbeats, timeouts, retries).
    pub fn pending_timers(&self) -> usize {
        self.net.timers.len() + self.engine.pending_timers()
    }

    /// Whether a shutdown has completed: every connection is gone.
    pub fn is_finished(&self) -> bool {
        self.lifecycle == Lifecycle::Finished
    }

    /// Runs one turn of the loop, waiting at most `timeout` for something to
    /// happen (`None`: until something does). Returns after handling what was
    /// ready; drain [`next_event`](Self::next_event) afterwards.
    pub fn poll(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.net.now = Instant::now();
        self.net.twins.forget();
        self.flush_dirty();
        let timeout = self.poll_timeout(timeout);
        match self.poll.poll(&mut self.mio_events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        self.net.now = Instant::now();
        // Swap the events out so handlers may borrow the hub mutably; an
        // empty `Events` does not allocate.
        let events = std::mem::replace(&mut self.mio_events, Events::with_capacity(0));
        for ev in events.iter() {
            match ev.token() {
                LISTENER => self.accept(Listener::Public),
                TLS_LISTENER => self.accept(Listener::Tls),
                ADMIN => self.accept(Listener::Admin),
                WAKER => {}
                Token(key) => {
                    let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                    let writable = ev.is_writable() || ev.is_write_closed();
                    // The peer's FIN or an error may have come with the last
                    // data: then read on until EOF or WouldBlock.
                    let hup = ev.is_read_closed() || ev.is_error();
                    self.conn_ready(key, readable, writable, hup);
                }
            }
        }
        self.mio_events = events;
        self.read_leftovers();
        self.run_timers();
        self.run_commands();
        self.cluster_turn();
        if self.shutdown_requested.swap(false, Ordering::AcqRel) {
            self.shutdown();
        }
        self.flush_sender_notices();
        self.flush_dirty();
        self.check_finished();
        Ok(())
    }

    /// Runs the loop until a shutdown completes, handing every event to
    /// `on_event` together with the hub (to send, kick or shut down).
    pub fn run(&mut self, mut on_event: impl FnMut(&mut Self, HubEvent)) -> std::io::Result<()> {
        while !self.is_finished() {
            self.poll(None)?;
            while let Some(ev) = self.next_event() {
                on_event(self, ev);
            }
        }
        Ok(())
    }

    fn poll_timeout(&self, requested: Option<Duration>) -> Option<Duration> {
        let can_read = self.events.len() < self.event_limit;
        if !self.read_again.is_empty() && can_read || !self.events.is_empty() && requested.is_none()
        {
            return Some(Duration::ZERO);
        }
        let timer = [
            self.net.timers.next_deadline(),
            self.engine.next_deadline(),
            self.cluster_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|d| d.saturating_duration_since(self.net.now));
        match (requested, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn conn(&self, id: ConnId) -> Option<&Conn<QUEUE>> {
        self.net
            .conns
            .get(id.index())
            .filter(|c| c.id.generation == id.generation)
    }

    fn check_finished(&mut self) {
        if self.lifecycle == Lifecycle::Draining && self.net.conns.is_empty() {
            self.lifecycle = Lifecycle::Finished;
            log::info!("hub shut down");
        }
    }

    /// Starts a graceful shutdown: stop accepting, close 1001 to every client
    /// after its queued messages, and drop whoever is left at the deadline.
    pub fn shutdown(&mut self) {
        if self.lifecycle != Lifecycle::Running {
            return;
        }
        log::info!("hub shutting down: {} connections", self.net.conns.len());
        self.lifecycle = Lifecycle::Draining;
        for mut l in [self.listener.take(), self.admin_listener.take()]
            .into_iter()
            .flatten()
        {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.close_tls_listener();
        let keys: Vec<usize> = self.net.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close_conn(
                key,
                crate::event::DisconnectReason::Shutdown,
                crate::ws::CloseCode::AWAY,
                "server shutting down",
                crate::conn::outbox::CloseWhen::AfterData,
            );
        }
        self.engine.shut_down(self.net.now);
        let deadline = self.net.now + self.config.shutdown_timeout;
        self.net
            .timers
            .insert(deadline, TimerEvent::ShutdownDeadline);
        self.check_finished();
    }
}

/// Without the `tls` feature: no `wss://` listener, ever.
#[cfg(not(feature = "tls"))]
impl<const QUEUE: usize, const WHEEL: usize> Hub<QUEUE, WHEEL> {
    /// The address of the `wss://` listener: always `None` without the
    /// `tls` feature.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// Reloads the TLS files: [`TlsError::NotCompiled`](crate::TlsError)
    /// without the `tls` feature.
    ///
    /// # Errors
    ///
    /// Always, without the `tls` feature.
    pub fn reload_tls(&mut self) -> Result<(), crate::TlsError> {
        Err(crate::TlsError::NotCompiled)
    }

    fn listener_for(&self, which: Listener) -> Option<&TcpListener> {
        match which {
            Listener::Public => self.listener.as_ref(),
            Listener::Tls => None,
            Listener::Admin => self.admin_listener.as_ref(),
        }
    }

    #[allow(clippy::unnecessary_wraps)]
    fn tls_session(
        &mut self,
        _tls: bool,
    ) -> Result<Option<crate::conn::transport::TlsSession>, ()> {
        Ok(None)
    }

    fn close_tls_listener(&mut self) {}
}

/// The listeners beside the public one: `admin_listen` and `tls_listen`.
struct SideListeners {
    admin: Option<TcpListener>,
    #[cfg(feature = "tls")]
    tls: Option<tls::TlsListener>,
}

impl SideListeners {
    /// Binds and registers what `config` asks for.
    fn bind(config: &HubConfig, poll: &Poll) -> Result<SideListeners, BuildError> {
        let admin = match config.admin_listen {
            Some(addr) => {
                let mut admin = TcpListener::bind(addr)?;
                poll.registry()
                    .register(&mut admin, ADMIN, Interest::READABLE)?;
                Some(admin)
            }
            None => None,
        };
        #[cfg(feature = "tls")]
        let tls = match &config.tls {
            Some(cfg) => Some(tls::TlsListener::bind(
                cfg,
                config.tls_listen,
                poll.registry(),
                TLS_LISTENER,
            )?),
            None => None,
        };
        #[cfg(not(feature = "tls"))]
        if config.tls.is_some() {
            return Err(BuildError::Tls(crate::TlsError::NotCompiled));
        }
        Ok(SideListeners {
            admin,
            #[cfg(feature = "tls")]
            tls,
        })
    }
}

/// Which listener a new connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listener {
    /// `listen`: plain `ws://`.
    Public,
    /// `tls_listen`: `wss://`.
    Tls,
    /// `admin_listen`: health and metrics only.
    Admin,
}

/// ACK ids read from one connection's input, handed to the engine once the
/// decoder lets go of the connection. The strings are reused: after warm-up
/// an ACK allocates nothing.
#[derive(Debug, Default)]
struct AckBuf {
    ids: Vec<(ConnId, String)>,
    len: usize,
}

impl AckBuf {
    fn push(&mut self, conn: ConnId, message_id: &str) {
        match self.ids.get_mut(self.len) {
            Some(slot) => {
                slot.0 = conn;
                slot.1.clear();
                slot.1.push_str(message_id);
            }
            None => self.ids.push((conn, message_id.to_owned())),
        }
        self.len += 1;
    }

    fn iter(&self) -> impl Iterator<Item = (ConnId, &str)> {
        self.ids[..self.len].iter().map(|(c, id)| (*c, id.as_str()))
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// Slab slots for `max_connections`: room for every allowed connection plus
/// a few handshakes in flight, so that a full hub can still read a request
/// and answer 503 properly. Everything indexed by slot is sized to it, so
/// the slab never grows (and never moves its connections).
fn slot_limit(max_connections: usize) -> usize {
    max_connections + max_connections / 16 + 8
}

/// A seed for retry jitter: different per hub, no extra dependency.
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_nanos() as u64 ^ (std::process::id() as u64).rotate_left(32)
}
