//! Policies are values: built by hand, per tenant or per test, outside the registry, with settings checked by the
//! same rules as the attributes.

use std::time::Duration;

use adk::CircuitState;
use adk::runtime::bulkhead::Bulkhead;
use adk::runtime::circuit_breaker::{CircuitBreaker, Window};
use adk::runtime::rate_limit::RateLimiter;
use adk::runtime::retry::RetryPolicy;
use adk::runtime::timeout::TimeoutPolicy;

#[test]
fn each_tenant_gets_its_own_breaker_and_limiter() {
    let tenants = ["acme", "globex"].map(|tenant| {
        let breaker = CircuitBreaker::builder(format!("builders::{tenant}"))
            .min_calls(1)
            .window(Window::Calls(1))
            .build()
            .unwrap();
        let limiter = RateLimiter::builder(format!("builders::{tenant}")).rpm(1).build().unwrap();
        (breaker, limiter)
    });
    let [(acme_breaker, acme_limiter), (globex_breaker, globex_limiter)] = &tenants;
    acme_breaker.acquire().unwrap().failure();
    assert_eq!(acme_breaker.state(), CircuitState::Open);
    assert_eq!(globex_breaker.state(), CircuitState::Closed, "another tenant's breaker");
    assert!(acme_limiter.check().is_ok() && acme_limiter.check().is_err());
    assert!(globex_limiter.check().is_ok(), "another tenant's quota");
    assert!(adk::registry().circuit_breaker("builders::acme").is_none(), "built instances stay out of the registry");
}

#[test]
fn a_setting_the_attribute_rejects_is_a_typed_error_with_the_same_reason() {
    // `#[adk::bulkhead(max_concurrent = 0)]` fails to compile with this sentence (ui-tests/fail/bulkhead_zero.rs).
    let error = Bulkhead::builder("builders::pool", 0).build().unwrap_err();
    assert_eq!((error.policy, error.setting), ("bulkhead", "max_concurrent"));
    assert_eq!(error.reason, "`max_concurrent = 0` would refuse every call; give at least 1");
    let error = CircuitBreaker::builder("b").failure_rate(0.0).build().unwrap_err();
    assert!(error.to_string().starts_with("invalid circuit_breaker setting `failure_rate`: "), "{error}");
    assert!(RetryPolicy::builder("b").attempts(0).build().is_err());
    assert!(TimeoutPolicy::checked("b", Duration::ZERO).is_err());
    assert!(RateLimiter::builder("b").build().is_err(), "no rate");
}

#[tokio::test(start_paused = true)]
async fn a_built_timeout_and_bulkhead_run_calls() {
    let bound = TimeoutPolicy::checked("builders::slow", Duration::from_millis(100)).unwrap();
    let result: Result<(), adk::Error> = bound
        .run(
            async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(())
            },
            Err,
        )
        .await;
    assert!(matches!(result, Err(adk::Error::Timeout { .. })));
    let pool = Bulkhead::builder("builders::pool-ok", 1).build().unwrap();
    let answer: Result<u8, adk::Error> = pool.run(Duration::ZERO, async { Ok(7) }, Err).await;
    assert_eq!(answer.unwrap(), 7);
}
