use std::time::Duration;

use super::*;
use crate::config::HealthConfig;
use crate::failure::reason::{FailureReason, TimeoutKind};
use crate::retry::{BudgetConfig, Jitter, PolicyError, ReasonSet};

const SEED_YAML: &str = r#"
# config.yaml
wsc:
  max_retries: 3
  base_delay: 100ms
  backoff_factor: 2.0
  retryable_errors:
    - "queue_full"
    - "timeout"
    - "conn_error"
    - "channel_closed"
    - "network_unreachable"
  non_retryable_errors:
    - "user_offline"
    - "permission"
    - "validation"
    - "authentication_failed"
    - "message_too_large"
"#;

fn yaml(body: &str) -> Result<HubConfig, ConfigError> {
    HubConfig::from_yaml_str(&format!("wsc:\n{body}"))
}

fn yaml_err(body: &str) -> ConfigError {
    yaml(body).expect_err(body)
}

/// The key and line of a parse error.
fn parse_key_line(err: &ConfigError) -> (Option<&'static str>, Option<u64>) {
    match err {
        ConfigError::Parse { key, line, .. } => (*key, *line),
        other => panic!("not a parse error: {other:?}"),
    }
}

#[test]
fn seed_block_equals_defaults() {
    assert_eq!(
        HubConfig::from_yaml_str(SEED_YAML).unwrap(),
        HubConfig::default()
    );
}

#[test]
fn seed_environment_snippets() {
    let cases = [
        (
            "max_retries: 2\n  base_delay: 50ms\n  backoff_factor: 1.5",
            2,
            50,
            1.5,
        ),
        (
            "max_retries: 5\n  base_delay: 200ms\n  backoff_factor: 2.0",
            5,
            200,
            2.0,
        ),
        (
            "max_retries: 10\n  base_delay: 100ms\n  backoff_factor: 1.2  # 较小的退避因子，更快重试",
            10,
            100,
            1.2,
        ),
    ];
    for (body, retries, ms, factor) in cases {
        let c = yaml(&format!("  {body}\n")).unwrap();
        assert_eq!(c.retry.max_retries, retries);
        assert_eq!(c.retry.base_delay, Duration::from_millis(ms));
        assert_eq!(c.retry.backoff_factor, factor);
        assert_eq!(c.retry.retryable, ReasonSet::DEFAULT_RETRYABLE);
    }
}

#[test]
fn json_equivalent() {
    let json = r#"{"wsc": {"max_retries": 3, "base_delay": "100ms", "backoff_factor": 2.0,
        "retryable_errors": ["queue_full", "timeout", "conn_error", "channel_closed", "network_unreachable"],
        "non_retryable_errors": ["user_offline", "permission", "validation", "authentication_failed", "message_too_large"]}}"#;
    assert_eq!(
        HubConfig::from_json_str(json).unwrap(),
        HubConfig::default()
    );
}

#[test]
fn empty_inputs_give_defaults() {
    for text in [
        "",
        "# nothing\n",
        "wsc:\n",
        "wsc: {}\n",
        "wsc: null\n",
        "{}",
    ] {
        assert_eq!(
            HubConfig::from_yaml_str(text).unwrap(),
            HubConfig::default(),
            "{text:?}"
        );
    }
    for text in [r#"{"wsc": null}"#, "{}", "null"] {
        assert_eq!(
            HubConfig::from_json_str(text).unwrap(),
            HubConfig::default(),
            "{text:?}"
        );
    }
}

#[test]
fn every_extra_key() {
    let c = yaml(
        "  max_delay: 2m\n  jitter: full\n  max_total_time: 1.5s\n  retry_budget: {max_tokens: 20, token_ratio: 0.5}\n  \
         ack_timeout: 1s\n  send_timeout: 2s\n  heartbeat_interval: 10s\n  client_timeout: 25s\n  handshake_timeout: 3s\n  \
         shutdown_timeout: 4s\n  max_message_size: 1MiB\n  max_frame_size: 16384\n  max_connections: 100\n  \
         max_connections_per_user: 2\n  handler_workers: 4\n  handler_queue_capacity: 64\n  command_queue_capacity: 32\n  \
         offline_queue_per_user: 10\n  addr: 0.0.0.0:9000\n  ws_path: /socket\n  health:\n    enabled: false\n    metrics_path: /m\n",
    )
    .unwrap();
    assert_eq!(c.retry.max_delay, Duration::from_secs(120));
    assert_eq!(c.retry.jitter, Jitter::Full);
    assert_eq!(c.retry.max_total_time, Some(Duration::from_millis(1500)));
    assert_eq!(
        c.retry.budget,
        Some(BudgetConfig {
            max_tokens: 20,
            token_ratio: 0.5
        })
    );
    let secs = Duration::from_secs;
    assert_eq!(
        [
            c.ack_timeout,
            c.send_timeout,
            c.heartbeat_interval,
            c.client_timeout,
            c.handshake_timeout,
            c.shutdown_timeout
        ],
        [secs(1), secs(2), secs(10), secs(25), secs(3), secs(4)]
    );
    assert_eq!(
        (c.max_message_size, c.max_frame_size),
        (1 << 20, Some(16384))
    );
    assert_eq!(
        [
            c.max_connections,
            c.max_connections_per_user,
            c.handler_workers,
            c.handler_queue_capacity,
            c.command_queue_capacity,
            c.offline_queue_per_user
        ],
        [100, 2, 4, 64, 32, 10]
    );
    assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(c.ws_path, "/socket");
    assert!(!c.health.enabled);
    assert_eq!(c.health.metrics_path, "/m");
    assert_eq!(c.health.retry_config_path, "/health/retry-config");
}

#[test]
fn delivery_limit_keys() {
    let d = HubConfig::default();
    assert!(!d.trust_client_message_ids);
    assert_eq!(
        (
            d.max_inflight_acks,
            d.pending_per_conn,
            d.max_pending_deliveries
        ),
        (256, 1 << 20, 65_536)
    );
    assert_eq!(
        (d.offline_max_messages, d.offline_max_bytes, d.offline_ttl),
        (100_000, 64 << 20, Duration::from_secs(86_400))
    );
    let c = yaml(
        "  trust_client_message_ids: true\n  max_inflight_acks: 16\n  pending_per_conn: 512KiB\n  \
         max_pending_deliveries: 1000\n  offline_queue_per_user: 5\n  offline_max_messages: 50\n  \
         offline_max_bytes: 1048576\n  offline_ttl: 1h 30m\n",
    )
    .unwrap();
    assert!(c.trust_client_message_ids);
    assert_eq!(
        (
            c.max_inflight_acks,
            c.pending_per_conn,
            c.max_pending_deliveries
        ),
        (16, 512 << 10, 1000)
    );
    assert_eq!(
        (c.offline_max_messages, c.offline_max_bytes, c.offline_ttl),
        (50, 1 << 20, Duration::from_secs(5400))
    );
    let json = HubConfig::from_json_str(
        r#"{"wsc": {"pending_per_conn": "1MiB", "offline_max_bytes": 2097152, "trust_client_message_ids": false}}"#,
    )
    .unwrap();
    assert_eq!(
        (json.pending_per_conn, json.offline_max_bytes),
        (1 << 20, 2 << 20)
    );
}

#[test]
fn value_errors_name_their_key_and_line() {
    let cases: &[(&str, &str, u64)] = &[
        ("  base_delay: fast\n", "base_delay", 2),
        ("  max_retries: 1\n  ack_timeout: -1s\n", "ack_timeout", 3),
        ("  pending_per_conn: 1 MiBs\n", "pending_per_conn", 2),
        ("  offline_max_bytes: -1\n", "offline_max_bytes", 2),
        ("  offline_ttl: tomorrow\n", "offline_ttl", 2),
        ("  max_inflight_acks: many\n", "max_inflight_acks", 2),
        (
            "  trust_client_message_ids: 3\n",
            "trust_client_message_ids",
            2,
        ),
        ("  listen: localhost\n", "listen", 2),
        ("  jitter: some\n", "jitter", 2),
    ];
    for &(body, key, line) in cases {
        let err = yaml_err(body);
        assert_eq!(
            parse_key_line(&err),
            (Some(key), Some(line)),
            "{body:?}: {err}"
        );
        assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
    }
    let err = HubConfig::from_json_str("{\"wsc\": {\n  \"offline_ttl\": 5}}").unwrap_err();
    assert_eq!(
        parse_key_line(&err),
        (Some("offline_ttl"), Some(2)),
        "{err}"
    );
    assert!(err.to_string().contains("duration"), "{err}");
}

#[test]
fn durations() {
    let base = |s: &str| yaml(&format!("  base_delay: {s}\n")).map(|c| c.retry.base_delay);
    assert_eq!(base("100ms").unwrap(), Duration::from_millis(100));
    assert_eq!(base("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(base("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(base("0ms").unwrap(), Duration::ZERO);
    // Without an explicit max_delay the cap follows a long base_delay.
    let c = yaml("  base_delay: 1h 30m\n").unwrap();
    assert_eq!(c.retry.max_delay, Duration::from_secs(5400));
    let err = base("-5ms").unwrap_err();
    assert_eq!(parse_key_line(&err).0, Some("base_delay"));
    assert!(err.to_string().contains("negative"), "{err}");
    for bad in ["100", "fast", "5 parsecs"] {
        let err = base(bad).unwrap_err();
        assert_eq!(parse_key_line(&err).0, Some("base_delay"), "{err}");
        assert!(err.to_string().contains("base_delay"), "{err}");
    }
    // A non-string in JSON is a parse error with a position.
    let err = HubConfig::from_json_str(r#"{"wsc": {"base_delay": 100}}"#).unwrap_err();
    assert!(
        matches!(err, ConfigError::Parse { line: Some(1), .. })
            && err.to_string().contains("duration"),
        "{err}"
    );
}

#[test]
fn sizes() {
    let size = |s: &str| yaml(&format!("  max_message_size: {s}\n")).map(|c| c.max_message_size);
    assert_eq!(size("65536").unwrap(), 65536);
    assert_eq!(size("64KiB").unwrap(), 65536);
    assert_eq!(size("\"64 kb\"").unwrap(), 64_000);
    assert_eq!(size("2MB").unwrap(), 2_000_000);
    for bad in ["-1", "12XB", "KiB", "99999999999GiB", "1.5MiB"] {
        let err = size(bad).unwrap_err();
        assert_eq!(
            parse_key_line(&err).0,
            Some("max_message_size"),
            "{bad}: {err}"
        );
    }
    assert!(matches!(
        size("0"),
        Err(ConfigError::Zero {
            key: "max_message_size"
        })
    ));
}

#[test]
fn budget_forms() {
    let budget = |s: &str| yaml(&format!("  retry_budget: {s}\n")).map(|c| c.retry.budget);
    assert_eq!(budget("false").unwrap(), None);
    assert_eq!(budget("null").unwrap(), None);
    assert_eq!(budget("true").unwrap(), Some(BudgetConfig::default()));
    assert_eq!(
        budget("{max_tokens: 7}").unwrap(),
        Some(BudgetConfig {
            max_tokens: 7,
            token_ratio: 0.1
        })
    );
    let err = budget("{max_tokens: 7, burst: 1}").unwrap_err();
    assert!(err.to_string().contains("burst"), "{err}");
    let err = budget("{token_ratio: 0}").unwrap_err();
    assert!(
        err.to_string().contains("retry_budget.token_ratio"),
        "{err}"
    );
    let err = budget("{max_tokens: 0}").unwrap_err();
    assert!(err.to_string().contains("retry_budget.max_tokens"), "{err}");
    let err = budget("{max_tokens: 2000000}").unwrap_err();
    assert!(err.to_string().contains("retry_budget.max_tokens"), "{err}");
    assert_eq!(
        HubConfig::from_json_str(r#"{"wsc": {"retry_budget": null}}"#)
            .unwrap()
            .retry
            .budget,
        None
    );
    assert!(HubConfig::from_json_str(r#"{"wsc": {"retry_budget": 3}}"#).is_err());
}

#[test]
fn unknown_key_is_named_with_position() {
    let err = yaml_err("  max_retries: 3\n  max_retry: 4\n");
    match &err {
        ConfigError::Parse {
            format: ConfigFormat::Yaml,
            key: None,
            line: Some(3),
            column: Some(3),
            ..
        } => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("max_retry"), "{err}");
    // The valid keys listed include both parts of the section.
    assert!(err.to_string().contains("max_retries"), "{err}");
    assert!(err.to_string().contains("offline_ttl"), "{err}");
    // Not only the last key: the position is the key's own.
    let err = yaml_err("  bogus: 1\n  max_retries: 3\n  ack_timeout: 1s\n");
    assert!(
        matches!(
            err,
            ConfigError::Parse {
                line: Some(2),
                column: Some(3),
                ..
            }
        ),
        "{err:?}"
    );
    let err = HubConfig::from_yaml_str("wsc: {}\nother: 1\n").unwrap_err();
    assert!(err.to_string().contains("other"), "{err}");
    let err = yaml_err("  health: {enabled: true, path: /x}\n");
    assert!(err.to_string().contains("path"), "{err}");
    let err = HubConfig::from_json_str("{\"wsc\": {\n  \"jitter\": \"some\"}}").unwrap_err();
    assert!(
        matches!(err, ConfigError::Parse { line: Some(2), .. }),
        "{err}"
    );
    assert!(err.to_string().contains("equal"), "{err}");
    let err = HubConfig::from_json_str("{\"wsc\": {\"ack_timeout\": \"1s\",\n \"nope\": 1}}")
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::Parse { line: Some(2), .. }) && err.to_string().contains("nope"),
        "{err}"
    );
}

#[test]
fn the_struct_shaped_retry_map_is_not_a_file_key() {
    // `retry:` is HubConfig's own serde form; a file writes the seed's keys.
    let err = yaml_err("  retry: {max_retries: 1}\n");
    assert!(err.to_string().contains("unknown field `retry`"), "{err}");
}

#[test]
fn hub_config_serde_follows_the_struct() {
    let c: HubConfig = serde_json::from_str(
        r#"{"retry": {"max_retries": 1, "jitter": "none"}, "ack_timeout": "2s", "pending_per_conn": "2MiB"}"#,
    )
    .unwrap();
    assert_eq!(c.retry.max_retries, 1);
    assert_eq!(c.retry.jitter, Jitter::None);
    assert_eq!(c.ack_timeout, Duration::from_secs(2));
    assert_eq!(c.pending_per_conn, 2 << 20);
    assert_eq!(c.health, HealthConfig::default());
    let err = serde_json::from_str::<HubConfig>(
        r#"{"retry": {"retryable_errors": ["timeout"], "non_retryable_errors": ["ack_timeout"]}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("overlaps"), "{err}");
}

#[test]
fn section_keys_are_both_parts() {
    let keys = section_keys();
    for key in [
        "max_retries",
        "retry_budget",
        "ack_timeout",
        "addr",
        "listen",
        "offline_ttl",
        "health",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(!keys.contains(&"retry"));
    assert_eq!(field_names::<HealthConfig>().len(), 4);
}

#[test]
fn unknown_reason_lists_valid_names() {
    let err = yaml_err("  retryable_errors: [queue_full, disk_full]\n");
    assert_eq!(parse_key_line(&err), (Some("retryable_errors"), Some(2)));
    let msg = err.to_string();
    assert!(msg.contains("entry 1"), "{msg}");
    for name in FailureReason::CLASSIFICATION_NAMES {
        assert!(msg.contains(name), "{msg} lacks {name}");
    }
    let msg = yaml_err("  non_retryable_errors: [rate_limit_permanent]\n").to_string();
    assert!(msg.contains("rate_limited"), "{msg}");
    let msg = yaml_err("  retryable_errors: [temporary]\n").to_string();
    assert!(
        msg.contains("temporary") && msg.contains("network_unreachable"),
        "{msg}"
    );
}

#[test]
fn timeout_kinds_classify_separately() {
    let c = yaml(
        "  retryable_errors: [send_timeout, connection_timeout]\n  non_retryable_errors: [ack_timeout, user_offline]\n",
    )
    .unwrap();
    assert!(
        c.retry
            .is_retryable(FailureReason::Timeout(TimeoutKind::Send))
    );
    assert!(
        !c.retry
            .is_retryable(FailureReason::Timeout(TimeoutKind::Ack))
    );
    // `timeout` covers ack_timeout, so this is an overlap.
    let err = yaml_err("  retryable_errors: [timeout]\n  non_retryable_errors: [ack_timeout]\n");
    assert!(matches!(
        err,
        ConfigError::Retry(PolicyError::ReasonInBothLists {
            retryable: "timeout",
            non_retryable: "ack_timeout"
        })
    ));
    assert!(err.to_string().contains("retryable_errors"), "{err}");
    // One list alone overrides the other list's default.
    let c = yaml("  retryable_errors: [user_offline]\n").unwrap();
    assert!(c.retry.is_retryable(FailureReason::UserOffline));
    assert!(!c.retry.is_retryable(FailureReason::QueueFull));
    assert_eq!(c.retry.non_retryable.len(), 4);
    let c = yaml("  non_retryable_errors: [timeout]\n").unwrap();
    assert!(
        !c.retry
            .is_retryable(FailureReason::Timeout(TimeoutKind::Send))
    );
    assert!(c.retry.is_retryable(FailureReason::QueueFull));
    assert!(!c.retry.is_retryable(FailureReason::UserOffline));
}

#[test]
fn files_by_extension() {
    let dir = std::env::temp_dir().join(format!("wshub-cfg-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in [
        ("a.yaml", SEED_YAML),
        ("b.YML", SEED_YAML),
        ("c.json", r#"{"wsc": {}}"#),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        assert_eq!(
            HubConfig::from_file(&path).unwrap(),
            HubConfig::default(),
            "{name}"
        );
    }
    let missing = HubConfig::from_file(dir.join("missing.yaml")).unwrap_err();
    assert!(matches!(missing, ConfigError::Io { .. }), "{missing}");
    assert!(missing.to_string().contains("missing.yaml"));
    // YAML text in a .json file is read as JSON and rejected.
    let path = dir.join("d.json");
    std::fs::write(&path, SEED_YAML).unwrap();
    assert!(matches!(
        HubConfig::from_file(&path),
        Err(ConfigError::Parse {
            format: ConfigFormat::Json,
            ..
        })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_trust_boundary_keys_read_as_the_issue_names_them() {
    let cfg = yaml(
        "  auth:\n    mode: jwt\n    jwt:\n      secret: 0123456789abcdef0123456789abcdef\n      issuer: iss\n      audience: aud\n      leeway: 30s\n  allowed_origins: [https://app.example.com]\n  admin_listen: 127.0.0.1:9090\n  max_connections_per_ip: 64\n  max_buffered_bytes: 4MiB\n",
    )
    .unwrap();
    assert_eq!(cfg.auth.mode, Some(crate::config::AuthMode::Jwt));
    assert_eq!(cfg.auth.jwt.issuer.as_deref(), Some("iss"));
    assert_eq!(cfg.auth.jwt.audience.as_deref(), Some("aud"));
    assert_eq!(cfg.auth.jwt.leeway, Duration::from_secs(30));
    assert_eq!(cfg.allowed_origins, ["https://app.example.com"]);
    assert_eq!(cfg.admin_listen, Some("127.0.0.1:9090".parse().unwrap()));
    assert_eq!(cfg.max_connections_per_ip, 64);
    assert_eq!(cfg.buffered_budget(), 4 << 20);
    let json = HubConfig::from_json_str(
        r#"{"wsc": {"auth": {"mode": "query"}, "max_buffered_bytes": 1048576}}"#,
    )
    .unwrap();
    assert_eq!(json.auth.mode, Some(crate::config::AuthMode::Query));
    assert_eq!(json.max_buffered_bytes, Some(1 << 20));
    // Absent: the mode is not written, which bind treats as loopback-only.
    assert_eq!(yaml("  max_retries: 1\n").unwrap().auth.mode, None);
}

#[test]
fn an_incomplete_or_unknown_auth_section_is_an_error_naming_its_key() {
    let msg = yaml_err("  auth: {mode: jwt}\n").to_string();
    assert!(msg.contains("auth.jwt") && msg.contains("secret"), "{msg}");
    let msg = yaml_err("  auth: {mode: jwt, jwt: {secret: short}}\n").to_string();
    assert!(
        msg.contains("auth.jwt.secret") && msg.contains("32"),
        "{msg}"
    );
    let msg = yaml_err(
        "  auth: {mode: jwt, jwt: {secret: 0123456789abcdef0123456789abcdef, leeway: 2h}}\n",
    )
    .to_string();
    assert!(msg.contains("leeway"), "{msg}");
    let msg = yaml_err("  auth: {mode: magic}\n").to_string();
    assert!(msg.contains("magic") || msg.contains("variant"), "{msg}");
    let msg = yaml_err("  admin_listen: nowhere\n").to_string();
    assert!(msg.contains("admin_listen"), "{msg}");
    let msg = yaml_err("  max_buffered_bytes: 0\n").to_string();
    assert!(msg.contains("max_buffered_bytes"), "{msg}");
}
