//! What a Redis-backed limiter does when its Redis dies or freezes, in each `on_backend_error` mode: no call waits
//! longer than the command timeout, the breaker stops even that, and decisions go back to Redis once it answers.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adk_runtime::Error;
use adk_runtime::rate_limit::{OnBackendError, Quota, RateLimiter, RedisBackend, Start, Verdict};
use adk_runtime::redis::{RedisConnection, RedisSettings};

mod support;
use support::redis_server::RedisServer;

const COMMAND_TIMEOUT: Duration = Duration::from_millis(100);
/// What a loaded machine may add to a bounded wait.
const SLACK: Duration = Duration::from_millis(60);

/// 100 a second with a burst of 100 in Redis; locally, as one of a fleet of 100: a burst of 1, one a second.
fn limiter(server: &RedisServer, mode: OnBackendError) -> Arc<RateLimiter<RedisBackend>> {
    let settings = RedisSettings::url(server.url())
        .prefix(format!("failures-{:016x}", fastrand::u64(..)))
        .command_timeout(COMMAND_TIMEOUT)
        .connect_timeout(COMMAND_TIMEOUT);
    let backend = RedisBackend::new(RedisConnection::new(settings).unwrap())
        .on_backend_error(mode)
        .fleet_size(NonZeroU32::new(100).unwrap());
    RateLimiter::with_backend("failures", Quota::per_second(100), backend)
}

/// One call, timed.
async fn timed(limiter: &RateLimiter<RedisBackend>, key: &str) -> (Result<Verdict, Error>, Duration) {
    let started = Instant::now();
    let verdict = limiter.decide(Some(key), 1, Start::Immediately).await;
    (verdict, started.elapsed())
}

fn skipped() -> u64 {
    adk_runtime::metrics::families()
        .counter("adk_backend_requests_total")
        .unwrap()
        .with_label_values(&["redis", "decide", "skipped"])
        .get()
}

/// Calls for a second while Redis is away: each bounded by the command timeout, and the breaker soon answers at
/// once. Returns the verdicts.
async fn while_away(limiter: &RateLimiter<RedisBackend>) -> Vec<Result<Verdict, Error>> {
    let skipped_before = skipped();
    let mut verdicts = Vec::new();
    let mut fast = 0;
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let (verdict, took) = timed(limiter, "away").await;
        assert!(took <= COMMAND_TIMEOUT + SLACK, "a call waited {took:?}, beyond the command timeout");
        fast += usize::from(took < Duration::from_millis(5));
        verdicts.push(verdict);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(fast > verdicts.len() / 2, "the open breaker answers at once ({fast} of {} calls fast)", verdicts.len());
    assert!(skipped() > skipped_before, "requests were skipped while the breaker was open");
    assert!(!limiter.backend().connection().is_up());
    let ready = adk_runtime::health::global().readiness().await.to_json();
    assert!(ready.contains(r#""name":"backend:redis","status":"degraded""#), "{ready}");
    verdicts
}

fn check_mode(mode: OnBackendError, verdicts: &[Result<Verdict, Error>]) {
    match mode {
        OnBackendError::Local => {
            // One key, a local burst of 1 refilled once a second: the first call in, the rest (but perhaps one
            // more as the second passes) refused.
            let admitted = verdicts.iter().filter(|v| matches!(v, Ok(verdict) if verdict.is_admitted())).count();
            assert!((1..=2).contains(&admitted), "local decisions with the fleet's share: {admitted} admitted");
            assert!(verdicts.iter().all(Result::is_ok));
        }
        OnBackendError::Allow => {
            assert!(verdicts.iter().all(|v| matches!(v, Ok(verdict) if verdict.is_admitted())), "all admitted");
        }
        OnBackendError::Deny => {
            for verdict in verdicts {
                assert!(
                    matches!(verdict, Err(Error::BackendUnavailable { name, backend, .. }) if name == "failures" && backend == "redis"),
                    "{verdict:?}"
                );
            }
        }
    }
}

/// After Redis is back, decisions are Redis's again within seconds: a key's whole Redis burst of 100 is admitted,
/// which the local share of 1 never would.
async fn back_to_redis(limiter: &RateLimiter<RedisBackend>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (verdict, took) = timed(limiter, "probe").await;
        assert!(took <= COMMAND_TIMEOUT + SLACK, "a call waited {took:?}");
        if limiter.backend().connection().is_up() && matches!(verdict, Ok(ref v) if v.is_admitted()) {
            break;
        }
        assert!(Instant::now() < deadline, "decisions did not go back to Redis within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let key = format!("after-{:x}", fastrand::u64(..));
    for call in 0..100 {
        let verdict = limiter.decide(Some(key.as_str()), 1, Start::Immediately).await;
        assert!(matches!(verdict, Ok(ref v) if v.is_admitted()), "call {call} after recovery: {verdict:?}");
    }
}

async fn survives_a_killed_redis(mode: OnBackendError) {
    let Some(mut server) = RedisServer::start("survives_a_killed_redis") else { return };
    let limiter = limiter(&server, mode);
    for _ in 0..3 {
        assert!(limiter.decide(Some("before"), 1, Start::Immediately).await.unwrap().is_admitted());
    }
    assert!(limiter.backend().connection().is_up());
    server.kill();
    let verdicts = while_away(&limiter).await;
    check_mode(mode, &verdicts);
    server.restart();
    back_to_redis(&limiter).await;
}

async fn survives_a_frozen_redis(mode: OnBackendError) {
    let Some(server) = RedisServer::start("survives_a_frozen_redis") else { return };
    let limiter = limiter(&server, mode);
    assert!(limiter.decide(Some("before"), 1, Start::Immediately).await.unwrap().is_admitted());
    server.pause();
    let verdicts = while_away(&limiter).await;
    check_mode(mode, &verdicts);
    server.resume();
    back_to_redis(&limiter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_falls_back_to_the_local_share() {
    survives_a_killed_redis(OnBackendError::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_admits_when_set_to_allow() {
    survives_a_killed_redis(OnBackendError::Allow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_refuses_when_set_to_deny() {
    survives_a_killed_redis(OnBackendError::Deny).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_at_most_the_command_timeout() {
    survives_a_frozen_redis(OnBackendError::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_refuses_when_set_to_deny() {
    survives_a_frozen_redis(OnBackendError::Deny).await;
}

/// No server at all from the start: the first call is bounded by the connect timeout, and the limiter decides by
/// its fallback.
#[tokio::test]
async fn a_redis_never_reached_decides_by_the_fallback() {
    let port = support::redis_server::free_port();
    let settings = RedisSettings::url(format!("redis://127.0.0.1:{port}"))
        .command_timeout(COMMAND_TIMEOUT)
        .connect_timeout(COMMAND_TIMEOUT);
    let backend = RedisBackend::new(RedisConnection::new(settings).unwrap()).on_backend_error(OnBackendError::Allow);
    let limiter = RateLimiter::with_backend("never-reached", Quota::per_second(1), backend);
    for _ in 0..5 {
        let started = Instant::now();
        assert!(limiter.decide(Some("k"), 1, Start::Immediately).await.unwrap().is_admitted());
        assert!(started.elapsed() <= COMMAND_TIMEOUT + SLACK, "waited {:?}", started.elapsed());
    }
}
