//! The worker pool that runs the handlers off the hub thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::Failure;
use super::handler::HandlerSet;

/// Counters the workers update and the hub reads.
#[derive(Debug, Default)]
pub(crate) struct PoolCounters {
    pub handled: AtomicU64,
    pub panics: AtomicU64,
}

struct Job {
    handlers: Arc<HandlerSet>,
    failure: Failure,
}

/// The worker pool. Started when the first handler is added, so a hub
/// without handlers runs no extra threads.
pub(crate) struct FailurePool {
    handlers: Arc<HandlerSet>,
    tx: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    worker_count: usize,
    capacity: usize,
    pub counters: Arc<PoolCounters>,
    /// Failures not handed to the pool because its channel was full.
    pub dropped: u64,
}

impl FailurePool {
    pub(crate) fn new(worker_count: usize, capacity: usize) -> FailurePool {
        FailurePool {
            handlers: Arc::new(HandlerSet::default()),
            tx: None,
            workers: Vec::new(),
            worker_count,
            capacity,
            counters: Arc::default(),
            dropped: 0,
        }
    }

    /// Adds handlers (copy on write) and starts the workers if needed.
    pub(crate) fn update(&mut self, add: impl FnOnce(&mut HandlerSet)) {
        let mut set = (*self.handlers).clone();
        add(&mut set);
        self.handlers = Arc::new(set);
        if self.tx.is_none() {
            self.start();
        }
    }

    fn start(&mut self) {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(self.capacity);
        for i in 0..self.worker_count {
            let rx: Receiver<Job> = rx.clone();
            let counters = self.counters.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("wshub-handler-{i}"))
                .spawn(move || {
                    for job in rx {
                        let panics = job.handlers.dispatch(&job.failure);
                        counters.panics.fetch_add(panics, Ordering::Relaxed);
                        counters.handled.fetch_add(1, Ordering::Relaxed);
                    }
                });
            match spawned {
                Ok(h) => self.workers.push(h),
                Err(e) => log::error!("cannot start failure handler worker: {e}"),
            }
        }
        self.tx = Some(tx);
    }

    /// Offers a failure to the workers; never blocks.
    pub(crate) fn submit(&mut self, failure: Failure) {
        let Some(tx) = &self.tx else { return };
        if self.handlers.is_empty() {
            return;
        }
        let job = Job {
            handlers: self.handlers.clone(),
            failure,
        };
        match tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                self.dropped += 1;
                log::warn!("failure handler queue full: dropped {}", job.failure);
            }
            Err(TrySendError::Disconnected(_)) => self.dropped += 1,
        }
    }

    /// Failures waiting for a worker.
    pub(crate) fn backlog(&self) -> usize {
        self.tx.as_ref().map_or(0, Sender::len)
    }
}

impl Drop for FailurePool {
    /// Lets the workers finish what is queued, then joins them.
    fn drop(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
