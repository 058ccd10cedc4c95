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
/// use wshub::__private::util::TimerWheel;
///
/// let start = Instant::now();
/// let mut wheel: TimerWheel<&str, 64> =
///     TimerWheel::with_capacity(Duration::from_millis(10), start, 16);
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
/// use wshub::__private::util::TimerWheel;
///
/// let start = Instant::now();
/// let mut wheel: TimerWheel<u32, 256> =
///     TimerWheel::with_capacity(Duration::from_millis(10), start, 16);
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
    /// use wshub::__private::util::TimerWheel;
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
    /// use wshub::__private::util::TimerWheel;
    ///
    /// let w: TimerWheel<(), 100> =
    ///     TimerWheel::with_capacity(Duration::from_millis(1), Instant::now(), 0);
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
    /// use wshub::__private::util::TimerWheel;
    ///
    /// let start = Instant::now();
    /// let mut wheel: TimerWheel<&str, 64> =
    ///     TimerWheel::with_capacity(Duration::from_millis(1), start, 16);
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
    /// use wshub::__private::util::TimerWheel;
    ///
    /// let start = Instant::now();
    /// let mut wheel: TimerWheel<u8, 64> =
    ///     TimerWheel::with_capacity(Duration::from_millis(1), start, 16);
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
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn get(&self, key: TimerKey) -> Option<&T> {
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
    /// use wshub::__private::util::TimerWheel;
    ///
    /// let start = Instant::now();
    /// let mut wheel: TimerWheel<u32, 64> =
    ///     TimerWheel::with_capacity(Duration::from_millis(1), start, 16);
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
    /// use wshub::__private::util::TimerWheel;
    ///
    /// let start = Instant::now();
    /// let mut wheel: TimerWheel<(), 64> =
    ///     TimerWheel::with_capacity(Duration::from_millis(10), start, 16);
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
    /// use wshub::__private::util::TimerWheel;
    ///
    /// let start = Instant::now();
    /// let mut wheel: TimerWheel<(), 64> =
    ///     TimerWheel::with_capacity(Duration::from_millis(1), start, 16);
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
    /// use wshub::__private::util::TimerWheel;
    ///
    /// let wheel: TimerWheel<(), 64> =
    ///     TimerWheel::with_capacity(Duration::from_millis(1), Instant::now(), 0);
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
mod tests;
