//! A global allocator for tests that counts, exactly, the allocations and the
//! live heap bytes of the threads that switch it on. Include it with
//! `#[path = "support/counting_alloc.rs"] mod counting_alloc;` and register
//! `counting_alloc::Counting` as the `#[global_allocator]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static ON_HERE: Cell<bool> = const { Cell::new(false) };
}

fn on() -> bool {
    ON_HERE.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards every call to the system allocator unchanged; it only
// counts. (Tests may use `unsafe`; the library forbids it.)
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if on() {
            LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if on() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What this thread allocated while `f` ran: (allocations, net live bytes).
pub fn measure(f: impl FnOnce()) -> (u64, i64) {
    let (count, bytes) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        LIVE_BYTES.load(Ordering::Relaxed),
    );
    ON_HERE.with(|c| c.set(true));
    f();
    ON_HERE.with(|c| c.set(false));
    (
        ALLOCATIONS.load(Ordering::Relaxed) - count,
        LIVE_BYTES.load(Ordering::Relaxed) - bytes,
    )
}
