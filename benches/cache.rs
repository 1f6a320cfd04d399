//! `#[cached]`'s runtime against the caches users would otherwise reach for: a direct `quick_cache` and `moka` get,
//! and the `cached` crate's `#[cached]` functions. Keys are `u64` and values `Arc<str>`, so the numbers are the caches'
//! own cost rather than the cost of building keys or cloning values.
//!
//! - `hit`: the key is present.
//! - `miss`: a new key every iteration (the body answers at once), so the table fills and then evicts.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use adk::runtime::cache::{CachePolicy, OkValues, Outputs};
use cached::macros::cached;
use criterion::{Criterion, criterion_group, criterion_main};

const CAPACITY: u64 = 10_000;
const TTL: Duration = Duration::from_secs(300);

static PLAIN: CachePolicy = CachePolicy::new("bench::plain", "benches/cache.rs").with_max_entries(CAPACITY);
static WITH_TTL: CachePolicy =
    CachePolicy::new("bench::ttl", "benches/cache.rs").with_max_entries(CAPACITY).with_ttl(TTL);
static WITH_TTL_TTI: CachePolicy = CachePolicy::new("bench::ttl_tti", "benches/cache.rs")
    .with_max_entries(CAPACITY)
    .with_ttl(TTL)
    .with_tti(Duration::from_secs(60));

fn value() -> Arc<str> {
    Arc::from("sunny")
}

#[cached(max_size = 10_000)]
fn cached_sized(key: u64) -> Arc<str> {
    let _ = key;
    value()
}

#[cached(max_size = 10_000, ttl = 300)]
fn cached_timed_sized(key: u64) -> Arc<str> {
    let _ = key;
    value()
}

/// Polls a future that completes without waiting (every cache path here does), without a runtime's overhead.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmarked path waited"),
    }
}

fn adk_async(policy: &'static CachePolicy, key: u64) -> Arc<str> {
    let output: Result<Arc<str>, ()> = ready(policy.get_or_run(key, async { Ok(value()) }, OkValues));
    output.unwrap()
}

fn hit(c: &mut Criterion) {
    let quick: quick_cache::sync::Cache<u64, Arc<str>> = quick_cache::sync::Cache::new(CAPACITY as usize);
    let moka: moka::sync::Cache<u64, Arc<str>> = moka::sync::Cache::builder().max_capacity(CAPACITY).build();
    let moka_ttl: moka::sync::Cache<u64, Arc<str>> =
        moka::sync::Cache::builder().max_capacity(CAPACITY).time_to_live(TTL).build();
    for key in 0..1_000 {
        quick.insert(key, value());
        moka.insert(key, value());
        moka_ttl.insert(key, value());
        adk_async(&PLAIN, key);
        adk_async(&WITH_TTL, key);
        adk_async(&WITH_TTL_TTI, key);
        cached_sized(key);
        cached_timed_sized(key);
    }
    moka.run_pending_tasks();
    moka_ttl.run_pending_tasks();
    let key = 7;

    let mut group = c.benchmark_group("hit");
    group.bench_function("adk_get_or_run", |b| b.iter(|| adk_async(&PLAIN, black_box(key))));
    group.bench_function("adk_get_or_run_ttl", |b| b.iter(|| adk_async(&WITH_TTL, black_box(key))));
    group.bench_function("adk_get_or_run_ttl_tti", |b| b.iter(|| adk_async(&WITH_TTL_TTI, black_box(key))));
    group.bench_function("adk_get_or_run_sync", |b| b.iter(|| PLAIN.get_or_run_sync(black_box(key), value, Outputs)));
    group.bench_function("quick_cache_get", |b| b.iter(|| quick.get(black_box(&key))));
    group.bench_function("moka_get", |b| b.iter(|| moka.get(black_box(&key))));
    group.bench_function("moka_get_ttl", |b| b.iter(|| moka_ttl.get(black_box(&key))));
    group.bench_function("cached_sized", |b| b.iter(|| cached_sized(black_box(key))));
    group.bench_function("cached_timed_sized", |b| b.iter(|| cached_timed_sized(black_box(key))));
    group.finish();
}

fn miss(c: &mut Criterion) {
    static MISS_PLAIN: CachePolicy =
        CachePolicy::new("bench::miss_plain", "benches/cache.rs").with_max_entries(CAPACITY);
    static MISS_TTL: CachePolicy =
        CachePolicy::new("bench::miss_ttl", "benches/cache.rs").with_max_entries(CAPACITY).with_ttl(TTL);
    static MISS_SYNC: CachePolicy = CachePolicy::new("bench::miss_sync", "benches/cache.rs").with_max_entries(CAPACITY);
    let quick: quick_cache::sync::Cache<u64, Arc<str>> = quick_cache::sync::Cache::new(CAPACITY as usize);
    let moka: moka::sync::Cache<u64, Arc<str>> = moka::sync::Cache::builder().max_capacity(CAPACITY).build();
    // Keys far from the hit benchmark's, and fresh in every iteration.
    let mut next = 1_u64 << 40;
    let mut fresh = move || {
        next += 1;
        next
    };

    let mut group = c.benchmark_group("miss");
    group.bench_function("adk_get_or_run", |b| b.iter(|| adk_async(&MISS_PLAIN, fresh())));
    group.bench_function("adk_get_or_run_ttl", |b| b.iter(|| adk_async(&MISS_TTL, fresh())));
    group.bench_function("adk_get_or_run_sync", |b| b.iter(|| MISS_SYNC.get_or_run_sync(fresh(), value, Outputs)));
    group.bench_function("quick_cache_get_insert", |b| {
        b.iter(|| {
            let key = fresh();
            quick.get(&key).unwrap_or_else(|| {
                let fetched = value();
                quick.insert(key, fetched.clone());
                fetched
            })
        })
    });
    group.bench_function("moka_get_insert", |b| {
        b.iter(|| {
            let key = fresh();
            moka.get(&key).unwrap_or_else(|| {
                let fetched = value();
                moka.insert(key, fetched.clone());
                fetched
            })
        })
    });
    group.bench_function("cached_sized", |b| b.iter(|| cached_sized(fresh())));
    group.bench_function("cached_timed_sized", |b| b.iter(|| cached_timed_sized(fresh())));
    group.finish();
}

criterion_group!(benches, hit, miss);
criterion_main!(benches);
