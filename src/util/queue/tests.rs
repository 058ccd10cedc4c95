//! Unit tests of the ring: edge cases by hand, then random operations
//! against a `VecDeque` model.

use super::*;
use crate::testutil::Rng;
use std::collections::VecDeque;
use std::rc::Rc;

#[test]
fn empty() {
    let mut q: RingQueue<u32, 3> = RingQueue::new();
    assert!(q.is_empty());
    assert!(!q.is_full());
    assert_eq!(q.len(), 0);
    assert_eq!(q.front(), None);
    assert_eq!(q.back_mut(), None);
    assert_eq!(q.pop_front(), None);
    assert_eq!(q.iter().next(), None);
    assert_eq!(q.drain().next(), None);
}

#[test]
fn full_rejects_without_growing() {
    let mut q: RingQueue<u32, 3> = RingQueue::new();
    for i in 0..3 {
        q.push_back(i).unwrap();
    }
    assert!(q.is_full());
    assert_eq!(q.push_back(99), Err(99));
    assert_eq!(q.len(), 3);
    assert_eq!(q.iter().copied().collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn wraps_around() {
    let mut q: RingQueue<u32, 3> = RingQueue::new();
    let mut next_in = 0;
    let mut next_out = 0;
    // Many laps with the queue hovering around full, so head and tail
    // cross the end of the array at every possible offset.
    for round in 0..50 {
        while q.push_back(next_in).is_ok() {
            next_in += 1;
        }
        for _ in 0..(round % 3) + 1 {
            assert_eq!(q.front(), Some(&next_out));
            assert_eq!(q.pop_front(), Some(next_out));
            next_out += 1;
        }
        let expected: Vec<u32> = (next_out..next_in).collect();
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), expected);
        assert_eq!(q.iter().len(), expected.len());
    }
}

#[test]
fn capacity_one() {
    let mut q: RingQueue<&str, 1> = RingQueue::new();
    for s in ["a", "b", "c"] {
        q.push_back(s).unwrap();
        assert!(q.is_full());
        assert_eq!(q.push_back("x"), Err("x"));
        assert_eq!(q.pop_front(), Some(s));
        assert!(q.is_empty());
    }
}

#[test]
fn drain_dropped_early_empties_and_drops_items() {
    let token = Rc::new(());
    let mut q: RingQueue<Rc<()>, 4> = RingQueue::new();
    // Offset head so the drained range wraps.
    q.push_back(token.clone()).unwrap();
    q.push_back(token.clone()).unwrap();
    q.pop_front();
    q.pop_front();
    for _ in 0..4 {
        q.push_back(token.clone()).unwrap();
    }
    assert_eq!(Rc::strong_count(&token), 5);
    {
        let mut d = q.drain();
        assert_eq!(d.len(), 4);
        d.next();
        assert_eq!(d.len(), 3);
    }
    assert!(q.is_empty());
    assert_eq!(Rc::strong_count(&token), 1);
    // Still usable afterwards.
    q.push_back(token.clone()).unwrap();
    assert_eq!(q.len(), 1);
}

#[test]
fn drain_and_drop_release_items() {
    let token = Rc::new(());
    let mut q: RingQueue<Rc<()>, 3> = RingQueue::new();
    q.push_back(token.clone()).unwrap();
    q.push_back(token.clone()).unwrap();
    drop(q.drain());
    assert!(q.is_empty());
    assert_eq!(Rc::strong_count(&token), 1);
    q.push_back(token.clone()).unwrap();
    drop(q);
    assert_eq!(Rc::strong_count(&token), 1);
}

#[test]
fn debug_shows_len_capacity_items() {
    let mut q: RingQueue<u8, 4> = RingQueue::new();
    q.push_back(1).unwrap();
    q.push_back(2).unwrap();
    assert_eq!(
        format!("{q:?}"),
        "RingQueue { len: 2, capacity: 4, items: [1, 2] }"
    );
}

fn model_run<const N: usize>(seed: u64) {
    let mut rng = Rng(seed);
    let mut q: RingQueue<u64, N> = RingQueue::new();
    let mut model: VecDeque<u64> = VecDeque::new();
    for step in 0..5_000u64 {
        match rng.below(20) {
            // Bias towards pushes so the queue regularly fills up; one in
            // five goes back in at the front.
            0..=9 => {
                let front = rng.below(5) == 0;
                let r = if front {
                    q.push_front(step)
                } else {
                    q.push_back(step)
                };
                assert_eq!(r.is_ok(), model.len() < N, "a push fails iff full");
                match r {
                    Ok(()) if front => model.push_front(step),
                    Ok(()) => model.push_back(step),
                    Err(back) => assert_eq!(back, step),
                }
            }
            10..=15 => assert_eq!(q.pop_front(), model.pop_front()),
            16..=17 => {
                if let (Some(a), Some(b)) = (q.back_mut(), model.back_mut()) {
                    *a += 1;
                    *b += 1;
                }
            }
            _ => {
                // Dropping the drain part-way drops the rest too.
                let take = rng.below(N as u64 + 1) as usize;
                let got: Vec<u64> = q.drain().take(take).collect();
                let want: Vec<u64> = model.drain(..).take(take).collect();
                assert_eq!(got, want);
            }
        }
        assert_eq!(q.len(), model.len());
        assert_eq!(q.is_empty(), model.is_empty());
        assert_eq!(q.is_full(), model.len() == N);
        assert_eq!(q.front(), model.front());
        assert_eq!(q.iter().len(), model.len());
        assert!(q.iter().eq(model.iter()));
    }
}

#[test]
fn model_against_vecdeque() {
    for seed in [1, 0xdead_beef, 0x1234_5678_9abc_def0, 42, 7] {
        model_run::<1>(seed);
        model_run::<3>(seed);
        model_run::<8>(seed);
        model_run::<13>(seed);
    }
}
