//! The retry budget (gRPC's retry throttling): [`BudgetConfig`], its
//! parameters, and [`RetryBudget`], the live token bucket.
//!
//! There is one bucket per receiving user, so one user's failure storm spends
//! only that user's retries; the hub-wide caps (`max_pending_deliveries`)
//! bound the total. A bucket is 20 bytes and `Copy`, so the hub can create
//! one for every user it sees without thinking about it.

use super::PolicyError;

/// Parameters of the retry budget (gRPC's retry throttling).
///
/// The bucket holds `max_tokens` and starts full. A retry is granted only if
/// paying one token leaves the bucket at or above half of `max_tokens`; every
/// successful delivery refills `token_ratio` tokens. So a failure storm gets
/// at most `max_tokens / 2` retries, plus `token_ratio` per success: retries
/// stay a bounded fraction of real traffic.
///
/// Each receiving user has a bucket of its own (see the [module
/// docs](crate::retry)), so these numbers are per user.
///
/// Refill is driven by successes rather than by a clock on purpose: a clock
/// would keep granting retries to a peer that never recovers, while success
/// refill ties retry volume to evidence that retries help. It also makes the
/// budget deterministic to test.
///
/// ```
/// # use wshub::retry::BudgetConfig;
/// let cfg = BudgetConfig::default();
/// assert_eq!((cfg.max_tokens, cfg.token_ratio), (1000, 0.1));
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    /// Bucket size; the storm allowance is half of it. Between 1 and
    /// [`MAX_TOKENS`](Self::MAX_TOKENS).
    pub max_tokens: u32,
    /// Tokens refilled per success, with three decimal places of precision
    /// (as in gRPC). Between 0.001 and `max_tokens`.
    pub token_ratio: f64,
}

impl Default for BudgetConfig {
    /// 1000 tokens (500 storm retries) and 0.1: sustained retries at most 10 %
    /// of successful deliveries once the allowance is spent.
    fn default() -> Self {
        BudgetConfig {
            max_tokens: 1000,
            token_ratio: 0.1,
        }
    }
}

impl BudgetConfig {
    /// The largest `max_tokens`: a million tokens, so that a bucket counts
    /// milli-tokens in 32 bits and stays 20 bytes per user.
    ///
    /// ```
    /// # use wshub::retry::BudgetConfig;
    /// assert_eq!(BudgetConfig::MAX_TOKENS, 1_000_000);
    /// ```
    pub const MAX_TOKENS: u32 = 1_000_000;

    /// Checks the ranges documented on the fields.
    ///
    /// # Errors
    ///
    /// [`PolicyError::ZeroMaxTokens`], [`PolicyError::TooManyTokens`] or
    /// [`PolicyError::InvalidTokenRatio`].
    ///
    /// ```
    /// # use wshub::retry::{BudgetConfig, PolicyError};
    /// let bad = BudgetConfig { max_tokens: 0, token_ratio: 0.1 };
    /// assert_eq!(bad.validate(), Err(PolicyError::ZeroMaxTokens));
    /// ```
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_tokens == 0 {
            return Err(PolicyError::ZeroMaxTokens);
        }
        if self.max_tokens > Self::MAX_TOKENS {
            return Err(PolicyError::TooManyTokens {
                value: self.max_tokens,
            });
        }
        // `!(a <= x && x <= b)` also rejects NaN.
        if !(0.001 <= self.token_ratio && self.token_ratio <= f64::from(self.max_tokens)) {
            return Err(PolicyError::InvalidTokenRatio {
                value: self.token_ratio,
            });
        }
        Ok(())
    }

    /// A full bucket with these parameters: what the hub creates for a
    /// user it has no bucket for yet.
    pub(crate) fn new_budget(&self) -> RetryBudget {
        RetryBudget::new(self)
    }
}

/// Milli-tokens per token: integer fixed point keeps the bucket exact and
/// deterministic (no float drift after millions of refills).
const MILLI: u32 = 1000;

/// The live state of a retry budget: one per receiving user.
///
/// `Copy` and 20 bytes (a bucket of milli-tokens, or none when unlimited),
/// so creating one per user costs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryBudget {
    bucket: Option<Bucket>,
}

/// Milli-tokens. `max` is at most `MAX_TOKENS × MILLI` (10^9), so every sum
/// below stays inside `u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bucket {
    tokens: u32,
    max: u32,
    floor: u32,
    refill: u32,
}

impl RetryBudget {
    /// A full bucket for `config`. An unvalidated config cannot panic: a
    /// `max_tokens` above [`BudgetConfig::MAX_TOKENS`] is clamped to it, and
    /// a non-finite or negative ratio refills nothing.
    pub fn new(config: &BudgetConfig) -> Self {
        let max = config.max_tokens.min(BudgetConfig::MAX_TOKENS) * MILLI;
        // Float-to-int `as` saturates and maps NaN to 0, which is what we want.
        let refill = ((config.token_ratio * f64::from(MILLI)).round() as u32).min(max);
        RetryBudget {
            bucket: Some(Bucket {
                tokens: max,
                max,
                floor: max / 2,
                refill,
            }),
        }
    }

    /// A budget that grants every retry (budget disabled).
    pub const fn unlimited() -> Self {
        RetryBudget { bucket: None }
    }

    /// Takes one token for a retry, if that keeps the bucket at or above half.
    pub fn try_acquire(&mut self) -> bool {
        match &mut self.bucket {
            None => true,
            Some(b) if b.tokens >= b.floor + MILLI => {
                b.tokens -= MILLI;
                true
            }
            Some(_) => false,
        }
    }

    /// Records a successful delivery, refilling `token_ratio` tokens.
    pub fn on_success(&mut self) {
        if let Some(b) = &mut self.bucket {
            b.tokens = (b.tokens + b.refill).min(b.max);
        }
    }

    /// Current tokens (for metrics), or `None` when unlimited.
    pub fn tokens(&self) -> Option<f64> {
        self.bucket
            .as_ref()
            .map(|b| f64::from(b.tokens) / f64::from(MILLI))
    }

    /// Retries a full bucket grants with no successes: `max_tokens / 2`
    /// (`None` when unlimited).
    pub fn initial_allowance(&self) -> Option<u32> {
        self.bucket.as_ref().map(|b| (b.max - b.floor) / MILLI)
    }
}

#[cfg(test)]
mod tests;
