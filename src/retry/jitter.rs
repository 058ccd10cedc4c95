//! [`Jitter`]: how a backoff delay is randomised, and the random source it
//! draws from ([`RandomSource`], [`SplitMix64`]).
//!
//! A draw costs exactly one `u64` from the source and never allocates, so
//! the hub can jitter every retry on its hot path, and a test can pin the
//! draw with a closure.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a backoff delay is randomised, so that clients failing together do not
/// retry together.
///
/// The default is [`Jitter::Equal`]: a burst of failures (a full ring, a
/// dropped link shared by many devices) would otherwise come back as a burst
/// of retries at the same instant, and fail together again. Equal jitter
/// spreads them over the second half of each backoff while keeping at least
/// half of it, so the backoff still backs off. Write `jitter: none` for the
/// seed's exact delays.
///
/// ```
/// # use wshub::retry::Jitter;
/// assert_eq!(Jitter::default(), Jitter::Equal);
/// assert_eq!(Jitter::None.as_str(), "none");
/// ```
///
/// `#[non_exhaustive]`: other strategies (AWS's decorrelated jitter) may
/// join these three.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// The exact backoff delay (the seed's behaviour).
    None,
    /// Uniform in `[0, d]`: best spreading, may retry almost at once.
    Full,
    /// `d/2` plus uniform in `[0, d/2]`: keeps at least half the backoff.
    #[default]
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

    /// `delay` randomised by this jitter. [`Jitter::None`] draws nothing;
    /// the others draw one value from `rng`. Never longer than `delay`.
    pub(crate) fn apply(self, delay: Duration, rng: &mut impl RandomSource) -> Duration {
        let d_ns = nanos_u64(delay);
        match self {
            Jitter::None => delay,
            Jitter::Full => Duration::from_nanos(uniform_inclusive(rng, d_ns)),
            Jitter::Equal => {
                let half = d_ns / 2;
                Duration::from_nanos(half + uniform_inclusive(rng, d_ns - half))
            }
        }
    }
}

impl fmt::Display for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A source of uniformly distributed `u64`s for jitter.
///
/// Implemented for [`SplitMix64`] and for any `FnMut() -> u64` closure, so a
/// test can pin jitter to a fixed value.
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
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`; the same seed gives the same stream.
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
pub(super) fn nanos_u64(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
