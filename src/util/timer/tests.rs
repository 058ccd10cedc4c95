//! Unit tests of the wheel: edge cases by hand, then random operations
//! against a `BTreeMap` model.

use super::*;
use crate::testutil::Rng;
use std::collections::{BTreeMap, HashMap};

const TICK: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An empty wheel that allocates as timers come.
fn empty<T, const S: usize>(tick: Duration, start: Instant) -> TimerWheel<T, S> {
    TimerWheel::with_capacity(tick, start, 0)
}

fn drain<T, const S: usize>(wheel: &mut TimerWheel<T, S>, now: Instant) -> Vec<T> {
    std::iter::from_fn(|| wheel.poll(now)).collect()
}

#[test]
fn never_fires_early() {
    let start = Instant::now();
    let mut wheel: TimerWheel<&str, 8> = empty(ms(10), start);
    wheel.insert(start + ms(15), "mid-tick");
    wheel.insert(start + ms(30), "on-boundary");
    let just_before = |t: u64| start + ms(t) - Duration::from_nanos(1);
    assert_eq!(wheel.poll(just_before(20)), None);
    assert_eq!(wheel.poll(start + ms(20)), Some("mid-tick"));
    assert_eq!(wheel.poll(just_before(30)), None);
    assert_eq!(wheel.poll(start + ms(30)), Some("on-boundary"));
    assert!(wheel.is_empty());
}

#[test]
fn fires_in_tick_order_across_slots() {
    let start = Instant::now();
    let mut wheel: TimerWheel<u64, 64> = empty(TICK, start);
    let mut rng = Rng(99);
    for _ in 0..500 {
        let t = 1 + rng.below(63);
        wheel.insert(start + ms(t), t);
    }
    let fired = drain(&mut wheel, start + ms(64));
    assert_eq!(fired.len(), 500);
    assert!(fired.is_sorted());
}

#[test]
fn cancel_unlinks_head_middle_and_tail() {
    let start = Instant::now();
    let mut wheel: TimerWheel<u32, 16> = empty(TICK, start);
    // One slot's list, newest first: d, c, b, a.
    let [a, b, c, d] = [1, 2, 3, 4].map(|v| wheel.insert(start + ms(3), v));
    assert_eq!(wheel.cancel(c), Some(3));
    assert_eq!(wheel.cancel(d), Some(4));
    assert_eq!(wheel.cancel(a), Some(1));
    assert_eq!(wheel.get(b), Some(&2));
    assert_bitmap_matches_slots(&wheel);
    assert_eq!(drain(&mut wheel, start + ms(3)), [2]);
    assert!(wheel.is_empty());
    assert_bitmap_matches_slots(&wheel);
}

#[test]
fn stale_key_is_harmless_after_reuse() {
    let start = Instant::now();
    let mut wheel: TimerWheel<&str, 16> = empty(TICK, start);
    let fired = wheel.insert(start + ms(1), "old");
    assert_eq!(wheel.poll(start + ms(1)), Some("old"));
    let cancelled = wheel.insert(start + ms(5), "old2");
    assert_eq!(wheel.cancel(cancelled), Some("old2"));

    let live = wheel.insert(start + ms(5), "new");
    assert_eq!(live.index, fired.index, "slab slot should be reused");
    for stale in [fired, cancelled] {
        assert_eq!(wheel.cancel(stale), None);
        assert_eq!(wheel.get(stale), None);
    }
    assert_eq!(drain(&mut wheel, start + ms(5)), ["new"]);
}

#[test]
fn far_future_waits_out_several_rotations() {
    let start = Instant::now();
    let mut wheel: TimerWheel<u64, 8> = empty(TICK, start);
    // 8 slots: these share slots with each other and with nearer ticks.
    for t in [3, 11, 19, 43, 44] {
        wheel.insert(start + ms(t), t);
    }
    let mut fired = Vec::new();
    for t in 0..=50 {
        let now = start + ms(t);
        let batch = drain(&mut wheel, now);
        assert!(batch.iter().all(|&d| d == t), "tick {t}: {batch:?}");
        fired.extend(batch);
        if let Some(next) = wheel.next_deadline() {
            assert!(next > now);
        }
    }
    assert_eq!(fired, [3, 11, 19, 43, 44]);
}

#[test]
fn past_deadlines_fire_on_next_poll() {
    let start = Instant::now();
    let mut wheel: TimerWheel<&str, 8> = empty(TICK, start);
    wheel.insert(start + ms(100), "future");
    let now = start + ms(50);
    assert_eq!(wheel.poll(now), None);
    wheel.insert(start + ms(20), "past");
    wheel.insert(start, "at-start");
    if let Some(before_start) = start.checked_sub(ms(5)) {
        wheel.insert(before_start, "before-start");
    }
    assert!(wheel.next_deadline().unwrap() <= now);
    let mut fired = drain(&mut wheel, now);
    fired.sort_unstable();
    assert!(fired == ["at-start", "past"] || fired == ["at-start", "before-start", "past"]);
    // Tick 100 is in slot 4, first passed again at tick 52.
    assert_eq!(wheel.next_deadline(), Some(start + ms(52)));
    assert_eq!(wheel.poll(start + ms(52)), None);
    assert_eq!(wheel.next_deadline(), Some(start + ms(60)));
}

#[test]
fn large_jumps_visit_each_slot_once() {
    let start = Instant::now();
    let mut wheel: TimerWheel<u64, 64> = empty(TICK, start);
    for t in (0..1000).step_by(7) {
        wheel.insert(start + ms(t), t);
    }
    // Far beyond every deadline: all fire.
    let mut fired = drain(&mut wheel, start + ms(5_000));
    fired.sort_unstable();
    assert_eq!(fired, (0..1000).step_by(7).collect::<Vec<_>>());

    // A billion ticks with one far-off timer pending (so the empty-wheel
    // shortcut does not apply): this would never finish if polling
    // walked tick by tick.
    let far = 1_000_000_000_000;
    wheel.insert(start + ms(far + 5), 1);
    assert_eq!(wheel.poll(start + ms(far)), None);
    assert_eq!(wheel.next_deadline(), Some(start + ms(far + 5)));
    assert_eq!(wheel.poll(start + ms(far + 4)), None);
    assert_eq!(wheel.poll(start + ms(far + 5)), Some(1));
    // Nothing pending: also cheap.
    assert_eq!(wheel.poll(start + ms(2 * far)), None);
}

#[test]
fn jump_keeps_last_rotation_in_order() {
    let start = Instant::now();
    let mut wheel: TimerWheel<u64, 16> = empty(TICK, start);
    for t in 85..=100 {
        wheel.insert(start + ms(t), t);
    }
    assert_eq!(
        drain(&mut wheel, start + ms(100)),
        (85..=100).collect::<Vec<_>>()
    );
}

#[test]
fn next_deadline_is_a_lower_bound() {
    let start = Instant::now();
    let mut wheel: TimerWheel<(), 16> = empty(ms(10), start);
    assert_eq!(wheel.next_deadline(), None);
    // Tick 20 lives in slot 4, two rotations out; the bound is slot 4's
    // next tick, and polling there yields nothing.
    let key = wheel.insert(start + ms(195), ());
    assert_eq!(wheel.next_deadline(), Some(start + ms(40)));
    assert_eq!(wheel.poll(start + ms(40)), None);
    assert_eq!(wheel.next_deadline(), Some(start + ms(200)));
    wheel.insert(start + ms(55), ());
    assert_eq!(wheel.next_deadline(), Some(start + ms(60)));
    wheel.cancel(key);
    assert_eq!(drain(&mut wheel, start + ms(60)).len(), 1);
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn partial_poll_then_resume() {
    let start = Instant::now();
    let mut wheel: TimerWheel<u64, 8> = empty(TICK, start);
    for t in 1..=40 {
        wheel.insert(start + ms(t), t);
    }
    // Stop part-way through a multi-rotation catch-up, insert and
    // cancel mid-sweep, then resume with a later `now`.
    let now = start + ms(30);
    let first: Vec<u64> = (0..10).map_while(|_| wheel.poll(now)).collect();
    assert_eq!(first.len(), 10);
    let late = wheel.insert(start + ms(2), 100);
    let soon = wheel.insert(start + ms(31), 101);
    assert_eq!(wheel.cancel(late), Some(100));
    let mut rest = drain(&mut wheel, start + ms(35));
    rest.extend(first);
    rest.sort_unstable();
    let mut want: Vec<u64> = (1..=35).collect();
    want.push(101);
    assert_eq!(rest, want);
    assert_eq!(wheel.get(soon), None);
    assert_eq!(wheel.len(), 5);
}

#[test]
fn preallocated_wheel_handles_200k_timers() {
    const N: usize = 200_000;
    let start = Instant::now();
    let mut wheel: TimerWheel<u32, 1024> = TimerWheel::with_capacity(TICK, start, N);
    let capacity = wheel.entries.capacity();
    let mut rng = Rng(7);
    let mut ticks = Vec::with_capacity(N);
    let mut keys = Vec::with_capacity(N);
    for i in 0..N as u32 {
        let t = rng.below(5_000);
        ticks.push(t);
        keys.push(wheel.insert(start + ms(t), i));
    }
    assert_eq!(wheel.entries.capacity(), capacity, "must not reallocate");
    let mut cancelled = 0;
    for key in keys.iter().step_by(7) {
        assert!(wheel.cancel(*key).is_some());
        cancelled += 1;
    }
    let mut fired = 0;
    let mut t = 0;
    while !wheel.is_empty() {
        t += 37;
        let mut last = 0;
        while let Some(i) = wheel.poll(start + ms(t)) {
            let d = ticks[i as usize];
            assert!(d <= t && d >= last, "value {i} tick {d} at {t}");
            last = d;
            fired += 1;
        }
    }
    assert_eq!(fired, N - cancelled);
}

#[test]
fn debug_output() {
    let start = Instant::now();
    let mut wheel: TimerWheel<(), 4> = empty(TICK, start);
    wheel.insert(start + ms(2), ());
    assert_eq!(
        format!("{wheel:?}"),
        "TimerWheel { len: 1, slots: 4, tick: 1ms, current_tick: 0, .. }"
    );
}

/// A wheel run against a reference: a `BTreeMap` of the pending timers keyed
/// by `(deadline tick, insertion sequence)`.
struct Model<const S: usize> {
    wheel: TimerWheel<u64, S>,
    rng: Rng,
    seed: u64,
    start: Instant,
    tick_ns: u64,
    /// `tick × S` in nanoseconds.
    rotation: u64,
    model: BTreeMap<(u64, u64), TimerKey>,
    /// Pending timers: sequence -> tick.
    live: HashMap<u64, u64>,
    /// Every key ever issued, with its sequence.
    issued: Vec<(TimerKey, u64)>,
    /// `now - start`, in nanoseconds.
    elapsed: u64,
    /// The tick reached by the last full poll.
    target: u64,
    /// The last poll ran to completion.
    in_order: bool,
}

impl<const S: usize> Model<S> {
    fn new(seed: u64, tick: Duration) -> Self {
        let start = Instant::now();
        let tick_ns = tick.as_nanos() as u64;
        Model {
            wheel: empty(tick, start),
            rng: Rng(seed),
            seed,
            start,
            tick_ns,
            rotation: tick_ns * S as u64,
            model: BTreeMap::new(),
            live: HashMap::new(),
            issued: Vec::new(),
            elapsed: 0,
            target: 0,
            in_order: true,
        }
    }

    fn at(&self, nanos: u64) -> Instant {
        self.start + Duration::from_nanos(nanos)
    }

    /// A timer mostly within a rotation, sometimes overdue or several
    /// rotations out.
    fn insert(&mut self) {
        let (rotation, tick_ns) = (self.rotation, self.tick_ns);
        let offset = match self.rng.below(10) {
            0 => -(self.rng.below(3 * rotation) as i64),
            1..=6 => self.rng.below(rotation) as i64,
            7 => (self.rng.below(4) * tick_ns) as i64,
            _ => self.rng.below(6 * rotation) as i64,
        };
        let deadline = self.at(self.elapsed.saturating_add_signed(offset));
        let seq = self.issued.len() as u64;
        let key = self.wheel.insert(deadline, seq);
        let nanos = deadline.saturating_duration_since(self.start).as_nanos() as u64;
        let t = nanos.div_ceil(tick_ns);
        self.model.insert((t, seq), key);
        self.live.insert(seq, t);
        self.issued.push((key, seq));
    }

    /// Cancels any key ever issued: pending, fired or already cancelled.
    fn cancel(&mut self) {
        if self.issued.is_empty() {
            return;
        }
        let (key, seq) = self.issued[self.rng.index(self.issued.len())];
        let expect = self.live.remove(&seq).map(|t| {
            self.model.remove(&(t, seq));
            seq
        });
        assert_eq!(self.wheel.cancel(key), expect);
    }

    /// Stops part-way through a poll; everything returned must be due.
    fn poll_a_few(&mut self) {
        let now = self.at(self.elapsed);
        for _ in 0..self.rng.below(4) {
            let Some(seq) = self.wheel.poll(now) else {
                break;
            };
            let t = self.live.remove(&seq).expect("fired twice");
            assert!(t <= self.elapsed / self.tick_ns, "fired early");
            self.model.remove(&(t, seq));
            self.in_order = false;
        }
    }

    /// Moves time on by up to five rotations and polls to completion:
    /// exactly the timers due fire, in tick order unless a rotation or
    /// more was skipped.
    fn advance(&mut self) {
        let (rotation, tick_ns) = (self.rotation, self.tick_ns);
        self.elapsed += match self.rng.below(10) {
            0..=5 => self.rng.below(3 * tick_ns),
            6..=8 => self.rng.below(rotation + tick_ns),
            _ => self.rng.below(5 * rotation),
        };
        let now = self.at(self.elapsed);
        let reached = self.elapsed / tick_ns;
        let ordered = self.in_order && reached - self.target <= S as u64;
        let mut got = Vec::new();
        let mut last = 0;
        while let Some(seq) = self.wheel.poll(now) {
            let t = self.live.remove(&seq).expect("fired twice");
            assert!(t <= reached, "fired early: tick {t} > {reached}");
            let effective = t.max(self.target);
            assert!(!ordered || effective >= last, "out of order");
            last = effective;
            got.push(seq);
        }
        got.sort_unstable();
        let mut want: Vec<u64> = self
            .model
            .range(..=(reached, u64::MAX))
            .map(|(&(_, seq), _)| seq)
            .collect();
        want.sort_unstable();
        assert_eq!(got, want, "seed {}", self.seed);
        self.model.retain(|&(t, _), _| t > reached);
        self.target = reached;
        self.in_order = true;
    }

    /// After every operation: the length, the bitmap invariant, and
    /// `next_deadline` (a lower bound always, exact after a full poll).
    fn check(&self) {
        assert_eq!(self.wheel.len(), self.model.len());
        assert_bitmap_matches_slots(&self.wheel);
        let now = self.at(self.elapsed);
        match (self.wheel.next_deadline(), self.model.keys().next()) {
            (None, None) => {}
            (Some(bound), Some(&(t, _))) => {
                let earliest = self.at(t * self.tick_ns);
                assert!(bound <= earliest.max(now), "bound too late");
                if self.in_order {
                    let want = expected_next(&self.model, self.target, S);
                    assert_eq!(Some(bound), want.map(|t| self.at(t * self.tick_ns)));
                    if t > self.target {
                        assert!(bound > now);
                    }
                }
            }
            other => panic!("next_deadline mismatch: {other:?}"),
        }
    }
}

/// 4,000 random operations checked against the model.
fn model_run<const S: usize>(seed: u64, tick: Duration) {
    let mut m = Model::<S>::new(seed, tick);
    for _ in 0..4_000 {
        match m.rng.below(20) {
            0..=7 => m.insert(),
            8..=11 => m.cancel(),
            12 => m.poll_a_few(),
            _ => m.advance(),
        }
        m.check();
    }
}

/// What `next_deadline` must say when the last poll ran to completion at
/// tick `current`: `current` itself if a timer is overdue (it waits on the
/// ready list), else the first tick after `current` that falls in the
/// slot of some pending timer.
fn expected_next<K>(model: &BTreeMap<(u64, u64), K>, current: u64, slots: usize) -> Option<u64> {
    let slots = slots as u64;
    model
        .keys()
        .map(|&(t, _)| {
            if t <= current {
                current
            } else {
                current + 1 + (t - current - 1) % slots
            }
        })
        .min()
}

/// The wheel's invariant: a slot's bit is set exactly when its list is
/// non-empty, and no bit is set beyond the last slot.
fn assert_bitmap_matches_slots<T, const S: usize>(wheel: &TimerWheel<T, S>) {
    for (slot, &head) in wheel.slots.iter().enumerate() {
        let bit = wheel.occupied[slot / 64] >> (slot % 64) & 1;
        assert_eq!(bit == 1, head != NIL, "slot {slot}");
    }
    let used: u32 = wheel.occupied.iter().map(|w| w.count_ones()).sum();
    let heads = wheel.slots.iter().filter(|&&h| h != NIL).count();
    assert_eq!(used as usize, heads, "bits beyond the last slot");
}

#[test]
fn model_against_btreemap() {
    for seed in [1, 0xdead_beef, 0x1234_5678_9abc_def0, 42, 2024] {
        model_run::<1>(seed, Duration::from_micros(700));
        model_run::<8>(seed, TICK);
        model_run::<64>(seed, Duration::from_micros(250));
        // Several bitmap words: the search wraps across word boundaries.
        model_run::<256>(seed, Duration::from_micros(100));
    }
}
