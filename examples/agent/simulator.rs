//! A local stand-in for an LLM provider: `POST /v1/chat/completions` in the OpenAI format, with the faults real
//! providers have. Faults come from a seeded generator and a fixed timeline (seconds since the first request), so runs
//! are comparable:
//!
//! - every answer takes 80-400 ms (the large model) or 30-150 ms (the small one);
//! - 2% of requests hang for 6 s, past the agent's per-attempt timeout;
//! - 5% are throttled: HTTP 429 with `retry-after-ms`, `retry-after` and `x-ratelimit-*` headers;
//! - from 4 s to 8 s the large model is in an outage: 90% of its requests get HTTP 503;
//! - from 11 s to 11.8 s both models blip: 30% of requests get HTTP 502;
//! - a prompt mentioning "password" breaks the content policy: HTTP 400.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The model whose outage the timeline schedules.
pub const LARGE_MODEL: &str = "sim-large";
/// The cheaper model, spared by the outage.
pub const SMALL_MODEL: &str = "sim-small";

/// What the simulator did, by request.
#[derive(Debug, Default)]
pub struct Served {
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub throttled: AtomicU64,
    pub server_errors: AtomicU64,
    pub hung: AtomicU64,
    pub rejected: AtomicU64,
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    pub served: Arc<Served>,
    task: JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct State {
    seed: u64,
    /// The timeline starts at the first request.
    first_request: OnceLock<Instant>,
    served: Arc<Served>,
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    content: String,
}

enum Fault {
    None,
    Hang,
    Throttle { retry_after_ms: u64 },
    ServerError(StatusCode),
}

impl Simulator {
    /// Serves on 127.0.0.1 on a free port.
    pub async fn start(seed: u64) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let served = Arc::new(Served::default());
        let state = Arc::new(State { seed, first_request: OnceLock::new(), served: served.clone() });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.respond(request).await) }
                    });
                    // A client that gives up closes its connection mid-request; nothing to report.
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(Simulator { addr, served, task })
    }

    /// The base URL clients use, `http://127.0.0.1:port/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl State {
    async fn respond(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() != "/v1/chat/completions" {
            return error(StatusCode::NOT_FOUND, "not_found", "unknown path");
        }
        if request.method() != Method::POST {
            return error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "use POST");
        }
        let n = self.served.requests.fetch_add(1, Ordering::Relaxed);
        let elapsed = self.first_request.get_or_init(Instant::now).elapsed().as_secs_f64();
        let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "unreadable body");
        };
        let chat: ChatRequest = match serde_json::from_slice(&body) {
            Ok(chat) => chat,
            Err(e) => return self.reject(&format!("not a chat request: {e}")),
        };
        let Some(prompt) = chat.messages.last().map(|m| m.content.as_str()) else {
            return self.reject("messages is empty");
        };
        if prompt.contains("password") {
            return self.reject("the prompt violates the content policy");
        }

        // One generator per request: the same request number draws the same faults on every run.
        let mut rng = fastrand::Rng::with_seed(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let large = chat.model == LARGE_MODEL;
        let fault = if large && (4.0..8.0).contains(&elapsed) && rng.f64() < 0.9 {
            Fault::ServerError(StatusCode::SERVICE_UNAVAILABLE)
        } else if (11.0..11.8).contains(&elapsed) && rng.f64() < 0.3 {
            Fault::ServerError(StatusCode::BAD_GATEWAY)
        } else if rng.f64() < 0.05 {
            Fault::Throttle { retry_after_ms: rng.u64(200..=600) }
        } else if rng.f64() < 0.02 {
            Fault::Hang
        } else {
            Fault::None
        };
        let latency = if large { rng.u64(80..=400) } else { rng.u64(30..=150) };
        match fault {
            Fault::ServerError(status) => {
                tokio::time::sleep(Duration::from_millis(latency / 4)).await;
                self.served.server_errors.fetch_add(1, Ordering::Relaxed);
                return error(status, "server_error", "the model is overloaded, try again later");
            }
            Fault::Throttle { retry_after_ms } => {
                self.served.throttled.fetch_add(1, Ordering::Relaxed);
                let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", "rate limit reached");
                let headers = response.headers_mut();
                headers.insert("retry-after-ms", HeaderValue::from(retry_after_ms));
                headers.insert("retry-after", HeaderValue::from(retry_after_ms.div_ceil(1000)));
                headers.insert("x-ratelimit-limit-requests", HeaderValue::from(600));
                headers.insert("x-ratelimit-remaining-requests", HeaderValue::from(0));
                return response;
            }
            Fault::Hang => {
                self.served.hung.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(6)).await;
            }
            Fault::None => tokio::time::sleep(Duration::from_millis(latency)).await,
        }
        self.served.ok.fetch_add(1, Ordering::Relaxed);
        let answer = serde_json::json!({
            "id": format!("chatcmpl-{n}"),
            "object": "chat.completion",
            "model": chat.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": format!("A one-sentence answer to: {prompt}")},
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": prompt.len() / 4 + 20, "completion_tokens": 24},
        });
        json(StatusCode::OK, answer.to_string())
    }

    fn reject(&self, message: &str) -> Response<Full<Bytes>> {
        self.served.rejected.fetch_add(1, Ordering::Relaxed);
        error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }
}

/// An error in OpenAI's shape: `{"error": {"message", "type"}}`.
fn error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    json(status, serde_json::json!({"error": {"message": message, "type": kind}}).to_string())
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
