//! adk behind axum, over real HTTP: refusals as 429/503/504 with their headers, the per-client quota's headers on
//! admitted answers, and the per-key bulkhead, each through a server on 127.0.0.1 and a hyper client.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use adk::http::RateLimitByKey;
use adk::runtime::rate_limit::RateLimiter;
use axum::Router;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Serves `app` on a free port of 127.0.0.1, with the peer's address known to handlers and layers.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    addr
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: serde_json::Value,
}

impl Answer {
    fn number(&self, header: &str) -> u64 {
        let value = self.headers.get(header).unwrap_or_else(|| panic!("no {header} in {:?}", self.headers));
        value.to_str().unwrap().parse().unwrap()
    }
}

async fn get_with(addr: SocketAddr, path: &str, key: Option<&str>) -> Answer {
    let mut request = hyper::Request::get(format!("http://{addr}{path}"));
    if let Some(key) = key {
        request = request.header(API_KEY, key);
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.request(request.body(Empty::new()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into());
    Answer { status: parts.status, headers: parts.headers, body }
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn over_its_quota_a_client_gets_429_with_headers_that_agree_with_the_limiter() {
    let limiter = RateLimiter::builder("service-test-quota").rpm(3).build().unwrap();
    let app =
        Router::new().route("/", get(|| async { "ok" })).layer(RateLimitByKey::new(limiter.clone()).by_header(API_KEY));
    let addr = serve(app).await;

    let mut remaining = Vec::new();
    for _ in 0..3 {
        let admitted = get_with(addr, "/", Some("key-1")).await;
        assert_eq!(admitted.status, StatusCode::OK);
        assert_eq!(admitted.number("x-ratelimit-limit"), 3);
        assert!(admitted.headers.get("retry-after").is_none());
        remaining.push(admitted.number("x-ratelimit-remaining"));
    }
    assert_eq!(remaining, [2, 1, 0], "admitted answers count down");

    let before = now_unix();
    let refused = get_with(addr, "/", Some("key-1")).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let state = limiter.snapshot_key(b"key-1".as_slice());
    assert_eq!((state.limit, state.remaining), (3, 0));
    // One request every 20 s, so the next is due in just under 20 s, and the bucket is full in just under 60 s.
    let retry_after = refused.number("retry-after");
    assert!((19..=20).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(refused.number("x-ratelimit-limit"), 3);
    assert_eq!(refused.number("x-ratelimit-remaining"), 0);
    let reset = refused.number("x-ratelimit-reset");
    assert!((before + 59..=now_unix() + 61).contains(&reset), "reset {reset} is a minute after {before}");
    assert_eq!(refused.body["error"], "rate_limit_exceeded");
    assert_eq!(
        (&refused.body["retry_after"], &refused.body["limit"], &refused.body["remaining"], &refused.body["reset"]),
        (&retry_after.into(), &3.into(), &0.into(), &reset.into()),
        "the body says what the headers say"
    );

    let other = get_with(addr, "/", Some("key-2")).await;
    assert_eq!((other.status, other.number("x-ratelimit-remaining")), (StatusCode::OK, 2), "another client's quota");
    let anonymous = get_with(addr, "/", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.body["error"], "missing_client_key");
}

#[tokio::test]
async fn clients_are_told_apart_by_their_address_by_default() {
    let limiter = RateLimiter::builder("service-test-peer").rpm(1).build().unwrap();
    let app = Router::new().route("/", get(|| async { "ok" })).layer(RateLimitByKey::new(limiter));
    let addr = serve(app).await;
    assert_eq!(get_with(addr, "/", None).await.status, StatusCode::OK);
    let refused = get_with(addr, "/", None).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "a new connection from the same address");
    assert!((59..=60).contains(&refused.number("retry-after")));
}

#[derive(Debug, thiserror::Error, adk::Classify)]
enum TestError {
    #[error("the dependency failed")]
    Failed,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl IntoResponse for TestError {
    fn into_response(self) -> Response {
        match self {
            TestError::Adk(refusal) => refusal.into_response(),
            TestError::Failed => StatusCode::BAD_GATEWAY.into_response(),
        }
    }
}

#[adk::circuit_breaker(name = "service-test-breaker", min_calls = 2, window = 2, open_for = "30s")]
async fn always_failing() -> Result<String, TestError> {
    Err(TestError::Failed)
}

#[tokio::test]
async fn an_open_breaker_answers_503_with_retry_after() {
    let addr = serve(Router::new().route("/", get(always_failing))).await;
    for _ in 0..2 {
        assert_eq!(get_with(addr, "/", None).await.status, StatusCode::BAD_GATEWAY, "the dependency's own failure");
    }
    let open = get_with(addr, "/", None).await;
    assert_eq!(open.status, StatusCode::SERVICE_UNAVAILABLE);
    let retry_after = open.number("retry-after");
    assert!((29..=30).contains(&retry_after), "Retry-After: {retry_after}, the time left open");
    assert_eq!(open.body["error"], "circuit_open");
    assert_eq!(open.body["retry_after"], retry_after);
}

#[adk::timeout("50ms")]
async fn too_slow() -> Result<String, adk::Error> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok("late".to_owned())
}

#[tokio::test]
async fn a_timeout_answers_504() {
    let addr = serve(Router::new().route("/", get(too_slow))).await;
    let answer = get_with(addr, "/", None).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.body["error"], "timeout");
    assert!(answer.headers.get("retry-after").is_none());
}

/// Held calls wait here until the test lets them go.
static GATE: Semaphore = Semaphore::const_new(0);

#[adk::bulkhead(max_concurrent = 1, key = key, name = "service-test-per-key")]
async fn held(key: &str) -> Result<String, adk::Error> {
    let _pass = GATE.acquire().await.unwrap();
    Ok(format!("done for {key}"))
}

async fn held_handler(headers: HeaderMap) -> Result<String, adk::Error> {
    let key = headers.get(API_KEY).and_then(|key| key.to_str().ok()).unwrap_or("anonymous").to_owned();
    held(&key).await
}

#[tokio::test]
async fn the_per_key_bulkhead_refuses_a_second_call_of_one_key_while_another_key_passes() {
    let addr = serve(Router::new().route("/", get(held_handler))).await;
    let pool = adk::registry().keyed_bulkhead("service-test-per-key").unwrap();
    let in_flight = |key: &'static str, count: usize| {
        let pool = pool.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(10), async {
                while pool.in_use_by(key) != count {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{key} never had {count} calls in flight"));
        }
    };

    let first = tokio::spawn(get_with(addr, "/", Some("tenant-a")));
    in_flight("tenant-a", 1).await;
    let refused = get_with(addr, "/", Some("tenant-a")).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.number("retry-after"), 1);
    assert_eq!(refused.body["error"], "bulkhead_full");

    let other = tokio::spawn(get_with(addr, "/", Some("tenant-b")));
    in_flight("tenant-b", 1).await;
    GATE.add_permits(2);
    assert_eq!(other.await.unwrap().status, StatusCode::OK, "another key passes");
    let first = first.await.unwrap();
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, Some("done for tenant-a")));
    assert_eq!(pool.keys(), 0, "both keys dropped once idle");
}

#[tokio::test]
async fn the_probes_and_metrics_are_mounted_beside_the_application() {
    let app = Router::new().route("/v1/answer", get(|| async { "ok" })).merge(adk::http::router());
    let addr = serve(app).await;
    assert_eq!(get_with(addr, "/health/live", None).await.status, StatusCode::OK);
    let metrics = get_with(addr, "/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert_eq!(metrics.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(get_with(addr, "/v1/answer", None).await.status, StatusCode::OK);
}
