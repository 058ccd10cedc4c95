use proptest::prelude::*;

use super::*;

/// Any subset of the reasons.
fn reason_set() -> impl Strategy<Value = ReasonSet> {
    any::<u16>().prop_map(|bits| ReasonSet(bits & ((1u32 << FailureReason::ALL.len()) - 1) as u16))
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
fn debug_lists_names() {
    assert_eq!(
        format!("{:?}", ReasonSet::TIMEOUTS),
        r#"{"ack_timeout", "send_timeout", "connection_timeout"}"#
    );
}

#[test]
fn the_default_lists_are_disjoint_and_cover_all_but_rate_limited_and_offline_ends() {
    let both = ReasonSet::DEFAULT_RETRYABLE.union(ReasonSet::DEFAULT_NON_RETRYABLE);
    assert!(
        ReasonSet::DEFAULT_RETRYABLE
            .intersection(ReasonSet::DEFAULT_NON_RETRYABLE)
            .is_empty()
    );
    // Unclassified, so never retried: rate_limited, and the offline store's
    // final outcomes (no attempt produces them). And cluster_unavailable,
    // which the seed cannot name: retried unless a list names it.
    assert!(!both.contains(FailureReason::ClusterUnavailable));
    assert!(crate::retry::RetryPolicy::default().is_retryable(FailureReason::ClusterUnavailable));
    assert_eq!(
        both.len() + 4,
        FailureReason::ALL.len(),
        "only rate_limited, offline_evicted and offline_expired are unclassified"
    );
    for r in [
        FailureReason::RateLimited,
        FailureReason::OfflineEvicted,
        FailureReason::OfflineExpired,
    ] {
        assert!(!both.contains(r));
    }
}

proptest! {
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

    #[test]
    fn insert_and_remove_report_membership(set in reason_set(), i in 0..FailureReason::ALL.len()) {
        let r = FailureReason::ALL[i];
        let mut s = set;
        prop_assert_eq!(s.insert(r), !set.contains(r));
        prop_assert!(s.remove(r));
        prop_assert!(!s.contains(r));
        prop_assert_eq!(s, set.difference(ReasonSet::of(&[r])));
    }
}
