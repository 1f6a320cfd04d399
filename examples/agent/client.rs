//! A minimal client of the OpenAI-compatible chat API over plain HTTP/1.1 (hyper), and the error type that tells the
//! adk stack what each failure means: 429 carries the provider's `Retry-After`, 5xx and transport failures are
//! transient, other 4xx permanent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

/// Why an answer could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The provider failed (5xx, 408): worth another try.
    #[error("provider failed with HTTP {status}: {message}")]
    Provider { status: u16, message: String },
    /// The provider refused the request itself (4xx): the same request will fail again.
    #[error("provider rejected the request with HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    /// The provider throttled us (HTTP 429). The refusal carries its `Retry-After`, so `#[adk::retry]` waits it out
    /// (or gives up at once when it is longer than the retry's `max_delay`) and the breaker does not count it: a
    /// provider enforcing its quota is not a provider failing.
    #[error("provider throttled the request (HTTP 429, retry after {:?})", hint(.throttle))]
    Throttled { throttle: adk::Error },
    /// No answer came back: connection refused or reset, or a body that is not a chat completion.
    #[error("transport: {0}")]
    Transport(String),
    /// A refusal of one of the agent's own policies (timeout, open breaker, quota, full bulkhead).
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for AgentError {
    fn class(&self) -> adk::ErrorClass {
        match self {
            AgentError::Rejected { .. } => adk::ErrorClass::Permanent,
            AgentError::Provider { .. } | AgentError::Transport(_) => adk::ErrorClass::Transient,
            AgentError::Throttled { throttle: e } | AgentError::Adk(e) => e.class(),
        }
    }

    fn adk_error(&self) -> Option<&adk::Error> {
        match self {
            AgentError::Throttled { throttle: e } | AgentError::Adk(e) => Some(e),
            _ => None,
        }
    }
}

fn hint(refusal: &adk::Error) -> Duration {
    adk::Classify::retry_after(refusal).unwrap_or_default()
}

/// One answer: the model asked, the provider's id of the completion, the text.
#[derive(Debug, Clone)]
pub struct Answer {
    pub model: String,
    pub id: String,
    pub text: String,
}

/// Requests sent and how they ended, as the client saw them.
#[derive(Debug, Default)]
pub struct Sent {
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub throttled: AtomicU64,
    pub server_errors: AtomicU64,
    pub rejected: AtomicU64,
    pub transport_errors: AtomicU64,
}

/// A chat-completions client for one OpenAI-compatible endpoint.
pub struct ChatClient {
    /// The provider's name in refusals and logs.
    provider: &'static str,
    completions: Uri,
    api_key: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
    pub sent: Sent,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [Message<'a>; 2],
    max_tokens: u32,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    id: String,
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

impl ChatClient {
    /// A client of `base_url` (e.g. `http://127.0.0.1:11434/v1`); only `http://` is supported.
    pub fn new(provider: &'static str, base_url: &str, api_key: Option<String>) -> Result<ChatClient, String> {
        let base = base_url.trim_end_matches('/');
        if !base.starts_with("http://") {
            return Err(format!(
                "{base_url}: only http:// endpoints are supported (this example bundles no TLS); \
                 use a local OpenAI-compatible server or a local TLS-terminating proxy"
            ));
        }
        let completions = format!("{base}/chat/completions").parse().map_err(|e| format!("{base_url}: {e}"))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let http = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Ok(ChatClient { provider, completions, api_key, http, sent: Sent::default() })
    }

    /// `host:port` of the provider, for the readiness check.
    pub fn authority(&self) -> String {
        let host = self.completions.host().unwrap_or("localhost");
        format!("{host}:{}", self.completions.port_u16().unwrap_or(80))
    }

    /// One chat completion: a system prompt and the user's prompt.
    pub async fn complete(&self, model: &str, prompt: &str) -> Result<Answer, AgentError> {
        let body = ChatRequest {
            model,
            messages: [
                Message { role: "system", content: "You are a concise assistant. Answer in one sentence." },
                Message { role: "user", content: prompt },
            ],
            max_tokens: 64,
        };
        let body = serde_json::to_vec(&body).expect("a chat request serialises");
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.completions.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(key) = &self.api_key {
            request = request.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = request.body(Full::new(Bytes::from(body))).expect("a valid request");

        self.sent.requests.fetch_add(1, Ordering::Relaxed);
        let (status, headers, body) = match self.send(request).await {
            Ok(answer) => answer,
            Err(error) => {
                self.sent.transport_errors.fetch_add(1, Ordering::Relaxed);
                return Err(error);
            }
        };
        let counter = match status.as_u16() {
            200..=299 => &self.sent.ok,
            429 => &self.sent.throttled,
            500.. | 408 => &self.sent.server_errors,
            _ => &self.sent.rejected,
        };
        counter.fetch_add(1, Ordering::Relaxed);

        if status.is_success() {
            let parsed: ChatResponse = serde_json::from_slice(&body)
                .map_err(|e| AgentError::Transport(format!("not a chat completion: {e}")))?;
            let text = parsed.choices.into_iter().next().and_then(|c| c.message.content).unwrap_or_default();
            return Ok(Answer { model: model.to_owned(), id: parsed.id, text });
        }
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
        Err(match status.as_u16() {
            429 => AgentError::Throttled { throttle: self.throttle(&headers) },
            status @ (500.. | 408) => AgentError::Provider { status, message },
            status => AgentError::Rejected { status, message },
        })
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, HeaderMap, Bytes), AgentError> {
        let response = self.http.request(request).await.map_err(transport)?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(transport)?.to_bytes();
        Ok((parts.status, parts.headers, body))
    }

    /// The provider's 429 as an adk refusal: `retry-after-ms` (sent by some providers) or `retry-after` in seconds,
    /// and OpenAI's `x-ratelimit-*-requests` headers when present. No hint means "use your own backoff".
    fn throttle(&self, headers: &HeaderMap) -> adk::Error {
        let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|v| *v >= 0.0);
        let retry_after = number("retry-after-ms")
            .map(|ms| ms / 1000.0)
            .or_else(|| number("retry-after"))
            .map_or(Duration::ZERO, Duration::from_secs_f64);
        let limit = number("x-ratelimit-limit-requests").unwrap_or(0.0) as u64;
        let remaining = number("x-ratelimit-remaining-requests").unwrap_or(0.0) as u64;
        adk::Error::rate_limited(self.provider, retry_after, limit, remaining)
    }

    /// `GET url`: the status and the body as text, for reading the agent's own `/metrics` and probes.
    pub async fn get(&self, url: &str) -> Result<(u16, String), String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let request = Request::get(uri).body(Full::new(Bytes::new())).expect("a valid request");
        let (status, _, body) = self.send(request).await.map_err(|e| format!("{url}: {e}"))?;
        Ok((status.as_u16(), String::from_utf8_lossy(&body).into_owned()))
    }
}

/// A transport failure with its causes: hyper's own message ("client error (Connect)") names none.
fn transport(error: impl std::error::Error) -> AgentError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    AgentError::Transport(message)
}
