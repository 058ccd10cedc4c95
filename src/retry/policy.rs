//! [`RetryPolicy`]: classification, backoff and the decision after a failed
//! attempt; [`PolicyError`] for a policy that does not hold together.

use std::fmt;
use std::time::Duration;

use super::budget::{BudgetConfig, RetryBudget};
use super::jitter::{Jitter, RandomSource, nanos_u64};
use super::reasons::ReasonSet;
use crate::failure::reason::FailureReason;

/// The longest duration any setting accepts: 365 days.
///
/// Long enough for any timeout, delay or time-to-live a hub needs, and short
/// enough that a deadline computed as `now + duration` can never overflow
/// (`Instant + Duration` panics on overflow). A config asking for more is a
/// clear error instead.
///
/// ```
/// # use std::time::Duration;
/// assert_eq!(wshub::retry::MAX_DURATION, Duration::from_secs(365 * 24 * 3600));
/// ```
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How failures are classified and retried.
///
/// `#[non_exhaustive]`: start from [`Default`] and assign fields.
///
/// Classification: a reason is retried only if it is in `retryable` and not
/// in `non_retryable` (`non_retryable` wins). A reason in neither list is not
/// retried, since retrying an unclassified failure could repeat a side effect
/// nobody asked to repeat; with the defaults that is only `rate_limited`.
///
/// ```
/// # use std::time::Duration;
/// # use wshub::retry::{Jitter, RetryPolicy};
/// let mut policy = RetryPolicy::default();
/// policy.max_retries = 5;
/// policy.jitter = Jitter::None;
/// assert!(policy.validate().is_ok());
/// assert_eq!(policy.backoff(3), Duration::from_millis(800));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so up to `max_retries + 1` attempts).
    pub max_retries: u32,
    /// Delay before the first retry; at most [`MAX_DURATION`].
    pub base_delay: Duration,
    /// Growth per retry; at least 1.0.
    pub backoff_factor: f64,
    /// Cap on any single delay, applied before and after jitter; at most
    /// [`MAX_DURATION`].
    pub max_delay: Duration,
    /// Randomisation of each delay; [`Jitter::Equal`] by default.
    pub jitter: Jitter,
    /// Give up when the next retry would start later than this after the
    /// first attempt; `None` for no cap. At most [`MAX_DURATION`].
    pub max_total_time: Option<Duration>,
    /// Reasons that may be retried.
    pub retryable: ReasonSet,
    /// Reasons never retried; wins over `retryable`.
    pub non_retryable: ReasonSet,
    /// The retry budget, one bucket per receiving user; `None` disables it.
    pub budget: Option<BudgetConfig>,
}

impl Default for RetryPolicy {
    /// The seed's defaults (3 retries, 100ms, ×2.0, its two lists) plus a 30s
    /// `max_delay`, equal jitter, no total cap and the default budget.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            backoff_factor: 2.0,
            max_delay: Duration::from_secs(30),
            jitter: Jitter::default(),
            max_total_time: None,
            retryable: ReasonSet::DEFAULT_RETRYABLE,
            non_retryable: ReasonSet::DEFAULT_NON_RETRYABLE,
            budget: Some(BudgetConfig::default()),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryDecision {
    /// Try again after `delay`.
    Retry {
        /// How long to wait before the next attempt.
        delay: Duration,
    },
    /// The failure is final.
    GiveUp(GiveUpReason),
}

/// Why a failure became final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum GiveUpReason {
    /// The reason is not classified as retryable.
    NotRetryable,
    /// `max_retries` retries were already made.
    RetriesExhausted,
    /// The next retry would start past `max_total_time`.
    TotalTimeExceeded,
    /// The retry budget is spent (a failure storm).
    BudgetExhausted,
}

impl GiveUpReason {
    /// A stable snake_case label for stats and logs.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            GiveUpReason::NotRetryable => "not_retryable",
            GiveUpReason::RetriesExhausted => "retries_exhausted",
            GiveUpReason::TotalTimeExceeded => "total_time_exceeded",
            GiveUpReason::BudgetExhausted => "budget_exhausted",
        }
    }
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RetryPolicy {
    /// Whether `reason` may be retried: in `retryable` and not in
    /// `non_retryable`. A reason go-wsc has no name for
    /// ([`ReasonSet::BEYOND_SEED`]: `cluster_unavailable`) is retried when
    /// neither list names it, so a go-wsc config keeps retrying a cluster's
    /// transient failures; put it in `non_retryable_errors` to stop that.
    ///
    /// ```
    /// # use wshub::reason::FailureReason;
    /// # use wshub::retry::RetryPolicy;
    /// let policy = RetryPolicy::default();
    /// assert!(policy.is_retryable(FailureReason::QueueFull));
    /// assert!(!policy.is_retryable(FailureReason::UserOffline));
    /// assert!(!policy.is_retryable(FailureReason::RateLimited)); // in neither list
    /// assert!(policy.is_retryable(FailureReason::ClusterUnavailable)); // beyond the seed
    /// ```
    pub const fn is_retryable(&self, reason: FailureReason) -> bool {
        let unnamed = ReasonSet::BEYOND_SEED.contains(reason)
            && !self.retryable.contains(reason)
            && !self.non_retryable.contains(reason);
        unnamed || self.retryable.contains(reason) && !self.non_retryable.contains(reason)
    }

    /// The un-jittered delay before retry number `retry_index` (0 for the
    /// first retry): `base_delay × backoff_factor^retry_index`, capped at
    /// `max_delay`. Saturates instead of overflowing; a NaN or infinite
    /// product yields `max_delay`, a negative one zero.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use wshub::retry::RetryPolicy;
    /// let policy = RetryPolicy::default();
    /// assert_eq!(policy.backoff(0), Duration::from_millis(100));
    /// assert_eq!(policy.backoff(2), Duration::from_millis(400));
    /// assert_eq!(policy.backoff(u32::MAX), policy.max_delay);
    /// ```
    pub fn backoff(&self, retry_index: u32) -> Duration {
        let max = self.max_delay;
        let max_ns = nanos_u64(max);
        let base_ns = nanos_u64(self.base_delay).min(max_ns);
        // Nanoseconds in f64 are exact up to ~104 days, so retry 0 returns
        // base_delay exactly; powf(x, 0) is 1 even for NaN.
        let raw = base_ns as f64 * self.backoff_factor.powf(f64::from(retry_index));
        if raw.is_nan() || raw >= max_ns as f64 {
            max
        } else {
            // `as` saturates: negatives become 0, and rounding of `max_ns as
            // f64` is covered by the final `min`.
            Duration::from_nanos(raw as u64).min(max)
        }
    }

    /// The delay before retry number `retry_index`: [`backoff`](Self::backoff)
    /// with jitter applied, then clamped to `max_delay` again. `rng` is any
    /// `FnMut() -> u64` giving uniform values (the hub uses a seeded
    /// generator); `Jitter::None` draws nothing from it.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use wshub::retry::{Jitter, RetryPolicy};
    /// let mut policy = RetryPolicy::default(); // equal jitter
    /// // The smallest draw keeps half the backoff, the largest all of it.
    /// assert_eq!(policy.delay_for(1, &mut || 0), Duration::from_millis(100));
    /// assert_eq!(policy.delay_for(1, &mut || u64::MAX), Duration::from_millis(200));
    /// policy.jitter = Jitter::Full;
    /// assert_eq!(policy.delay_for(1, &mut || 0), Duration::ZERO);
    /// ```
    pub fn delay_for(&self, retry_index: u32, rng: &mut impl RandomSource) -> Duration {
        self.jitter
            .apply(self.backoff(retry_index), rng)
            .min(self.max_delay)
    }

    /// Decides what follows a failed attempt.
    ///
    /// `retries_so_far` is the number of retries already made for this
    /// delivery (0 after the first attempt fails); `elapsed` is the time since
    /// the first attempt started; `budget` is the receiving user's bucket.
    /// Checks, in order: classification, retry count, total time, budget. The
    /// budget is charged only when the answer is [`RetryDecision::Retry`].
    pub(crate) fn should_retry(
        &self,
        reason: FailureReason,
        retries_so_far: u32,
        elapsed: Duration,
        budget: &mut RetryBudget,
        rng: &mut impl RandomSource,
    ) -> RetryDecision {
        if !self.is_retryable(reason) {
            return RetryDecision::GiveUp(GiveUpReason::NotRetryable);
        }
        if retries_so_far >= self.max_retries {
            return RetryDecision::GiveUp(GiveUpReason::RetriesExhausted);
        }
        let delay = self.delay_for(retries_so_far, rng);
        if let Some(cap) = self.max_total_time
            && elapsed.saturating_add(delay) > cap
        {
            return RetryDecision::GiveUp(GiveUpReason::TotalTimeExceeded);
        }
        if !budget.try_acquire() {
            return RetryDecision::GiveUp(GiveUpReason::BudgetExhausted);
        }
        RetryDecision::Retry { delay }
    }

    /// A fresh bucket for this policy (unlimited when `budget` is `None`).
    pub(crate) fn new_budget(&self) -> RetryBudget {
        self.budget
            .as_ref()
            .map_or(RetryBudget::unlimited(), BudgetConfig::new_budget)
    }

    /// Checks that the policy is coherent; every error names its config key.
    ///
    /// # Errors
    ///
    /// The first [`PolicyError`] found: factor, durations above
    /// [`MAX_DURATION`], `max_delay` below `base_delay`, a zero total time, a
    /// reason in both sets, then the budget.
    ///
    /// ```
    /// # use wshub::retry::{PolicyError, RetryPolicy};
    /// let mut policy = RetryPolicy::default();
    /// policy.backoff_factor = 0.5;
    /// assert_eq!(policy.validate(), Err(PolicyError::InvalidBackoffFactor { value: 0.5 }));
    /// ```
    pub fn validate(&self) -> Result<(), PolicyError> {
        // `!(x >= 1.0)` rejects NaN too.
        if !(self.backoff_factor >= 1.0 && self.backoff_factor.is_finite()) {
            return Err(PolicyError::InvalidBackoffFactor {
                value: self.backoff_factor,
            });
        }
        for (key, value) in [
            ("base_delay", Some(self.base_delay)),
            ("max_delay", Some(self.max_delay)),
            ("max_total_time", self.max_total_time),
        ] {
            if let Some(value) = value
                && value > MAX_DURATION
            {
                return Err(PolicyError::DurationTooLong { key, value });
            }
        }
        if self.max_delay < self.base_delay {
            return Err(PolicyError::MaxDelayBelowBaseDelay {
                base_delay: self.base_delay,
                max_delay: self.max_delay,
            });
        }
        if self.max_total_time == Some(Duration::ZERO) {
            return Err(PolicyError::ZeroMaxTotalTime);
        }
        if let Some(r) = self
            .retryable
            .intersection(self.non_retryable)
            .iter()
            .next()
        {
            return Err(PolicyError::ReasonInBothLists {
                retryable: r.name(),
                non_retryable: r.name(),
            });
        }
        if let Some(budget) = &self.budget {
            budget.validate()?;
        }
        Ok(())
    }
}

/// An incoherent [`RetryPolicy`] or [`BudgetConfig`].
///
/// ```
/// # use wshub::retry::PolicyError;
/// let e = PolicyError::InvalidBackoffFactor { value: 0.5 };
/// assert!(e.to_string().contains("backoff_factor"));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyError {
    /// `backoff_factor` is below 1.0, NaN or infinite.
    InvalidBackoffFactor {
        /// The rejected factor.
        value: f64,
    },
    /// A delay or time cap is longer than [`MAX_DURATION`].
    DurationTooLong {
        /// `base_delay`, `max_delay` or `max_total_time`.
        key: &'static str,
        /// The rejected duration.
        value: Duration,
    },
    /// `max_delay` is shorter than `base_delay`.
    MaxDelayBelowBaseDelay {
        /// The configured base delay.
        base_delay: Duration,
        /// The configured (too small) cap.
        max_delay: Duration,
    },
    /// `max_total_time` is zero, which would forbid every retry.
    ZeroMaxTotalTime,
    /// A reason is classified both ways. The names are as written in the
    /// lists (`timeout` in one list overlaps `ack_timeout` in the other).
    ReasonInBothLists {
        /// The entry in `retryable_errors`.
        retryable: &'static str,
        /// The overlapping entry in `non_retryable_errors`.
        non_retryable: &'static str,
    },
    /// `retry_budget.max_tokens` is zero.
    ZeroMaxTokens,
    /// `retry_budget.max_tokens` is above [`BudgetConfig::MAX_TOKENS`].
    TooManyTokens {
        /// The rejected bucket size.
        value: u32,
    },
    /// `retry_budget.token_ratio` is outside `[0.001, max_tokens]` or NaN.
    InvalidTokenRatio {
        /// The rejected ratio.
        value: f64,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let human = humantime::format_duration;
        match self {
            PolicyError::InvalidBackoffFactor { value } => write!(
                f,
                "backoff_factor must be a finite number >= 1.0, got {value}"
            ),
            PolicyError::DurationTooLong { key, value } => write!(
                f,
                "`{key}` ({}) must be at most {} days",
                human(*value),
                MAX_DURATION.as_secs() / 86_400
            ),
            PolicyError::MaxDelayBelowBaseDelay {
                base_delay,
                max_delay,
            } => write!(
                f,
                "max_delay ({}) must not be below base_delay ({})",
                human(*max_delay),
                human(*base_delay),
            ),
            PolicyError::ZeroMaxTotalTime => {
                f.write_str("max_total_time must be greater than zero; use null for no cap")
            }
            PolicyError::ReasonInBothLists {
                retryable,
                non_retryable,
            } if retryable == non_retryable => write!(
                f,
                "`{retryable}` is listed in both retryable_errors and non_retryable_errors"
            ),
            PolicyError::ReasonInBothLists {
                retryable,
                non_retryable,
            } => write!(
                f,
                "`{retryable}` in retryable_errors overlaps `{non_retryable}` in \
                 non_retryable_errors (`timeout` covers every timeout type)"
            ),
            PolicyError::ZeroMaxTokens => f.write_str("retry_budget.max_tokens must be at least 1"),
            PolicyError::TooManyTokens { value } => write!(
                f,
                "retry_budget.max_tokens must be at most {}, got {value}",
                BudgetConfig::MAX_TOKENS
            ),
            PolicyError::InvalidTokenRatio { value } => write!(
                f,
                "retry_budget.token_ratio must be between 0.001 and max_tokens, got {value}"
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

#[cfg(test)]
mod tests;
