use std::time::Duration;

use crate::config::{ConfigError, HubConfig};
use crate::failure::reason::FailureReason;
use crate::retry::{MAX_DURATION, PolicyError};

fn yaml(body: &str) -> Result<HubConfig, ConfigError> {
    HubConfig::from_yaml_str(&format!("wsc:\n{body}"))
}

fn yaml_err(body: &str) -> ConfigError {
    yaml(body).expect_err(body)
}

#[test]
fn defaults_are_valid() {
    assert!(HubConfig::default().validate().is_ok());
}

#[test]
fn per_user_limit_fits_the_delivery_device_index() {
    let mut c = HubConfig {
        max_connections_per_user: 65_535,
        ..HubConfig::default()
    };
    assert!(c.validate().is_ok());
    c.max_connections_per_user = 65_536;
    let e = c.validate().unwrap_err();
    assert!(matches!(e, ConfigError::TooManyPerUser { value: 65_536 }));
    assert!(e.to_string().contains("max_connections_per_user"));
}

#[test]
fn inflight_acks_fit_sixteen_bits() {
    let mut c = HubConfig {
        max_inflight_acks: 65_535,
        ..HubConfig::default()
    };
    assert!(c.validate().is_ok());
    c.max_inflight_acks = 65_536;
    let e = c.validate().unwrap_err();
    assert!(matches!(
        e,
        ConfigError::TooLarge {
            key: "max_inflight_acks",
            value: 65_536,
            max: 65_535
        }
    ));
    assert!(e.to_string().contains("max_inflight_acks"), "{e}");
}

#[test]
fn every_duration_has_an_upper_bound() {
    // The largest accepted value, and one second more, for every key.
    for key in [
        "ack_timeout",
        "send_timeout",
        "heartbeat_interval",
        "client_timeout",
        "handshake_timeout",
        "shutdown_timeout",
        "offline_ttl",
        "base_delay",
        "max_delay",
        "max_total_time",
    ] {
        let max = format!("{}s", MAX_DURATION.as_secs());
        let over = format!("{}s", MAX_DURATION.as_secs() + 1);
        // client_timeout must stay above heartbeat_interval, and max_delay
        // above base_delay, at the bound too.
        let extra = match key {
            "heartbeat_interval" => format!("  client_timeout: {max}\n"),
            "client_timeout" => String::new(),
            "base_delay" => format!("  max_delay: {max}\n"),
            _ => String::new(),
        };
        let at = |v: &str| {
            let v = if key == "heartbeat_interval" {
                format!("{}s", MAX_DURATION.as_secs() - 1)
            } else {
                v.to_owned()
            };
            yaml(&format!("  {key}: {v}\n{extra}"))
        };
        assert!(at(&max).is_ok(), "{key} at the bound: {:?}", at(&max));
        if key == "heartbeat_interval" {
            continue; // at the bound it meets client_timeout's bound
        }
        let err = yaml_err(&format!("  {key}: {over}\n{extra}"));
        let named = match &err {
            ConfigError::DurationTooLong { key: k, .. } => *k == key,
            ConfigError::Retry(PolicyError::DurationTooLong { key: k, .. }) => *k == key,
            _ => false,
        };
        assert!(named, "{key}: {err:?}");
        assert!(err.to_string().contains("at most 365 days"), "{err}");
    }
}

#[test]
fn a_huge_client_timeout_is_an_error_not_a_panic() {
    let err = yaml_err("  client_timeout: 100000000000s\n");
    assert!(
        matches!(
            err,
            ConfigError::DurationTooLong {
                key: "client_timeout",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("client_timeout"), "{err}");
    // In code too.
    let c = HubConfig {
        heartbeat_interval: Duration::MAX / 2,
        client_timeout: Duration::MAX,
        ..HubConfig::default()
    };
    assert!(matches!(
        c.validate(),
        Err(ConfigError::DurationTooLong {
            key: "heartbeat_interval",
            ..
        })
    ));
}

#[test]
fn validation_errors_name_their_key() {
    let cases: &[(&str, &str)] = &[
        ("  backoff_factor: 0.5\n", "backoff_factor"),
        ("  backoff_factor: .nan\n", "backoff_factor"),
        ("  backoff_factor: .inf\n", "backoff_factor"),
        ("  max_delay: 50ms\n", "max_delay"),
        ("  max_total_time: 0s\n", "max_total_time"),
        ("  max_delay: soon\n", "max_delay"),
        ("  ack_timeout: 0s\n", "ack_timeout"),
        ("  send_timeout: 0s\n", "send_timeout"),
        ("  handshake_timeout: 0ms\n", "handshake_timeout"),
        ("  heartbeat_interval: 0s\n", "heartbeat_interval"),
        ("  client_timeout: 30s\n", "client_timeout"),
        ("  offline_ttl: 0s\n", "offline_ttl"),
        ("  max_connections: 0\n", "max_connections"),
        (
            "  max_connections_per_user: 0\n",
            "max_connections_per_user",
        ),
        ("  handler_workers: 0\n", "handler_workers"),
        ("  handler_queue_capacity: 0\n", "handler_queue_capacity"),
        ("  command_queue_capacity: 0\n", "command_queue_capacity"),
        ("  max_inflight_acks: 0\n", "max_inflight_acks"),
        ("  pending_per_conn: 0KiB\n", "pending_per_conn"),
        ("  max_pending_deliveries: 0\n", "max_pending_deliveries"),
        ("  offline_max_messages: 0\n", "offline_max_messages"),
        ("  offline_max_bytes: 0\n", "offline_max_bytes"),
        ("  max_frame_size: 0\n", "max_frame_size"),
        ("  max_frame_size: 1MiB\n", "max_frame_size"),
        ("  listen: localhost\n", "listen"),
        ("  ws_path: ws\n", "ws_path"),
        ("  ws_path: /metrics\n", "health.metrics_path"),
        (
            "  health: {retry_config_path: /x?y}\n",
            "health.retry_config_path",
        ),
        (
            "  retryable_errors: [queue_full]\n  non_retryable_errors: [queue_full]\n",
            "queue_full",
        ),
        ("  max_retries: -1\n", "max_retries"),
    ];
    for (body, key) in cases {
        let err = yaml_err(body);
        assert!(err.to_string().contains(key), "{body:?}: {err}");
    }
    // A disabled health endpoint frees its path.
    assert!(yaml("  ws_path: /metrics\n  health: {enabled: false}\n").is_ok());
    // `*` (any path) is the wildcard the hub understands, not a bad path.
    assert!(yaml("  ws_path: \"*\"\n").is_ok());
    assert!(
        yaml_err("  ws_path: \"*x\"\n")
            .to_string()
            .contains("ws_path")
    );
}

#[test]
fn code_built_config_validates() {
    let mut c = HubConfig::default();
    c.retry.non_retryable.insert(FailureReason::ConnError);
    assert!(matches!(
        c.validate(),
        Err(ConfigError::Retry(PolicyError::ReasonInBothLists {
            retryable: "conn_error",
            non_retryable: "conn_error"
        }))
    ));
}

#[test]
fn compression_window_and_context_takeover_are_checked() {
    for bits in [8, 15] {
        let c = yaml(&format!(
            "  compression: {{server_max_window_bits: {bits}}}\n"
        ))
        .unwrap();
        assert_eq!(c.compression.server_max_window_bits, bits);
    }
    for bits in [0, 7, 16] {
        let e = yaml_err(&format!(
            "  compression: {{server_max_window_bits: {bits}}}\n"
        ));
        assert!(matches!(e, ConfigError::Compression { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("compression.server_max_window_bits") && text.contains("8..=15"),
            "{text}"
        );
    }
    let e = yaml_err("  compression: {client_no_context_takeover: false}\n");
    let text = e.to_string();
    assert!(
        text.contains("compression.client_no_context_takeover"),
        "{text}"
    );
    assert!(text.contains("44 KiB"), "{text}");
    let c = yaml("  compression: {client_no_context_takeover: true}\n").unwrap();
    assert!(c.compression.client_no_context_takeover);
    // A value that is not a number at all is a parse error naming the key.
    let e = yaml_err("  compression: {server_max_window_bits: wide}\n");
    assert!(e.to_string().contains("server_max_window_bits"), "{e}");
}
