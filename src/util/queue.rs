//! A fixed-capacity FIFO ring buffer.
//!
//! [`RingQueue`] is the per-client outbound queue: its capacity is a
//! build-time constant, its storage lives inline, and it never allocates, so
//! a slow reader can only ever cost a bounded amount of memory. When the
//! queue is full, [`push_back`](RingQueue::push_back) hands the item back and
//! lets the caller choose the back-pressure policy (drop, disconnect, retry).

use std::fmt;
use std::iter::FusedIterator;

/// A fixed-capacity FIFO queue holding at most `N` items inline.
///
/// Every operation is O(1) and nothing allocates after construction. `N` must be greater than
/// zero; this is checked at compile time.
///
/// # Examples
///
/// ```
/// use wshub::__private::util::RingQueue;
///
/// let mut q: RingQueue<&str, 2> = RingQueue::new();
/// assert_eq!(q.push_back("a"), Ok(()));
/// assert_eq!(q.push_back("b"), Ok(()));
/// assert_eq!(q.push_back("c"), Err("c")); // full: the item comes back
/// assert_eq!(q.pop_front(), Some("a"));
/// assert_eq!(q.len(), 1);
/// ```
///
/// A zero capacity is rejected when the queue is built:
///
/// ```compile_fail,E0080
/// use wshub::__private::util::RingQueue;
///
/// let q: RingQueue<u8, 0> = RingQueue::new();
/// ```
pub struct RingQueue<T, const N: usize> {
    // Invariant: exactly the `len` slots starting at `head` (wrapping) are
    // `Some`; every other slot is `None`. `Option` is what lets us move items
    // in and out without `unsafe`; for most payloads (boxes, `Vec`, `Bytes`)
    // the niche makes it free.
    buf: [Option<T>; N],
    head: usize,
    len: usize,
}

impl<T, const N: usize> RingQueue<T, N> {
    /// Creates an empty queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use wshub::__private::util::RingQueue;
    ///
    /// let q: RingQueue<u32, 8> = RingQueue::new();
    /// assert!(q.is_empty());
    /// ```
    pub fn new() -> Self {
        const { assert!(N > 0, "RingQueue capacity N must be greater than zero") };
        Self {
            buf: std::array::from_fn(|_| None),
            head: 0,
            len: 0,
        }
    }

    /// Appends `value` at the back, or returns it as `Err` if the queue is
    /// full. The queue never grows.
    ///
    /// # Examples
    ///
    /// ```
    /// use wshub::__private::util::RingQueue;
    ///
    /// let mut q: RingQueue<u8, 1> = RingQueue::new();
    /// assert_eq!(q.push_back(1), Ok(()));
    /// assert_eq!(q.push_back(2), Err(2));
    /// ```
    pub fn push_back(&mut self, value: T) -> Result<(), T> {
        if self.len == N {
            return Err(value);
        }
        let tail = Self::wrap(self.head + self.len);
        self.buf[tail] = Some(value);
        self.len += 1;
        Ok(())
    }

    /// Puts `value` back at the front (the next `pop_front` returns it), or
    /// returns it as `Err` if the queue is full.
    ///
    /// # Examples
    ///
    /// ```
    /// use wshub::__private::util::RingQueue;
    ///
    /// let mut q: RingQueue<u8, 2> = RingQueue::new();
    /// q.push_back(2).unwrap();
    /// q.push_front(1).unwrap();
    /// assert_eq!(q.push_front(0), Err(0));
    /// assert_eq!(q.pop_front(), Some(1));
    /// ```
    pub fn push_front(&mut self, value: T) -> Result<(), T> {
        if self.len == N {
            return Err(value);
        }
        self.head = Self::wrap(self.head + N - 1);
        self.buf[self.head] = Some(value);
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the front item, or `None` if the queue is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use wshub::__private::util::RingQueue;
    ///
    /// let mut q: RingQueue<u8, 4> = RingQueue::new();
    /// q.push_back(7).unwrap();
    /// assert_eq!(q.pop_front(), Some(7));
    /// assert_eq!(q.pop_front(), None);
    /// ```
    pub fn pop_front(&mut self) -> Option<T> {
        // By the invariant the head slot is `None` exactly when the queue is
        // empty, so `take` doubles as the emptiness check.
        let value = self.buf[self.head].take()?;
        self.head = Self::wrap(self.head + 1);
        self.len -= 1;
        Some(value)
    }

    /// Returns a reference to the front item, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use wshub::__private::util::RingQueue;
    ///
    /// let mut q: RingQueue<u8, 4> = RingQueue::new();
    /// assert_eq!(q.front(), None);
    /// q.push_back(1).unwrap();
    /// q.push_back(2).unwrap();
    /// assert_eq!(q.front(), Some(&1));
    /// ```
    pub fn front(&self) -> Option<&T> {
        self.buf[self.head].as_ref()
    }

    /// Returns a mutable reference to the back (most recently pushed) item,
    /// if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use wshub::__private::util::RingQueue;
    ///
    /// let mut q: RingQueue<u8, 4> = RingQueue::new();
    /// assert_eq!(q.back_mut(), None);
    /// q.push_back(1).unwrap();
    /// q.push_back(2).unwrap();
    /// *q.back_mut().unwrap() = 3;
    /// assert_eq!(q.pop_front(), Some(1));
    /// assert_eq!(q.pop_front(), Some(3));
    /// ```
    pub fn back_mut(&mut self) -> Option<&mut T> {
        if self.len == 0 {
            return None;
        }
        let tail = Self::wrap(self.head + self.len - 1);
        self.buf[tail].as_mut()
    }

    /// Returns the number of queued items.
    ///
    /// # Examples
    ///
    /// ```
    /// use wshub::__private::util::RingQueue;
    ///
    /// let mut q: RingQueue<u8, 4> = RingQueue::new();
    /// q.push_back(1).unwrap();
    /// assert_eq!(q.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns `true` if the queue holds no items.
    ///
    /// # Examples
    ///
    /// ```
    /// use wshub::__private::util::RingQueue;
    ///
    /// let q: RingQueue<u8, 4> = RingQueue::new();
    /// assert!(q.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns `true` if the queue holds `N` items, so that the next
    /// [`push_back`](Self::push_back) would fail.
    ///
    /// # Examples
    ///
    /// ```
    /// use wshub::__private::util::RingQueue;
    ///
    /// let mut q: RingQueue<u8, 1> = RingQueue::new();
    /// q.push_back(1).unwrap();
    /// assert!(q.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Returns an iterator over the items from front to back.
    ///
    /// # Examples
    ///
    /// ```
    /// use wshub::__private::util::RingQueue;
    ///
    /// let mut q: RingQueue<u8, 4> = RingQueue::new();
    /// q.push_back(1).unwrap();
    /// q.push_back(2).unwrap();
    /// assert_eq!(q.iter().copied().collect::<Vec<_>>(), [1, 2]);
    /// ```
    pub fn iter(&self) -> Iter<'_, T, N> {
        Iter {
            buf: &self.buf,
            head: self.head,
            len: self.len,
        }
    }

    /// Removes the items front to back, yielding them by value.
    ///
    /// The queue is empty once the returned iterator is dropped, even if it
    /// was not consumed: the remaining items are dropped with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use wshub::__private::util::RingQueue;
    ///
    /// let mut q: RingQueue<u8, 4> = RingQueue::new();
    /// q.push_back(1).unwrap();
    /// q.push_back(2).unwrap();
    /// q.push_back(3).unwrap();
    /// assert_eq!(q.drain().next(), Some(1));
    /// assert!(q.is_empty());
    /// ```
    pub fn drain(&mut self) -> Drain<'_, T, N> {
        Drain { queue: self }
    }

    /// Maps a logical position in `0..2N` onto the buffer. Cheaper than `%`
    /// for capacities that are not powers of two.
    #[inline]
    fn wrap(index: usize) -> usize {
        if index >= N { index - N } else { index }
    }
}

// Kept for clippy's `new_without_default`: `new` is reachable from outside.
impl<T, const N: usize> Default for RingQueue<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Shows the length, the capacity and the items from front to back.
impl<T: fmt::Debug, const N: usize> fmt::Debug for RingQueue<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A `DebugList` adapter keeps `{:#?}` pretty-printing working.
        struct Items<'a, T, const N: usize>(&'a RingQueue<T, N>);
        impl<T: fmt::Debug, const N: usize> fmt::Debug for Items<'_, T, N> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.iter()).finish()
            }
        }
        f.debug_struct("RingQueue")
            .field("len", &self.len)
            .field("capacity", &N)
            .field("items", &Items(self))
            .finish()
    }
}

/// Iterator over the items of a [`RingQueue`], front to back.
///
/// Created by [`RingQueue::iter`].
///
/// # Examples
///
/// ```
/// use wshub::__private::util::RingQueue;
///
/// let mut q: RingQueue<u8, 4> = RingQueue::new();
/// q.push_back(1).unwrap();
/// q.push_back(2).unwrap();
/// let mut it = q.iter();
/// assert_eq!(it.len(), 2);
/// assert_eq!(it.next(), Some(&1));
/// ```
pub struct Iter<'a, T, const N: usize> {
    buf: &'a [Option<T>; N],
    head: usize,
    len: usize,
}

// Not derived: that would needlessly require `T: Clone`.
impl<T, const N: usize> Clone for Iter<'_, T, N> {
    fn clone(&self) -> Self {
        Self { ..*self }
    }
}

impl<'a, T, const N: usize> Iterator for Iter<'a, T, N> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        if self.len == 0 {
            return None;
        }
        let item = self.buf[self.head].as_ref();
        self.head = RingQueue::<T, N>::wrap(self.head + 1);
        self.len -= 1;
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl<T, const N: usize> ExactSizeIterator for Iter<'_, T, N> {}
impl<T, const N: usize> FusedIterator for Iter<'_, T, N> {}

impl<T: fmt::Debug, const N: usize> fmt::Debug for Iter<'_, T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// Draining iterator over a [`RingQueue`], front to back.
///
/// Created by [`RingQueue::drain`]. Dropping it drops any items not yet
/// yielded, leaving the queue empty.
///
/// # Examples
///
/// ```
/// use wshub::__private::util::RingQueue;
///
/// let mut q: RingQueue<u8, 4> = RingQueue::new();
/// q.push_back(1).unwrap();
/// q.push_back(2).unwrap();
/// assert_eq!(q.drain().collect::<Vec<_>>(), [1, 2]);
/// ```
pub struct Drain<'a, T, const N: usize> {
    queue: &'a mut RingQueue<T, N>,
}

impl<T, const N: usize> Iterator for Drain<'_, T, N> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.queue.pop_front()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.queue.len, Some(self.queue.len))
    }
}

impl<T, const N: usize> ExactSizeIterator for Drain<'_, T, N> {}
impl<T, const N: usize> FusedIterator for Drain<'_, T, N> {}

impl<T, const N: usize> Drop for Drain<'_, T, N> {
    fn drop(&mut self) {
        // One at a time rather than overwriting the array: O(len), not O(N),
        // and the invariant holds even if an item's destructor panics.
        while self.queue.pop_front().is_some() {}
    }
}

impl<T: fmt::Debug, const N: usize> fmt::Debug for Drain<'_, T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Drain").field(&*self.queue).finish()
    }
}

#[cfg(test)]
mod tests;
