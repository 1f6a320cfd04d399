//! The allowed path of adk's rate limiter against governor's, on one instance: a single (keyless) limiter, and keyed
//! limiters over 1,000 and 1,000,000 keys, from one thread and from two. Also prints the memory a million idle keys
//! hold, counted by a counting allocator, before and after they are evicted.
//!
//! adk reads tokio's clock (so paused-time tests step through it), which outside a paused test is the operating
//! system's monotonic clock; governor's default is a TSC clock (quanta). `governor_std_clock` is governor on the same
//! clock as adk, which isolates the algorithm and storage from the clock read.
//!
//! `adk_backend_trait` is the same keyed decision made through the `rate_limit::Backend` trait (`RateLimiter::decide`,
//! the future polled once), the path a limiter over another backend takes, here over the memory backend.
//!
//! Every call is admitted: one per second with a burst of a billion, the same quota for both. Each call pushes its
//! key's state a second ahead, further than the time between two calls on one key, so no key goes idle and every
//! call takes the known-key path.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use adk::runtime::rate_limit::{Quota, RateLimiter, Start};
use criterion::{BenchmarkId, Criterion, criterion_group};
use governor::clock::MonotonicClock;

struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers every operation to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            ALLOCATED.fetch_add(layout.size() as isize, Relaxed);
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
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BURST: u32 = 1_000_000_000;

fn adk() -> std::sync::Arc<RateLimiter> {
    RateLimiter::new("bench", Quota::per_second(1).with_burst(u64::from(BURST)))
}

fn governor_quota() -> governor::Quota {
    governor::Quota::per_second(NonZeroU32::new(1).unwrap()).allow_burst(NonZeroU32::new(BURST).unwrap())
}

/// Runs `op` `iters` times on each of `threads` threads at once; the time for one call on every thread.
fn on_threads(threads: u64, iters: u64, op: impl Fn(u64) + Sync) -> Duration {
    if threads == 1 {
        let start = Instant::now();
        for i in 0..iters {
            op(i);
        }
        return start.elapsed();
    }
    let start = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let op = &op;
            scope.spawn(move || {
                for i in 0..iters {
                    op(i.wrapping_add(thread * 500_009));
                }
            });
        }
    });
    start.elapsed()
}

fn single(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit/single");
    for threads in [1, 2] {
        let id = |name| BenchmarkId::new(name, format!("{threads}_thread"));
        let limiter = adk();
        group.bench_function(id("adk"), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, |_| assert!(black_box(limiter.check()).is_ok())))
        });
        let governor = governor::RateLimiter::direct(governor_quota());
        group.bench_function(id("governor"), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, |_| assert!(black_box(governor.check()).is_ok())))
        });
        let governor = governor::RateLimiter::direct_with_clock(governor_quota(), MonotonicClock);
        group.bench_function(id("governor_std_clock"), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, |_| assert!(black_box(governor.check()).is_ok())))
        });
    }
    group.finish();
}

fn keyed(c: &mut Criterion, keys: u64, label: &str) {
    let mut group = c.benchmark_group(format!("rate_limit/keyed_{label}"));
    let limiter = adk();
    let governor = governor::RateLimiter::keyed(governor_quota());
    let governor_std = governor::RateLimiter::dashmap_with_clock(governor_quota(), MonotonicClock);
    for key in 0..keys {
        limiter.check_key(&key).unwrap();
        governor.check_key(&key).unwrap();
        governor_std.check_key(&key).unwrap();
    }
    for threads in [1, 2] {
        let id = |name| BenchmarkId::new(name, format!("{threads}_thread"));
        group.bench_function(id("adk"), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |i| assert!(black_box(limiter.check_key(&(i % keys))).is_ok()))
            })
        });
        group.bench_function(id("adk_backend_trait"), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, |i| assert!(decide_through_trait(&limiter, i % keys))))
        });
        group.bench_function(id("governor"), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |i| assert!(black_box(governor.check_key(&(i % keys))).is_ok()))
            })
        });
        group.bench_function(id("governor_std_clock"), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, |i| assert!(black_box(governor_std.check_key(&(i % keys))).is_ok()))
            })
        });
    }
    group.finish();
}

/// One decision through the backend trait; the memory backend's future is ready on its first poll.
fn decide_through_trait(limiter: &RateLimiter, key: u64) -> bool {
    let decision = pin!(limiter.decide(Some(&key), 1, Start::Immediately));
    match decision.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(verdict)) => black_box(verdict).is_admitted(),
        Poll::Pending => unreachable!("the memory backend never waits"),
    }
}

fn keyed_1k(c: &mut Criterion) {
    keyed(c, 1_000, "1k");
}

fn keyed_1m(c: &mut Criterion) {
    keyed(c, 1_000_000, "1m");
}

/// Bytes held by a million idle keys, and after they have refilled and been evicted.
fn memory() {
    const KEYS: u64 = 1_000_000;
    let mb = |bytes: isize| bytes as f64 / (1 << 20) as f64;
    // One call per second per key: a key's state lasts one second.
    let quota = Quota::per_second(1).with_burst(1);
    let governor_quota = governor::Quota::per_second(NonZeroU32::new(1).unwrap());

    let before = ALLOCATED.load(Relaxed);
    let limiter = RateLimiter::new("bench-memory", quota);
    for key in 0..KEYS {
        limiter.check_key(&key).unwrap();
    }
    let held = ALLOCATED.load(Relaxed) - before;
    // Calls for one other key keep coming; they sweep the idle keys out (a full cycle takes one second).
    let until = Instant::now() + Duration::from_millis(2_500);
    while Instant::now() < until {
        let _ = limiter.check_key(&u64::MAX);
        std::thread::sleep(Duration::from_millis(1));
    }
    let after = ALLOCATED.load(Relaxed) - before;
    println!(
        "memory/adk/u64 keys: {KEYS} idle keys hold {:.1} MB; {:.3} MB after eviction by the limiter itself ({} keys \
         left)",
        mb(held),
        mb(after),
        limiter.keys()
    );
    drop(limiter);

    let before = ALLOCATED.load(Relaxed);
    let limiter = RateLimiter::new("bench-memory-strings", quota);
    for key in 0..KEYS {
        limiter.check_key(&format!("user-{key}")).unwrap();
    }
    println!("memory/adk/String keys: {KEYS} idle keys hold {:.1} MB", mb(ALLOCATED.load(Relaxed) - before));
    drop(limiter);

    let before = ALLOCATED.load(Relaxed);
    let governor = governor::RateLimiter::keyed(governor_quota);
    for key in 0..KEYS {
        governor.check_key(&key).unwrap();
    }
    let held = ALLOCATED.load(Relaxed) - before;
    std::thread::sleep(Duration::from_millis(1_100));
    let untouched = ALLOCATED.load(Relaxed) - before;
    governor.retain_recent();
    governor.shrink_to_fit();
    let after = ALLOCATED.load(Relaxed) - before;
    println!(
        "memory/governor/u64 keys: {KEYS} idle keys hold {:.1} MB; {:.1} MB a second later without a user call, \
         {:.3} MB after retain_recent + shrink_to_fit",
        mb(held),
        mb(untouched),
        mb(after)
    );
    drop(governor);

    let before = ALLOCATED.load(Relaxed);
    let governor = governor::RateLimiter::keyed(governor_quota);
    for key in 0..KEYS {
        governor.check_key(&format!("user-{key}")).unwrap();
    }
    println!("memory/governor/String keys: {KEYS} idle keys hold {:.1} MB", mb(ALLOCATED.load(Relaxed) - before));
}

criterion_group!(benches, single, keyed_1k, keyed_1m);

fn main() {
    memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
