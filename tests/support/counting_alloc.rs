//! A global allocator for tests that counts, exactly, the allocations and the
//! live heap bytes of the threads that switch it on. Include it with
//! `#[path = "support/counting_alloc.rs"] mod counting_alloc;` and register
//! `counting_alloc::Counting` as the `#[global_allocator]`.
//!
//! [`measure_traced`] also says where each allocation still live at the end
//! was made (a backtrace per allocation: slow, for memory breakdowns only).
#![allow(dead_code)] // each test crate uses part of it

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

pub struct Counting;

/// Live allocations while tracing: address -> (size, where it was made).
type Trace = HashMap<usize, (usize, Backtrace)>;

thread_local! {
    // Per thread, so that tests measuring at the same time in one test
    // binary never count each other's allocations.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
    static ON_HERE: Cell<bool> = const { Cell::new(false) };
    /// Inside the tracing bookkeeping, whose own allocations are not counted.
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
    static TRACE: RefCell<Option<Trace>> = const { RefCell::new(None) };
}

fn bump(counter: &'static std::thread::LocalKey<Cell<u64>>, n: u64) {
    let _ = counter.try_with(|c| c.set(c.get() + n));
}

fn bump_bytes(n: i64) {
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + n));
}

fn on() -> bool {
    ON_HERE.try_with(Cell::get).unwrap_or(false) && !IN_TRACE.try_with(Cell::get).unwrap_or(true)
}

/// Runs `f` on the trace, if this thread is tracing, with counting off.
fn with_trace(f: impl FnOnce(&mut Trace)) {
    let _ = IN_TRACE.try_with(|busy| {
        busy.set(true);
        let _ = TRACE.try_with(|t| {
            if let Some(trace) = t.borrow_mut().as_mut() {
                f(trace);
            }
        });
        busy.set(false);
    });
}

fn traced(ptr: *mut u8, size: usize) {
    if !ptr.is_null() {
        with_trace(|t| {
            t.insert(ptr as usize, (size, Backtrace::force_capture()));
        });
    }
}

fn untraced(ptr: *mut u8) {
    with_trace(|t| {
        t.remove(&(ptr as usize));
    });
}

// SAFETY: forwards every call to the system allocator unchanged; it only
// counts. (Tests may use `unsafe`; the library forbids it.)
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if on() {
            bump(&ALLOCATIONS, 1);
            bump_bytes(layout.size() as i64);
            traced(ptr, layout.size());
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if on() {
            bump_bytes(-(layout.size() as i64));
            untraced(ptr);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if on() {
            bump(&ALLOCATIONS, 1);
            bump_bytes(new_size as i64 - layout.size() as i64);
            if !new.is_null() {
                untraced(ptr);
                traced(new, new_size);
            }
        }
        new
    }
}

/// What this thread allocated while `f` ran: (allocations, net live bytes).
pub fn measure(f: impl FnOnce()) -> (u64, i64) {
    let (count, bytes) = (ALLOCATIONS.with(Cell::get), LIVE_BYTES.with(Cell::get));
    ON_HERE.with(|c| c.set(true));
    f();
    ON_HERE.with(|c| c.set(false));
    (
        ALLOCATIONS.with(Cell::get) - count,
        LIVE_BYTES.with(Cell::get) - bytes,
    )
}

/// Like [`measure`], and the allocations made while `f` ran that are still
/// live after it, as (size, backtrace of where each was made).
pub fn measure_traced(f: impl FnOnce()) -> (u64, i64, Vec<(usize, Backtrace)>) {
    TRACE.with(|t| *t.borrow_mut() = Some(HashMap::new()));
    let (count, bytes) = measure(f);
    let trace = TRACE.with(|t| t.borrow_mut().take()).unwrap_or_default();
    (count, bytes, trace.into_values().collect())
}
