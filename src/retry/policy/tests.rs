use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::retry::SplitMix64;

impl RetryDecision {
    fn is_retry(self) -> bool {
        matches!(self, RetryDecision::Retry { .. })
    }
}

fn reason() -> impl Strategy<Value = FailureReason> {
    (0..FailureReason::ALL.len()).prop_map(|i| FailureReason::ALL[i])
}

/// Any subset of the reasons.
fn reason_set() -> impl Strategy<Value = ReasonSet> {
    proptest::sample::subsequence(FailureReason::ALL.to_vec(), 0..=FailureReason::ALL.len())
        .prop_map(|v| v.into_iter().collect())
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
    assert_eq!(p.jitter, Jitter::Equal);
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
        jitter: Jitter::None,
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
    let mut ask = |r| p.should_retry(r, 0, Duration::ZERO, &mut b, &mut rng);
    let r = FailureReason::ConnError;
    assert!(ask(r).is_retry());
    // Not retryable: must not touch the budget.
    assert!(!ask(FailureReason::Validation).is_retry());
    assert!(ask(r).is_retry());
    assert_eq!(ask(r), RetryDecision::GiveUp(GiveUpReason::BudgetExhausted));
    b.on_success();
    assert!(
        p.should_retry(r, 0, Duration::ZERO, &mut b, &mut rng)
            .is_retry()
    );
    assert_eq!(
        GiveUpReason::BudgetExhausted.to_string(),
        "budget_exhausted"
    );
}

#[test]
fn no_budget_means_unlimited() {
    let p = RetryPolicy {
        budget: None,
        ..RetryPolicy::default()
    };
    assert_eq!(p.new_budget(), RetryBudget::unlimited());
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
fn durations_are_bounded() {
    let too_long = MAX_DURATION + Duration::from_secs(1);
    type Set = fn(&mut RetryPolicy, Duration);
    let cases: [(Set, &str); 3] = [
        (
            |p, d| {
                p.base_delay = d;
                p.max_delay = d;
            },
            "base_delay",
        ),
        (|p, d| p.max_delay = d, "max_delay"),
        (|p, d| p.max_total_time = Some(d), "max_total_time"),
    ];
    for (set, key) in cases {
        let mut p = RetryPolicy::default();
        set(&mut p, MAX_DURATION);
        assert!(p.validate().is_ok(), "{key} at the bound");
        set(&mut p, too_long);
        let err = p.validate().unwrap_err();
        assert_eq!(
            err,
            PolicyError::DurationTooLong {
                key,
                value: too_long
            }
        );
        assert!(err.to_string().contains(key), "{err}");
        assert!(err.to_string().contains("at most 365 days"), "{err}");
    }
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
    fn non_retryable_wins(retryable in reason_set(), non_retryable in reason_set(), r in reason()) {
        let p = RetryPolicy { retryable, non_retryable, ..RetryPolicy::default() };
        let unnamed = ReasonSet::BEYOND_SEED.contains(r)
            && !retryable.contains(r)
            && !non_retryable.contains(r);
        if unnamed {
            prop_assert!(p.is_retryable(r), "a reason the seed cannot name is retried by default");
        } else if non_retryable.contains(r) || !retryable.contains(r) {
            prop_assert!(!p.is_retryable(r));
        } else {
            prop_assert!(p.is_retryable(r));
        }
        let mut budget = RetryBudget::unlimited();
        let d = p.should_retry(r, 0, Duration::ZERO, &mut budget, &mut SplitMix64::new(0));
        prop_assert_eq!(d.is_retry(), p.is_retryable(r));
    }
}
