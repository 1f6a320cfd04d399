//! Errors as users have them, under stacks of policies: `anyhow::Result`, `eyre::Result`, `Result<_, adk::HttpError>`,
//! `Result<_, reqwest::Error>`, `Result<_, tonic::Status>` and `io::Result`, against real servers on 127.0.0.1
//! (hyper for HTTP, tonic for gRPC; see `http_server` and `grpc_server`).
//!
//! Waits are measured on tokio's paused clock where the test can hold it: the clock jumps to the next timer whenever
//! the runtime is idle, and a runtime waiting for a socket is idle, so a timer pending while a request is in flight
//! (a `#[timeout]`, a client timeout) would fire at once. The paused tests therefore run stacks whose only timer
//! during I/O is none at all (retry and breaker, a client without timeouts or pooled connections): the clock then
//! moves only for the retry's sleep, and exactly as far as it asks, which the body sees as the instants of its
//! attempts. The servers run on threads of their own on the real clock. Stacks with a timeout run on the real clock,
//! with short waits.

#[cfg(feature = "tonic")]
mod grpc_server;
#[cfg(feature = "reqwest")]
mod http_server;

use std::time::Duration;

use adk::{Classify, ErrorClass};

/// CI runs with every feature, so none of these tests is compiled out there.
#[test]
fn every_integration_is_built_under_ci() {
    if std::env::var("CI").as_deref() == Ok("true") {
        let features = [
            ("anyhow", cfg!(feature = "anyhow")),
            ("eyre", cfg!(feature = "eyre")),
            ("reqwest", cfg!(feature = "reqwest")),
            ("tonic", cfg!(feature = "tonic")),
        ];
        let off: Vec<&str> = features.iter().filter(|(_, on)| !on).map(|(name, _)| *name).collect();
        assert!(off.is_empty(), "CI runs `cargo test --all-features`, but the tests of {off:?} are compiled out");
    }
}

/// The virtual instants of a function's attempts.
#[cfg(any(feature = "reqwest", feature = "tonic"))]
#[derive(Default)]
struct Attempts(std::sync::Mutex<Vec<tokio::time::Instant>>);

#[cfg(any(feature = "reqwest", feature = "tonic"))]
impl Attempts {
    fn record(&self) {
        self.0.lock().unwrap().push(tokio::time::Instant::now());
    }

    fn gaps(&self) -> Vec<Duration> {
        self.0.lock().unwrap().windows(2).map(|pair| pair[1] - pair[0]).collect()
    }
}

mod io {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    static CALLS: AtomicU32 = AtomicU32::new(0);

    #[adk::retry(attempts = 3, base = "100ms")]
    #[adk::circuit_breaker(name = "errors-io", min_calls = 100)]
    #[adk::timeout("1s")]
    async fn read(path: &str, hang: bool) -> std::io::Result<Vec<u8>> {
        CALLS.fetch_add(1, Ordering::SeqCst);
        if hang {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        // Synchronous: tokio::fs would hand the read to a blocking thread, and the paused clock must not move then.
        std::fs::read(path)
    }

    #[tokio::test(start_paused = true)]
    async fn io_results_carry_the_stack_a_missing_file_is_not_retried_a_timeout_is() {
        CALLS.store(0, Ordering::SeqCst);
        let missing = read("/nonexistent/adk/errors", false).await.unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(CALLS.swap(0, Ordering::SeqCst), 1, "NotFound is permanent");

        let started = tokio::time::Instant::now();
        let timed_out = read("/nonexistent/adk/errors", true).await.unwrap_err();
        assert_eq!(timed_out.kind(), std::io::ErrorKind::TimedOut);
        assert!(matches!(timed_out.adk_error(), Some(adk::Error::Timeout { .. })), "{timed_out:?}");
        assert_eq!(CALLS.swap(0, Ordering::SeqCst), 3, "a timeout is transient");
        assert_eq!(started.elapsed(), Duration::from_millis(3000 + 100 + 200));
    }

    static CONNECTS: AtomicU32 = AtomicU32::new(0);

    #[adk::retry(attempts = 3, base = "10ms")]
    #[adk::timeout("5s")]
    async fn connect(addr: std::net::SocketAddr) -> std::io::Result<()> {
        CONNECTS.fetch_add(1, Ordering::SeqCst);
        tokio::net::TcpStream::connect(addr).await.map(drop)
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried() {
        // A port nobody listens on: bound, then released.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let refused = connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        assert_eq!(CONNECTS.load(Ordering::SeqCst), 3);
    }
}

#[cfg(feature = "anyhow")]
mod anyhow_chains {
    use super::*;
    use adk::runtime::circuit_breaker::{Record, by_class};
    use anyhow::Context;

    #[adk::rate_limited(name = "errors-anyhow-quota", rpm = 1)]
    async fn ask_provider() -> anyhow::Result<&'static str> {
        Ok("answer")
    }

    #[adk::circuit_breaker(name = "errors-anyhow-breaker", min_calls = 3, window = 3, failure_rate = 0.5)]
    async fn answer() -> anyhow::Result<&'static str> {
        ask_provider().await.context("asking the provider")
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_inside_an_anyhow_chain_is_not_a_breaker_failure() {
        assert_eq!(answer().await.unwrap(), "answer");
        for _ in 0..5 {
            let refused = answer().await.unwrap_err();
            assert_eq!(refused.to_string(), "asking the provider", "the context is the outer error");
            assert!(matches!(refused.adk_error(), Some(adk::Error::RateLimited { .. })), "{refused:?}");
            assert_eq!(by_class(&refused), Record::Ignore);
        }
        let breaker = adk::registry().circuit_breaker("errors-anyhow-breaker").unwrap();
        assert_eq!(breaker.state(), adk::CircuitState::Closed, "five refusals recorded as failures would open it");
    }

    #[adk::circuit_breaker(name = "errors-anyhow-failing", min_calls = 3, window = 3, failure_rate = 0.5)]
    async fn failing() -> anyhow::Result<()> {
        Err(adk::HttpError::from_status(503)).context("calling the provider")
    }

    #[tokio::test(start_paused = true)]
    async fn a_known_failure_inside_an_anyhow_chain_is_a_breaker_failure() {
        for _ in 0..3 {
            failing().await.unwrap_err();
        }
        let refused = failing().await.unwrap_err();
        assert!(matches!(refused.adk_error(), Some(adk::Error::CircuitOpen { .. })), "{refused:?}");
    }

    #[test]
    fn a_chain_adk_does_not_know_is_transient() {
        assert_eq!(anyhow::anyhow!("the model said something odd").class(), ErrorClass::Transient);
        let denied = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::PermissionDenied)).context("cache");
        assert_eq!(denied.class(), ErrorClass::Permanent);
    }
}

#[cfg(feature = "reqwest")]
mod reqwest_calls {
    use super::http_server::server;
    use super::*;
    use adk::reqwest::ResponseExt;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// No client timeout and no pooled connection: nothing on the test's clock while a request is in flight.
    fn client() -> reqwest::Client {
        reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap()
    }

    #[cfg(feature = "anyhow")]
    #[adk::retry(attempts = 3, base = "10ms")]
    #[adk::circuit_breaker(name = "errors-anyhow-http", min_calls = 100)]
    #[adk::timeout("5s")]
    async fn fetch_anyhow(url: &str) -> anyhow::Result<String> {
        let response = client().get(url).send().await?.error_for_status_with_retry_after()?;
        Ok(response.text().await?)
    }

    #[cfg(feature = "anyhow")]
    #[tokio::test]
    async fn anyhow_a_503_is_retried_a_404_is_not() {
        let s = server();
        assert_eq!(fetch_anyhow(&s.url("503,503,200", "anyhow-503")).await.unwrap(), "ok");
        assert_eq!(s.hits("503,503,200", "anyhow-503"), 3);

        let not_found = fetch_anyhow(&s.url("404,200", "anyhow-404")).await.unwrap_err();
        assert_eq!(s.hits("404,200", "anyhow-404"), 1, "a 404 is permanent");
        assert_eq!(not_found.downcast_ref::<adk::HttpError>().and_then(adk::HttpError::status), Some(404));
        assert_eq!(not_found.class(), ErrorClass::Permanent);
    }

    #[cfg(feature = "anyhow")]
    #[tokio::test]
    async fn anyhow_a_429_waits_what_retry_after_ms_asks_under_a_timeout() {
        let s = server();
        let started = std::time::Instant::now();
        assert_eq!(fetch_anyhow(&s.url("429ms300,200", "anyhow-429ms")).await.unwrap(), "ok");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300), "the backoff alone is 10 ms; waited {waited:?}");
        assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    }

    #[cfg(feature = "anyhow")]
    #[adk::retry(attempts = 2, base = "10ms")]
    #[adk::circuit_breaker(name = "errors-anyhow-paused", min_calls = 100)]
    async fn fetch_recorded(url: &str, attempts: &Attempts) -> anyhow::Result<String> {
        attempts.record();
        let response = client().get(url).send().await?.error_for_status_with_retry_after()?;
        Ok(response.text().await?)
    }

    #[cfg(feature = "anyhow")]
    #[tokio::test(start_paused = true)]
    async fn anyhow_a_429_with_retry_after_2_waits_exactly_2_s() {
        let attempts = Attempts::default();
        assert_eq!(fetch_recorded(&server().url("429s2,200", "paused-s2"), &attempts).await.unwrap(), "ok");
        assert_eq!(attempts.gaps(), [Duration::from_secs(2)]);
    }

    #[cfg(feature = "anyhow")]
    #[tokio::test(start_paused = true)]
    async fn anyhow_a_429_with_an_http_date_waits_until_that_date() {
        let attempts = Attempts::default();
        assert_eq!(fetch_recorded(&server().url("429date3,200", "paused-date"), &attempts).await.unwrap(), "ok");
        // The date has whole seconds: three seconds from the server's now, truncated, less the time the answer took
        // to be read (well below a second, even on a loaded machine).
        let gap = attempts.gaps()[0];
        assert!(gap > Duration::from_secs(1) && gap <= Duration::from_secs(3), "{gap:?}");
    }

    #[adk::retry(attempts = 3, base = "10ms")]
    #[adk::circuit_breaker(name = "errors-http-error", min_calls = 100)]
    #[adk::timeout("5s")]
    async fn fetch(url: &str) -> Result<String, adk::HttpError> {
        let response = client().get(url).send().await?.error_for_status_with_retry_after()?;
        Ok(response.text().await?)
    }

    #[tokio::test]
    async fn http_error_carries_the_whole_stack() {
        let s = server();
        assert_eq!(fetch(&s.url("502,504,200", "http-error-5xx")).await.unwrap(), "ok");
        assert_eq!(s.hits("502,504,200", "http-error-5xx"), 3);
        let unauthorised = fetch(&s.url("401", "http-error-401")).await.unwrap_err();
        assert_eq!((unauthorised.status(), s.hits("401", "http-error-401")), (Some(401), 1));
        let exhausted = fetch(&s.url("503", "http-error-exhausted")).await.unwrap_err();
        assert_eq!((exhausted.status(), s.hits("503", "http-error-exhausted")), (Some(503), 3));
    }

    static CALLS: AtomicU32 = AtomicU32::new(0);

    /// `reqwest::Error` cannot hold a refusal, so `retry` (which only reads errors) is the layer it can carry.
    #[adk::retry(attempts = 3, base = "10ms")]
    async fn fetch_plain(client: &reqwest::Client, url: &str) -> Result<String, reqwest::Error> {
        CALLS.fetch_add(1, Ordering::SeqCst);
        client.get(url).send().await?.error_for_status()?.text().await
    }

    #[tokio::test]
    async fn reqwest_errors_statuses_timeouts_and_refused_connections() {
        let (s, plain) = (server(), client());
        assert_eq!(fetch_plain(&plain, &s.url("500,200", "plain-500")).await.unwrap(), "ok");
        assert_eq!(s.hits("500,200", "plain-500"), 2);
        let bad = fetch_plain(&plain, &s.url("400,200", "plain-400")).await.unwrap_err();
        assert_eq!((bad.class(), s.hits("400,200", "plain-400")), (ErrorClass::Permanent, 1));

        let impatient = reqwest::Client::builder().timeout(Duration::from_millis(50)).build().unwrap();
        CALLS.store(0, Ordering::SeqCst);
        let timed_out = fetch_plain(&impatient, &s.url("slow", "plain-slow")).await.unwrap_err();
        assert!(timed_out.is_timeout(), "{timed_out:?}");
        assert_eq!(CALLS.load(Ordering::SeqCst), 3, "a timeout is transient");

        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        CALLS.store(0, Ordering::SeqCst);
        let refused = fetch_plain(&plain, &format!("http://{addr}/")).await.unwrap_err();
        assert!(refused.is_connect(), "{refused:?}");
        assert_eq!(CALLS.load(Ordering::SeqCst), 3, "a refused connection is transient");
    }

    #[tokio::test]
    async fn retry_after_survives_into_the_http_error() {
        let response = client().get(server().url("429s7", "headers")).send().await.unwrap();
        let error = response.error_for_status_with_retry_after().unwrap_err();
        assert_eq!((error.status(), error.retry_after()), (Some(429), Some(Duration::from_secs(7))));
        assert!(error.url().unwrap().ends_with("/script/429s7/headers"));
        let ok = client().get(server().url("200", "headers-ok")).send().await.unwrap();
        assert!(ok.error_for_status_with_retry_after().is_ok());
    }

    #[cfg(feature = "eyre")]
    #[adk::retry(attempts = 3, base = "10ms")]
    #[adk::circuit_breaker(name = "errors-eyre", min_calls = 100)]
    #[adk::timeout("5s")]
    async fn fetch_eyre(url: &str) -> eyre::Result<String> {
        use eyre::WrapErr;
        let response = client().get(url).send().await?.error_for_status_with_retry_after().wrap_err("fetching")?;
        Ok(response.text().await?)
    }

    #[cfg(feature = "eyre")]
    #[tokio::test]
    async fn eyre_a_503_is_retried_a_404_is_not() {
        let s = server();
        assert_eq!(fetch_eyre(&s.url("503,200", "eyre-503")).await.unwrap(), "ok");
        assert_eq!(s.hits("503,200", "eyre-503"), 2);
        let not_found = fetch_eyre(&s.url("404", "eyre-404")).await.unwrap_err();
        assert_eq!((not_found.class(), s.hits("404", "eyre-404")), (ErrorClass::Permanent, 1));
        assert_eq!(not_found.to_string(), "fetching");
    }
}

#[cfg(feature = "tonic")]
mod tonic_calls {
    use super::grpc_server::server;
    use super::*;
    use tonic::{Code, Status};

    #[adk::retry(attempts = 3, base = "10ms")]
    #[adk::circuit_breaker(name = "errors-tonic", min_calls = 100)]
    #[adk::timeout("5s")]
    async fn call(method: &str, script: &str) -> Result<(), Status> {
        server().call(method, script).await
    }

    #[tokio::test]
    async fn unavailable_is_retried_not_found_is_not() {
        call("Retried", "unavailable,resource_exhausted,ok").await.unwrap();
        assert_eq!(server().hits("Retried"), 3);
        let missing = call("Missing", "not_found,ok").await.unwrap_err();
        assert_eq!((missing.code(), server().hits("Missing")), (Code::NotFound, 1));
    }

    #[adk::retry(attempts = 2, base = "10ms")]
    #[adk::circuit_breaker(name = "errors-tonic-paused", min_calls = 100)]
    async fn call_recorded(method: &str, script: &str, attempts: &Attempts) -> Result<(), Status> {
        attempts.record();
        server().call(method, script).await
    }

    #[tokio::test(start_paused = true)]
    async fn retry_info_is_waited_exactly() {
        let attempts = Attempts::default();
        call_recorded("RetryInfo", "unavailable_retry2,ok", &attempts).await.unwrap();
        assert_eq!(attempts.gaps(), [Duration::from_secs(2)]);
    }

    #[adk::rate_limited(name = "errors-tonic-quota", rpm = 1)]
    async fn quota() -> Result<(), Status> {
        Ok(())
    }

    #[adk::circuit_breaker(name = "errors-tonic-breaker", min_calls = 3, window = 3, failure_rate = 0.5)]
    async fn through_quota() -> Result<(), Status> {
        quota().await
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_as_a_status_keeps_its_code_and_is_not_a_breaker_failure() {
        through_quota().await.unwrap();
        for _ in 0..5 {
            let refused = through_quota().await.unwrap_err();
            assert_eq!(refused.code(), Code::ResourceExhausted);
            assert!(matches!(refused.adk_error(), Some(adk::Error::RateLimited { .. })));
        }
        let breaker = adk::registry().circuit_breaker("errors-tonic-breaker").unwrap();
        assert_eq!(breaker.state(), adk::CircuitState::Closed);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_transient() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
        let mut grpc = tonic::client::Grpc::new(channel);
        let status = match grpc.ready().await {
            Err(e) => Status::from_error(Box::new(e)),
            Ok(()) => grpc
                .unary::<(), (), _>(
                    tonic::Request::new(()),
                    "/adk.test.Flaky/Nobody".parse().unwrap(),
                    tonic_prost::ProstCodec::default(),
                )
                .await
                .unwrap_err(),
        };
        assert_eq!(status.class(), ErrorClass::Transient, "{status:?}");
    }
}
