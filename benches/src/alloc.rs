//! The bench binary's global allocator: mimalloc with two counters (calls
//! and live bytes), so in-process scenarios can report heap growth and
//! allocations per operation, and live allocations by requested size.
//! A few relaxed atomic adds per call.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// mimalloc wrapped with counters.
pub struct Counting;

static CALLS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);

/// Allocations at or above this size share the last size slot.
pub const EXACT_SIZES: usize = 8192;
/// Live allocations per exact requested size (last slot: all larger ones).
static LIVE_BY_SIZE: [AtomicI64; EXACT_SIZES + 1] = [const { AtomicI64::new(0) }; EXACT_SIZES + 1];
/// Live bytes of the allocations of the last slot.
static LIVE_LARGE_BYTES: AtomicI64 = AtomicI64::new(0);

fn track(size: usize, delta: i64) {
    LIVE_BY_SIZE[size.min(EXACT_SIZES)].fetch_add(delta, Ordering::Relaxed);
    if size >= EXACT_SIZES {
        LIVE_LARGE_BYTES.fetch_add(delta * size as i64, Ordering::Relaxed);
    }
}

/// A snapshot of live allocations by requested size.
#[derive(Clone)]
pub struct BySize {
    /// Live allocation count per size (index = size; last = larger).
    pub counts: Vec<i64>,
    /// Live bytes in allocations of [`EXACT_SIZES`] bytes or more.
    pub large_bytes: i64,
}

/// Live allocations by requested size, now.
pub fn by_size() -> BySize {
    BySize {
        counts: LIVE_BY_SIZE
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect(),
        large_bytes: LIVE_LARGE_BYTES.load(Ordering::Relaxed),
    }
}

impl BySize {
    /// What grew from `earlier` to `self`: (size, extra live allocations,
    /// extra bytes), largest byte growth first; the last slot's size is
    /// reported as [`EXACT_SIZES`] with its true bytes.
    pub fn growth_since(&self, earlier: &BySize) -> Vec<(usize, i64, i64)> {
        let mut v: Vec<(usize, i64, i64)> = self
            .counts
            .iter()
            .zip(&earlier.counts)
            .enumerate()
            .filter_map(|(size, (a, b))| {
                let d = a - b;
                if d == 0 {
                    return None;
                }
                let bytes = if size == EXACT_SIZES {
                    self.large_bytes - earlier.large_bytes
                } else {
                    d * size as i64
                };
                Some((size, d, bytes))
            })
            .collect();
        v.sort_by_key(|&(_, _, b)| std::cmp::Reverse(b));
        v
    }
}

/// Allocation calls (alloc, alloc_zeroed, realloc) since start.
pub fn calls() -> u64 {
    CALLS.load(Ordering::Relaxed)
}

/// Bytes currently allocated (requested sizes, not the allocator's slack).
pub fn live_bytes() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

// SAFETY: every call is forwarded unchanged to mimalloc, which upholds the
// `GlobalAlloc` contract; the counters have no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        track(layout.size(), 1);
        // SAFETY: forwarded with the caller's layout.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        track(layout.size(), 1);
        // SAFETY: forwarded with the caller's layout.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        track(layout.size(), -1);
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        track(layout.size(), -1);
        track(new_size, 1);
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}
