//! Happy-path overhead (success on the first try) of #[retry], #[timeout] and #[fallback], against a bare call and
//! against what a user would otherwise write: backon's retry and `tokio::time::timeout`.
//!
//! Each sample runs `iters` calls inside one `block_on`, so the runtime's own cost is not part of the per-call time.

use std::hint::black_box;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use criterion::{Criterion, criterion_group, criterion_main};

#[derive(Debug)]
enum BenchError {
    #[allow(dead_code)]
    Failed,
    #[allow(dead_code)]
    Adk(adk::Error),
}

impl From<adk::Error> for BenchError {
    fn from(e: adk::Error) -> Self {
        BenchError::Adk(e)
    }
}

impl adk::Classify for BenchError {}

#[inline(never)]
async fn bare(x: u64) -> Result<u64, BenchError> {
    Ok(black_box(x) + 1)
}

#[adk::retry(attempts = 3, jitter)]
#[inline(never)]
async fn with_retry(x: u64) -> Result<u64, BenchError> {
    Ok(black_box(x) + 1)
}

#[adk::timeout("2s")]
#[inline(never)]
async fn with_timeout(x: u64) -> Result<u64, BenchError> {
    Ok(black_box(x) + 1)
}

#[inline(never)]
async fn hand_timeout(x: u64) -> Result<u64, BenchError> {
    match tokio::time::timeout(Duration::from_secs(2), async { Ok(black_box(x) + 1) }).await {
        Ok(r) => r,
        Err(_) => Err(BenchError::Adk(adk::Error::timeout(Duration::from_secs(2)))),
    }
}

async fn alternative(x: u64) -> Result<u64, BenchError> {
    Ok(x)
}

#[adk::fallback(alternative)]
#[inline(never)]
async fn with_fallback(x: u64) -> Result<u64, BenchError> {
    Ok(black_box(x) + 1)
}

fn per_call<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, f: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<u64, BenchError>>,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            black_box(f(i).await.ok());
        }
        start.elapsed()
    })
}

fn happy_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let mut group = c.benchmark_group("happy_path");
    group.bench_function("bare call", |b| b.iter_custom(|n| per_call(&rt, n, bare)));
    group.bench_function("#[adk::retry]", |b| b.iter_custom(|n| per_call(&rt, n, with_retry)));
    group.bench_function("backon retry", |b| {
        b.iter_custom(|n| {
            per_call(&rt, n, |x| (move || bare(x)).retry(ExponentialBuilder::default().with_max_times(2).with_jitter()))
        })
    });
    group.bench_function("#[adk::fallback]", |b| b.iter_custom(|n| per_call(&rt, n, with_fallback)));
    group.bench_function("#[adk::timeout]", |b| b.iter_custom(|n| per_call(&rt, n, with_timeout)));
    group.bench_function("tokio::time::timeout", |b| b.iter_custom(|n| per_call(&rt, n, hand_timeout)));
    group.finish();
}

criterion_group!(benches, happy_path);
criterion_main!(benches);
