//! `IntoResponse` for [`Error`]: each refusal as the HTTP status, headers and JSON body that mean it.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::json;
use crate::rate_limit::Snapshot;

/// `X-RateLimit-Limit`: the client's capacity.
///
/// ```
/// assert_eq!(adk_runtime::http::X_RATELIMIT_LIMIT.as_str(), "x-ratelimit-limit");
/// ```
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: what the client could still spend now.
///
/// ```
/// assert_eq!(adk_runtime::http::X_RATELIMIT_REMAINING.as_str(), "x-ratelimit-remaining");
/// ```
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`: the Unix time (seconds) at which the client's quota is full again.
///
/// ```
/// assert_eq!(adk_runtime::http::X_RATELIMIT_RESET.as_str(), "x-ratelimit-reset");
/// ```
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// What a client waits when a bulkhead is full: the bulkhead cannot tell when a slot frees, and calls in flight
/// usually end within a second.
const BULKHEAD_RETRY_AFTER_SECS: u64 = 1;

/// Answers the refusal as the status that means it (see [the module](super) for the table): 429 for
/// `RateLimited`, 503 for `CircuitOpen` and `BulkheadFull`, 504 for `Timeout`, 413 for `CostAboveLimit`, with
/// `Retry-After` and the `X-RateLimit-*` headers where they apply and a JSON body naming the refusal.
///
/// ```
/// use std::time::Duration;
/// use axum::response::IntoResponse;
///
/// let refusal = adk_runtime::Error::rate_limited("api", Duration::from_millis(41_200), 100, 0);
/// let response = refusal.into_response();
/// assert_eq!(response.status(), 429);
/// assert_eq!(response.headers()["retry-after"], "42");
/// assert_eq!(response.headers()["x-ratelimit-limit"], "100");
/// ```
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut body = String::from("{\"error\":");
        let code = match &self {
            Error::RateLimited { .. } => "rate_limit_exceeded",
            Error::CostAboveLimit { .. } => "cost_above_limit",
            Error::CircuitOpen { .. } => "circuit_open",
            Error::Timeout { .. } => "timeout",
            Error::BulkheadFull { .. } => "bulkhead_full",
            Error::BackendUnavailable { .. } => "backend_unavailable",
        };
        let _ = json::string(&mut body, code);
        body.push_str(",\"message\":");
        let _ = json::string(&mut body, &self.to_string());
        let mut headers = HeaderMap::new();
        let status = match &self {
            Error::RateLimited { retry_after, limit, remaining, reset, .. } => {
                let retry_after = retry_after_secs(*retry_after);
                let _ = write!(body, ",\"retry_after\":{retry_after}");
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
                // A provider's 429 relayed without its limit: say nothing rather than "a limit of 0".
                let known = (*limit > 0).then_some((*limit, *remaining));
                let reset = set_rate_limit_headers(&mut headers, known, *reset);
                if let Some((limit, remaining)) = known {
                    let _ = write!(body, ",\"limit\":{limit},\"remaining\":{remaining}");
                }
                let _ = write!(body, ",\"reset\":{reset}");
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::CostAboveLimit { cost, limit, .. } => {
                let _ = write!(body, ",\"cost\":{cost},\"limit\":{limit}");
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Error::CircuitOpen { retry_after, .. } => {
                let retry_after = retry_after_secs(*retry_after);
                let _ = write!(body, ",\"retry_after\":{retry_after}");
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::BulkheadFull { .. } => {
                let _ = write!(body, ",\"retry_after\":{BULKHEAD_RETRY_AFTER_SECS}");
                headers.insert(RETRY_AFTER, HeaderValue::from(BULKHEAD_RETRY_AFTER_SECS));
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            // The shared backend is down and the policy refuses rather than decide alone; its breaker probes again
            // within seconds.
            Error::BackendUnavailable { .. } => {
                let _ = write!(body, ",\"retry_after\":{BULKHEAD_RETRY_AFTER_SECS}");
                headers.insert(RETRY_AFTER, HeaderValue::from(BULKHEAD_RETRY_AFTER_SECS));
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        body.push('}');
        json_response(status, headers, body)
    }
}

/// A JSON answer that no proxy keeps: a refusal is about this moment.
pub(crate) fn json_response(status: StatusCode, mut headers: HeaderMap, body: String) -> Response {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `{"error":code,"message":message}` with `status`.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let mut body = String::from("{\"error\":");
    let _ = json::string(&mut body, code);
    body.push_str(",\"message\":");
    let _ = json::string(&mut body, message);
    body.push('}');
    json_response(status, HeaderMap::new(), body)
}

/// The `X-RateLimit-*` headers of a client's state as of now.
pub(crate) fn snapshot_headers(headers: &mut HeaderMap, snapshot: Snapshot) {
    set_rate_limit_headers(headers, Some((snapshot.limit, snapshot.remaining)), snapshot.reset);
}

/// Sets `X-RateLimit-Limit` and `-Remaining` (when known) and `-Reset`; returns the reset as Unix seconds.
fn set_rate_limit_headers(headers: &mut HeaderMap, capacity: Option<(u64, u64)>, reset: Duration) -> u64 {
    if let Some((limit, remaining)) = capacity {
        headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(limit));
        headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(remaining));
    }
    let reset = unix_seconds_after(reset);
    headers.insert(X_RATELIMIT_RESET, HeaderValue::from(reset));
    reset
}

/// Whole seconds, rounded up, at least 1: a client told `Retry-After: 0` would come straight back and be refused.
fn retry_after_secs(wait: Duration) -> u64 {
    ceil_secs(wait).max(1)
}

/// The Unix time `after` from now, in seconds rounded up (so a client waiting until then finds its quota full).
fn unix_seconds_after(after: Duration) -> u64 {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    ceil_secs(now.saturating_add(after))
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn now_unix() -> u64 {
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
    }

    async fn answer(error: Error) -> (StatusCode, HeaderMap, serde_json::Value) {
        let response = error.into_response();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {bytes:?}"));
        (parts.status, parts.headers, json)
    }

    fn header(headers: &HeaderMap, name: &str) -> u64 {
        headers[name].to_str().unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn rate_limited_is_429_with_the_four_headers_and_the_same_numbers_in_the_body() {
        let refusal = Error::RateLimited {
            name: "api".into(),
            retry_after: Duration::from_millis(41_001),
            limit: 100,
            remaining: 0,
            reset: Duration::from_secs(60),
        };
        let before = now_unix();
        let (status, headers, body) = answer(refusal).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&headers, "retry-after"), 42, "rounded up");
        assert_eq!(header(&headers, "x-ratelimit-limit"), 100);
        assert_eq!(header(&headers, "x-ratelimit-remaining"), 0);
        let reset = header(&headers, "x-ratelimit-reset");
        assert!((before + 60..=now_unix() + 61).contains(&reset), "reset {reset} is about a minute after {before}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body["error"], "rate_limit_exceeded");
        assert_eq!(body["message"], "rate limit `api` exceeded: 0 of 100 left, retry after 41.001s");
        assert_eq!(
            (&body["retry_after"], &body["limit"], &body["remaining"], &body["reset"]),
            (&42.into(), &100.into(), &0.into(), &reset.into())
        );
    }

    #[tokio::test]
    async fn a_refusal_due_in_under_a_second_says_retry_after_1_never_0() {
        for wait in [Duration::ZERO, Duration::from_nanos(1), Duration::from_millis(300), Duration::from_secs(1)] {
            let (_, headers, body) = answer(Error::rate_limited("api", wait, 10, 0)).await;
            assert_eq!(header(&headers, "retry-after"), 1, "{wait:?}");
            assert_eq!(body["retry_after"], 1);
        }
        let (_, headers, _) = answer(Error::rate_limited("api", Duration::from_millis(1_001), 10, 0)).await;
        assert_eq!(header(&headers, "retry-after"), 2);
    }

    #[tokio::test]
    async fn a_relayed_429_without_a_known_limit_claims_no_limit() {
        let (status, headers, body) = answer(Error::rate_limited("provider", Duration::from_secs(3), 0, 0)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&headers, "retry-after"), 3);
        assert!(headers.get("x-ratelimit-limit").is_none() && headers.get("x-ratelimit-remaining").is_none());
        assert!(headers.get("x-ratelimit-reset").is_some());
        assert!(body.get("limit").is_none() && body.get("remaining").is_none(), "{body}");
    }

    #[tokio::test]
    async fn an_open_breaker_is_503_with_the_time_left_open() {
        let (status, headers, body) = answer(Error::circuit_open("provider", Duration::from_millis(2_500))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&headers, "retry-after"), 3);
        assert_eq!(body["error"], "circuit_open");
        assert_eq!(body["retry_after"], 3);
        assert!(headers.get("x-ratelimit-limit").is_none());
    }

    #[tokio::test]
    async fn a_full_bulkhead_is_503_with_retry_after_1() {
        let (status, headers, body) = answer(Error::bulkhead_full("db", 8)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&headers, "retry-after"), 1);
        assert_eq!(body["error"], "bulkhead_full");
        assert_eq!(body["message"], "bulkhead `db` is full (8 calls in flight)");
    }

    #[tokio::test]
    async fn a_timeout_is_504_without_retry_after() {
        let (status, headers, body) = answer(Error::timeout(Duration::from_secs(2))).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert!(headers.get("retry-after").is_none());
        assert_eq!(body, serde_json::json!({"error": "timeout", "message": "timed out after 2s"}));
    }

    #[tokio::test]
    async fn a_cost_no_wait_admits_is_413_without_retry_after() {
        let (status, headers, body) = answer(Error::cost_above_limit("tokens", 120_000, 90_000)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(headers.get("retry-after").is_none());
        assert_eq!(
            (&body["error"], &body["cost"], &body["limit"]),
            (&"cost_above_limit".into(), &120_000.into(), &90_000.into())
        );
    }

    #[tokio::test]
    async fn refusals_are_never_cached_by_a_proxy() {
        let (_, headers, _) = answer(Error::timeout(Duration::from_secs(1))).await;
        assert_eq!(headers["cache-control"], "no-store");
    }
}
