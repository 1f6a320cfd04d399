//! reqwest (0.13): `Classify` for `reqwest::Error`, and [`ResponseExt`], which turns an error response into an
//! [`HttpError`] that keeps the server's `Retry-After`.
//!
//! `reqwest::Error` keeps a response's status but not its headers, so a 429's `Retry-After` is gone by the time
//! `error_for_status()` returns. Check the status with
//! [`error_for_status_with_retry_after`](ResponseExt::error_for_status_with_retry_after) instead, and `#[retry]`
//! waits what the server asked:
//!
//! ```no_run
//! use adk_runtime::reqwest::ResponseExt;
//!
//! async fn fetch(client: &reqwest::Client, url: &str) -> Result<String, adk_runtime::HttpError> {
//!     let response = client.get(url).send().await?.error_for_status_with_retry_after()?;
//!     Ok(response.text().await?)
//! }
//! ```
//!
//! A function returning `Result<T, reqwest::Error>` can carry `#[retry]`, which only reads errors; layers that answer
//! with a refusal (`timeout`, `circuit_breaker`, `rate_limited`, `bulkhead`) need an error type that can hold one,
//! which `reqwest::Error` cannot (it has no public constructor): return `Result<T, adk::HttpError>` (as above),
//! `anyhow::Result<T>`, or an error type of your own with `#[derive(adk::Classify)]` and `#[adk(source)]` on the
//! `reqwest::Error` field.

use std::error::Error as StdError;

use super::{Classify, ErrorClass, HttpError, chain};

/// What adk adds to `reqwest::Response`.
pub trait ResponseExt: Sized + sealed::Sealed {
    /// `Ok(self)` for a status below 400; for an error status (4xx, 5xx), an [`HttpError`] with the status, the URL
    /// and the wait the server asked for: `retry-after-ms` (milliseconds, as OpenAI and Azure send it) if present,
    /// else `Retry-After` (delta-seconds or an HTTP-date). The body of an error response is dropped, as
    /// reqwest's `error_for_status` drops it.
    ///
    /// ```no_run
    /// use adk_runtime::reqwest::ResponseExt;
    /// use adk_runtime::Classify;
    ///
    /// # async fn run(client: reqwest::Client) {
    /// match client.get("http://127.0.0.1:8080/v1/complete").send().await {
    ///     Ok(response) => match response.error_for_status_with_retry_after() {
    ///         Ok(response) => println!("{}", response.status()),
    ///         Err(error) => println!("{error}: retry after {:?}", error.retry_after()),
    ///     },
    ///     Err(error) => println!("no answer: {error}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// The [`HttpError`] of a 4xx or 5xx response.
    fn error_for_status_with_retry_after(self) -> Result<Self, HttpError>;
}

impl ResponseExt for reqwest::Response {
    fn error_for_status_with_retry_after(self) -> Result<Self, HttpError> {
        let status = self.status();
        if !(status.is_client_error() || status.is_server_error()) {
            return Ok(self);
        }
        let header = |name: &str| self.headers().get(name).and_then(|value| value.to_str().ok());
        let wait = header("retry-after-ms")
            .and_then(HttpError::parse_retry_after_ms)
            .or_else(|| header(reqwest::header::RETRY_AFTER.as_str()).and_then(HttpError::parse_retry_after));
        Err(HttpError::from_status(status.as_u16()).with_retry_after(wait).with_url(self.url().as_str()))
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for reqwest::Response {}
}

/// A status error by its status ([`ErrorClass::from_http_status`]: 429 and 5xx transient, other 4xx permanent);
/// a timeout or a connect error transient; a request that could not be built, a redirect loop or a body that
/// does not decode permanent; anything else by the error it wraps (an io error, a hyper error), transient if
/// none. It carries no `retry_after`: reqwest drops the headers (see [`ResponseExt`]).
///
/// ```
/// use adk_runtime::{Classify, ErrorClass};
///
/// let bad_url = reqwest::Client::new().get("not a url").build().unwrap_err();
/// assert_eq!(bad_url.class(), ErrorClass::Permanent);
/// ```
#[diagnostic::do_not_recommend]
impl Classify for reqwest::Error {
    fn class(&self) -> ErrorClass {
        if let Some(status) = self.status() {
            ErrorClass::from_http_status(status.as_u16())
        } else if self.is_timeout() || self.is_connect() {
            ErrorClass::Transient
        } else if self.is_builder() || self.is_redirect() || self.is_decode() {
            ErrorClass::Permanent
        } else {
            self.source().map_or(ErrorClass::Transient, chain::class)
        }
    }
}
