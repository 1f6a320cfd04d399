//! Per-call cost of `#[observed]` with no subscriber installed: the expansion's shape (a span from the caller's crate,
//! the runtime's start/finish) against the same function bare, against what users write by hand with `tracing` and
//! `prometheus` (handles resolved once), and against the common hand-written form that looks labels up per call.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use adk_runtime::observed::ObservedFn;
use criterion::{Criterion, criterion_group, criterion_main};
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

/// Polls a future that completes at once, without a runtime in the measurement.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the benchmarked futures never wait"),
    }
}

async fn bare(x: u64) -> Result<u64, String> {
    Ok(x)
}

/// The attribute itself (records `x`, as `#[instrument]` does below).
#[adk::observed]
async fn adk_observed(x: u64) -> Result<u64, String> {
    Ok(x)
}

struct Families {
    calls: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| Families {
    calls: IntCounterVec::new(Opts::new("calls_total", "calls"), &["function", "outcome"]).unwrap(),
    duration: HistogramVec::new(
        HistogramOpts::new("call_duration_seconds", "duration")
            .buckets(adk_runtime::metrics::DURATION_BUCKETS.to_vec()),
        &["function"],
    )
    .unwrap(),
    in_flight: IntGaugeVec::new(Opts::new("calls_in_flight", "in flight"), &["function"]).unwrap(),
});

/// By hand, done well: `#[instrument]` and handles resolved once.
#[tracing::instrument]
async fn by_hand(x: u64) -> Result<u64, String> {
    static HANDLES: LazyLock<(IntCounter, IntCounter, Histogram, IntGauge)> = LazyLock::new(|| {
        (
            FAMILIES.calls.with_label_values(&["by_hand", "ok"]),
            FAMILIES.calls.with_label_values(&["by_hand", "error"]),
            FAMILIES.duration.with_label_values(&["by_hand"]),
            FAMILIES.in_flight.with_label_values(&["by_hand"]),
        )
    });
    let (ok, error, duration, in_flight) = &*HANDLES;
    in_flight.inc();
    let started = Instant::now();
    let result = async { Ok(x) }.await;
    duration.observe(started.elapsed().as_secs_f64());
    if result.is_ok() { ok } else { error }.inc();
    in_flight.dec();
    result
}

/// By hand, as often seen: labels looked up on every call.
#[tracing::instrument]
async fn by_hand_lookup(x: u64) -> Result<u64, String> {
    FAMILIES.in_flight.with_label_values(&["by_hand_lookup"]).inc();
    let started = Instant::now();
    let result = async { Ok(x) }.await;
    FAMILIES.duration.with_label_values(&["by_hand_lookup"]).observe(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    FAMILIES.calls.with_label_values(&["by_hand_lookup", outcome]).inc();
    FAMILIES.in_flight.with_label_values(&["by_hand_lookup"]).dec();
    result
}

fn observed(c: &mut Criterion) {
    static RAW: ObservedFn = ObservedFn::new("bench::raw", "benches/observed.rs:2");
    let mut group = c.benchmark_group("observed");
    group.bench_function("bare", |b| b.iter(|| ready(bare(black_box(7)))));
    group.bench_function("adk_start_finish", |b| {
        b.iter(|| {
            let call = RAW.start();
            call.finish(black_box(&Ok::<u64, String>(7)));
        })
    });
    group.bench_function("adk_observed", |b| b.iter(|| ready(adk_observed(black_box(7)))));
    group.bench_function("by_hand_instrument_prometheus", |b| b.iter(|| ready(by_hand(black_box(7)))));
    group.bench_function("by_hand_lookup_per_call", |b| b.iter(|| ready(by_hand_lookup(black_box(7)))));
    group.finish();

    // The same calls with a JSON subscriber formatting every span and event into a sink.
    let subscriber = tracing_subscriber::fmt().json().with_writer(std::io::sink).finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let mut group = c.benchmark_group("observed_json_subscriber");
    group.bench_function("bare", |b| b.iter(|| ready(bare(black_box(7)))));
    group.bench_function("adk_observed", |b| b.iter(|| ready(adk_observed(black_box(7)))));
    group.bench_function("by_hand_instrument_prometheus", |b| b.iter(|| ready(by_hand(black_box(7)))));
    group.finish();
}

criterion_group!(benches, observed);
criterion_main!(benches);
