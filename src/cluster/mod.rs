//! Hubs that share users through Redis (`cluster:` in the config).
//!
//! Each hub keeps a picture of the other hubs' devices ([`presence`]),
//! learnt from a snapshot at (re)connect and kept current by the presence
//! channel; a remote device is a *proxy* connection id, so the delivery
//! engine offers, tracks, times out and retries it as it does a local one.
//! A frame for a proxy goes to its hub's channel as a `Deliver`; that hub
//! runs one attempt for its device (ring, ACK, timeouts as usual) and sends
//! the `Outcome` back, which settles the proxy's part. Plain sends,
//! broadcasts, group sends and kicks are published the same way, untracked.
//!
//! Pub/sub, not streams: a delivery is tracked end to end by the sending
//! hub (deadline, retry, result), so the transport need not be durable; a
//! message lost with a hub or with Redis fails its attempt and is retried.
//!
//! The loop never waits on Redis: the [`bridge`] threads do, and talk to
//! the loop over channels.

pub(crate) mod bridge;
pub(crate) mod presence;
pub(crate) mod resp;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge::{Bridge, Channel, Link, Out};
use wire::Wire;

use crate::config::ClusterConfig;

/// The state of the link to Redis, as `/health/failure-stats` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Not yet connected since the hub started.
    Connecting,
    /// Both links up: remote sends go out.
    Up,
    /// A link broke: remote sends fail with `cluster_unavailable` while the
    /// bridge reconnects.
    Down,
}

impl LinkState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Down => "down",
        }
    }
}

/// Counters of the cluster link.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClusterCounters {
    /// Messages published to other hubs.
    pub sent: u64,
    /// Messages heard from other hubs.
    pub received: u64,
    /// Remote sends failed at once because the link was down or full.
    pub unavailable: u64,
    /// Publishes lost when the link broke under them, and presence
    /// changes dropped at a full bridge queue.
    pub lost: u64,
    /// Publishes to a hub that no one received (that hub was gone).
    pub unheard: u64,
    /// Unreadable messages on this hub's channels.
    pub malformed: u64,
    /// Times the link went down.
    pub link_downs: u64,
}

/// The loop's side of the cluster: the bridge, the link state, counters.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub node: Arc<str>,
    pub ttl: Duration,
    bridge: Bridge,
    publisher: bool,
    subscriber: bool,
    ever_up: bool,
    pub counters: ClusterCounters,
    /// When silent hubs were last looked for.
    pub last_sweep: Instant,
}

impl Cluster {
    /// Starts the bridge threads (they connect in the background).
    pub(crate) fn start(
        cfg: &ClusterConfig,
        waker: Arc<mio::Waker>,
        now: Instant,
    ) -> std::io::Result<Cluster> {
        Ok(Cluster {
            node: Arc::from(cfg.node_id.as_str()),
            ttl: cfg.presence_ttl,
            bridge: Bridge::start(cfg, waker)?,
            publisher: false,
            subscriber: false,
            ever_up: false,
            counters: ClusterCounters::default(),
            last_sweep: now,
        })
    }

    /// The link's state.
    pub(crate) fn state(&self) -> LinkState {
        match (self.publisher && self.subscriber, self.ever_up) {
            (true, _) => LinkState::Up,
            (false, true) => LinkState::Down,
            (false, false) => LinkState::Connecting,
        }
    }

    /// Whether remote sends can go out now.
    pub(crate) fn up(&self) -> bool {
        self.publisher && self.subscriber
    }

    /// A link changed; returns whether the whole link just went down.
    pub(crate) fn set_link(&mut self, link: Link, up: bool) -> bool {
        let was = self.up();
        match link {
            Link::Publisher => self.publisher = up,
            Link::Subscriber => self.subscriber = up,
        }
        if self.up() {
            self.ever_up = true;
        }
        let went_down = was && !self.up();
        if went_down {
            self.counters.link_downs += 1;
        }
        went_down
    }

    /// Whether the bridge has said something the loop has not read.
    pub(crate) fn has_inbox(&self) -> bool {
        !self.bridge.inbox.is_empty()
    }

    /// The next message from the bridge, if any.
    pub(crate) fn poll_inbox(&self) -> Option<bridge::In> {
        self.bridge.inbox.try_recv().ok()
    }

    /// Publishes `wire` to one hub, or to all; false (counted) when the
    /// link is down or the bridge's queue is full.
    pub(crate) fn publish(&mut self, to: Channel, wire: &Wire<'_>) -> bool {
        if !self.up() {
            self.counters.unavailable += 1;
            return false;
        }
        let mut body = Vec::with_capacity(wire.encoded_len());
        wire.encode(&mut body);
        if self.bridge.send(Out::Publish { channel: to, body }) {
            self.counters.sent += 1;
            true
        } else {
            self.counters.unavailable += 1;
            false
        }
    }

    /// Tells the other hubs (through the publisher) that a local device
    /// opened or closed. Queued even while down: the publisher re-registers
    /// every device when it reconnects.
    pub(crate) fn device(&mut self, user: &Arc<str>, client: &Arc<str>, up: bool) {
        let (user, client) = (user.clone(), client.clone());
        let out = if up {
            Out::DeviceUp { user, client }
        } else {
            Out::DeviceDown { user, client }
        };
        if !self.bridge.send(out) {
            // The others miss this change until the next re-registration.
            self.counters.lost += 1;
            log::warn!("cluster: bridge queue full, presence change dropped");
        }
    }

    /// Lets the subscriber snapshot `node` again if it comes back.
    pub(crate) fn forget(&self, node: &str) {
        let _ = self.bridge.forget.send(node.to_owned());
    }
}

/// The fuzz target's body: both parsers on untrusted bytes.
pub(crate) fn check_untrusted(bytes: &[u8]) {
    let mut at = 0;
    while let Ok(Some((_, used))) = resp::parse(&bytes[at..]) {
        assert!(used > 0 && at + used <= bytes.len());
        at += used;
    }
    if let Ok(wire) = Wire::decode(bytes) {
        let mut again = Vec::new();
        wire.encode(&mut again);
        assert_eq!(again, bytes, "a decoded message re-encodes to its bytes");
    }
}
