//! The HTTP server of the probes and `/metrics`: HTTP/1.1 on hyper, four routes, no framework.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::task::{JoinHandle, JoinSet};

use super::{Health, ProbeReport};

/// The Prometheus text format's content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A running server of `/metrics`, `/health/live`, `/health/ready` and `/health/startup`. Stops when dropped.
///
/// Probes answer `GET` (and `HEAD`) with the [`ProbeReport`] as JSON: 200 when healthy or degraded, 503 when
/// unhealthy. `/metrics` answers [`crate::metrics::render`]. Other paths are 404, other methods 405.
///
/// ```
/// use adk_runtime::health::{CheckResult, Health, HealthServer};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let health = Health::new();
/// health.add_check("model", || async { CheckResult::healthy() });
/// let server = HealthServer::bind("127.0.0.1:0", health.clone()).await?;
/// println!("probes on http://{}/health/ready", server.local_addr());
/// health.mark_started();
/// // ... run the application; dropping `server` stops it.
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
#[must_use = "the server stops when this handle is dropped"]
pub struct HealthServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HealthServer {
    /// Binds `addr` (port 0 picks a free port) and serves `health` on a task of the current tokio runtime.
    ///
    /// ```
    /// # use adk_runtime::health::HealthServer;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let taken = HealthServer::bind("127.0.0.1:0", adk_runtime::health::global().clone()).await.unwrap();
    /// assert!(HealthServer::bind(taken.local_addr(), Default::default()).await.is_err(), "the port is in use");
    /// # });
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs, health: Health) -> io::Result<HealthServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let task = tokio::spawn(serve(listener, health));
        Ok(HealthServer { local_addr, task })
    }

    /// The bound address.
    ///
    /// ```
    /// # use adk_runtime::health::{Health, HealthServer};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = HealthServer::bind("127.0.0.1:0", Health::new()).await.unwrap();
    /// assert_ne!(server.local_addr().port(), 0);
    /// # });
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes open connections (the same as dropping the handle).
    ///
    /// ```
    /// # use adk_runtime::health::{Health, HealthServer};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = HealthServer::bind("127.0.0.1:0", Health::new()).await.unwrap();
    /// server.shutdown();
    /// # });
    /// ```
    pub fn shutdown(self) {}
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `health` and `/metrics` on `listener` until the returned future is dropped (open connections close with
/// it). For applications that run their own accept loop or task, instead of [`HealthServer`].
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:9090").await?;
/// tokio::spawn(adk_runtime::health::serve(listener, adk_runtime::health::global().clone()));
/// # Ok(()) }
/// ```
pub async fn serve(listener: TcpListener, health: Health) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "health server: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let health = health.clone();
        connections.spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let health = health.clone();
                async move { Ok::<_, Infallible>(respond(&health, request.method(), request.uri().path()).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "health server: connection closed with an error");
            }
        });
    }
}

/// The paths served, for routers that mount them elsewhere (`adk::http::router()`).
pub(crate) const PATHS: [&str; 4] = ["/metrics", "/health/live", "/health/ready", "/health/startup"];

/// The answer to `method` on `path`: what the server and the axum router both send.
pub(crate) async fn respond(health: &Health, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if !PATHS.contains(&path) {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let report = match path {
        "/metrics" => return body(StatusCode::OK, METRICS_CONTENT_TYPE, crate::metrics::render()),
        "/health/live" => health.liveness().await,
        "/health/ready" => health.readiness().await,
        _ => health.startup(),
    };
    probe(&report)
}

fn probe(report: &ProbeReport) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(report.status.http_status()).expect("200 and 503 are valid");
    body(status, "application/json", report.to_json())
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    body(status, "text/plain; charset=utf-8", text.to_owned())
}

fn body(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Probes and scrapes must see the present, never a proxy's copy.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::health::{CheckReport, CheckResult};

    struct Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }

        fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
        }
    }

    /// One HTTP/1.1 request over a fresh connection, as a kubelet or Prometheus sends it.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> Answer {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!("{method} {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
        let mut lines = head.lines();
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Answer { status, headers, body: body.to_owned() }
    }

    async fn get(addr: SocketAddr, path: &str) -> Answer {
        request(addr, "GET", path).await
    }

    #[tokio::test]
    async fn startup_and_readiness_answer_503_until_the_app_marks_itself_started() {
        let health = Health::new();
        let server = HealthServer::bind("127.0.0.1:0", health.clone()).await.unwrap();
        let addr = server.local_addr();

        let startup = get(addr, "/health/startup").await;
        assert_eq!(startup.status, 503);
        assert_eq!(startup.header("content-type"), Some("application/json"));
        assert_eq!(startup.json()["checks"][0]["reason"], "not started");
        let ready = get(addr, "/health/ready").await;
        assert_eq!((ready.status, ready.json()["checks"][0]["name"].as_str()), (503, Some("startup")));
        assert_eq!(get(addr, "/health/live").await.status, 200, "a starting process is alive");

        health.mark_started();
        assert_eq!(get(addr, "/health/startup").await.status, 200);
        let ready = get(addr, "/health/ready").await;
        assert_eq!(ready.status, 200);
        assert_eq!(ready.json(), serde_json::json!({"status": "healthy", "checks": []}));
    }

    #[tokio::test]
    async fn readiness_names_the_cause_degraded_is_200_and_unhealthy_is_503() {
        let health = Health::new();
        health.mark_started();
        health.add_check("postgres", || async { CheckResult::healthy() });
        health.add_source(|| vec![CheckReport::new("circuit_breaker:openai", CheckResult::degraded("open for 12s"))]);
        let server = HealthServer::bind("127.0.0.1:0", health.clone()).await.unwrap();

        let ready = get(server.local_addr(), "/health/ready").await;
        assert_eq!(ready.status, 200, "{}", ready.body);
        assert_eq!(
            ready.json(),
            serde_json::json!({"status": "degraded", "checks": [
                {"name": "postgres", "status": "healthy"},
                {"name": "circuit_breaker:openai", "status": "degraded", "reason": "open for 12s"},
            ]})
        );

        health.add_check("redis", || async { CheckResult::unhealthy("connection refused") });
        let ready = get(server.local_addr(), "/health/ready").await;
        assert_eq!(ready.status, 503);
        let body = ready.json();
        assert_eq!(body["status"], "unhealthy");
        assert_eq!(
            body["checks"][1],
            serde_json::json!({"name": "redis", "status": "unhealthy", "reason": "connection refused"})
        );
        assert_eq!(ready.header("cache-control"), Some("no-store"));
    }

    #[tokio::test]
    async fn liveness_fails_only_on_liveness_checks() {
        let health = Health::new();
        health.add_check("dependency", || async { CheckResult::unhealthy("down") });
        let server = HealthServer::bind("127.0.0.1:0", health.clone()).await.unwrap();
        assert_eq!(get(server.local_addr(), "/health/live").await.status, 200);

        health.add_liveness_check("event_loop", || async { CheckResult::unhealthy("stalled for 30s") });
        let live = get(server.local_addr(), "/health/live").await;
        assert_eq!(live.status, 503);
        assert_eq!(live.json()["checks"][0]["reason"], "stalled for 30s");
    }

    #[tokio::test]
    async fn metrics_are_served_in_the_prometheus_text_format() {
        crate::fallback::FALLBACKS_TOTAL.with(&["health::server::tests"]).inc();
        let server = HealthServer::bind("127.0.0.1:0", Health::new()).await.unwrap();
        let metrics = get(server.local_addr(), "/metrics").await;
        assert_eq!(metrics.status, 200);
        assert_eq!(metrics.header("content-type"), Some(METRICS_CONTENT_TYPE));
        assert!(
            metrics.body.contains(r#"adk_fallbacks_total{function="health::server::tests"} 1"#),
            "{}",
            metrics.body
        );
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_other_methods_405() {
        let server = HealthServer::bind("127.0.0.1:0", Health::new()).await.unwrap();
        assert_eq!(get(server.local_addr(), "/health").await.status, 404);
        let post = request(server.local_addr(), "POST", "/health/ready").await;
        assert_eq!((post.status, post.header("allow")), (405, Some("GET, HEAD")));
        let head = request(server.local_addr(), "HEAD", "/health/live").await;
        assert_eq!((head.status, head.body.as_str()), (200, ""));
    }

    #[tokio::test]
    async fn dropping_the_server_closes_its_port() {
        let server = HealthServer::bind("127.0.0.1:0", Health::new()).await.unwrap();
        let addr = server.local_addr();
        assert_eq!(get(addr, "/health/live").await.status, 200);
        drop(server);
        let refused = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if TcpStream::connect(addr).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        });
        refused.await.expect("the listener closes once the server task is dropped");
    }
}
