//! A run's world, drawn from its seed: the engine's limits and retry policy,
//! how many users and devices, ring sizes, and how often each fault happens.
//! Seeds differ widely on purpose: one has rings of one frame and no backlog,
//! another a generous store and constant reconnects.

use std::time::Duration;

use crate::delivery::engine::EngineConfig;
use crate::delivery::offline::OfflineLimits;
use crate::failure::reason::FailureReason;
use crate::retry::jitter::RandomSource;
use crate::retry::{BudgetConfig, Jitter, RetryPolicy, SplitMix64};

#[derive(Debug, Clone)]
pub(super) struct Setup {
    pub seed: u64,
    pub engine: EngineConfig,
    /// Connection slots (the slab's size).
    pub slots: usize,
    /// Frames per ring.
    pub ring: usize,
    pub users: usize,
    pub clients: usize,
    /// Relative frequency of each action kind: send, write, ack, break,
    /// close, finish, connect, advance, plain, gate.
    pub weights: [u32; 10],
    /// Percentage of sends that require an ACK.
    pub ack_percent: u64,
    /// Longest message content, in bytes.
    pub max_content: usize,
    /// A handler worker that the run can hold, to fill its queue.
    pub handlers: bool,
    pub shutdown_at: Option<usize>,
    /// Print every action.
    pub trace: bool,
}

impl Setup {
    pub(super) fn from_seed(seed: u64, steps: usize) -> Setup {
        let mut rng = SplitMix64::new(seed);
        let mut r = |n: u64| rng.next_u64() % n.max(1);
        let ms = |v: u64| Duration::from_millis(v);
        let mut retry = RetryPolicy::default();
        retry.max_retries = r(5) as u32;
        retry.base_delay = ms(1 + r(200));
        retry.backoff_factor = 1.0 + r(20) as f64 / 10.0;
        retry.max_delay = retry.base_delay * (1 + r(20) as u32);
        retry.jitter = [Jitter::None, Jitter::Full, Jitter::Equal][r(3) as usize];
        retry.max_total_time = (r(4) == 0).then(|| ms(50 + r(5_000)));
        retry.budget = (r(3) == 0).then(|| BudgetConfig {
            max_tokens: 2 + r(20) as u32,
            token_ratio: (1 + r(10)) as f64 / 10.0,
        });
        if r(5) == 0 {
            // Offline is retried too: a device may come back in the window.
            retry.non_retryable.remove(FailureReason::UserOffline);
            retry.retryable.insert(FailureReason::UserOffline);
        }
        if r(8) == 0 {
            retry.retryable.remove(FailureReason::ConnError);
        }
        let offline = if r(4) == 0 {
            OfflineLimits {
                per_user: 0,
                max_messages: 0,
                max_bytes: 0,
                ttl: ms(1_000),
            }
        } else {
            OfflineLimits {
                per_user: 1 + r(5) as usize,
                max_messages: 1 + r(10) as usize,
                max_bytes: 150 + r(3_000) as usize,
                ttl: ms(100 + r(5_000)),
            }
        };
        let handlers = r(4) == 0;
        let engine = EngineConfig {
            retry,
            ack_timeout: ms(10 + r(800)),
            send_timeout: ms(30 + r(3_000)),
            client_timeout: ms(60_000),
            max_message_size: if r(6) == 0 {
                150 + r(100) as usize
            } else {
                1 << 20
            },
            max_inflight_acks: 1 + r(4) as usize,
            pending_per_conn: if r(6) == 0 {
                0
            } else {
                100 + r(2_000) as usize
            },
            max_pending_deliveries: 2 + r(40) as usize,
            offline,
            handler_workers: usize::from(handlers),
            handler_queue_capacity: 1 + r(8) as usize,
        };
        let users = 1 + r(4) as usize;
        let clients = 1 + r(3) as usize;
        let mut weights = [30, 25, 25, 3, 3, 4, 10, 20, 3, 2];
        for w in &mut weights {
            // Each seed leans its own way: some kinds rare, some frequent.
            *w = *w * (1 + r(4) as u32) / 2;
        }
        weights[0] = weights[0].max(5);
        weights[7] = weights[7].max(5);
        Setup {
            seed,
            engine,
            slots: users * clients * 2 + 2,
            ring: 1 + r(6) as usize,
            users,
            clients,
            weights,
            ack_percent: [0, 50, 80, 100][r(4) as usize],
            max_content: 1 + r(200) as usize,
            handlers,
            shutdown_at: (r(10) == 0).then(|| steps / 2 + r(steps as u64 / 2 + 1) as usize),
            trace: false,
        }
    }
}
