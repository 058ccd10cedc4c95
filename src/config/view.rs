//! The `/health/retry-config` document: [`RetryConfigView`].

use std::time::Duration;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::HubConfig;
use super::values::human_duration;

impl HubConfig {
    /// The `/health/retry-config` document for this configuration.
    ///
    /// ```
    /// # use wshub::config::HubConfig;
    /// let json = serde_json::to_value(HubConfig::default().retry_config_view()).unwrap();
    /// assert_eq!(json["base_delay"], "100ms");
    /// assert_eq!(json["max_inflight_acks"], 256);
    /// ```
    pub fn retry_config_view(&self) -> RetryConfigView<'_> {
        RetryConfigView::new(self)
    }
}

/// Serializes a configuration's retry settings as the seed's
/// `/health/retry-config` JSON, extended with wshub's retry keys and the
/// limits retried deliveries live within (ACK and send timeouts, in-flight
/// and pending caps, the offline store). Keys and value spellings are those
/// of the config file, so the document parses back (under `wsc:`) to the
/// same settings.
///
/// ```
/// # use wshub::config::{HubConfig, RetryConfigView};
/// let config = HubConfig::default();
/// let json = serde_json::to_string(&RetryConfigView::new(&config)).unwrap();
/// assert!(json.starts_with(r#"{"max_retries":3,"base_delay":"100ms","backoff_factor":2.0,"retryable_errors":["queue_full","timeout""#));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RetryConfigView<'a> {
    config: &'a HubConfig,
}

impl<'a> RetryConfigView<'a> {
    /// A view of `config`.
    ///
    /// ```
    /// # use wshub::config::{HubConfig, RetryConfigView};
    /// let config = HubConfig::default();
    /// let _view = RetryConfigView::new(&config);
    /// ```
    pub fn new(config: &'a HubConfig) -> Self {
        RetryConfigView { config }
    }
}

/// A duration as the config file spells it.
struct Human(Duration);

impl Serialize for Human {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        human_duration(&self.0, s)
    }
}

impl Serialize for RetryConfigView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Budget {
            max_tokens: u32,
            token_ratio: f64,
        }

        let c = self.config;
        let p = &c.retry;
        let mut map = serializer.serialize_map(None)?;
        // The seed's five keys, in its order.
        map.serialize_entry("max_retries", &p.max_retries)?;
        map.serialize_entry("base_delay", &Human(p.base_delay))?;
        map.serialize_entry("backoff_factor", &p.backoff_factor)?;
        map.serialize_entry("retryable_errors", &p.retryable)?;
        map.serialize_entry("non_retryable_errors", &p.non_retryable)?;
        // wshub's retry keys.
        map.serialize_entry("max_delay", &Human(p.max_delay))?;
        map.serialize_entry("jitter", &p.jitter)?;
        map.serialize_entry("max_total_time", &p.max_total_time.map(Human))?;
        let budget = p.budget.map(|b| Budget {
            max_tokens: b.max_tokens,
            token_ratio: b.token_ratio,
        });
        map.serialize_entry("retry_budget", &budget)?;
        // The limits deliveries are retried within.
        map.serialize_entry("ack_timeout", &Human(c.ack_timeout))?;
        map.serialize_entry("send_timeout", &Human(c.send_timeout))?;
        map.serialize_entry("trust_client_message_ids", &c.trust_client_message_ids)?;
        map.serialize_entry("max_inflight_acks", &c.max_inflight_acks)?;
        map.serialize_entry("pending_per_conn", &c.pending_per_conn)?;
        map.serialize_entry("max_pending_deliveries", &c.max_pending_deliveries)?;
        map.serialize_entry("offline_queue_per_user", &c.offline_queue_per_user)?;
        map.serialize_entry("offline_max_messages", &c.offline_max_messages)?;
        map.serialize_entry("offline_max_bytes", &c.offline_max_bytes)?;
        map.serialize_entry("offline_ttl", &Human(c.offline_ttl))?;
        map.end()
    }
}

#[cfg(test)]
mod tests;
