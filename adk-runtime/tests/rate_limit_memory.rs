//! A keyed limiter's memory, counted byte by byte: a million idle keys fit in 64 MB, and the limiter gives the memory
//! back by itself once the keys have refilled. Its own test binary, so no other test allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Duration;

use adk_runtime::rate_limit::{Quota, RateLimiter};

struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers every operation to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            ALLOCATED.fetch_add(layout.size() as isize, Relaxed);
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size() as isize, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            ALLOCATED.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn a_million_idle_keys_fit_in_64_mb_and_the_limiter_gives_them_back() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    runtime.block_on(async {
        let limiter = RateLimiter::new("memory", Quota::per_second(10));
        limiter.check_key(&0u64).unwrap();
        let before = ALLOCATED.load(Relaxed);
        for user in 1..=1_000_000u64 {
            limiter.check_key(&user).unwrap();
        }
        let held = ALLOCATED.load(Relaxed) - before;
        assert_eq!(limiter.keys(), 1_000_001);
        assert!(held < 64 << 20, "a million keys hold {} MB", held >> 20);

        let allocations = ALLOCATIONS.load(Relaxed);
        for user in (1..=1_000_000u64).step_by(1_000) {
            limiter.check_key(&user).unwrap();
        }
        assert_eq!(ALLOCATIONS.load(Relaxed), allocations, "calls on known keys allocate nothing");

        // Every key but one goes quiet; the calls of the one that stays sweep the others out.
        for _ in 0..200 {
            tokio::time::advance(Duration::from_millis(20)).await;
            let _ = limiter.check_key(&0u64);
        }
        let left = ALLOCATED.load(Relaxed) - before;
        assert!(limiter.keys() <= 1, "{} keys left", limiter.keys());
        assert!(left < 64 << 10, "{left} bytes left of {held}");
    });
}
