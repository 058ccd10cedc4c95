//! One simulated run: the engine, the connections around it, virtual time,
//! and the faults, drawn from one seed.
//!
//! Each step draws an action, feeds the engine exactly the calls the hub
//! would make for it (in the hub's order), then checks the invariants: the
//! model's (see [`check`](super::check)) and the engine's own audit.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::check::{Model, Violation, ensure};
use super::net::{Phase, SimNet};
use super::setup::Setup;
use crate::delivery::engine::audit::Mutation;
use crate::delivery::engine::{Engine, EngineConfig};
use crate::delivery::{DeliveryId, Envelope, SendResult, Waiter};
use crate::event::ConnId;
use crate::failure::reason::{FailureReason, TimeoutKind};
use crate::failure::{
    ConnectionErrorHandler, Failure, QueueFullHandler, SendFailureHandler, TimeoutHandler,
    UserOfflineHandler,
};
use crate::message::Message;
use crate::retry::SplitMix64;
use crate::retry::jitter::RandomSource;

/// What an ACK names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AckKind {
    /// A message written to this connection, not yet ACKed by it.
    Fresh,
    /// One it ACKed already.
    Duplicate,
    /// One written to some other connection (maybe of another user).
    Foreign,
    /// An id nobody sent.
    Unknown,
    /// One still in its ring (not yet written).
    Early,
}

/// One step of a run.
#[derive(Debug, Clone)]
pub(super) enum Action {
    Send {
        user: usize,
        ack: bool,
        only: Option<usize>,
        thread: bool,
        size: usize,
        dup: Option<Arc<str>>,
    },
    /// A plain send to an offline user, kept by the offline store.
    Plain {
        user: usize,
        size: usize,
    },
    /// Writes `frames` whole frames (finishing a partly written one first),
    /// then maybe part of the next.
    Write {
        conn: ConnId,
        frames: usize,
        partial: bool,
    },
    Ack {
        conn: ConnId,
        id: Arc<str>,
        kind: AckKind,
    },
    /// The connection drops (reset, half-open detected): removed at once.
    Break {
        conn: ConnId,
    },
    /// The hub closes it: now (kick, idle) or after its data (graceful).
    Close {
        conn: ConnId,
        now: bool,
        reason: FailureReason,
    },
    /// A closing connection's close handshake or linger ends: removed.
    Finish {
        conn: ConnId,
    },
    /// A device connects; if it is connected already, it replaces that.
    Connect {
        user: usize,
        client: usize,
    },
    Advance {
        by: Duration,
    },
    Shutdown,
    /// Blocks or releases the failure handler's worker.
    Gate {
        open: bool,
    },
}

/// A failure handler whose worker can be held, to fill its queue.
#[derive(Default)]
pub(super) struct Gate {
    closed: Mutex<bool>,
    cv: Condvar,
    pub calls: AtomicU64,
    pub by_kind: [AtomicU64; 4],
}

impl Gate {
    fn set(&self, open: bool) {
        *self.closed.lock().unwrap() = !open;
        self.cv.notify_all();
    }

    fn pass(&self) {
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            closed = self.cv.wait(closed).unwrap();
        }
    }

    fn kind(&self, k: usize) {
        self.by_kind[k].fetch_add(1, Ordering::Relaxed);
    }
}

struct GateHandler(Arc<Gate>);

impl SendFailureHandler for GateHandler {
    fn handle_send_failure(&self, _: &Message, _: &str, _: FailureReason, _: &Failure) {
        self.0.pass();
        self.0.calls.fetch_add(1, Ordering::Relaxed);
    }
}
impl QueueFullHandler for GateHandler {
    fn handle_queue_full(&self, _: &Message, _: &str, _: &str, _: &Failure) {
        self.0.kind(0);
    }
}
impl UserOfflineHandler for GateHandler {
    fn handle_user_offline(&self, _: &Message, _: &str, _: &Failure) {
        self.0.kind(1);
    }
}
impl ConnectionErrorHandler for GateHandler {
    fn handle_connection_error(&self, _: &Message, _: &str, _: &Failure) {
        self.0.kind(2);
    }
}
impl TimeoutHandler for GateHandler {
    fn handle_timeout(&self, _: &Message, _: &str, _: TimeoutKind, _: Duration, _: &Failure) {
        self.0.kind(3);
    }
}

type Results = Arc<Mutex<Vec<(DeliveryId, SendResult)>>>;

/// Wheel slots of the simulated engine (as the hub's default).
const WHEEL: usize = 256;

pub(super) struct Sim {
    pub setup: Setup,
    cfg: EngineConfig,
    engine: Engine<WHEEL>,
    net: SimNet,
    now: Instant,
    rng: SplitMix64,
    results: Results,
    waiting: Vec<(DeliveryId, Receiver<SendResult>)>,
    pub model: Model,
    gate: Option<Arc<Gate>>,
    users: Vec<Arc<str>>,
    clients: Vec<Arc<str>>,
    /// Recent message ids per user (for duplicate-id sends).
    recent: Vec<VecDeque<Arc<str>>>,
    next_msg: u64,
    unknown: u64,
    pub step: usize,
    pub trace: Vec<Action>,
    tapped: Vec<Failure>,
    pub faults: Faults,
}

/// Faults injected, by kind.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Faults {
    pub breaks: u64,
    pub closes: u64,
    pub replacements: u64,
    pub partial_writes: u64,
    pub odd_acks: u64,
    pub duplicate_ids: u64,
    pub shutdowns: u64,
    pub gate_holds: u64,
    /// Failures the full handler queue dropped (counted, never blocking).
    pub handler_drops: u64,
}

impl Sim {
    pub(super) fn new(setup: Setup, mutation: Mutation) -> Sim {
        let cfg = setup.engine.clone();
        let start = Instant::now();
        let mut engine = Engine::new(cfg.clone(), setup.slots, start, setup.seed);
        engine.mutate(mutation);
        engine.tap_failures();
        let results: Results = Arc::default();
        let sink = results.clone();
        engine.on_result(move |id, r| sink.lock().unwrap().push((id, r.clone())));
        let gate = setup.handlers.then(|| {
            let gate = Arc::new(Gate::default());
            let g = gate.clone();
            engine.add_handlers(move |s| {
                let h = Arc::new(GateHandler(g));
                s.send_failure.push(h.clone());
                s.queue_full.push(h.clone());
                s.user_offline.push(h.clone());
                s.conn_error.push(h.clone());
                s.timeout.push(h);
            });
            gate
        });
        let users = (0..setup.users)
            .map(|u| Arc::from(format!("u{u}")))
            .collect();
        let clients = (0..setup.clients)
            .map(|c| Arc::from(format!("c{c}")))
            .collect();
        Sim {
            net: SimNet::new(setup.slots, setup.ring, start),
            model: Model::new(cfg.clone()),
            rng: SplitMix64::new(setup.seed ^ 0x5eed),
            recent: vec![VecDeque::new(); setup.users],
            cfg,
            engine,
            now: start,
            results,
            waiting: Vec::new(),
            gate,
            users,
            clients,
            next_msg: 0,
            unknown: 0,
            step: 0,
            trace: Vec::new(),
            tapped: Vec::new(),
            faults: Faults::default(),
            setup,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.next_u64() % 100 < percent
    }

    // ---- choosing ---------------------------------------------------------

    /// The run starts with most devices connected.
    pub(super) fn connect_some(&mut self) -> Result<(), Violation> {
        for user in 0..self.setup.users {
            for client in 0..self.setup.clients {
                if self.chance(70) {
                    self.step(Action::Connect { user, client })?;
                }
            }
        }
        Ok(())
    }

    /// Draws the next action from the seed's weights.
    pub(super) fn pick(&mut self) -> Action {
        let w = self.setup.weights;
        let total: u32 = w.iter().sum();
        let mut r = (self.rng.next_u64() % u64::from(total)) as u32;
        let mut kind = 0;
        for (i, &x) in w.iter().enumerate() {
            if r < x {
                kind = i;
                break;
            }
            r -= x;
        }
        let live = self.net.live_ids();
        let any_conn = |s: &mut Sim| -> Option<ConnId> {
            (!live.is_empty()).then(|| live[s.below(live.len())])
        };
        let action = match kind {
            0 => self.pick_send(),
            1 => {
                // Slow readers: some connections are written to rarely.
                let busy: Vec<ConnId> = self
                    .net
                    .live()
                    .filter(|c| !c.ring.is_empty())
                    .map(|c| c.id)
                    .collect();
                (!busy.is_empty()).then(|| {
                    let conn = busy[self.below(busy.len())];
                    let frames = self.below(self.setup.ring + 1);
                    let partial = self.chance(25);
                    Action::Write {
                        conn,
                        frames,
                        partial,
                    }
                })
            }
            2 => any_conn(self).and_then(|c| self.pick_ack(c)),
            3 => any_conn(self).map(|conn| Action::Break { conn }),
            4 => {
                let open: Vec<ConnId> = self
                    .net
                    .live()
                    .filter(|c| c.phase == Phase::Open)
                    .map(|c| c.id)
                    .collect();
                (!open.is_empty()).then(|| {
                    let conn = open[self.below(open.len())];
                    let now = self.chance(70);
                    let reason = if self.chance(30) {
                        FailureReason::Timeout(TimeoutKind::Connection)
                    } else {
                        FailureReason::ConnError
                    };
                    Action::Close { conn, now, reason }
                })
            }
            5 => {
                let closing: Vec<ConnId> = self
                    .net
                    .live()
                    .filter(|c| c.phase != Phase::Open)
                    .map(|c| c.id)
                    .collect();
                (!closing.is_empty()).then(|| Action::Finish {
                    conn: closing[self.below(closing.len())],
                })
            }
            6 => Some(Action::Connect {
                user: self.below(self.setup.users),
                client: self.below(self.setup.clients),
            }),
            7 => {
                let ms = match self.below(10) {
                    0..=4 => self.below(20) as u64,
                    5..=7 => self.below(300) as u64,
                    8 => self.below(2_000) as u64,
                    _ => self.below(10_000) as u64,
                };
                Some(Action::Advance {
                    by: Duration::from_millis(ms),
                })
            }
            8 => {
                let user = self.below(self.setup.users);
                let size = self.below(self.setup.max_content);
                Some(Action::Plain { user, size })
            }
            _ => {
                let open = self.chance(50);
                self.gate.is_some().then_some(Action::Gate { open })
            }
        };
        if self.setup.shutdown_at == Some(self.step) {
            return Action::Shutdown;
        }
        match action {
            Some(a) => a,
            None => Action::Advance {
                by: Duration::from_millis(self.below(50) as u64),
            },
        }
    }

    fn pick_send(&mut self) -> Option<Action> {
        // Mostly to users who have a device: offline is one case of many.
        let online: Vec<usize> = (0..self.setup.users)
            .filter(|&u| self.net.has_device(&self.users[u]))
            .collect();
        let user = if !online.is_empty() && self.chance(80) {
            online[self.below(online.len())]
        } else {
            self.below(self.setup.users)
        };
        let dup = if self.chance(3) && !self.recent[user].is_empty() {
            let n = self.recent[user].len();
            let i = self.below(n);
            Some(self.recent[user][i].clone())
        } else {
            None
        };
        let only = match self.below(10) {
            0 => Some(self.below(self.setup.clients)),
            1 if self.chance(20) => Some(99), // a device that never connects
            _ => None,
        };
        let ack = self.chance(self.setup.ack_percent);
        let thread = self.chance(15);
        let size = self.below(self.setup.max_content);
        Some(Action::Send {
            user,
            ack,
            only,
            thread,
            size,
            dup,
        })
    }

    fn pick_ack(&mut self, conn: ConnId) -> Option<Action> {
        let odd = self.chance(15);
        let (fresh, acked) = self
            .model
            .peers
            .get(&conn)
            .map_or((0, 0), |p| (p.unacked.len(), p.acked.len()));
        let (kind, id) = if !odd && fresh > 0 {
            // Mostly the oldest: peers ACK in order, with some out of order.
            let i = if self.chance(70) {
                0
            } else {
                self.below(fresh)
            };
            (AckKind::Fresh, self.model.peers[&conn].unacked[i].clone())
        } else {
            match self.below(4) {
                0 if acked > 0 => {
                    let i = self.below(acked);
                    (AckKind::Duplicate, self.model.peers[&conn].acked[i].clone())
                }
                1 => {
                    // Written somewhere (maybe to another user).
                    let all = self.model.all_written.len();
                    if all == 0 {
                        return None;
                    }
                    let i = self.below(all);
                    (AckKind::Foreign, self.model.all_written[i].clone())
                }
                2 => {
                    let queued: Vec<Arc<str>> = self
                        .net
                        .get(conn)
                        .map(|c| {
                            c.ring
                                .iter()
                                .filter_map(|f| self.model.dels.get(&f.tag.delivery))
                                .map(|d| d.msg.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    if queued.is_empty() {
                        return None;
                    }
                    (AckKind::Early, queued[self.below(queued.len())].clone())
                }
                _ => {
                    self.unknown += 1;
                    (AckKind::Unknown, Arc::from(format!("zz{}", self.unknown)))
                }
            }
        };
        Some(Action::Ack { conn, id, kind })
    }

    // ---- doing --------------------------------------------------------------

    /// Runs one action, then checks every invariant.
    pub(super) fn step(&mut self, action: Action) -> Result<(), Violation> {
        if self.setup.trace {
            eprintln!("sim step {}: {action:?}", self.step);
        }
        self.trace.push(action.clone());
        self.apply(action)?;
        self.observe()?;
        self.step += 1;
        Ok(())
    }

    fn apply(&mut self, action: Action) -> Result<(), Violation> {
        let now = self.now;
        match action {
            Action::Send {
                user,
                ack,
                only,
                thread,
                size,
                dup,
            } => self.send(user, ack, only, thread, size, dup)?,
            Action::Plain { user, size } => {
                let name = self.users[user].clone();
                if !self.net.has_device(&name) && self.engine.stores_offline() {
                    let (id, env) = self.envelope(&name, false, None, size, None);
                    let kept = self.engine.store_offline(now, &name, env);
                    if self.setup.trace {
                        eprintln!("  plain {id} for {name}: stored {kept}");
                    }
                    if kept {
                        self.model.stored_plain(&id);
                    }
                }
            }
            Action::Write {
                conn,
                frames,
                partial,
            } => self.write(conn, frames, partial)?,
            Action::Ack { conn, id, kind } => {
                if kind != AckKind::Fresh {
                    self.faults.odd_acks += 1;
                }
                let target = self.engine.probe_ack(conn, &id);
                let before = self.engine.counters.unknown_acks;
                self.engine.acked(now, conn, &id, &mut self.net);
                let took = self.engine.counters.unknown_acks == before;
                ensure!(
                    took == target.is_some(),
                    "{conn}: the ACK of {id} was {} but the probe said {target:?}",
                    if took { "taken" } else { "ignored" }
                );
                self.model.acked(conn, &id, target)?;
                self.enqueues()?;
            }
            Action::Break { conn } => {
                self.faults.breaks += 1;
                let reason = match self.net.get(conn).map(|c| c.phase) {
                    Some(Phase::Closing(r)) => r,
                    _ => FailureReason::ConnError,
                };
                self.remove(conn, reason)?;
            }
            Action::Finish { conn } => {
                if let Some(Phase::Closing(r)) = self.net.get(conn).map(|c| c.phase) {
                    self.remove(conn, r)?;
                }
            }
            Action::Close { conn, now, reason } => {
                self.faults.closes += 1;
                self.close(conn, now, reason)?;
            }
            Action::Connect { user, client } => self.connect(user, client)?,
            Action::Advance { by } => self.advance(by)?,
            Action::Shutdown => {
                self.faults.shutdowns += 1;
                self.model.shutdown = true;
                self.engine.shut_down(now);
            }
            Action::Gate { open } => {
                if !open {
                    self.faults.gate_holds += 1;
                }
                if let Some(g) = &self.gate {
                    g.set(open);
                }
            }
        }
        Ok(())
    }

    fn envelope(
        &mut self,
        user: &Arc<str>,
        ack: bool,
        only: Option<usize>,
        size: usize,
        dup: Option<Arc<str>>,
    ) -> (Arc<str>, Envelope) {
        if let Some(id) = dup
            && let Some(info) = self.model.msgs.get(&id)
        {
            let message: crate::message::Message =
                serde_json::from_slice(info.payload.body()).expect("the sim's own JSON");
            let env = Envelope {
                require_ack: message.require_ack,
                only: (!message.receiver_client.is_empty())
                    .then(|| crate::delivery::MessageId::new(&message.receiver_client)),
                message: Some(Arc::new(message)),
                payload: info.payload.clone(),
                id: crate::delivery::MessageId::new(&id),
            };
            return (id, env);
        }
        self.next_msg += 1;
        let id: Arc<str> = Arc::from(format!("m{}", self.next_msg));
        let mut m = Message::text(&**user, "x".repeat(size));
        m.message_id = id.to_string();
        m.require_ack = ack;
        let only = only.map(|c| {
            self.clients
                .get(c)
                .cloned()
                .unwrap_or_else(|| Arc::from("nobody"))
        });
        if let Some(c) = &only {
            m.receiver_client = c.to_string();
        }
        let env = Envelope::new(m).expect("encodes");
        self.model.msgs.insert(
            id.clone(),
            super::check::MsgInfo {
                user: user.clone(),
                require_ack: ack,
                only,
                payload: env.payload.clone(),
            },
        );
        (id, env)
    }

    fn send(
        &mut self,
        user: usize,
        ack: bool,
        only: Option<usize>,
        thread: bool,
        size: usize,
        dup: Option<Arc<str>>,
    ) -> Result<(), Violation> {
        let name = self.users[user].clone();
        if dup.is_some() {
            self.faults.duplicate_ids += 1;
        }
        let (id, env) = self.envelope(&name, ack, only, size, dup);
        let recent = &mut self.recent[user];
        recent.push_back(id.clone());
        if recent.len() > 8 {
            recent.pop_front();
        }
        let (waiter, rx, result) = if thread {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let capacity = self.cfg.retry.max_retries as usize + 1;
            let result = self.chance(50).then(|| SendResult::with_capacity(capacity));
            (Waiter::Thread(tx), Some(rx), result)
        } else {
            (Waiter::Loop, None, None)
        };
        let pending = self.engine.pending();
        let too_large = env.payload.len() > self.cfg.max_message_size;
        match self
            .engine
            .start(self.now, &name, env, waiter, result, &mut self.net)
        {
            Ok(d) => {
                if self.setup.trace {
                    eprintln!("  started {d}: {id} for {name}");
                }
                self.model.started(d, &id, thread, self.now);
                if let Some(rx) = rx {
                    self.waiting.push((d, rx));
                }
            }
            Err(e) => {
                use crate::error::SendError;
                let why = match e {
                    SendError::ShuttingDown => self.model.shutdown,
                    SendError::MessageTooLarge { .. } => too_large,
                    SendError::TooManyPending { .. } => {
                        !too_large && pending >= self.cfg.max_pending_deliveries
                    }
                    _ => false,
                };
                ensure!(why, "start of {id} refused: {e} (pending {pending})");
                self.model.refused(&e);
            }
        }
        self.enqueues()
    }

    /// Writes from `conn`'s ring as the hub's flush does.
    fn write(&mut self, conn: ConnId, frames: usize, partial: bool) -> Result<(), Violation> {
        let Some(c) = self.net.get_mut(conn) else {
            return Ok(());
        };
        let free_before = if c.phase == Phase::Open {
            self.setup.ring - c.ring.len()
        } else {
            0
        };
        let mut out = Vec::new();
        if c.partial {
            c.partial = false;
            out.extend(c.ring.pop_front());
        }
        while out.len() < frames {
            match c.ring.pop_front() {
                Some(f) => out.push(f),
                None => break,
            }
        }
        if partial && !c.ring.is_empty() {
            c.partial = true;
            self.faults.partial_writes += 1;
        }
        let free_after = if c.phase == Phase::Open {
            self.setup.ring - c.ring.len()
        } else {
            0
        };
        for f in out {
            self.model.wrote(conn, f.tag)?;
            self.engine.written(self.now, conn, f.tag, &mut self.net);
            self.enqueues()?;
        }
        if free_after > free_before && self.engine.has_backlog(conn) {
            self.engine.ring_space(self.now, conn, &mut self.net);
            self.enqueues()?;
        }
        Ok(())
    }

    /// The hub's `remove_conn`: unregister, fail what the ring holds, then
    /// tell the engine the connection is gone.
    fn remove(&mut self, conn: ConnId, reason: FailureReason) -> Result<(), Violation> {
        self.net.unregister(conn);
        let Some(c) = self.net.release(conn) else {
            return Ok(());
        };
        for f in c.ring {
            self.engine
                .failed(self.now, conn, f.tag, reason, &mut self.net);
            self.enqueues()?;
        }
        self.engine
            .conn_removed(self.now, conn, reason, &mut self.net);
        self.enqueues()
    }

    /// The hub's `close_conn`.
    fn close(&mut self, conn: ConnId, now: bool, reason: FailureReason) -> Result<(), Violation> {
        let Some(c) = self.net.get_mut(conn) else {
            return Ok(());
        };
        if c.phase != Phase::Open {
            return Ok(());
        }
        c.phase = Phase::Closing(reason);
        let mut abandoned = Vec::new();
        if now {
            let keep = usize::from(c.partial);
            while c.ring.len() > keep {
                abandoned.extend(c.ring.pop_back());
            }
            abandoned.reverse();
        }
        self.net.unregister(conn);
        self.engine
            .conn_closing(self.now, conn, reason, &mut self.net);
        self.enqueues()?;
        for f in abandoned {
            self.engine
                .failed(self.now, conn, f.tag, reason, &mut self.net);
            self.enqueues()?;
        }
        Ok(())
    }

    /// The hub's upgrade: a replaced device is kicked first.
    fn connect(&mut self, user: usize, client: usize) -> Result<(), Violation> {
        let (u, c) = (self.users[user].clone(), self.clients[client].clone());
        let Some(new) = self.net.accept(&u, &c) else {
            return Ok(());
        };
        self.model.conns.insert(
            new,
            super::check::ConnInfo {
                user: u.clone(),
                client: c.clone(),
            },
        );
        if let Some(old) = self.net.device(&u, &c) {
            self.faults.replacements += 1;
            self.close(old, true, FailureReason::ConnError)?;
            self.engine.conn_replaced(self.now, old, new, &mut self.net);
            self.enqueues()?;
        }
        // Reconnecting inside the backoff window: whatever of this user
        // waits for a retry goes now.
        let waiting: Vec<(DeliveryId, usize)> = self
            .engine
            .snapshot()
            .iter()
            .filter(|s| s.waiting_retry && self.model.dels.get(&s.id).is_some_and(|d| d.user == u))
            .map(|s| (s.id, s.attempts))
            .collect();
        self.net.register(new);
        self.engine.conn_opened(new);
        self.engine.user_connected(self.now, &u, &mut self.net);
        self.enqueues()?;
        let after = self.engine.snapshot();
        for (id, attempts) in waiting {
            ensure!(
                after
                    .iter()
                    .find(|s| s.id == id)
                    .is_none_or(|s| !s.waiting_retry || s.attempts > attempts),
                "{u} connected, yet {id} still waits for its backoff"
            );
        }
        Ok(())
    }

    /// Time passes: the engine's timers, then the hub's send timeouts.
    fn advance(&mut self, by: Duration) -> Result<(), Violation> {
        self.now += by;
        self.net.now = self.now;
        self.engine.tick(self.now, &mut self.net);
        self.enqueues()?;
        let timeout = self.cfg.send_timeout;
        for conn in self.net.live_ids() {
            let now = self.now;
            let Some(c) = self.net.get_mut(conn) else {
                continue;
            };
            let skip = usize::from(c.partial);
            let mut expired = Vec::new();
            while c
                .ring
                .get(skip)
                .is_some_and(|f| now.saturating_duration_since(f.at) >= timeout)
            {
                expired.extend(c.ring.remove(skip));
            }
            if expired.is_empty() {
                continue;
            }
            for f in expired {
                let reason = FailureReason::Timeout(TimeoutKind::Send);
                self.engine.failed(now, conn, f.tag, reason, &mut self.net);
                self.enqueues()?;
            }
            self.engine.ring_space(now, conn, &mut self.net);
            self.enqueues()?;
        }
        Ok(())
    }

    /// Checks the frames the engine queued since the last look.
    fn enqueues(&mut self) -> Result<(), Violation> {
        for (conn, tag, payload) in std::mem::take(&mut self.net.enqueued) {
            self.model.enqueued(conn, tag, &payload)?;
        }
        Ok(())
    }

    // ---- checking -----------------------------------------------------------

    /// After each step: failures, results, counters, caps, the engine's audit.
    fn observe(&mut self) -> Result<(), Violation> {
        self.engine.take_tapped(&mut self.tapped);
        if self.setup.trace {
            for f in &self.tapped {
                eprintln!("  failure {:?} {f}", f.delivery);
            }
        }
        let mut tapped = std::mem::take(&mut self.tapped);
        self.model.tapped(&mut tapped)?;
        self.tapped = tapped;
        let results = std::mem::take(&mut *self.results.lock().unwrap());
        if self.setup.trace {
            for (id, r) in &results {
                eprintln!(
                    "  result {id}: {:?} success {} {:?} attempts {} stored {} replayed {}",
                    r.message_id,
                    r.success,
                    r.final_error,
                    r.attempts.len(),
                    r.stored_offline,
                    r.replayed
                );
            }
        }
        for (id, r) in &results {
            self.model.result(*id, r, false, self.now)?;
        }
        let mut i = 0;
        while i < self.waiting.len() {
            match self.waiting[i].1.try_recv() {
                Ok(r) => {
                    let (id, _) = self.waiting.swap_remove(i);
                    self.model.result(id, &r, true, self.now)?;
                }
                Err(_) => i += 1,
            }
        }
        self.model.stores_balanced()?;
        for c in self.net.live() {
            ensure!(
                c.ring.len() <= self.setup.ring,
                "{}: {} frames in a ring of {}",
                c.id,
                c.ring.len(),
                self.setup.ring
            );
        }
        self.engine.audit(&self.net.frames())?;
        let snap = self.engine.snapshot();
        let mut stats = crate::stats::Stats::default();
        self.engine.fill_stats(&mut stats);
        self.model.counters(
            &self.engine.counters,
            &stats,
            &snap,
            self.engine.handler_dropped(),
        )?;
        self.model.snap = snap.into_iter().map(|s| (s.id, s)).collect();
        Ok(())
    }

    /// Ends the run: faults stop, every device reads and ACKs everything,
    /// time passes until every delivery and stored message has ended; then
    /// nothing may be left anywhere.
    pub(super) fn drain(&mut self) -> Result<(), Violation> {
        for round in 0.. {
            ensure!(
                round < 2_000,
                "not quiet after {round} drain rounds: {} deliveries open, {} timers",
                self.engine.pending(),
                self.engine.pending_timers()
            );
            for conn in self.net.live_ids() {
                if let Some(Phase::Closing(_)) = self.net.get(conn).map(|c| c.phase) {
                    self.step(Action::Finish { conn })?;
                    continue;
                }
                let frames = self.net.get(conn).map_or(0, |c| c.ring.len());
                if frames > 0 {
                    self.step(Action::Write {
                        conn,
                        frames,
                        partial: false,
                    })?;
                }
                let unacked = self
                    .model
                    .peers
                    .get(&conn)
                    .map(|p| p.unacked.clone())
                    .unwrap_or_default();
                for id in unacked {
                    self.step(Action::Ack {
                        conn,
                        id,
                        kind: AckKind::Fresh,
                    })?;
                }
            }
            if self.engine.pending() == 0 && self.engine.pending_timers() == 0 {
                break;
            }
            self.step(Action::Advance {
                by: Duration::from_millis(50),
            })?;
        }
        // Stored messages of users who never came back expire.
        let ttl = self.cfg.offline.ttl;
        self.step(Action::Advance {
            by: ttl + Duration::from_secs(1),
        })?;
        self.step(Action::Advance {
            by: Duration::from_millis(10),
        })?;
        ensure!(
            self.engine.pending() == 0,
            "{} deliveries open at the end",
            self.engine.pending()
        );
        ensure!(
            self.engine.pending_timers() == 0,
            "{} timers left",
            self.engine.pending_timers()
        );
        ensure!(
            self.engine.acks_in_flight() == 0 && self.engine.ack_index_len() == 0,
            "ACK window or index entries left"
        );
        ensure!(
            self.engine.offline_held() == (0, 0),
            "offline store holds {:?} at the end",
            self.engine.offline_held()
        );
        self.model.finish(self.engine.counters.offline_replayed)
    }

    /// Releases the handler worker, stops the pool, and checks that every
    /// failure reached the handlers or was counted as dropped; returns the
    /// number dropped (the handler queue overflowed).
    pub(super) fn close_handlers(self) -> Result<u64, Violation> {
        let Some(gate) = self.gate.clone() else {
            return Ok(0);
        };
        gate.set(true);
        let dropped = self.engine.handler_dropped();
        let tap = std::mem::take(&mut { self.model }.tap);
        drop(self.engine); // joins the worker once it has run the queue
        let calls = gate.calls.load(Ordering::Relaxed);
        ensure!(
            calls + dropped == tap.len() as u64,
            "handlers ran for {calls} failures and dropped {dropped}, {} were reported",
            tap.len()
        );
        let kinds = [
            tap.iter()
                .filter(|f| f.reason == FailureReason::QueueFull)
                .count(),
            tap.iter()
                .filter(|f| f.reason == FailureReason::UserOffline)
                .count(),
            tap.iter()
                .filter(|f| f.reason == FailureReason::ConnError)
                .count(),
            tap.iter()
                .filter(|f| f.reason.timeout_kind().is_some())
                .count(),
        ];
        for (k, want) in kinds.into_iter().enumerate() {
            let got = gate.by_kind[k].load(Ordering::Relaxed);
            ensure!(
                got <= want as u64 && (dropped > 0 || got == want as u64),
                "handler kind {k} ran {got} times for {want} failures ({dropped} dropped)"
            );
        }
        Ok(dropped)
    }
}
