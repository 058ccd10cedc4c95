use proptest::prelude::*;

use super::*;

fn budget(max_tokens: u32, token_ratio: f64) -> RetryBudget {
    RetryBudget::new(&BudgetConfig {
        max_tokens,
        token_ratio,
    })
}

#[test]
fn a_bucket_is_small_and_copy() {
    fn copy<T: Copy>() {}
    copy::<RetryBudget>();
    assert!(std::mem::size_of::<RetryBudget>() <= 20);
}

#[test]
fn grants_down_to_half_then_refills_on_success() {
    let mut b = budget(4, 0.5);
    assert!(b.try_acquire()); // 4 -> 3
    assert!(b.try_acquire()); // 3 -> 2
    assert!(!b.try_acquire()); // would drop below 2 (half)
    b.on_success();
    b.on_success(); // +1 token
    assert!(b.try_acquire());
    assert_eq!(b.tokens(), Some(2.0));
}

#[test]
fn one_token_grants_nothing() {
    assert!(!budget(1, 1.0).try_acquire());
}

#[test]
fn a_full_bucket_stays_full() {
    let mut b = BudgetConfig::default().new_budget();
    b.on_success();
    assert_eq!(b.tokens(), Some(1000.0));
    assert_eq!(b.initial_allowance(), Some(500));
}

#[test]
fn unlimited_grants_everything() {
    let mut b = RetryBudget::unlimited();
    assert!((0..10_000).all(|_| b.try_acquire()));
    assert_eq!((b.tokens(), b.initial_allowance()), (None, None));
}

#[test]
fn validation_bounds() {
    let check = |max_tokens, token_ratio| {
        BudgetConfig {
            max_tokens,
            token_ratio,
        }
        .validate()
    };
    assert_eq!(check(0, 0.1), Err(PolicyError::ZeroMaxTokens));
    assert_eq!(
        check(BudgetConfig::MAX_TOKENS + 1, 0.1),
        Err(PolicyError::TooManyTokens {
            value: BudgetConfig::MAX_TOKENS + 1
        })
    );
    assert!(check(BudgetConfig::MAX_TOKENS, 0.1).is_ok());
    for bad in [0.0, 0.0009, 11.0, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(check(10, bad), Err(PolicyError::InvalidTokenRatio { .. })),
            "{bad}"
        );
    }
}

#[test]
fn unvalidated_configs_do_not_panic() {
    let mut b = budget(u32::MAX, f64::INFINITY);
    assert_eq!(b.tokens(), Some(f64::from(BudgetConfig::MAX_TOKENS)));
    for _ in 0..10 {
        b.try_acquire();
        b.on_success();
    }
    let mut b = budget(10, f64::NAN);
    assert!(b.try_acquire());
    b.on_success(); // refills nothing
    assert_eq!(b.tokens(), Some(9.0));
    assert!(!budget(0, -1.0).try_acquire());
}

proptest! {
    #[test]
    fn budget_bounds_retries(
        max_tokens in 1u32..200,
        ratio_milli in 1u32..5000,
        events in proptest::collection::vec(any::<bool>(), 0..2000),
    ) {
        let mut b = budget(max_tokens, f64::from(ratio_milli) / 1000.0);
        let (mut granted, mut successes) = (0u64, 0u64);
        for success in events {
            if success {
                b.on_success();
                successes += 1;
            } else if b.try_acquire() {
                granted += 1;
            }
        }
        // granted ≤ max_tokens/2 + ratio × successes, in milli-tokens:
        // every grant paid 1000, each success refilled at most the ratio,
        // and a grant never leaves the bucket below half.
        let milli = u64::from(MILLI);
        let ratio = u64::from(ratio_milli).min(u64::from(max_tokens) * milli);
        prop_assert!(granted * milli <= u64::from(max_tokens) * milli / 2 + ratio * successes);
        if successes == 0 {
            prop_assert!(granted <= u64::from(budget(max_tokens, 1.0).initial_allowance().unwrap()));
        }
    }
}
