//! A counting allocator for the no-allocation-per-packet tests (STYLE practice 8): it
//! forwards to the system allocator and, while [`ARMED`], counts in [`ALLOCS`] the
//! allocations made on data-plane worker threads (flagged by [`mark_worker`] through
//! `DataplaneConfig::on_worker_start`).
//!
//! A binary that wants it declares it itself, so the binaries that include this module
//! without wanting it keep the system allocator:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: common::counting::Counting = common::counting::Counting;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use portcullis_dataplane::WorkerId;

/// The allocator: the system's, counting.
pub struct Counting;

/// Whether worker allocations are counted now.
pub static ARMED: AtomicBool = AtomicBool::new(false);
/// Worker allocations counted while armed.
pub static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if ARMED.load(Ordering::Relaxed) && IS_WORKER.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

/// `DataplaneConfig::on_worker_start`: flags the calling thread as a worker.
pub fn mark_worker(_: WorkerId) {
    IS_WORKER.with(|f| f.set(true));
}
