use std::time::Duration;

use proptest::prelude::*;

use super::*;

#[test]
fn equal_is_the_default() {
    assert_eq!(Jitter::default(), Jitter::Equal);
    let json = serde_json::to_string(&Jitter::default()).unwrap();
    assert_eq!(json, r#""equal""#);
    assert_eq!(
        serde_json::from_str::<Jitter>(r#""none""#).unwrap(),
        Jitter::None
    );
}

#[test]
fn extremes_of_the_draw() {
    let d = Duration::from_millis(100);
    assert_eq!(Jitter::None.apply(d, &mut || unreachable!()), d);
    assert_eq!(Jitter::Full.apply(d, &mut || 0), Duration::ZERO);
    assert_eq!(Jitter::Full.apply(d, &mut || u64::MAX), d);
    assert_eq!(Jitter::Equal.apply(d, &mut || 0), d / 2);
    assert_eq!(Jitter::Equal.apply(d, &mut || u64::MAX), d);
    // Durations past u64 nanoseconds saturate instead of panicking.
    assert!(Jitter::Full.apply(Duration::MAX, &mut || u64::MAX) <= Duration::MAX);
}

#[test]
fn split_mix_is_deterministic_per_seed() {
    let (mut a, mut b, mut c) = (SplitMix64::new(42), SplitMix64::new(42), SplitMix64::new(0));
    let first = a.next_u64();
    assert_eq!(first, b.next_u64());
    assert_ne!(first, a.next_u64());
    // Seed 0 is not degenerate.
    assert_ne!(c.next_u64(), 0);
}

proptest! {
    #[test]
    fn jitter_stays_within_its_range(ns in any::<u64>(), seed in any::<u64>()) {
        let d = Duration::from_nanos(ns);
        let mut rng = SplitMix64::new(seed);
        prop_assert!(Jitter::Full.apply(d, &mut rng) <= d);
        let e = Jitter::Equal.apply(d, &mut rng);
        prop_assert!(e >= d / 2 && e <= d);
    }
}
