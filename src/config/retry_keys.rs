//! The retry policy's keys as a file writes them: the seed's five
//! (`max_retries`, `base_delay`, `backoff_factor`, `retryable_errors`,
//! `non_retryable_errors`) and wshub's four (`max_delay`, `jitter`,
//! `max_total_time`, `retry_budget`).
//!
//! These keys have defaulting rules of their own, which is why they pass
//! through [`RetryKeys`] instead of landing in [`RetryPolicy`] directly:
//! an absent `max_delay` follows a long `base_delay`; one classification
//! list written alone takes its entries out of the other list's default;
//! an overlap between the lists is reported with the names as written; and
//! `retry_budget` is `true`, `false`, `null` or a map of either field.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::values;
use crate::retry::{BudgetConfig, Jitter, PolicyError, ReasonList, ReasonSet, RetryPolicy};

/// The retry keys, each `None` when absent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetryKeys {
    max_retries: Option<u32>,
    #[serde(default, deserialize_with = "values::optional_duration")]
    base_delay: Option<Duration>,
    backoff_factor: Option<f64>,
    retryable_errors: Option<ReasonList>,
    non_retryable_errors: Option<ReasonList>,
    #[serde(default, deserialize_with = "values::optional_duration")]
    max_delay: Option<Duration>,
    jitter: Option<Jitter>,
    #[serde(default, deserialize_with = "values::optional_duration")]
    max_total_time: Option<Duration>,
    /// Outer `None`: absent (the default budget); `Some(None)`: `null`
    /// (disabled).
    #[serde(default, deserialize_with = "present")]
    retry_budget: Option<Option<BudgetKeys>>,
}

/// Reads the retry keys of the seed's flat `wsc:` section (or of the
/// `retry` map in [`HubConfig`](super::HubConfig)'s own serde form).
impl<'de> Deserialize<'de> for RetryPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RetryKeys::deserialize(d)?
            .into_policy()
            .map_err(de::Error::custom)
    }
}

impl RetryKeys {
    /// The policy these keys describe: defaults for what is absent, with the
    /// rules in the module docs. Range checks are left to
    /// [`RetryPolicy::validate`].
    pub(super) fn into_policy(self) -> Result<RetryPolicy, PolicyError> {
        let mut r = RetryPolicy::default();
        r.max_retries = self.max_retries.unwrap_or(r.max_retries);
        r.base_delay = self.base_delay.unwrap_or(r.base_delay);
        r.backoff_factor = self.backoff_factor.unwrap_or(r.backoff_factor);
        // max_delay is not a seed key: a seed config with a long base_delay
        // must not fail on a cap it never set.
        r.max_delay = self.max_delay.unwrap_or(r.max_delay.max(r.base_delay));
        r.jitter = self.jitter.unwrap_or(r.jitter);
        r.max_total_time = self.max_total_time;
        r.budget = match self.retry_budget {
            None | Some(Some(BudgetKeys::Switch(true))) => Some(BudgetConfig::default()),
            Some(None | Some(BudgetKeys::Switch(false))) => None,
            Some(Some(BudgetKeys::Map(m))) => {
                let d = BudgetConfig::default();
                Some(BudgetConfig {
                    max_tokens: m.max_tokens.unwrap_or(d.max_tokens),
                    token_ratio: m.token_ratio.unwrap_or(d.token_ratio),
                })
            }
        };
        (r.retryable, r.non_retryable) =
            classify(self.retryable_errors, self.non_retryable_errors)?;
        Ok(r)
    }
}

/// The two reason sets from the lists as written.
///
/// Overlap is checked on the lists as written, so the error can say
/// `timeout` overlaps `ack_timeout` rather than name an internal bit. With
/// one list written, its entries leave the other list's default, so
/// `retryable_errors: [user_offline]` alone works.
fn classify(
    retryable: Option<ReasonList>,
    non_retryable: Option<ReasonList>,
) -> Result<(ReasonSet, ReasonSet), PolicyError> {
    Ok(match (retryable, non_retryable) {
        (Some(yes), Some(no)) => {
            for &(rn, rs) in &yes.0 {
                if let Some(&(nn, _)) = no.0.iter().find(|(_, ns)| !rs.intersection(*ns).is_empty())
                {
                    return Err(PolicyError::ReasonInBothLists {
                        retryable: rn,
                        non_retryable: nn,
                    });
                }
            }
            (yes.set(), no.set())
        }
        (Some(yes), None) => {
            let yes = yes.set();
            (yes, ReasonSet::DEFAULT_NON_RETRYABLE.difference(yes))
        }
        (None, Some(no)) => {
            let no = no.set();
            (ReasonSet::DEFAULT_RETRYABLE.difference(no), no)
        }
        (None, None) => (
            ReasonSet::DEFAULT_RETRYABLE,
            ReasonSet::DEFAULT_NON_RETRYABLE,
        ),
    })
}

/// Marks a key as present, keeping a `null` distinguishable from an absence.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `retry_budget`'s map form; an absent field takes its default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetMap {
    max_tokens: Option<u32>,
    token_ratio: Option<f64>,
}

/// `retry_budget`: `true` (defaults), `false` (disabled) or a map.
#[derive(Debug)]
enum BudgetKeys {
    Switch(bool),
    Map(BudgetMap),
}

impl<'de> Deserialize<'de> for BudgetKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A hand-written visitor instead of `#[serde(untagged)]`, which would
        // replace an unknown key inside the map by "did not match any variant".
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = BudgetKeys;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, null or a map with max_tokens and token_ratio")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<BudgetKeys, E> {
                Ok(BudgetKeys::Switch(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<BudgetKeys, A::Error> {
                BudgetMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(BudgetKeys::Map)
            }
        }

        d.deserialize_any(V)
    }
}
