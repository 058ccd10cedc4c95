use std::time::Duration;

use crate::config::{HubConfig, RetryConfigView};
use crate::failure::reason::{FailureReason, TimeoutKind};
use crate::retry::{BudgetConfig, Jitter, ReasonSet};

#[test]
fn retry_config_view_matches_seed_and_round_trips() {
    let json = serde_json::to_string(&HubConfig::default().retry_config_view()).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"max_retries":3,"base_delay":"100ms","backoff_factor":2.0,"#,
            r#""retryable_errors":["queue_full","timeout","conn_error","channel_closed","network_unreachable"],"#,
            r#""non_retryable_errors":["user_offline","permission","validation","authentication_failed","message_too_large"],"#,
            r#""max_delay":"30s","jitter":"equal","max_total_time":null,"retry_budget":{"max_tokens":1000,"token_ratio":0.1},"#,
            r#""ack_timeout":"5s","send_timeout":"10s","trust_client_message_ids":false,"max_inflight_acks":256,"#,
            r#""pending_per_conn":1048576,"max_pending_deliveries":65536,"offline_queue_per_user":0,"#,
            r#""offline_max_messages":100000,"offline_max_bytes":67108864,"offline_ttl":"1day"}"#
        )
    );

    let mut config = HubConfig::default();
    let p = &mut config.retry;
    p.max_retries = 7;
    p.base_delay = Duration::from_millis(1500);
    p.backoff_factor = 1.25;
    p.max_delay = Duration::from_secs(3723);
    p.jitter = Jitter::Full;
    p.max_total_time = Some(Duration::from_micros(2_000_500));
    p.retryable = ReasonSet::of(&[
        FailureReason::Timeout(TimeoutKind::Send),
        FailureReason::RateLimited,
    ]);
    p.non_retryable = ReasonSet::of(&[FailureReason::Timeout(TimeoutKind::Ack)]);
    config.ack_timeout = Duration::from_millis(2500);
    config.trust_client_message_ids = true;
    config.max_inflight_acks = 9;
    config.pending_per_conn = 12345;
    config.max_pending_deliveries = 77;
    config.offline_queue_per_user = 3;
    config.offline_max_messages = 30;
    config.offline_max_bytes = 1 << 20;
    config.offline_ttl = Duration::from_secs(90 * 60);
    for budget in [
        None,
        Some(BudgetConfig {
            max_tokens: 9,
            token_ratio: 0.25,
        }),
    ] {
        config.retry.budget = budget;
        let view = serde_json::to_string(&RetryConfigView::new(&config)).unwrap();
        let back = HubConfig::from_json_str(&format!(r#"{{"wsc": {view}}}"#)).unwrap();
        assert_eq!(back, config, "{view}");
    }
}
