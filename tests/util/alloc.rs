//! A counting global allocator for the allocation tests: each test binary that wants it
//! declares `#[global_allocator] static GLOBAL: util::alloc::Counting = util::alloc::Counting;`
//! and switches counting on for the threads it watches.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Forwards to the system allocator, counting allocations made on counting threads.
pub struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    /// Bytes this thread allocated and freed while counting, the difference.
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

/// Bytes the calling thread allocated and did not free while it was counting.
pub fn live_bytes() -> i64 {
    LIVE.with(Cell::get)
}

fn live(delta: i64) {
    if COUNTING.with(|c| c.get()) {
        LIVE.with(|l| l.set(l.get() + delta));
    }
}
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

/// Counts (or stops counting) allocations made on the calling thread.
pub fn count_this_thread(on: bool) {
    COUNTING.with(|c| c.set(on));
}

/// Allocations counted so far, on every counting thread.
pub fn allocations() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

fn tally() {
    if COUNTING.with(|c| c.get()) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        tally();
        live(l.size() as i64);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        live(-(l.size() as i64));
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        tally();
        live(n as i64 - l.size() as i64);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}
