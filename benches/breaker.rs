//! Overhead of a closed circuit breaker and of a bulkhead slot, on one thread and on two threads sharing one instance,
//! against a bare call and the crates users would pick instead.
//!
//! The two-thread cases report wall time per call *per thread*: equal to the one-thread time when the instance scales
//! perfectly, twice it when the threads serialise. Throughput of two threads relative to one is `2 x t1 / t2`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use adk_runtime::bulkhead::BulkheadPolicy;
use adk_runtime::circuit_breaker::{self, CircuitBreakerConfig, CircuitBreakerPolicy, Record, Window};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use tower::{Service, ServiceExt as _};

static BREAKER: CircuitBreakerPolicy =
    CircuitBreakerPolicy::new("bench", "benches/breaker.rs", CircuitBreakerConfig::new());
static TIMED_BREAKER: CircuitBreakerPolicy = CircuitBreakerPolicy::new(
    "bench-timed",
    "benches/breaker.rs",
    CircuitBreakerConfig::new().with_window(Window::Time(Duration::from_secs(60))),
);
static BULKHEAD: BulkheadPolicy = BulkheadPolicy::new("bench", "benches/breaker.rs", 64);

#[inline]
fn dependency() -> Result<u64, ()> {
    Ok(black_box(1))
}

fn judge(_: &()) -> Record {
    Record::Failure
}

/// Polls a future that completes without waiting.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the benchmarked futures never wait"),
    }
}

/// Runs `op` `iters` times on each of two new threads started together; the wall time of the slower. (New threads
/// take consecutive per-thread stripes in adk's breaker, as a runtime's workers do.)
fn on_two_threads(iters: u64, op: impl Fn() + Sync) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let run = || {
            barrier.wait();
            let start = Instant::now();
            for _ in 0..iters {
                op();
            }
            start.elapsed()
        };
        let threads = [scope.spawn(run), scope.spawn(run)];
        threads.map(|thread| thread.join().unwrap()).into_iter().max().unwrap()
    })
}

fn breaker(c: &mut Criterion) {
    let failsafe = failsafe::Config::new().build();
    let recloser = recloser::Recloser::default();
    let adk = || {
        let permit = BREAKER.acquire().unwrap();
        let result = dependency();
        permit.record(&result, judge);
        black_box(result).ok();
    };
    let adk_timed = || {
        let permit = TIMED_BREAKER.acquire().unwrap();
        let result = dependency();
        permit.record(&result, judge);
        black_box(result).ok();
    };
    let adk_run = || {
        black_box(ready(BREAKER.run(async { dependency() }, judge, |_| Err(())))).ok();
    };
    let adk_run_adk_error = || {
        let result: Result<u64, adk_runtime::Error> =
            ready(BREAKER.run(async { Ok(black_box(1)) }, circuit_breaker::by_class, Err));
        black_box(result).ok();
    };
    let failsafe_call = || {
        black_box(failsafe.call(dependency)).ok();
    };
    let recloser_call = || {
        black_box(recloser.call(dependency)).ok();
    };
    let bare = || {
        black_box(dependency()).ok();
    };
    let bare_async = || {
        black_box(ready(async { dependency() })).ok();
    };
    let cases: [(&str, &(dyn Fn() + Sync)); 8] = [
        ("bare call", &bare),
        ("bare call (async)", &bare_async),
        ("adk", &adk),
        ("adk run (async)", &adk_run),
        ("adk run (async), Result<_, adk::Error>", &adk_run_adk_error),
        ("adk, 60 s time window", &adk_timed),
        ("failsafe", &failsafe_call),
        ("recloser", &recloser_call),
    ];

    let mut group = c.benchmark_group("closed breaker, success");
    for (name, op) in cases {
        group.bench_function(BenchmarkId::new(name, "1 thread"), |b| b.iter(op));
        group.bench_function(BenchmarkId::new(name, "2 threads"), |b| b.iter_custom(|iters| on_two_threads(iters, op)));
    }
    group.finish();
}

fn bulkhead(c: &mut Criterion) {
    let semaphore = tokio::sync::Semaphore::new(64);
    let adk = || {
        let permit = BULKHEAD.bulkhead().try_acquire().unwrap();
        black_box(dependency()).ok();
        drop(permit);
    };
    let adk_run = || {
        black_box(ready(BULKHEAD.run(async { dependency() }, |_| Err(())))).ok();
    };
    let tokio_semaphore = || {
        let permit = semaphore.try_acquire().unwrap();
        black_box(dependency()).ok();
        drop(permit);
    };
    let bare = || {
        black_box(dependency()).ok();
    };
    let bare_async = || {
        black_box(ready(async { dependency() })).ok();
    };
    let cases: [(&str, &(dyn Fn() + Sync)); 5] = [
        ("bare call", &bare),
        ("bare call (async)", &bare_async),
        ("adk", &adk),
        ("adk run (async)", &adk_run),
        ("tokio Semaphore::try_acquire", &tokio_semaphore),
    ];

    let mut group = c.benchmark_group("bulkhead, acquire and release");
    for (name, op) in cases {
        group.bench_function(BenchmarkId::new(name, "1 thread"), |b| b.iter(op));
        group.bench_function(BenchmarkId::new(name, "2 threads"), |b| b.iter_custom(|iters| on_two_threads(iters, op)));
    }

    // tower's ConcurrencyLimit needs `&mut` access to its service, so each thread drives its own clone.
    let limited = tower::limit::ConcurrencyLimit::new(tower::service_fn(|()| async { dependency() }), 64);
    let tower_call = |service: &mut tower::limit::ConcurrencyLimit<_>| {
        let ready_service = ready(service.ready()).unwrap();
        black_box(ready(ready_service.call(()))).ok();
    };
    group.bench_function(BenchmarkId::new("tower ConcurrencyLimit", "1 thread"), |b| {
        let mut service = limited.clone();
        b.iter(|| tower_call(&mut service))
    });
    group.bench_function(BenchmarkId::new("tower ConcurrencyLimit", "2 threads"), |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(2);
            std::thread::scope(|scope| {
                let run = || {
                    let mut service = limited.clone();
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        tower_call(&mut service);
                    }
                    start.elapsed()
                };
                let threads = [scope.spawn(run), scope.spawn(run)];
                threads.map(|thread| thread.join().unwrap()).into_iter().max().unwrap()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, breaker, bulkhead);
criterion_main!(benches);
