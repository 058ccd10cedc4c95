//! Retry policy: which failures are retried, how long to wait, and when to stop.
//!
//! The policy extends the seed's exponential backoff (`base_delay ×
//! backoff_factor^n`) with a `max_delay` cap, jitter, an optional cap on the
//! total time spent on one delivery, and a retry budget. Everything here is
//! allocation-free and deterministic given the caller's random source, so the
//! hub can call it on its hot path and tests can reproduce any sequence.
//!
//! | file | what it holds |
//! |---|---|
//! | `policy.rs` | [`RetryPolicy`], the decision after a failed attempt, [`PolicyError`] |
//! | `reasons.rs` | [`ReasonSet`]: the retryable and non-retryable reasons as bit sets |
//! | `jitter.rs` | [`Jitter`] and the random source it draws from |
//! | `budget.rs` | [`BudgetConfig`] and the token bucket it configures |
//!
//! The budget is kept per receiving user: one user whose devices all fail
//! spends only that user's retries, never another's. Its bucket is a small
//! `Copy` value, so the hub creates one for each user it delivers to.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wshub::reason::FailureReason;
//! use wshub::retry::{Jitter, RetryPolicy};
//!
//! let mut policy = RetryPolicy::default();
//! assert!(policy.is_retryable(FailureReason::QueueFull));
//! // Equal jitter by default: the second retry waits between 100 and 200 ms.
//! let delay = policy.delay_for(1, &mut || 12345);
//! assert!(delay >= Duration::from_millis(100) && delay <= Duration::from_millis(200));
//! policy.jitter = Jitter::None; // the seed's exact delays
//! assert_eq!(policy.delay_for(1, &mut || 12345), Duration::from_millis(200));
//! ```

pub(crate) mod budget;
pub(crate) mod jitter;
mod policy;
mod reasons;

pub use budget::BudgetConfig;
pub use jitter::Jitter;
pub use policy::{MAX_DURATION, PolicyError, RetryPolicy};
pub use reasons::{Iter, ReasonSet};

pub(crate) use budget::RetryBudget;
pub(crate) use jitter::SplitMix64;
pub(crate) use policy::{GiveUpReason, RetryDecision};
pub(crate) use reasons::ReasonList;
