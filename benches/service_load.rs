//! HTTP load: the same answer served by bare axum and through adk (per-client quota layer, `#[observed]`,
//! `#[timeout]`, `#[retry]`, `#[circuit_breaker]`, `#[rate_limited]`, a per-key `#[bulkhead]`, an inner
//! `#[timeout]`), driven by `wrk` (not run in CI): `cargo bench --bench service_load --features axum`.
//!
//! The provider answers at once, so the figures are the cost of the stack per request over real HTTP on this
//! machine. `wrk` must be installed (Debian: `apt-get install wrk`); `ADK_LOAD_SECONDS` (10) and
//! `ADK_LOAD_CONNECTIONS` (64) set the run.

use std::net::SocketAddr;
use std::process::Command;

use adk::http::RateLimitByKey;
use adk::runtime::rate_limit::RateLimiter;
use axum::Router;
use axum::http::{HeaderMap, HeaderName};
use axum::routing::get;

const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

#[derive(Debug, thiserror::Error, adk::Classify)]
enum LoadError {
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl axum::response::IntoResponse for LoadError {
    fn into_response(self) -> axum::response::Response {
        let LoadError::Adk(refusal) = self;
        refusal.into_response()
    }
}

/// The instant provider.
async fn provider(prompt: &str) -> Result<String, LoadError> {
    Ok(format!("answer to {prompt}"))
}

#[adk::observed(skip(key))]
#[adk::timeout("5s")]
#[adk::retry(attempts = 3, base = "50ms", jitter)]
#[adk::circuit_breaker(name = "load-provider")]
#[adk::rate_limited(name = "load-provider-quota", rps = 10_000_000)]
#[adk::bulkhead(max_concurrent = 10_000, key = key, name = "load-per-key")]
#[adk::timeout("2s")]
async fn answer(key: &str, prompt: &str) -> Result<String, LoadError> {
    provider(prompt).await
}

async fn through_adk(headers: HeaderMap) -> Result<String, LoadError> {
    let key = headers.get(API_KEY).and_then(|v| v.to_str().ok()).unwrap_or("anonymous");
    answer(key, "hello").await
}

async fn bare() -> Result<String, LoadError> {
    provider("hello").await
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.expect("serving");
    });
    addr
}

/// `wrk`'s requests per second and 50th/99th percentile latencies.
fn load(label: &str, addr: SocketAddr, seconds: &str, connections: &str) {
    let output = Command::new("wrk")
        .args(["-t2", "-c", connections, "-d", &format!("{seconds}s"), "--latency", "-H", "x-api-key: load-test"])
        .arg(format!("http://{addr}/answer"))
        .output();
    let output = match output {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout).into_owned(),
        Ok(output) => {
            eprintln!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
            return;
        }
        Err(error) => {
            eprintln!("cannot run wrk ({error}): install it, e.g. `apt-get install wrk`");
            return;
        }
    };
    let field = |prefix: &str| {
        output
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    let non_2xx = field("Non-2xx");
    println!(
        "{label:<10} {:>12} req/s   p50 {:>9}   p99 {:>9}   non-2xx {}",
        field("Requests/sec:"),
        field("50%"),
        field("99%"),
        if non_2xx == "?" { "0".to_owned() } else { non_2xx }
    );
}

#[tokio::main]
async fn main() {
    let seconds = std::env::var("ADK_LOAD_SECONDS").unwrap_or_else(|_| "10".to_owned());
    let connections = std::env::var("ADK_LOAD_CONNECTIONS").unwrap_or_else(|_| "64".to_owned());
    let bare = serve(Router::new().route("/answer", get(bare))).await;
    let per_client = RateLimiter::builder("load-per-client").rps(10_000_000).build().expect("a valid quota");
    let stacked = serve(
        Router::new().route("/answer", get(through_adk)).layer(RateLimitByKey::new(per_client).by_header(API_KEY)),
    )
    .await;
    println!("wrk -t2 -c{connections} -d{seconds}s, one API key, an instant provider");
    load("bare axum", bare, &seconds, &connections);
    load("adk stack", stacked, &seconds, &connections);
}
