//! adk's policies as tower layers: driven with `ServiceExt::oneshot` on tokio's paused clock, sharing instances with
//! the attributes by name, and cloned as axum clones them.
#![cfg(feature = "tower")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use adk::runtime::bulkhead::Bulkhead;
use adk::runtime::cache::CachePolicy;
use adk::runtime::circuit_breaker::{CircuitBreaker, Window};
use adk::runtime::retry::{Backoff, RetryPolicy};
use adk::tower::{BulkheadLayer, CacheLayer, CircuitBreakerLayer, RateLimitLayer, RetryLayer, TimeoutLayer};
use tower::{Layer, ServiceExt};

#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("upstream 503")]
    Unavailable,
    #[error("upstream 404")]
    NotFound,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for ApiError {
    fn class(&self) -> adk::ErrorClass {
        match self {
            ApiError::Unavailable => adk::ErrorClass::Transient,
            ApiError::NotFound => adk::ErrorClass::Permanent,
            ApiError::Adk(e) => e.class(),
        }
    }
    fn adk_error(&self) -> Option<&adk::Error> {
        match self {
            ApiError::Adk(e) => Some(e),
            _ => None,
        }
    }
}

#[adk::rate_limited(name = "tower-shared-quota", rps = 1, burst = 2)]
async fn annotated() -> Result<(), ApiError> {
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_attribute_and_a_layer_with_one_name_spend_one_quota() {
    let layer = RateLimitLayer::named("tower-shared-quota").expect("declared by the attribute");
    let service = layer.layer(tower::service_fn(|()| async { Ok::<_, ApiError>("served") }));
    annotated().await.unwrap();
    // The layer is cloned, as axum clones a service per connection: the clones share the limiter.
    assert_eq!(service.clone().oneshot(()).await.unwrap(), "served");
    assert!(matches!(service.clone().oneshot(()).await, Err(ApiError::Adk(adk::Error::RateLimited { .. }))));
    assert!(matches!(annotated().await, Err(ApiError::Adk(adk::Error::RateLimited { .. }))), "the same quota");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(service.oneshot(()).await.is_ok(), "refilled on tokio's clock");
    assert!(RateLimitLayer::named("tower-nobody-declares").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_breaker_layer_opens_on_failures_and_stops_calling() {
    let calls = Arc::new(AtomicU32::new(0));
    let breaker = CircuitBreaker::builder("tower-breaker").min_calls(2).window(Window::Calls(2)).build().unwrap();
    let service = CircuitBreakerLayer::new(breaker.clone()).layer(tower::service_fn({
        let calls = calls.clone();
        move |()| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(ApiError::Unavailable) }
        }
    }));
    for _ in 0..2 {
        assert!(matches!(service.clone().oneshot(()).await, Err(ApiError::Unavailable)));
    }
    assert_eq!(breaker.state(), adk::CircuitState::Open);
    assert!(matches!(service.oneshot(()).await, Err(ApiError::Adk(adk::Error::CircuitOpen { .. }))));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "an open breaker does not call the service");
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_layer_refuses_the_request_beyond_its_slots() {
    let pool = Bulkhead::builder("tower-pool", 1).build().unwrap();
    let service = BulkheadLayer::new(pool).layer(tower::service_fn(|hold: u64| async move {
        tokio::time::sleep(Duration::from_millis(hold)).await;
        Ok::<_, ApiError>(hold)
    }));
    let holding = tokio::spawn(service.clone().oneshot(100));
    tokio::task::yield_now().await;
    assert!(matches!(service.clone().oneshot(0).await, Err(ApiError::Adk(adk::Error::BulkheadFull { .. }))));
    assert_eq!(holding.await.unwrap().unwrap(), 100);
    assert_eq!(service.oneshot(0).await.unwrap(), 0, "the slot is free again");
}

#[tokio::test(start_paused = true)]
async fn a_timeout_layer_bounds_the_request() {
    let service = TimeoutLayer::new("tower-timeout", Duration::from_millis(200)).unwrap().layer(tower::service_fn(
        |wait: u64| async move {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            Ok::<_, ApiError>(wait)
        },
    ));
    assert_eq!(service.clone().oneshot(100).await.unwrap(), 100);
    let started = tokio::time::Instant::now();
    assert!(matches!(service.oneshot(1_000).await, Err(ApiError::Adk(adk::Error::Timeout { .. }))));
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert!(TimeoutLayer::new("x", Duration::ZERO).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_retry_layer_resends_transient_failures_only() {
    let policy = RetryPolicy::builder("tower-retry")
        .attempts(3)
        .backoff(Backoff::Constant)
        .base(Duration::from_millis(100))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let service = RetryLayer::new(policy).layer(tower::service_fn({
        let calls = calls.clone();
        move |missing: bool| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match (missing, n) {
                    (true, _) => Err(ApiError::NotFound),
                    (false, 0 | 1) => Err(ApiError::Unavailable),
                    (false, _) => Ok(n),
                }
            }
        }
    }));
    let started = tokio::time::Instant::now();
    assert_eq!(service.clone().oneshot(false).await.unwrap(), 2);
    assert_eq!(started.elapsed(), Duration::from_millis(200), "two waits of 100 ms");
    assert!(matches!(service.oneshot(true).await, Err(ApiError::NotFound)));
    assert_eq!(calls.load(Ordering::SeqCst), 4, "a permanent error is sent once");
}

#[tokio::test(start_paused = true)]
async fn a_cache_layer_answers_repeated_requests_without_the_service() {
    let calls = Arc::new(AtomicU32::new(0));
    let policy = CachePolicy::new("tower::cache", "tests/tower.rs").with_ttl(Duration::from_secs(60));
    let service = CacheLayer::new(policy, String::clone).layer(tower::service_fn({
        let calls = calls.clone();
        move |prompt: String| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, ApiError>(prompt.to_uppercase()) }
        }
    }));
    assert_eq!(service.clone().oneshot("hi".to_owned()).await.unwrap(), "HI");
    assert_eq!(service.clone().oneshot("hi".to_owned()).await.unwrap(), "HI");
    assert_eq!(service.oneshot("yo".to_owned()).await.unwrap(), "YO");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
