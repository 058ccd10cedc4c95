//! Every failure passes here: counted by reason, then offered to the pool.

use std::sync::atomic::Ordering;

use super::reason::{FailureReason, TimeoutKind};
use super::{Failure, FailurePool, HandlerSet};

/// Failures by reason (the seed's statistics and ours).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FailureCounters {
    pub total: u64,
    pub queue_full: u64,
    pub offline: u64,
    pub timeout: u64,
    pub conn_error: u64,
    pub ack_timeouts: u64,
    pub send_timeouts: u64,
    pub connection_timeouts: u64,
    pub cluster_unavailable: u64,
    pub other: u64,
}

impl FailureCounters {
    fn count(&mut self, reason: FailureReason) {
        self.total += 1;
        match reason {
            FailureReason::QueueFull => self.queue_full += 1,
            FailureReason::UserOffline => self.offline += 1,
            FailureReason::ConnError => self.conn_error += 1,
            FailureReason::Timeout(kind) => {
                self.timeout += 1;
                match kind {
                    TimeoutKind::Ack => self.ack_timeouts += 1,
                    TimeoutKind::Send => self.send_timeouts += 1,
                    _ => self.connection_timeouts += 1,
                }
            }
            FailureReason::ClusterUnavailable => {
                self.cluster_unavailable += 1;
                self.other += 1;
            }
            _ => self.other += 1,
        }
    }
}

/// The one way failures leave the hub thread.
pub(crate) struct Reporter {
    pool: FailurePool,
    pub counters: FailureCounters,
    /// Every failure reported, in order, when a test asks for it (the
    /// simulation reconciles them with results; the handler pool's timing
    /// is not deterministic, this log is).
    #[cfg(test)]
    pub tap: Option<Vec<Failure>>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    pub(crate) fn new(workers: usize, capacity: usize) -> Reporter {
        Reporter {
            pool: FailurePool::new(workers, capacity),
            counters: FailureCounters::default(),
            #[cfg(test)]
            tap: None,
        }
    }

    /// Counts a failure by reason and hands it to the handler pool.
    pub(crate) fn report(&mut self, failure: Failure) {
        self.counters.count(failure.reason);
        log::debug!("failure: {failure}");
        #[cfg(test)]
        if let Some(tap) = &mut self.tap {
            tap.push(failure.clone());
        }
        self.pool.submit(failure);
    }

    /// Adds handlers (copy on write) and starts the workers if needed.
    pub(crate) fn add_handlers(&mut self, add: impl FnOnce(&mut HandlerSet)) {
        self.pool.update(add);
    }

    /// Failures dropped because the handler queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.pool.dropped
    }

    /// Failures the handlers have finished with, and handler panics.
    pub(crate) fn handled_and_panics(&self) -> (u64, u64) {
        let c = &self.pool.counters;
        (
            c.handled.load(Ordering::Relaxed),
            c.panics.load(Ordering::Relaxed),
        )
    }

    /// Failures waiting for a worker.
    pub(crate) fn backlog(&self) -> usize {
        self.pool.backlog()
    }
}
