//! Retry policy: which failures are retried, how long to wait, and when to stop.
//!
//! The policy extends the seed's exponential backoff (`base_delay ×
//! backoff_factor^n`) with a `max_delay` cap, jitter, an optional cap on the
//! total time spent on one delivery, and a retry budget. Everything here is
//! allocation-free and deterministic given the caller's random source, so the
//! hub can call it on its hot path and tests can reproduce any sequence.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wshub::reason::FailureReason;
//! use wshub::retry::{RetryDecision, RetryPolicy, SplitMix64};
//!
//! let policy = RetryPolicy::default();
//! let mut budget = policy.new_budget();
//! let mut rng = SplitMix64::new(7);
//! let decision = policy.should_retry(FailureReason::QueueFull, 0, Duration::ZERO, &mut budget, &mut rng);
//! assert_eq!(decision, RetryDecision::Retry { delay: Duration::from_millis(100) });
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::failure::reason::{FailureReason, ParseReasonError, TimeoutKind};

// ---------------------------------------------------------------------------
// ReasonSet
// ---------------------------------------------------------------------------

/// A set of [`FailureReason`]s: one bit per entry of [`FailureReason::ALL`].
///
/// `Copy` and allocation-free, so a classification lookup on the hot path is a
/// single mask test.
///
/// # Example
///
/// ```
/// # use wshub::reason::{FailureReason, TimeoutKind};
/// # use wshub::retry::ReasonSet;
/// let mut set = ReasonSet::from_classification_name("timeout").unwrap();
/// assert!(set.contains(FailureReason::Timeout(TimeoutKind::Ack)));
/// assert!(set.insert(FailureReason::QueueFull));
/// assert_eq!(set.len(), 4);
/// assert_eq!(set.classification_names().collect::<Vec<_>>(), ["queue_full", "timeout"]);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ReasonSet(u16);

// Every bit must fit; fails to compile if FailureReason outgrows the mask.
const _: () = assert!(FailureReason::ALL.len() <= u16::BITS as usize);

impl ReasonSet {
    /// The empty set.
    ///
    /// ```
    /// # use wshub::retry::ReasonSet;
    /// assert!(ReasonSet::EMPTY.is_empty());
    /// ```
    pub const EMPTY: ReasonSet = ReasonSet(0);

    /// All three timeout kinds: what the classification name `timeout` means.
    ///
    /// ```
    /// # use wshub::reason::{FailureReason, TimeoutKind};
    /// # use wshub::retry::ReasonSet;
    /// assert!(ReasonSet::TIMEOUTS.contains(FailureReason::Timeout(TimeoutKind::Connection)));
    /// ```
    pub const TIMEOUTS: ReasonSet = ReasonSet::of(&[
        FailureReason::Timeout(TimeoutKind::Ack),
        FailureReason::Timeout(TimeoutKind::Send),
        FailureReason::Timeout(TimeoutKind::Connection),
    ]);

    /// The seed's default `retryable_errors`: queue_full, timeout, conn_error,
    /// channel_closed, network_unreachable.
    ///
    /// ```
    /// # use wshub::reason::FailureReason;
    /// # use wshub::retry::ReasonSet;
    /// assert!(ReasonSet::DEFAULT_RETRYABLE.contains(FailureReason::ConnError));
    /// ```
    pub const DEFAULT_RETRYABLE: ReasonSet = ReasonSet::of(&[
        FailureReason::QueueFull,
        FailureReason::ConnError,
        FailureReason::ChannelClosed,
        FailureReason::NetworkUnreachable,
    ])
    .union(ReasonSet::TIMEOUTS);

    /// The seed's default `non_retryable_errors`: user_offline, permission,
    /// validation, authentication_failed, message_too_large.
    ///
    /// ```
    /// # use wshub::reason::FailureReason;
    /// # use wshub::retry::ReasonSet;
    /// assert!(ReasonSet::DEFAULT_NON_RETRYABLE.contains(FailureReason::UserOffline));
    /// ```
    pub const DEFAULT_NON_RETRYABLE: ReasonSet = ReasonSet::of(&[
        FailureReason::UserOffline,
        FailureReason::Permission,
        FailureReason::Validation,
        FailureReason::AuthenticationFailed,
        FailureReason::MessageTooLarge,
    ]);

    /// The set holding exactly `reasons`.
    ///
    /// ```
    /// # use wshub::reason::FailureReason;
    /// # use wshub::retry::ReasonSet;
    /// const SET: ReasonSet = ReasonSet::of(&[FailureReason::QueueFull]);
    /// assert_eq!(SET.len(), 1);
    /// ```
    pub const fn of(reasons: &[FailureReason]) -> ReasonSet {
        let mut bits = 0;
        let mut i = 0;
        while i < reasons.len() {
            bits |= 1 << reasons[i].index();
            i += 1;
        }
        ReasonSet(bits)
    }

    /// Whether `reason` is in the set.
    ///
    /// ```
    /// # use wshub::reason::FailureReason;
    /// # use wshub::retry::ReasonSet;
    /// assert!(!ReasonSet::EMPTY.contains(FailureReason::QueueFull));
    /// ```
    pub const fn contains(self, reason: FailureReason) -> bool {
        self.0 & (1 << reason.index()) != 0
    }

    /// Adds `reason`; returns whether it was newly added.
    ///
    /// ```
    /// # use wshub::reason::FailureReason;
    /// # use wshub::retry::ReasonSet;
    /// let mut set = ReasonSet::EMPTY;
    /// assert!(set.insert(FailureReason::RateLimited));
    /// assert!(!set.insert(FailureReason::RateLimited));
    /// ```
    pub fn insert(&mut self, reason: FailureReason) -> bool {
        let had = self.contains(reason);
        self.0 |= 1 << reason.index();
        !had
    }

    /// Removes `reason`; returns whether it was present.
    ///
    /// ```
    /// # use wshub::reason::FailureReason;
    /// # use wshub::retry::ReasonSet;
    /// let mut set = ReasonSet::DEFAULT_RETRYABLE;
    /// assert!(set.remove(FailureReason::QueueFull));
    /// assert!(!set.contains(FailureReason::QueueFull));
    /// ```
    pub fn remove(&mut self, reason: FailureReason) -> bool {
        let had = self.contains(reason);
        self.0 &= !(1 << reason.index());
        had
    }

    /// Reasons in either set.
    ///
    /// ```
    /// # use wshub::retry::ReasonSet;
    /// let all = ReasonSet::DEFAULT_RETRYABLE.union(ReasonSet::DEFAULT_NON_RETRYABLE);
    /// assert_eq!(all.len(), 12);
    /// ```
    pub const fn union(self, other: ReasonSet) -> ReasonSet {
        ReasonSet(self.0 | other.0)
    }

    /// Reasons in both sets.
    ///
    /// ```
    /// # use wshub::retry::ReasonSet;
    /// assert!(ReasonSet::DEFAULT_RETRYABLE.intersection(ReasonSet::DEFAULT_NON_RETRYABLE).is_empty());
    /// ```
    pub const fn intersection(self, other: ReasonSet) -> ReasonSet {
        ReasonSet(self.0 & other.0)
    }

    /// Reasons in `self` but not in `other`.
    ///
    /// ```
    /// # use wshub::retry::ReasonSet;
    /// let no_timeouts = ReasonSet::DEFAULT_RETRYABLE.difference(ReasonSet::TIMEOUTS);
    /// assert_eq!(no_timeouts.len(), 4);
    /// ```
    pub const fn difference(self, other: ReasonSet) -> ReasonSet {
        ReasonSet(self.0 & !other.0)
    }

    /// Whether the set is empty.
    ///
    /// ```
    /// # use wshub::retry::ReasonSet;
    /// assert!(ReasonSet::default().is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of reasons in the set (each timeout kind counts once).
    ///
    /// ```
    /// # use wshub::retry::ReasonSet;
    /// assert_eq!(ReasonSet::TIMEOUTS.len(), 3);
    /// ```
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The reasons in the set, in [`FailureReason::ALL`] order.
    ///
    /// ```
    /// # use wshub::reason::{FailureReason, TimeoutKind};
    /// # use wshub::retry::ReasonSet;
    /// let first = ReasonSet::TIMEOUTS.iter().next();
    /// assert_eq!(first, Some(FailureReason::Timeout(TimeoutKind::Ack)));
    /// ```
    pub fn iter(self) -> Iter {
        Iter(self.0)
    }

    /// The set a config classification name stands for: one reason, or all
    /// timeouts for `timeout`. Errors list the valid names.
    ///
    /// # Errors
    ///
    /// [`ParseReasonError`] for any other name, including go-wsc's
    /// `temporary` and `rate_limit_permanent`.
    ///
    /// ```
    /// # use wshub::retry::ReasonSet;
    /// assert_eq!(ReasonSet::from_classification_name("timeout"), Ok(ReasonSet::TIMEOUTS));
    /// assert!(ReasonSet::from_classification_name("temporary").is_err());
    /// ```
    pub fn from_classification_name(name: &str) -> Result<ReasonSet, ParseReasonError> {
        ReasonSet::lookup_classification_name(name).map(|(_, set)| set)
    }

    /// Like [`from_classification_name`](Self::from_classification_name),
    /// also returning the name as a `&'static str` so callers can report it
    /// without allocating.
    pub(crate) fn lookup_classification_name(
        name: &str,
    ) -> Result<(&'static str, ReasonSet), ParseReasonError> {
        if name == "timeout" {
            return Ok(("timeout", ReasonSet::TIMEOUTS));
        }
        FailureReason::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .map(|r| (r.name(), ReasonSet::of(&[r])))
            .ok_or_else(|| ParseReasonError::unknown(name, &FailureReason::CLASSIFICATION_NAMES))
    }

    /// The shortest list of classification names that denotes this set:
    /// `timeout` when all three timeout kinds are present, otherwise each
    /// member's [`name`](FailureReason::name). Parsing these names back with
    /// [`from_classification_name`](Self::from_classification_name) yields the
    /// same set.
    ///
    /// ```
    /// # use wshub::retry::ReasonSet;
    /// let names: Vec<_> = ReasonSet::DEFAULT_RETRYABLE.classification_names().collect();
    /// assert_eq!(names, ["queue_full", "timeout", "conn_error", "channel_closed", "network_unreachable"]);
    /// ```
    pub fn classification_names(self) -> impl Iterator<Item = &'static str> {
        let all_timeouts = self.intersection(ReasonSet::TIMEOUTS) == ReasonSet::TIMEOUTS;
        self.iter().filter_map(move |r| match r {
            FailureReason::Timeout(TimeoutKind::Ack) if all_timeouts => Some("timeout"),
            FailureReason::Timeout(_) if all_timeouts => None,
            other => Some(other.name()),
        })
    }
}

impl fmt::Debug for ReasonSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(FailureReason::name))
            .finish()
    }
}

impl FromIterator<FailureReason> for ReasonSet {
    fn from_iter<I: IntoIterator<Item = FailureReason>>(iter: I) -> Self {
        let mut set = ReasonSet::EMPTY;
        set.extend(iter);
        set
    }
}

impl Extend<FailureReason> for ReasonSet {
    fn extend<I: IntoIterator<Item = FailureReason>>(&mut self, iter: I) {
        for r in iter {
            self.insert(r);
        }
    }
}

impl IntoIterator for ReasonSet {
    type Item = FailureReason;
    type IntoIter = Iter;

    fn into_iter(self) -> Iter {
        self.iter()
    }
}

/// Serialized as the list of [`classification_names`](ReasonSet::classification_names).
impl Serialize for ReasonSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.classification_names())
    }
}

/// Deserialized from a list of classification names (duplicates are harmless).
impl<'de> Deserialize<'de> for ReasonSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ReasonSet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of failure reason names")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ReasonSet, A::Error> {
                let mut set = ReasonSet::EMPTY;
                // Borrowed-or-owned so names with escapes still parse.
                while let Some(name) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                    let bits = ReasonSet::from_classification_name(&name)
                        .map_err(serde::de::Error::custom)?;
                    set = set.union(bits);
                }
                Ok(set)
            }
        }

        deserializer.deserialize_seq(Visitor)
    }
}

/// Iterator over a [`ReasonSet`], in [`FailureReason::ALL`] order.
///
/// ```
/// # use wshub::retry::ReasonSet;
/// assert_eq!(ReasonSet::DEFAULT_NON_RETRYABLE.iter().count(), 5);
/// ```
#[derive(Clone, Debug)]
pub struct Iter(u16);

impl Iterator for Iter {
    type Item = FailureReason;

    fn next(&mut self) -> Option<FailureReason> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros();
        self.0 &= self.0 - 1; // clear the lowest set bit
        Some(FailureReason::ALL[bit as usize])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter {}

// ---------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------

/// A source of uniformly distributed `u64`s for jitter.
///
/// Implemented for [`SplitMix64`] and for any `FnMut() -> u64` closure, so a
/// test can pin jitter to a fixed value.
///
/// ```
/// # use std::time::Duration;
/// # use wshub::retry::{Jitter, RetryPolicy};
/// let mut policy = RetryPolicy::default();
/// policy.jitter = Jitter::Full;
/// // The largest draw maps to the full delay.
/// assert_eq!(policy.delay_for(0, &mut || u64::MAX), Duration::from_millis(100));
/// ```
pub trait RandomSource {
    /// The next uniformly distributed value.
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> RandomSource for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, fast, seedable PRNG.
///
/// Chosen over xorshift because every seed, including 0, yields a
/// full-quality stream. Not cryptographic; jitter only needs decorrelation.
///
/// ```
/// # use wshub::retry::{RandomSource, SplitMix64};
/// let mut a = SplitMix64::new(42);
/// let mut b = SplitMix64::new(42);
/// assert_eq!(a.next_u64(), b.next_u64()); // deterministic per seed
/// ```
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    ///
    /// ```
    /// # use wshub::retry::SplitMix64;
    /// let _rng = SplitMix64::new(0);
    /// ```
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }
}

impl RandomSource for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Uniform in `[0, upper]` by multiply-shift (Lemire). The bias is below
/// 2^-64 per value, far under anything jitter could notice, and it needs no
/// rejection loop, so a draw costs exactly one `next_u64`.
fn uniform_inclusive(rng: &mut impl RandomSource, upper: u64) -> u64 {
    let r = rng.next_u64();
    match upper.checked_add(1) {
        Some(span) => ((u128::from(r) * u128::from(span)) >> 64) as u64,
        None => r,
    }
}

/// Nanoseconds of `d`, saturated to `u64` (about 584 years).
fn nanos_u64(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// Jitter
// ---------------------------------------------------------------------------

/// How a backoff delay is randomised, so that clients failing together do not
/// retry together.
///
/// ```
/// # use wshub::retry::Jitter;
/// assert_eq!(Jitter::default(), Jitter::None);
/// assert_eq!(Jitter::Equal.as_str(), "equal");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// The exact backoff delay (the seed's behaviour).
    #[default]
    None,
    /// Uniform in `[0, d]`: best spreading, may retry almost at once.
    Full,
    /// `d/2` plus uniform in `[0, d/2]`: keeps at least half the backoff.
    Equal,
}

impl Jitter {
    /// The config spelling: `none`, `full` or `equal`.
    ///
    /// ```
    /// # use wshub::retry::Jitter;
    /// assert_eq!(Jitter::Full.as_str(), "full");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Jitter::None => "none",
            Jitter::Full => "full",
            Jitter::Equal => "equal",
        }
    }
}

impl fmt::Display for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Retry budget
// ---------------------------------------------------------------------------

/// Parameters of the retry budget (gRPC's retry throttling).
///
/// The bucket holds `max_tokens` and starts full. A retry is granted only if
/// paying one token leaves the bucket at or above half of `max_tokens`; every
/// successful delivery refills `token_ratio` tokens. So a failure storm gets
/// at most `max_tokens / 2` retries, plus `token_ratio` per success: retries
/// stay a bounded fraction of real traffic.
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
    /// Bucket size; the storm allowance is half of it. At least 1.
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
    /// Checks the ranges documented on the fields.
    ///
    /// # Errors
    ///
    /// [`PolicyError::ZeroMaxTokens`] or [`PolicyError::InvalidTokenRatio`].
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
        // `!(a <= x && x <= b)` also rejects NaN.
        if !(0.001 <= self.token_ratio && self.token_ratio <= f64::from(self.max_tokens)) {
            return Err(PolicyError::InvalidTokenRatio {
                value: self.token_ratio,
            });
        }
        Ok(())
    }
}

/// Milli-tokens per token: integer fixed point keeps the bucket exact and
/// deterministic (no float drift after millions of refills).
const MILLI: u64 = 1000;

/// The live state of a retry budget; one per hub.
///
/// ```
/// # use wshub::retry::{BudgetConfig, RetryBudget};
/// let mut budget = RetryBudget::new(&BudgetConfig { max_tokens: 4, token_ratio: 0.5 });
/// assert!(budget.try_acquire()); // 4 -> 3
/// assert!(budget.try_acquire()); // 3 -> 2
/// assert!(!budget.try_acquire()); // would drop below 2 (half)
/// budget.on_success();
/// budget.on_success(); // +1 token
/// assert!(budget.try_acquire());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryBudget {
    bucket: Option<Bucket>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Bucket {
    tokens: u64,
    max: u64,
    floor: u64,
    refill: u64,
}

impl RetryBudget {
    /// A full bucket for `config`. An unvalidated config cannot panic: a
    /// non-finite or negative ratio refills nothing.
    ///
    /// ```
    /// # use wshub::retry::{BudgetConfig, RetryBudget};
    /// let budget = RetryBudget::new(&BudgetConfig::default());
    /// assert_eq!(budget.tokens(), Some(1000.0));
    /// ```
    pub fn new(config: &BudgetConfig) -> Self {
        let max = u64::from(config.max_tokens) * MILLI;
        // Float-to-int `as` saturates and maps NaN to 0, which is what we want.
        let refill = ((config.token_ratio * MILLI as f64).round() as u64).min(max);
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
    ///
    /// ```
    /// # use wshub::retry::RetryBudget;
    /// let mut budget = RetryBudget::unlimited();
    /// assert!((0..10_000).all(|_| budget.try_acquire()));
    /// ```
    pub const fn unlimited() -> Self {
        RetryBudget { bucket: None }
    }

    /// Takes one token for a retry, if that keeps the bucket at or above half.
    ///
    /// ```
    /// # use wshub::retry::{BudgetConfig, RetryBudget};
    /// let mut budget = RetryBudget::new(&BudgetConfig { max_tokens: 1, token_ratio: 1.0 });
    /// assert!(!budget.try_acquire()); // half of 1 token leaves no room
    /// ```
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
    ///
    /// ```
    /// # use wshub::retry::{BudgetConfig, RetryBudget};
    /// let mut budget = RetryBudget::new(&BudgetConfig::default());
    /// budget.on_success(); // already full: stays at max
    /// assert_eq!(budget.tokens(), Some(1000.0));
    /// ```
    pub fn on_success(&mut self) {
        if let Some(b) = &mut self.bucket {
            b.tokens = (b.tokens + b.refill).min(b.max);
        }
    }

    /// Current tokens (for metrics), or `None` when unlimited.
    ///
    /// ```
    /// # use wshub::retry::RetryBudget;
    /// assert_eq!(RetryBudget::unlimited().tokens(), None);
    /// ```
    pub fn tokens(&self) -> Option<f64> {
        self.bucket.as_ref().map(|b| b.tokens as f64 / MILLI as f64)
    }

    /// Retries a full bucket grants with no successes: `max_tokens / 2`
    /// (`None` when unlimited).
    ///
    /// ```
    /// # use wshub::retry::{BudgetConfig, RetryBudget};
    /// assert_eq!(RetryBudget::new(&BudgetConfig::default()).initial_allowance(), Some(500));
    /// ```
    pub fn initial_allowance(&self) -> Option<u64> {
        self.bucket.as_ref().map(|b| (b.max - b.floor) / MILLI)
    }
}

// ---------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------

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
/// policy.jitter = Jitter::Equal;
/// assert!(policy.validate().is_ok());
/// assert_eq!(policy.backoff(3), Duration::from_millis(800));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so up to `max_retries + 1` attempts).
    pub max_retries: u32,
    /// Delay before the first retry.
    pub base_delay: Duration,
    /// Growth per retry; at least 1.0.
    pub backoff_factor: f64,
    /// Cap on any single delay, applied before and after jitter.
    pub max_delay: Duration,
    /// Randomisation of each delay.
    pub jitter: Jitter,
    /// Give up when the next retry would start later than this after the
    /// first attempt; `None` for no cap.
    pub max_total_time: Option<Duration>,
    /// Reasons that may be retried.
    pub retryable: ReasonSet,
    /// Reasons never retried; wins over `retryable`.
    pub non_retryable: ReasonSet,
    /// Hub-wide retry budget; `None` disables it.
    pub budget: Option<BudgetConfig>,
}

impl Default for RetryPolicy {
    /// The seed's defaults (3 retries, 100ms, ×2.0, its two lists) plus a 30s
    /// `max_delay`, no jitter, no total cap and the default budget.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            backoff_factor: 2.0,
            max_delay: Duration::from_secs(30),
            jitter: Jitter::None,
            max_total_time: None,
            retryable: ReasonSet::DEFAULT_RETRYABLE,
            non_retryable: ReasonSet::DEFAULT_NON_RETRYABLE,
            budget: Some(BudgetConfig::default()),
        }
    }
}

/// What to do after a failed attempt.
///
/// ```
/// # use wshub::retry::{GiveUpReason, RetryDecision};
/// let d = RetryDecision::GiveUp(GiveUpReason::NotRetryable);
/// assert!(!d.is_retry());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after `delay`.
    Retry {
        /// How long to wait before the next attempt.
        delay: Duration,
    },
    /// The failure is final.
    GiveUp(GiveUpReason),
}

impl RetryDecision {
    /// Whether this is [`RetryDecision::Retry`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use wshub::retry::RetryDecision;
    /// assert!(RetryDecision::Retry { delay: Duration::ZERO }.is_retry());
    /// ```
    pub const fn is_retry(self) -> bool {
        matches!(self, RetryDecision::Retry { .. })
    }
}

/// Why a failure became final.
///
/// ```
/// # use wshub::retry::GiveUpReason;
/// assert_eq!(GiveUpReason::BudgetExhausted.to_string(), "budget_exhausted");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GiveUpReason {
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
    ///
    /// ```
    /// # use wshub::retry::GiveUpReason;
    /// assert_eq!(GiveUpReason::RetriesExhausted.as_str(), "retries_exhausted");
    /// ```
    pub const fn as_str(self) -> &'static str {
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
    /// `non_retryable`.
    ///
    /// ```
    /// # use wshub::reason::FailureReason;
    /// # use wshub::retry::RetryPolicy;
    /// let policy = RetryPolicy::default();
    /// assert!(policy.is_retryable(FailureReason::QueueFull));
    /// assert!(!policy.is_retryable(FailureReason::UserOffline));
    /// assert!(!policy.is_retryable(FailureReason::RateLimited)); // in neither list
    /// ```
    pub const fn is_retryable(&self, reason: FailureReason) -> bool {
        self.retryable.contains(reason) && !self.non_retryable.contains(reason)
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
    /// with jitter applied, then clamped to `max_delay` again. `Jitter::None`
    /// draws no random number.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use wshub::retry::{Jitter, RetryPolicy, SplitMix64};
    /// let mut policy = RetryPolicy::default();
    /// policy.jitter = Jitter::Equal;
    /// let d = policy.delay_for(1, &mut SplitMix64::new(1));
    /// assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
    /// ```
    pub fn delay_for(&self, retry_index: u32, rng: &mut impl RandomSource) -> Duration {
        let d = self.backoff(retry_index);
        let jittered = match self.jitter {
            Jitter::None => d,
            Jitter::Full => Duration::from_nanos(uniform_inclusive(rng, nanos_u64(d))),
            Jitter::Equal => {
                let d_ns = nanos_u64(d);
                let half = d_ns / 2;
                Duration::from_nanos(half + uniform_inclusive(rng, d_ns - half))
            }
        };
        jittered.min(self.max_delay)
    }

    /// Decides what follows a failed attempt.
    ///
    /// `retries_so_far` is the number of retries already made for this
    /// delivery (0 after the first attempt fails); `elapsed` is the time since
    /// the first attempt started. Checks, in order: classification, retry
    /// count, total time, budget. The budget is charged only when the answer
    /// is [`RetryDecision::Retry`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use wshub::reason::FailureReason;
    /// # use wshub::retry::{GiveUpReason, RetryDecision, RetryPolicy, SplitMix64};
    /// let policy = RetryPolicy::default();
    /// let (mut budget, mut rng) = (policy.new_budget(), SplitMix64::new(0));
    /// assert_eq!(
    ///     policy.should_retry(FailureReason::ConnError, 3, Duration::ZERO, &mut budget, &mut rng),
    ///     RetryDecision::GiveUp(GiveUpReason::RetriesExhausted),
    /// );
    /// ```
    pub fn should_retry(
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

    /// A fresh budget for this policy (unlimited when `budget` is `None`).
    ///
    /// ```
    /// # use wshub::retry::RetryPolicy;
    /// let mut policy = RetryPolicy::default();
    /// policy.budget = None;
    /// assert_eq!(policy.new_budget().tokens(), None);
    /// ```
    pub fn new_budget(&self) -> RetryBudget {
        self.budget
            .as_ref()
            .map_or(RetryBudget::unlimited(), RetryBudget::new)
    }

    /// Checks that the policy is coherent; every error names its config key.
    ///
    /// # Errors
    ///
    /// The first [`PolicyError`] found: factor, delays, total time, a reason
    /// in both sets, then the budget.
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
    /// `retry_budget.token_ratio` is outside `[0.001, max_tokens]` or NaN.
    InvalidTokenRatio {
        /// The rejected ratio.
        value: f64,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::InvalidBackoffFactor { value } => {
                write!(
                    f,
                    "backoff_factor must be a finite number >= 1.0, got {value}"
                )
            }
            PolicyError::MaxDelayBelowBaseDelay {
                base_delay,
                max_delay,
            } => write!(
                f,
                "max_delay ({}) must not be below base_delay ({})",
                humantime::format_duration(*max_delay),
                humantime::format_duration(*base_delay),
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
            PolicyError::InvalidTokenRatio { value } => write!(
                f,
                "retry_budget.token_ratio must be between 0.001 and max_tokens, got {value}"
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason() -> impl Strategy<Value = FailureReason> {
        (0..FailureReason::ALL.len()).prop_map(|i| FailureReason::ALL[i])
    }

    fn reason_set() -> impl Strategy<Value = ReasonSet> {
        any::<u16>().prop_map(|bits| ReasonSet(bits & ((1 << FailureReason::ALL.len()) - 1)))
    }

    fn jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Equal)]
    }

    fn any_duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..100_000_000_000).prop_map(Duration::from_nanos),
            (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        ]
    }

    fn budget_allowance(max_tokens: u32) -> u64 {
        RetryBudget::new(&BudgetConfig {
            max_tokens,
            token_ratio: 1.0,
        })
        .initial_allowance()
        .unwrap()
    }

    fn policy(base_ns: u64, factor: f64, extra_ns: u64, jitter: Jitter) -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_nanos(base_ns),
            backoff_factor: factor,
            max_delay: Duration::from_nanos(base_ns + extra_ns),
            jitter,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn seed_defaults() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_retries, 3);
        assert_eq!(p.base_delay, Duration::from_millis(100));
        assert_eq!(p.backoff_factor, 2.0);
        let names = |s: ReasonSet| s.classification_names().collect::<Vec<_>>();
        assert_eq!(
            names(p.retryable),
            [
                "queue_full",
                "timeout",
                "conn_error",
                "channel_closed",
                "network_unreachable"
            ]
        );
        assert_eq!(
            names(p.non_retryable),
            [
                "user_offline",
                "permission",
                "validation",
                "authentication_failed",
                "message_too_large"
            ]
        );
        assert!(p.validate().is_ok());
    }

    #[test]
    fn backoff_sequence_and_cap() {
        let mut p = RetryPolicy::default();
        let got: Vec<_> = (0..4).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800]);
        p.max_delay = Duration::from_millis(300);
        assert_eq!(p.backoff(2), Duration::from_millis(300));
    }

    #[test]
    fn should_retry_checks_in_order() {
        let p = RetryPolicy {
            max_total_time: Some(Duration::from_millis(250)),
            ..RetryPolicy::default()
        };
        let mut b = p.new_budget();
        let mut rng = SplitMix64::new(1);
        let mut ask = |r, n, ms| p.should_retry(r, n, Duration::from_millis(ms), &mut b, &mut rng);
        assert_eq!(
            ask(FailureReason::UserOffline, 0, 0),
            RetryDecision::GiveUp(GiveUpReason::NotRetryable)
        );
        assert_eq!(
            ask(FailureReason::QueueFull, 0, 100),
            RetryDecision::Retry {
                delay: Duration::from_millis(100)
            }
        );
        // 100ms elapsed + 200ms next delay > 250ms cap.
        assert_eq!(
            ask(FailureReason::QueueFull, 1, 100),
            RetryDecision::GiveUp(GiveUpReason::TotalTimeExceeded)
        );
        assert_eq!(
            ask(FailureReason::QueueFull, 3, 0),
            RetryDecision::GiveUp(GiveUpReason::RetriesExhausted)
        );
    }

    #[test]
    fn budget_exhaustion_is_reported_and_not_charged_on_give_up() {
        let p = RetryPolicy {
            budget: Some(BudgetConfig {
                max_tokens: 4,
                token_ratio: 1.0,
            }),
            ..RetryPolicy::default()
        };
        let mut b = p.new_budget();
        let mut rng = SplitMix64::new(1);
        let r = FailureReason::ConnError;
        assert!(
            p.should_retry(r, 0, Duration::ZERO, &mut b, &mut rng)
                .is_retry()
        );
        // Not retryable: must not touch the budget.
        p.should_retry(
            FailureReason::Validation,
            0,
            Duration::ZERO,
            &mut b,
            &mut rng,
        );
        assert!(
            p.should_retry(r, 0, Duration::ZERO, &mut b, &mut rng)
                .is_retry()
        );
        assert_eq!(
            p.should_retry(r, 0, Duration::ZERO, &mut b, &mut rng),
            RetryDecision::GiveUp(GiveUpReason::BudgetExhausted)
        );
        b.on_success();
        assert!(
            p.should_retry(r, 0, Duration::ZERO, &mut b, &mut rng)
                .is_retry()
        );
    }

    #[test]
    fn validation_errors() {
        let check = |f: fn(&mut RetryPolicy), key: &str| {
            let mut p = RetryPolicy::default();
            f(&mut p);
            let err = p.validate().unwrap_err();
            assert!(err.to_string().contains(key), "{err} lacks {key}");
        };
        check(|p| p.backoff_factor = f64::NAN, "backoff_factor");
        check(|p| p.backoff_factor = f64::INFINITY, "backoff_factor");
        check(|p| p.backoff_factor = 0.99, "backoff_factor");
        check(|p| p.max_delay = Duration::from_millis(99), "max_delay");
        check(
            |p| p.max_total_time = Some(Duration::ZERO),
            "max_total_time",
        );
        check(
            |p| _ = p.non_retryable.insert(FailureReason::QueueFull),
            "queue_full",
        );
        check(
            |p| {
                p.budget = Some(BudgetConfig {
                    max_tokens: 0,
                    token_ratio: 0.1,
                })
            },
            "max_tokens",
        );
        check(
            |p| {
                p.budget = Some(BudgetConfig {
                    max_tokens: 10,
                    token_ratio: 0.0,
                })
            },
            "token_ratio",
        );
        check(
            |p| {
                p.budget = Some(BudgetConfig {
                    max_tokens: 10,
                    token_ratio: 11.0,
                })
            },
            "token_ratio",
        );
    }

    #[test]
    fn reason_set_serde() {
        let json = serde_json::to_string(&ReasonSet::DEFAULT_NON_RETRYABLE).unwrap();
        assert_eq!(
            json,
            r#"["user_offline","permission","validation","authentication_failed","message_too_large"]"#
        );
        let set: ReasonSet =
            serde_json::from_str(r#"["ack_timeout","queue_full","ack_timeout"]"#).unwrap();
        assert_eq!(set.len(), 2);
        let err = serde_json::from_str::<ReasonSet>(r#"["queue_full","bogus"]"#).unwrap_err();
        assert!(err.to_string().contains("valid names"), "{err}");
    }

    #[test]
    fn jitter_extremes() {
        let mut p = RetryPolicy {
            jitter: Jitter::Full,
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay_for(0, &mut || 0), Duration::ZERO);
        assert_eq!(p.delay_for(0, &mut || u64::MAX), Duration::from_millis(100));
        p.jitter = Jitter::Equal;
        assert_eq!(p.delay_for(0, &mut || 0), Duration::from_millis(50));
        assert_eq!(p.delay_for(0, &mut || u64::MAX), Duration::from_millis(100));
    }

    proptest! {
        #[test]
        fn delay_never_exceeds_max_and_never_panics(
            base in any_duration(),
            max in any_duration(),
            factor in prop_oneof![any::<f64>(), 0.0f64..20.0],
            jitter in jitter(),
            n in any::<u32>(),
            seed in any::<u64>(),
        ) {
            let p = RetryPolicy { base_delay: base, max_delay: max, backoff_factor: factor, jitter, ..RetryPolicy::default() };
            prop_assert!(p.delay_for(n, &mut SplitMix64::new(seed)) <= max);
            prop_assert!(p.backoff(n) <= max);
        }

        #[test]
        fn backoff_is_monotone(
            base_ns in 0u64..10_000_000_000,
            factor in 1.0f64..16.0,
            extra_ns in any::<u64>().prop_map(|x| x >> 8),
            n in 0u32..2000,
        ) {
            let p = policy(base_ns, factor, extra_ns, Jitter::None);
            prop_assert!(p.backoff(n) <= p.backoff(n + 1));
            let mut rng = || 0;
            prop_assert_eq!(p.delay_for(n, &mut rng), p.backoff(n));
        }

        #[test]
        fn equal_jitter_keeps_half(
            base_ns in 0u64..10_000_000_000,
            factor in 1.0f64..16.0,
            extra_ns in 0u64..100_000_000_000,
            n in 0u32..64,
            seed in any::<u64>(),
        ) {
            let p = policy(base_ns, factor, extra_ns, Jitter::Equal);
            let d = p.backoff(n).as_nanos();
            let j = p.delay_for(n, &mut SplitMix64::new(seed)).as_nanos();
            prop_assert!(j >= d / 2 && j <= d);
        }

        #[test]
        fn budget_bounds_retries(
            max_tokens in 1u32..200,
            ratio_milli in 1u32..5000,
            events in proptest::collection::vec(any::<bool>(), 0..2000),
        ) {
            let cfg = BudgetConfig { max_tokens, token_ratio: f64::from(ratio_milli) / 1000.0 };
            let mut budget = RetryBudget::new(&cfg);
            let (mut granted, mut successes) = (0u64, 0u64);
            for success in events {
                if success {
                    budget.on_success();
                    successes += 1;
                } else if budget.try_acquire() {
                    granted += 1;
                }
            }
            // granted ≤ max_tokens/2 + ratio × successes, in milli-tokens:
            // every grant paid 1000, each success refilled at most the ratio,
            // and a grant never leaves the bucket below half.
            let ratio = u64::from(ratio_milli).min(u64::from(max_tokens) * MILLI);
            prop_assert!(granted * MILLI <= u64::from(max_tokens) * MILLI / 2 + ratio * successes);
            if successes == 0 {
                prop_assert!(granted <= budget_allowance(max_tokens));
            }
        }

        #[test]
        fn non_retryable_wins(retryable in reason_set(), non_retryable in reason_set(), r in reason()) {
            let p = RetryPolicy { retryable, non_retryable, ..RetryPolicy::default() };
            if non_retryable.contains(r) || !retryable.contains(r) {
                prop_assert!(!p.is_retryable(r));
            } else {
                prop_assert!(p.is_retryable(r));
            }
            let mut budget = RetryBudget::unlimited();
            let d = p.should_retry(r, 0, Duration::ZERO, &mut budget, &mut SplitMix64::new(0));
            prop_assert_eq!(d.is_retry(), p.is_retryable(r));
        }

        #[test]
        fn classification_names_round_trip(set in reason_set()) {
            let back = set
                .classification_names()
                .map(|n| ReasonSet::from_classification_name(n).unwrap())
                .fold(ReasonSet::EMPTY, ReasonSet::union);
            prop_assert_eq!(back, set);
            prop_assert_eq!(set.iter().collect::<ReasonSet>(), set);
            prop_assert_eq!(set.iter().len(), set.len());
        }
    }
}
