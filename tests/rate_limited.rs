//! #[adk::rate_limited]: quotas per function, per key and shared by name; exact retry_after; waiting; costs.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, PartialEq, thiserror::Error)]
enum ApiError {
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

fn retry_after(result: Result<u32, ApiError>) -> Duration {
    match result {
        Err(ApiError::Adk(adk::Error::RateLimited { retry_after, .. })) => retry_after,
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[adk::rate_limited(rps = 2)]
async fn global() -> Result<u32, ApiError> {
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn calls_over_the_quota_are_refused_with_an_exact_retry_after() {
    assert!(global().await.is_ok());
    assert!(global().await.is_ok(), "burst defaults to one period's worth");
    let wait = retry_after(global().await);
    assert_eq!(wait, Duration::from_millis(500));
    tokio::time::advance(wait).await;
    assert!(global().await.is_ok(), "admitted after waiting exactly retry_after");
}

pub struct User {
    id: u64,
}

#[adk::rate_limited(name = "test-provider", rpm = 600)]
#[adk::rate_limited(rpm = 1, burst = 1, key = user.id)]
async fn per_user(user: &User) -> Result<u32, ApiError> {
    Ok(user.id as u32)
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_quota_under_a_shared_named_limit() {
    let (ada, bob) = (User { id: 1 }, User { id: 2 });
    assert!(per_user(&ada).await.is_ok());
    assert_eq!(retry_after(per_user(&ada).await), Duration::from_secs(60));
    assert!(per_user(&bob).await.is_ok(), "another key");
    let provider = adk::registry().rate_limiter("test-provider").expect("named limiter registered");
    assert_eq!(provider.snapshot().limit, 600);
}

#[adk::rate_limited(rps = 1, burst = 1, on_limit = "wait", max_wait = "2s")]
async fn patient() -> Result<u32, ApiError> {
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn on_limit_wait_sleeps_until_admitted_then_refuses_past_max_wait() {
    let start = Instant::now();
    for _ in 0..3 {
        assert!(patient().await.is_ok());
    }
    assert_eq!(start.elapsed(), Duration::from_secs(2), "calls spaced one second apart");

    tokio::time::advance(Duration::from_secs(10)).await;
    let callers: Vec<_> = (0..4).map(|_| tokio::spawn(patient())).collect();
    let mut outcomes = Vec::new();
    for caller in callers {
        outcomes.push(caller.await.unwrap().is_ok());
    }
    outcomes.sort();
    assert_eq!(outcomes, [false, true, true, true], "admitted at 0, 1 and 2 s; the fourth would wait 3 s > max_wait");
}

pub struct Request {
    max_tokens: u32,
}

#[adk::rate_limited(rate = "1000/min", cost = req.max_tokens)]
async fn tokens(req: &Request) -> Result<u32, ApiError> {
    Ok(req.max_tokens)
}

#[tokio::test(start_paused = true)]
async fn cost_spends_units_and_a_cost_above_the_burst_is_refused_for_good() {
    assert!(tokens(&Request { max_tokens: 600 }).await.is_ok());
    assert!(matches!(tokens(&Request { max_tokens: 600 }).await, Err(ApiError::Adk(adk::Error::RateLimited { .. }))));
    match tokens(&Request { max_tokens: 5000 }).await {
        Err(ApiError::Adk(e)) => assert_eq!(adk::Classify::class(&e), adk::ErrorClass::Permanent, "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
