//! #[derive(adk::Classify)]: every attribute (classes on variants and containers, `source`, `retry_after`, the
//! `adk::Error` field found without a mark, `crate`), on enums, structs and generic types, and what `retry` and the
//! breaker make of the result.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use adk::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error, adk::Classify)]
enum AgentError {
    #[error("overloaded")]
    Overloaded,
    #[error("rejected")]
    #[adk(permanent)]
    Rejected,
    #[error("provider down")]
    #[adk(critical)]
    ProviderDown,
    #[error("busy")]
    #[adk(transient, retry_after = wait)]
    Busy { wait: Duration, reason: &'static str },
    #[error("maybe busy")]
    #[adk(retry_after = 1)]
    MaybeBusy(&'static str, Option<Duration>),
    #[error(transparent)]
    Io(
        #[from]
        #[adk(source)]
        std::io::Error,
    ),
    #[error(transparent)]
    #[adk(critical)]
    Storage(#[adk(source)] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Http(#[adk(source)] adk::HttpError),
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

#[test]
fn variants_say_their_class_and_the_container_default_is_transient() {
    assert_eq!(AgentError::Overloaded.class(), ErrorClass::Transient);
    assert_eq!(AgentError::Rejected.class(), ErrorClass::Permanent);
    assert_eq!(AgentError::ProviderDown.class(), ErrorClass::Critical);
    for e in [AgentError::Overloaded, AgentError::Rejected, AgentError::ProviderDown] {
        assert_eq!(e.retry_after(), None);
        assert!(e.adk_error().is_none());
    }
}

#[test]
fn retry_after_reads_a_duration_or_an_optional_one() {
    let busy = AgentError::Busy { wait: Duration::from_secs(3), reason: "queue" };
    assert_eq!((busy.class(), busy.retry_after()), (ErrorClass::Transient, Some(Duration::from_secs(3))));
    assert_eq!(
        AgentError::MaybeBusy("x", Some(Duration::from_millis(40))).retry_after(),
        Some(Duration::from_millis(40))
    );
    assert_eq!(AgentError::MaybeBusy("x", None).retry_after(), None);
}

#[test]
fn a_source_gives_class_hint_and_refusal_unless_the_variant_says_its_class() {
    let not_found = AgentError::from(std::io::Error::from(std::io::ErrorKind::NotFound));
    assert_eq!(not_found.class(), ErrorClass::Permanent);
    let reset = AgentError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    assert_eq!(reset.class(), ErrorClass::Transient);
    let limited_io =
        AgentError::from(std::io::Error::other(adk::Error::rate_limited("p", Duration::from_secs(2), 0, 0)));
    assert_eq!(limited_io.retry_after(), Some(Duration::from_secs(2)));
    assert!(matches!(limited_io.adk_error(), Some(adk::Error::RateLimited { .. })));

    let http = AgentError::Http(adk::HttpError::from_status(429).with_retry_after(Duration::from_secs(5)));
    assert_eq!((http.class(), http.retry_after()), (ErrorClass::Transient, Some(Duration::from_secs(5))));
    assert_eq!(AgentError::Http(adk::HttpError::from_status(401)).class(), ErrorClass::Permanent);

    // The variant's own class wins over the source's; the source still gives the hint and the refusal.
    let storage = AgentError::Storage(Box::new(adk::Error::circuit_open("disk", Duration::from_secs(1))));
    assert_eq!(storage.class(), ErrorClass::Critical);
    assert_eq!(storage.retry_after(), Some(Duration::from_secs(1)));
    assert!(storage.adk_error().is_some());
}

#[test]
fn an_adk_error_field_is_found_without_a_mark() {
    let limited = AgentError::from(adk::Error::rate_limited("openai", Duration::from_millis(700), 10, 0));
    assert_eq!(limited.class(), ErrorClass::Transient);
    assert_eq!(limited.retry_after(), Some(Duration::from_millis(700)));
    assert!(matches!(limited.adk_error(), Some(adk::Error::RateLimited { .. })));
    let too_big = AgentError::from(adk::Error::cost_above_limit("tokens", 10, 5));
    assert_eq!(too_big.class(), ErrorClass::Permanent);
}

#[derive(Debug, thiserror::Error, adk::Classify)]
#[adk(permanent)]
enum ValidationError {
    #[error("empty prompt")]
    Empty,
    #[error("too long")]
    TooLong,
    #[error("flaky validator")]
    #[adk(transient)]
    ValidatorDown,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

#[test]
fn the_container_class_is_the_default_of_its_variants() {
    assert_eq!(ValidationError::Empty.class(), ErrorClass::Permanent);
    assert_eq!(ValidationError::TooLong.class(), ErrorClass::Permanent);
    assert_eq!(ValidationError::ValidatorDown.class(), ErrorClass::Transient);
    // A wrapped refusal is classified as itself, not by the container's default.
    let timeout = ValidationError::from(adk::Error::timeout(Duration::from_secs(1)));
    assert_eq!(timeout.class(), ErrorClass::Transient);
}

#[derive(Debug, thiserror::Error, adk::Classify)]
#[error("quota exceeded")]
#[adk(retry_after = reset_in)]
struct QuotaError {
    reset_in: Option<Duration>,
}

#[derive(Debug, thiserror::Error, adk::Classify)]
#[error("security violation")]
#[adk(critical)]
struct SecurityViolation;

#[derive(Debug, thiserror::Error, adk::Classify)]
#[error("call failed: {0}")]
struct CallError(#[adk(source)] adk::HttpError, u32);

#[derive(Debug, thiserror::Error, adk::Classify)]
#[error("refused")]
struct Refusal {
    inner: adk::Error,
}

#[test]
fn structs_take_the_same_attributes() {
    let quota = QuotaError { reset_in: Some(Duration::from_secs(60)) };
    assert_eq!((quota.class(), quota.retry_after()), (ErrorClass::Transient, Some(Duration::from_secs(60))));
    assert_eq!(SecurityViolation.class(), ErrorClass::Critical);
    let call = CallError(adk::HttpError::from_status(503).with_retry_after(Duration::from_secs(1)), 3);
    assert_eq!((call.class(), call.retry_after()), (ErrorClass::Transient, Some(Duration::from_secs(1))));
    let refusal = Refusal { inner: adk::Error::bulkhead_full("db", 2) };
    assert!(matches!(refusal.adk_error(), Some(adk::Error::BulkheadFull { .. })));
}

/// A generic wrapper: the source's type parameter gets its `Classify` bound from the derive.
#[derive(Debug, adk::Classify)]
enum Layered<E> {
    Inner(#[adk(source)] E),
    #[adk(permanent)]
    Config,
}

#[test]
fn a_generic_source_is_bounded_and_delegated_to() {
    let inner: Layered<adk::HttpError> = Layered::Inner(adk::HttpError::from_status(404));
    assert_eq!(inner.class(), ErrorClass::Permanent);
    let inner: Layered<adk::HttpError> = Layered::Inner(adk::HttpError::from_status(502));
    assert_eq!(inner.class(), ErrorClass::Transient);
    assert_eq!(Layered::<std::io::Error>::Config.class(), ErrorClass::Permanent);
}

#[derive(Debug, adk::Classify)]
enum Never {}

#[test]
fn an_empty_enum_derives() {
    fn classified<E: Classify>() {}
    classified::<Never>();
}

mod renamed {
    extern crate adk as my_adk;

    #[derive(Debug, my_adk::Classify)]
    #[adk(crate = "my_adk", permanent)]
    pub struct Renamed;

    #[derive(Debug, my_adk::Classify)]
    #[adk(crate = "my_adk")]
    pub enum Wrapping {
        Refused(my_adk::Error),
    }
}

#[test]
fn a_renamed_dependency_is_named_with_crate() {
    assert_eq!(renamed::Renamed.class(), ErrorClass::Permanent);
    let refused = renamed::Wrapping::Refused(adk::Error::timeout(Duration::from_secs(1)));
    assert!(refused.adk_error().is_some(), "`my_adk::Error` is found as adk's error");
}

static CALLS: AtomicU32 = AtomicU32::new(0);

#[adk::retry(attempts = 4, base = "100ms")]
async fn flaky(outcome: fn() -> AgentError) -> Result<(), AgentError> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    Err(outcome())
}

#[tokio::test(start_paused = true)]
async fn retry_follows_the_derived_classes_and_waits() {
    CALLS.store(0, Ordering::SeqCst);
    assert!(matches!(flaky(|| AgentError::Rejected).await, Err(AgentError::Rejected)));
    assert_eq!(CALLS.swap(0, Ordering::SeqCst), 1, "permanent: not retried");
    assert!(matches!(flaky(|| AgentError::ProviderDown).await, Err(AgentError::ProviderDown)));
    assert_eq!(CALLS.swap(0, Ordering::SeqCst), 1, "critical: not retried");

    let started = tokio::time::Instant::now();
    let busy = || AgentError::Busy { wait: Duration::from_secs(2), reason: "queue" };
    assert!(matches!(flaky(busy).await, Err(AgentError::Busy { .. })));
    assert_eq!(CALLS.swap(0, Ordering::SeqCst), 4, "transient: every attempt");
    assert_eq!(started.elapsed(), Duration::from_secs(6), "each of the 3 retries waited the 2 s asked for");
}

#[adk::circuit_breaker(name = "classify-derived", min_calls = 4, failure_rate = 0.5, window = 4)]
async fn guarded(outcome: fn() -> AgentError) -> Result<(), AgentError> {
    Err(outcome())
}

#[tokio::test(start_paused = true)]
async fn the_breaker_counts_by_the_derived_classes() {
    let breaker = || adk::registry().circuit_breaker("classify-derived").expect("declared on first call");
    for _ in 0..4 {
        let _ = guarded(|| AgentError::from(adk::Error::rate_limited("p", Duration::from_secs(1), 0, 0))).await;
        let _ = guarded(|| AgentError::Rejected).await;
    }
    assert_eq!(breaker().state(), adk::CircuitState::Closed, "refusals and permanent errors are not failures");
    for _ in 0..4 {
        let _ = guarded(|| AgentError::ProviderDown).await;
    }
    assert_eq!(breaker().state(), adk::CircuitState::Open, "critical errors are failures");
}
