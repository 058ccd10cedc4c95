//! A hashed timing wheel for connection timeouts.
//!
//! [`TimerWheel`] is Varghese & Lauck's scheme 6 as used by Linux: a single
//! array of `SLOTS` buckets, each an unsorted list, with a timer for tick `d`
//! filed under slot `d % SLOTS`. There is no hierarchy and no cascading: a
//! timer more than one rotation away simply stays in its slot and is skipped,
//! by comparing its deadline tick, every time the wheel passes over it.
//!
//! That trade suits the hub's workload (heartbeat, idle, handshake, send, ACK
//! and retry timeouts, up to about a million pending) where nearly every
//! timer is cancelled long before it fires: insert and cancel are O(1) and
//! allocation-free, and the cost of a [`poll`](TimerWheel::poll) grows with
//! the occupied slots it passes and the entries filed in them, never with
//! the total number of timers.
//!
//! # Time model
//!
//! The wheel counts ticks of a fixed `tick` duration from a `start` instant.
//! A deadline is rounded *up* to the next tick boundary, and a poll at `now`
//! reaches the last tick boundary at or before `now`, so a timer never fires
//! early and fires less than one tick after its deadline, plus however late
//! the caller polls.
//!
//! Entries live in a [`Slab`] and each slot is an intrusive doubly linked
//! list threaded through them by index, so a preallocated wheel does not
//! allocate until more timers are pending than it has capacity for.
//!
//! # Finding the next occupied slot
//!
//! Beside the slot heads the wheel keeps an occupancy bitmap, one bit a slot
//! in `u64` words (as tokio's time driver does for each of its levels). Its
//! invariant: **bit `s` is set exactly when slot `s`'s list is non-empty**. It
//! is maintained wherever a slot's head changes (filing an entry, unlinking
//! the last one, expiry moving entries to the ready list), so the nearest
//! occupied slot after the cursor is a `trailing_zeros` over at most
//! `SLOTS / 64 + 1` words, wrapping once: that answers
//! [`next_deadline`](TimerWheel::next_deadline) and lets
//! [`poll`](TimerWheel::poll) jump over empty slots instead of walking them.

use std::fmt;
use std::time::{Duration, Instant};

use slab::Slab;

/// Link value meaning "no entry". Links are `u32` rather than `usize` to keep
/// each of the (up to millions of) entries small.
const NIL: u32 = u32::MAX;

/// A handle to a pending timer, returned by [`TimerWheel::insert`].
///
/// Keys carry a generation number, so a key whose timer already fired or was
/// cancelled stays dead even after its storage is reused by a new timer:
/// using it is a harmless no-op.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use wshub::timer::TimerWheel;
///
/// let start = Instant::now();
/// let mut wheel: TimerWheel<&str, 64> = TimerWheel::with_capacity(Duration::from_millis(10), start, 16);
/// let key = wheel.insert(start + Duration::from_secs(1), "ping");
/// assert_eq!(wheel.cancel(key), Some("ping"));
/// let reused = wheel.insert(start + Duration::from_secs(1), "pong");
/// assert_ne!(key, reused);
/// assert_eq!(wheel.cancel(key), None); // stale: does not touch "pong"
/// assert_eq!(wheel.len(), 1);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TimerKey {
    index: usize,
    generation: u64,
}

/// Which list an entry is linked into.
#[derive(Clone, Copy)]
enum List {
    Slot(usize),
    Ready,
}

struct Entry<T> {
    value: T,
    /// Deadline rounded up to a tick number.
    tick: u64,
    generation: u64,
    prev: u32,
    next: u32,
}

/// A hashed timing wheel with `SLOTS` slots holding values of type `T`.
///
/// `SLOTS` must be a power of two (checked at compile time). Choose
/// `tick × SLOTS` (one rotation) to cover the common timeout lengths: a timer
/// further out than one rotation is correct but gets looked at (and skipped)
/// once per rotation until it is due.
///
/// # Complexity
///
/// * [`insert`](Self::insert), [`cancel`](Self::cancel): O(1); `insert`
///   allocates only if the slab is full.
/// * [`poll`](Self::poll): O(1) per occupied slot passed plus O(1) per entry
///   filed in those slots (due or not); empty slots are skipped a bitmap
///   word (64 slots) at a time. A jump of `now` by more than one rotation
///   visits each occupied slot once, so one call costs at most
///   O(`SLOTS` + entries), whatever the elapsed time.
/// * [`next_deadline`](Self::next_deadline): O(`SLOTS / 64`) word reads (at
///   most nine for 512 slots), never proportional to the number of entries.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use wshub::timer::TimerWheel;
///
/// let start = Instant::now();
/// let mut wheel: TimerWheel<u32, 256> = TimerWheel::with_capacity(Duration::from_millis(10), start, 16);
/// wheel.insert(start + Duration::from_millis(25), 1);
/// wheel.insert(start + Duration::from_millis(5), 2);
///
/// // Deadlines round up to tick boundaries: 5 ms fires at 10 ms, 25 ms at 30 ms.
/// assert_eq!(wheel.poll(start + Duration::from_millis(9)), None);
/// assert_eq!(wheel.poll(start + Duration::from_millis(29)), Some(2));
/// assert_eq!(wheel.poll(start + Duration::from_millis(29)), None);
/// assert_eq!(wheel.poll(start + Duration::from_millis(30)), Some(1));
/// assert!(wheel.is_empty());
/// ```
pub struct TimerWheel<T, const SLOTS: usize> {
    entries: Slab<Entry<T>>,
    /// Head of each slot's list.
    slots: Box<[u32]>,
    /// One bit a slot, `SLOTS.div_ceil(64)` words: bit `s % 64` of word
    /// `s / 64` is set exactly when `slots[s] != NIL`. Only `set_head` writes
    /// either, so the two never disagree.
    occupied: Box<[u64]>,
    /// Head of the list of entries known to be due, handed out by `poll`
    /// before the wheel moves on. Because the wheel only advances once this
    /// is empty, due entries leave in tick order.
    ready: u32,
    /// The last tick the wheel has reached. Entries filed in slots are due
    /// at later ticks, except part-way through the catch-up pass after a
    /// jump of more than one rotation, when slots not yet visited may still
    /// hold overdue ones (see `poll`).
    current: u64,
    start: Instant,
    tick: Duration,
    tick_nanos: u128,
    next_generation: u64,
}

impl<T, const SLOTS: usize> TimerWheel<T, SLOTS> {
    const MASK: u64 = SLOTS as u64 - 1;
    /// Words of the occupancy bitmap: a power of two, like `SLOTS`.
    const WORDS: usize = SLOTS.div_ceil(64);

    /// Creates an empty wheel whose tick 0 is `start`, with room for
    /// `capacity` timers before it needs to allocate.
    ///
    /// # Panics
    ///
    /// Panics if `tick` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use wshub::timer::TimerWheel;
    ///
    /// let wheel: TimerWheel<u64, 1024> =
    ///     TimerWheel::with_capacity(Duration::from_millis(10), Instant::now(), 10_000);
    /// assert!(wheel.is_empty());
    /// ```
    ///
    /// `SLOTS` that is not a power of two is rejected at compile time:
    ///
    /// ```compile_fail,E0080
    /// use std::time::{Duration, Instant};
    /// let w: wshub::timer::TimerWheel<(), 100> =
    ///     wshub::timer::TimerWheel::with_capacity(Duration::from_millis(1), Instant::now(), 0);
    /// ```
    pub fn with_capacity(tick: Duration, start: Instant, capacity: usize) -> Self {
        const {
            assert!(
                SLOTS.is_power_of_two(),
                "TimerWheel SLOTS must be a power of two greater than zero"
            )
        };
        assert!(!tick.is_zero(), "TimerWheel tick must be non-zero");
        Self {
            entries: Slab::with_capacity(capacity),
            slots: vec![NIL; SLOTS].into_boxed_slice(),
            occupied: vec![0; Self::WORDS].into_boxed_slice(),
            ready: NIL,
            current: 0,
            start,
            tick,
            tick_nanos: tick.as_nanos(),
            next_generation: 0,
        }
    }

    /// Schedules `value` to be returned by [`poll`](Self::poll) once
    /// `deadline` has passed, and returns a key to cancel it.
    ///
    /// A deadline that the wheel has already reached is due immediately: the
    /// next `poll` returns it.
    ///
    /// # Panics
    ///
    /// Panics if more than `u32::MAX - 1` timers are pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use wshub::timer::TimerWheel;
    ///
    /// let start = Instant::now();
    /// let mut wheel: TimerWheel<&str, 64> = TimerWheel::with_capacity(Duration::from_millis(1), start, 16);
    /// wheel.insert(start + Duration::from_millis(3), "timeout");
    /// assert_eq!(wheel.poll(start + Duration::from_millis(2)), None);
    /// assert_eq!(wheel.poll(start + Duration::from_millis(3)), Some("timeout"));
    /// ```
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        // Links are `u32`; `NIL` itself must stay unused.
        assert!(
            self.entries.vacant_key() < NIL as usize,
            "too many pending timers"
        );
        // A global counter rather than a per-slot one: the slab forgets
        // everything about a vacated slot. At 64 bits it never wraps.
        let generation = self.next_generation;
        self.next_generation += 1;
        let tick = self.deadline_tick(deadline);
        let index = self.entries.insert(Entry {
            value,
            tick,
            generation,
            prev: NIL,
            next: NIL,
        });
        self.link(index as u32);
        TimerKey { index, generation }
    }

    /// Cancels a pending timer and returns its value, or `None` if the key
    /// is stale (the timer already fired or was cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use wshub::timer::TimerWheel;
    ///
    /// let start = Instant::now();
    /// let mut wheel: TimerWheel<u8, 64> = TimerWheel::with_capacity(Duration::from_millis(1), start, 16);
    /// let key = wheel.insert(start + Duration::from_millis(5), 7);
    /// assert_eq!(wheel.cancel(key), Some(7));
    /// assert_eq!(wheel.cancel(key), None);
    /// assert_eq!(wheel.poll(start + Duration::from_secs(1)), None);
    /// ```
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.get(key)?;
        self.unlink(key.index as u32);
        Some(self.entries.remove(key.index).value)
    }

    /// The pending timer `key` names, unless the key is stale.
    fn get(&self, key: TimerKey) -> Option<&T> {
        self.entries
            .get(key.index)
            .filter(|e| e.generation == key.generation)
            .map(|e| &e.value)
    }

    /// Returns the value of one timer that is due at `now`, or `None` once
    /// there are none; call it in a loop until it returns `None`.
    ///
    /// This advances the wheel to the last tick boundary at or before `now`.
    /// A timer is due when its deadline, rounded up to a tick boundary, is at
    /// or before `now`: it never fires early, and fires less than one tick
    /// late plus however late this is called.
    ///
    /// # Ordering
    ///
    /// As long as the wheel is polled at least once per rotation
    /// (`tick × SLOTS`), values come out in deadline-tick order (in any order
    /// within one tick); timers inserted with a deadline the wheel had
    /// already reached come out first. After a longer gap the wheel makes a
    /// single pass over the slots rather than one per rotation missed:
    /// timers due within the last rotation still come out in order, while
    /// those overdue by more than a rotation are interleaved with them.
    ///
    /// `now` is expected not to go backwards; an earlier `now` than a
    /// previous call's only returns timers that were already found due.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use wshub::timer::TimerWheel;
    ///
    /// let start = Instant::now();
    /// let mut wheel: TimerWheel<u32, 64> = TimerWheel::with_capacity(Duration::from_millis(1), start, 16);
    /// for i in 0..3 {
    ///     wheel.insert(start + Duration::from_millis(i), i as u32);
    /// }
    /// let now = start + Duration::from_millis(100);
    /// let mut fired = Vec::new();
    /// while let Some(v) = wheel.poll(now) {
    ///     fired.push(v);
    /// }
    /// assert_eq!(fired, [0, 1, 2]);
    /// ```
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        let target = self.floor_tick(now);
        loop {
            if self.ready != NIL {
                let index = self.ready;
                self.unlink(index);
                return Some(self.entries.remove(index as usize).value);
            }
            if self.current >= target {
                return None;
            }
            // Passing more than one rotation would visit slots repeatedly.
            // Instead start one rotation short of the target: the ticks
            // `target - SLOTS + 1 ..= target` map onto every slot exactly
            // once, and an entry found in the slot for tick `t` is due iff
            // its tick is `<= t` (the next tick it could have is `t + SLOTS`,
            // which is beyond the target).
            self.current = self.current.max(target.saturating_sub(SLOTS as u64));
            // Empty slots have nothing to expire: go straight to the next
            // occupied one, or to the target if none comes before it.
            match self.next_occupied_tick(self.current, target - self.current) {
                Some(t) => {
                    self.current = t;
                    self.expire_slot(t);
                }
                None => {
                    self.current = target;
                    return None;
                }
            }
        }
    }

    /// Returns when [`poll`](Self::poll) should next be called, or `None`
    /// if no timer is pending; use it to compute the event loop's timeout.
    ///
    /// The result is a lower bound: never later than the moment the earliest
    /// pending timer becomes due (its deadline rounded up to a tick
    /// boundary) or the last `now` passed to `poll`, whichever is later. So
    /// an instant at or before that `now` means timers are due already.
    ///
    /// Otherwise it is the tick boundary of the nearest non-empty slot. That
    /// is exact unless the slot only holds timers for later rotations, in
    /// which case polling then yields nothing and the caller asks again: a
    /// far-off timer costs at most one spurious wake-up per rotation.
    ///
    /// Costs a `trailing_zeros` over the occupancy bitmap (at most
    /// `SLOTS / 64 + 1` words), independent of the number of timers. Returns
    /// `None` also if the bound is not representable as an `Instant`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use wshub::timer::TimerWheel;
    ///
    /// let start = Instant::now();
    /// let mut wheel: TimerWheel<(), 64> = TimerWheel::with_capacity(Duration::from_millis(10), start, 16);
    /// assert_eq!(wheel.next_deadline(), None);
    /// wheel.insert(start + Duration::from_millis(15), ());
    /// assert_eq!(wheel.next_deadline(), Some(start + Duration::from_millis(20)));
    /// ```
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.ready != NIL {
            return self.tick_instant(self.current);
        }
        // Entries in a slot all have ticks congruent to it and beyond
        // `current`, so the first occupied slot's next tick bounds them all
        // from below, and every later slot's entries are later still.
        self.next_occupied_tick(self.current, SLOTS as u64)
            .and_then(|t| self.tick_instant(t))
    }

    /// Returns the number of pending timers.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use wshub::timer::TimerWheel;
    ///
    /// let start = Instant::now();
    /// let mut wheel: TimerWheel<(), 64> = TimerWheel::with_capacity(Duration::from_millis(1), start, 16);
    /// wheel.insert(start, ());
    /// assert_eq!(wheel.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns `true` if no timer is pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use wshub::timer::TimerWheel;
    ///
    /// let wheel: TimerWheel<(), 64> = TimerWheel::with_capacity(Duration::from_millis(1), Instant::now(), 0);
    /// assert!(wheel.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Moves the due entries of the slot for tick `t` onto the ready list.
    fn expire_slot(&mut self, t: u64) {
        let mut cursor = self.slots[Self::slot_of(t)];
        while cursor != NIL {
            let entry = &self.entries[cursor as usize];
            let next = entry.next;
            if entry.tick <= t {
                self.unlink(cursor);
                self.push_front(List::Ready, cursor);
            }
            cursor = next;
        }
    }

    /// Files an unlinked entry under its tick's slot, or on the ready list if
    /// the wheel has already reached that tick.
    fn link(&mut self, index: u32) {
        let tick = self.entries[index as usize].tick;
        let list = if tick <= self.current {
            List::Ready
        } else {
            List::Slot(Self::slot_of(tick))
        };
        self.push_front(list, index);
    }

    #[inline]
    fn push_front(&mut self, list: List, index: u32) {
        let old = self.head(list);
        let entry = &mut self.entries[index as usize];
        entry.prev = NIL;
        entry.next = old;
        if old != NIL {
            self.entries[old as usize].prev = index;
        }
        self.set_head(list, index);
    }

    fn unlink(&mut self, index: u32) {
        let Entry {
            prev, next, tick, ..
        } = self.entries[index as usize];
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else {
            // The entry heads its list. Which list cannot be told from its
            // tick alone (an overdue entry may sit in a slot or on the ready
            // list), but only one list can have it as head.
            let list = if self.ready == index {
                List::Ready
            } else {
                List::Slot(Self::slot_of(tick))
            };
            self.set_head(list, next);
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }

    fn head(&self, list: List) -> u32 {
        match list {
            List::Slot(slot) => self.slots[slot],
            List::Ready => self.ready,
        }
    }

    /// The one place a list head changes: keeps the occupancy bit of a slot
    /// equal to "its list is non-empty".
    #[inline]
    fn set_head(&mut self, list: List, index: u32) {
        match list {
            List::Slot(slot) => {
                self.slots[slot] = index;
                let (word, bit) = (slot / 64, 1u64 << (slot % 64));
                if index == NIL {
                    self.occupied[word] &= !bit;
                } else {
                    self.occupied[word] |= bit;
                }
            }
            List::Ready => self.ready = index,
        }
    }

    /// The first tick of `after + 1 ..= after + within` whose slot holds
    /// entries, or `None`; `within` is at most `SLOTS`, so each tick of the
    /// range has a slot of its own. The bitmap is read a word at a time from
    /// `after + 1`'s slot on, wrapping once: at most `SLOTS / 64 + 1` words,
    /// one for a short range.
    fn next_occupied_tick(&self, after: u64, within: u64) -> Option<u64> {
        debug_assert!(within <= SLOTS as u64);
        let from = Self::slot_of(after.wrapping_add(1));
        // `scanned` slots from `from` on are known to be empty.
        let mut scanned = 0;
        while scanned < within {
            let slot = (from + scanned as usize) & (SLOTS - 1);
            let bits = self.occupied[slot / 64] >> (slot % 64);
            if bits != 0 {
                let distance = scanned + u64::from(bits.trailing_zeros());
                return (distance < within).then(|| after.saturating_add(1 + distance));
            }
            // To the end of this word, or of the wheel if it is shorter.
            scanned += (64 - slot % 64).min(SLOTS - slot) as u64;
        }
        None
    }

    fn slot_of(tick: u64) -> usize {
        (tick & Self::MASK) as usize
    }

    /// The first tick boundary at or after `deadline`.
    fn deadline_tick(&self, deadline: Instant) -> u64 {
        let nanos = deadline.saturating_duration_since(self.start).as_nanos();
        // Saturating keeps absurdly distant deadlines pending "forever"
        // (u64::MAX ticks is at least 584 years) instead of wrapping.
        u64::try_from(nanos.div_ceil(self.tick_nanos)).unwrap_or(u64::MAX)
    }

    /// The last tick boundary at or before `now`.
    fn floor_tick(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.start).as_nanos();
        u64::try_from(nanos / self.tick_nanos).unwrap_or(u64::MAX)
    }

    fn tick_instant(&self, tick: u64) -> Option<Instant> {
        let nanos = u128::from(tick) * self.tick_nanos;
        let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
        let offset = Duration::new(secs, (nanos % 1_000_000_000) as u32);
        self.start.checked_add(offset)
    }
}

impl<T, const SLOTS: usize> fmt::Debug for TimerWheel<T, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("len", &self.len())
            .field("slots", &SLOTS)
            .field("tick", &self.tick)
            .field("current_tick", &self.current)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
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

    /// Random operations checked against a `BTreeMap` keyed by
    /// `(deadline tick, insertion sequence)`.
    fn model_run<const S: usize>(seed: u64, tick: Duration) {
        let mut rng = Rng(seed);
        let tick_ns = tick.as_nanos() as u64;
        let rotation = tick_ns * S as u64;
        let start = Instant::now();
        let mut wheel: TimerWheel<u64, S> = empty(tick, start);
        let ceil_tick = |d: Instant| {
            let ns = d.saturating_duration_since(start).as_nanos() as u64;
            ns.div_ceil(tick_ns)
        };

        let mut model: BTreeMap<(u64, u64), TimerKey> = BTreeMap::new();
        let mut live: HashMap<u64, u64> = HashMap::new(); // seq -> tick
        let mut issued: Vec<(TimerKey, u64)> = Vec::new(); // every key ever
        let mut elapsed = 0u64; // now - start, in nanoseconds
        let mut target = 0u64; // tick reached by the last full poll
        let mut in_order = true; // the last poll ran to completion

        for _ in 0..4_000 {
            let now = start + Duration::from_nanos(elapsed);
            match rng.below(20) {
                0..=7 => {
                    let offset = match rng.below(10) {
                        0 => -(rng.below(3 * rotation) as i64),
                        1..=6 => rng.below(rotation) as i64,
                        7 => (rng.below(4) * tick_ns) as i64,
                        _ => rng.below(6 * rotation) as i64,
                    };
                    let at = elapsed.saturating_add_signed(offset);
                    let deadline = start + Duration::from_nanos(at);
                    let seq = issued.len() as u64;
                    let key = wheel.insert(deadline, seq);
                    let t = ceil_tick(deadline);
                    model.insert((t, seq), key);
                    live.insert(seq, t);
                    issued.push((key, seq));
                }
                8..=11 if !issued.is_empty() => {
                    let (key, seq) = issued[rng.below(issued.len() as u64) as usize];
                    let expect = live.remove(&seq).map(|t| {
                        model.remove(&(t, seq));
                        seq
                    });
                    assert_eq!(wheel.cancel(key), expect);
                }
                12 => {
                    // Stop part-way; everything returned must be due.
                    for _ in 0..rng.below(4) {
                        let Some(seq) = wheel.poll(now) else { break };
                        let t = live.remove(&seq).expect("fired twice");
                        assert!(t <= elapsed / tick_ns, "fired early");
                        model.remove(&(t, seq));
                        in_order = false;
                    }
                }
                _ => {
                    elapsed += match rng.below(10) {
                        0..=5 => rng.below(3 * tick_ns),
                        6..=8 => rng.below(rotation + tick_ns),
                        _ => rng.below(5 * rotation),
                    };
                    let now = start + Duration::from_nanos(elapsed);
                    let reached = elapsed / tick_ns;
                    let ordered = in_order && reached - target <= S as u64;
                    let mut got = Vec::new();
                    let mut last = 0;
                    while let Some(seq) = wheel.poll(now) {
                        let t = live.remove(&seq).expect("fired twice");
                        assert!(t <= reached, "fired early: tick {t} > {reached}");
                        let effective = t.max(target);
                        assert!(!ordered || effective >= last, "out of order");
                        last = effective;
                        got.push(seq);
                    }
                    got.sort_unstable();
                    let mut want: Vec<u64> = model
                        .range(..=(reached, u64::MAX))
                        .map(|(&(_, seq), _)| seq)
                        .collect();
                    want.sort_unstable();
                    assert_eq!(got, want, "seed {seed}");
                    model.retain(|&(t, _), _| t > reached);
                    target = reached;
                    in_order = true;
                }
            }
            assert_eq!(wheel.len(), model.len());
            assert_bitmap_matches_slots(&wheel);
            match (wheel.next_deadline(), model.keys().next()) {
                (None, None) => {}
                (Some(bound), Some(&(t, _))) => {
                    let earliest = start + Duration::from_nanos(t * tick_ns);
                    let now = start + Duration::from_nanos(elapsed);
                    assert!(bound <= earliest.max(now), "bound too late");
                    if in_order {
                        // Exact: the tick of the nearest slot holding a
                        // pending timer, or the target if one is overdue.
                        let at = |t: u64| start + Duration::from_nanos(t * tick_ns);
                        assert_eq!(Some(bound), expected_next(&model, target, S).map(at));
                    }
                    if in_order && t > target {
                        assert!(bound > start + Duration::from_nanos(elapsed));
                    }
                }
                other => panic!("next_deadline mismatch: {other:?}"),
            }
        }
    }

    /// What `next_deadline` must say when the last poll ran to completion at
    /// tick `current`: `current` itself if a timer is overdue (it waits on the
    /// ready list), else the first tick after `current` that falls in the
    /// slot of some pending timer.
    fn expected_next<K>(
        model: &BTreeMap<(u64, u64), K>,
        current: u64,
        slots: usize,
    ) -> Option<u64> {
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
}
