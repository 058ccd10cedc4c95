//! [`ReasonSet`]: which failure reasons a policy retries, as a bit set.
//!
//! One bit per entry of [`FailureReason::ALL`], so classifying a failure on
//! the hot path is a single mask test. Serialized as the config's list of
//! classification names (`timeout` standing for all three timeout kinds).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::failure::reason::{FailureReason, ParseReasonError, TimeoutKind};

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

    /// Reasons go-wsc has no name for (`cluster_unavailable`): retried
    /// unless a list says otherwise, so that a go-wsc config, which cannot
    /// name them, keeps retrying what is transient.
    ///
    /// ```
    /// # use wshub::reason::FailureReason;
    /// # use wshub::retry::ReasonSet;
    /// assert!(ReasonSet::BEYOND_SEED.contains(FailureReason::ClusterUnavailable));
    /// ```
    pub const BEYOND_SEED: ReasonSet = ReasonSet::of(&[FailureReason::ClusterUnavailable]);

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
        ReasonList::deserialize(deserializer).map(|list| list.set())
    }
}

/// A list of classification names as written: each entry's name and the
/// reasons it stands for (`timeout` is all three timeout kinds). The config
/// keeps the names to report an overlap between two lists as written.
#[derive(Debug)]
pub(crate) struct ReasonList(pub(crate) Vec<(&'static str, ReasonSet)>);

impl ReasonList {
    /// The union of the entries.
    pub(crate) fn set(&self) -> ReasonSet {
        self.0
            .iter()
            .fold(ReasonSet::EMPTY, |acc, &(_, s)| acc.union(s))
    }
}

impl<'de> Deserialize<'de> for ReasonList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = ReasonList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of failure reason names")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ReasonList, A::Error> {
                let mut list = Vec::new();
                // Borrowed-or-owned so names with escapes still parse.
                while let Some(name) = seq.next_element::<Cow<'de, str>>()? {
                    let entry = ReasonSet::lookup_classification_name(&name).map_err(|e| {
                        de::Error::custom(format_args!("entry {}: {e}", list.len()))
                    })?;
                    list.push(entry);
                }
                Ok(ReasonList(list))
            }
        }

        d.deserialize_seq(V)
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

#[cfg(test)]
mod tests;
