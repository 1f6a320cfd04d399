//! An agent as an HTTP service: `POST /v1/answer` behind a per-client quota, the whole adk stack over a simulated
//! provider, `/metrics` and `/health/*` on the same port, and a graceful shutdown that lets calls in flight finish:
//! `cargo run --example service`.
//!
//! By default the example serves on `ADK_SERVICE_ADDR` (`127.0.0.1:8080`), plays a short demo against itself (a
//! client within its quota, one over it, one without a key, one with too many calls at once), then shuts down while
//! a slow call is still running, which finishes first. With `--serve` it serves until Ctrl-C instead:
//!
//! ```text
//! cargo run --example service -- --serve
//! curl -i -H 'x-api-key: key-ada' -d '{"prompt":"hello"}' -H 'content-type: application/json' \
//!     http://127.0.0.1:8080/v1/answer
//! ```
//!
//! API keys: `key-ada`, `key-grace`, `key-script` (10 requests a minute each, bursts of 5; at most 2 answers in
//! flight per key).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use adk::http::RateLimitByKey;
use adk::runtime::health;
use adk::runtime::rate_limit::RateLimiter;
use axum::extract::Json;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Router, serve};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

/// The clients the service knows, by API key.
const CLIENTS: [(&str, &str); 3] = [("key-ada", "ada"), ("key-grace", "grace"), ("key-script", "script")];
const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// A client, once its key is known.
struct Caller {
    name: &'static str,
}

#[derive(Debug, thiserror::Error, adk::Classify)]
enum ServiceError {
    /// The provider failed this time (a 5xx, a reset): worth another try.
    #[error("the provider failed: {0}")]
    Provider(&'static str),
    /// adk's refusals: quotas, an open breaker, timeouts, a full bulkhead.
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

/// A refusal is answered as adk says (429, 503, 504 with their headers); the provider's failure as a 502.
impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        match self {
            ServiceError::Adk(refusal) => refusal.into_response(),
            ServiceError::Provider(why) => {
                let body = serde_json::json!({"error": "provider_error", "message": why});
                (StatusCode::BAD_GATEWAY, Json(body)).into_response()
            }
        }
    }
}

/// The simulated provider: 30-120 ms answers, one in ten a transient failure, a prompt with "slowly" takes 1.5 s.
async fn provider(prompt: &str) -> Result<String, ServiceError> {
    let latency = if prompt.contains("slowly") { 1_500 } else { fastrand::u64(30..120) };
    tokio::time::sleep(Duration::from_millis(latency)).await;
    if fastrand::u8(0..10) == 0 {
        return Err(ServiceError::Provider("HTTP 503 from the model"));
    }
    Ok(format!("a short answer to {prompt:?}"))
}

/// One answer, through the stack (outermost first): a span and metrics per question; 5 s in all; three attempts with
/// jittered backoff; a breaker over the provider; the provider's own quota, spent by every attempt; at most two
/// answers in flight per client (a third is refused, retried after a backoff, and answered 503 if the client's two
/// calls are still running); 2 s per attempt.
#[adk::observed(skip(caller), fields(client = caller.name))]
#[adk::timeout("5s")]
#[adk::retry(attempts = 3, base = "50ms", max_delay = "500ms", jitter)]
#[adk::circuit_breaker(name = "service-provider", min_calls = 10, window = 20, open_for = "5s")]
#[adk::rate_limited(name = "service-provider-quota", rps = 50, on_limit = "wait", max_wait = "500ms")]
#[adk::bulkhead(max_concurrent = 2, key = caller.name, name = "service-per-client")]
#[adk::timeout("2s")]
async fn answer(caller: &Caller, prompt: &str) -> Result<String, ServiceError> {
    provider(prompt).await
}

#[derive(serde::Deserialize)]
struct Question {
    prompt: String,
}

async fn answer_handler(headers: HeaderMap, Json(question): Json<Question>) -> Response {
    let key = headers.get(API_KEY).and_then(|key| key.to_str().ok());
    let Some(&(_, name)) = CLIENTS.iter().find(|(known, _)| Some(*known) == key) else {
        let body = serde_json::json!({"error": "unknown_api_key", "message": "send a known key in x-api-key"});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    };
    match answer(&Caller { name }, &question.prompt).await {
        Ok(text) => Json(serde_json::json!({"answer": text})).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The application: the API behind the per-client quota, then the probes and `/metrics`, which the quota leaves
/// alone.
fn app() -> Router {
    let per_client = RateLimiter::builder("service-per-client-quota").rpm(10).burst(5).build().expect("valid quota");
    Router::new()
        .route("/v1/answer", post(answer_handler))
        .layer(RateLimitByKey::new(per_client).by_header(API_KEY))
        .merge(adk::http::router())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let serve_forever = std::env::args().any(|arg| arg == "--serve");
    let addr = std::env::var("ADK_SERVICE_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listener = TcpListener::bind(&addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| format!("cannot read the bound address: {e}"))?;
    println!("serving http://{local}/v1/answer, /metrics and /health/{{live,ready,startup}}");
    health::global().mark_started();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        if serve_forever {
            let _ = tokio::signal::ctrl_c().await;
        } else {
            let _ = stopped.await;
        }
        println!("shutting down: no new connections; calls in flight finish first");
    };
    let server = tokio::spawn(async move {
        serve(listener, app().into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
    });
    if !serve_forever {
        demo(local).await?;
        let slow = tokio::spawn(ask(local, Some("key-grace"), "answer slowly"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = stop.send(());
        let (status, _, body) = slow.await.map_err(|e| e.to_string())??;
        println!("the slow call, started before the shutdown: {status} {body}");
    }
    server.await.map_err(|e| e.to_string())?.map_err(|e| format!("the server stopped: {e}"))?;
    println!("stopped");
    Ok(())
}

/// Plays the clients of the demo and prints what each was answered.
async fn demo(local: SocketAddr) -> Result<(), String> {
    println!("\nada asks six questions in a row (a burst of 5, then 10 a minute):");
    for i in 1..=6 {
        let (status, headers, _) = ask(local, Some("key-ada"), &format!("question {i}")).await?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        println!(
            "  {status}  X-RateLimit-Remaining: {:<2} X-RateLimit-Reset: {}  Retry-After: {}",
            header("x-ratelimit-remaining"),
            header("x-ratelimit-reset"),
            header("retry-after"),
        );
    }
    println!("\na request without a key, and one with an unknown key:");
    println!("  {}", ask(local, None, "hello").await?.0);
    println!("  {}", ask(local, Some("key-nobody"), "hello").await?.0);

    println!("\nscript sends three slow questions at once (at most 2 in flight per client), grace one:");
    let calls: Vec<_> = ["key-script", "key-script", "key-script", "key-grace"]
        .into_iter()
        .map(|key| tokio::spawn(ask(local, Some(key), "answer slowly")))
        .collect();
    for call in calls {
        let (status, _, body) = call.await.map_err(|e| e.to_string())??;
        println!("  {status}  {body}");
    }

    let (_, _, ready) = get(local, "/health/ready").await?;
    println!("\nGET /health/ready: {ready}");
    let (_, _, metrics) = get(local, "/metrics").await?;
    for line in
        metrics.lines().filter(|l| l.starts_with("adk_bulkhead_rejections_total") || l.starts_with("adk_calls_total"))
    {
        println!("  {line}");
    }
    println!();
    Ok(())
}

type Answered = (StatusCode, HeaderMap, String);

async fn ask(local: SocketAddr, key: Option<&'static str>, prompt: &str) -> Result<Answered, String> {
    let mut request =
        hyper::Request::post(format!("http://{local}/v1/answer")).header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header(API_KEY, key);
    }
    let body = serde_json::json!({"prompt": prompt}).to_string();
    send(request.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?).await
}

async fn get(local: SocketAddr, path: &str) -> Result<Answered, String> {
    let request = hyper::Request::get(format!("http://{local}{path}")).body(Full::new(Bytes::new()));
    send(request.map_err(|e| e.to_string())?).await
}

async fn send(request: hyper::Request<Full<Bytes>>) -> Result<Answered, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client.request(request).await.map_err(|e| format!("request failed: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| format!("reading the answer: {e}"))?.to_bytes();
    Ok((parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned()))
}
