//! HTTP failures: the class of a status, the wait a `Retry-After` asks for, and [`HttpError`], which keeps both
//! where a client library's own error drops the headers.

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime};

use super::{Classify, Error, ErrorClass, chain};

impl ErrorClass {
    /// The class of an HTTP response status: 408 (request timeout), 429 (too many requests) and every 5xx are
    /// transient; every other status (400, 401, 403, 404, 422, ..., and statuses that are not errors) is
    /// permanent: the same request gets the same answer. These are the statuses Polly's
    /// `HandleTransientHttpError` retries, plus 429.
    ///
    /// ```
    /// use adk_runtime::ErrorClass;
    ///
    /// assert_eq!(ErrorClass::from_http_status(503), ErrorClass::Transient);
    /// assert_eq!(ErrorClass::from_http_status(429), ErrorClass::Transient);
    /// assert_eq!(ErrorClass::from_http_status(404), ErrorClass::Permanent);
    /// ```
    #[must_use]
    pub const fn from_http_status(status: u16) -> ErrorClass {
        match status {
            408 | 429 | 500..=599 => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

/// An HTTP call that failed: the server answered with an error status (and perhaps said how long to wait before
/// trying again), the request never got an answer, or one of adk's policies refused it.
///
/// It classifies itself (see [`Classify`]): a status by [`ErrorClass::from_http_status`], with the server's
/// `Retry-After` as the `retry_after` hint so `#[retry]` waits exactly what the server asked; a transport failure by
/// the first error of its chain adk knows (a timeout or a refused connection is transient); a refusal as the
/// [`Error`] it is. So `Result<T, HttpError>` is a complete error type for a function that makes HTTP calls, under
/// any stack of policies, and an `HttpError` inside an `anyhow::Error` is found by the chain walk too.
///
/// With the `reqwest` feature, `Response::error_for_status_with_retry_after` (from
/// [`reqwest::ResponseExt`](super::reqwest::ResponseExt)) builds one from a response, and `?` turns a
/// `reqwest::Error` into one. With another client, build it from the status and the headers:
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::{Classify, ErrorClass, HttpError};
///
/// // What a client saw: a 429 with `Retry-After: 7`.
/// let (status, retry_after_header) = (429, Some("7"));
/// let error = HttpError::from_status(status)
///     .with_retry_after(retry_after_header.and_then(HttpError::parse_retry_after))
///     .with_url("https://api.example.com/v1/complete");
/// assert_eq!(error.class(), ErrorClass::Transient);
/// assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
/// assert_eq!(error.to_string(), "HTTP status 429 from https://api.example.com/v1/complete, retry after 7s");
/// ```
#[derive(Debug)]
pub struct HttpError(Repr);

#[derive(Debug)]
enum Repr {
    Status { status: u16, retry_after: Option<Duration>, url: Option<String> },
    Transport(Box<dyn StdError + Send + Sync>),
    Refused(Error),
}

impl HttpError {
    /// The server answered with `status` (an error status, 4xx or 5xx).
    #[must_use]
    pub fn from_status(status: u16) -> Self {
        HttpError(Repr::Status { status, retry_after: None, url: None })
    }

    /// The request got no answer: `error` is the client's own error (a connect error, a timeout, a broken body),
    /// classified by the first error of its chain adk knows, transient otherwise.
    ///
    /// ```
    /// use adk_runtime::{Classify, ErrorClass, HttpError};
    ///
    /// let refused = HttpError::transport(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    /// assert_eq!(refused.class(), ErrorClass::Transient);
    /// assert_eq!(refused.status(), None);
    /// ```
    pub fn transport(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        HttpError(Repr::Transport(error.into()))
    }

    /// The wait the server asked for (from `Retry-After`, `retry-after-ms` or the like); `None` leaves it unknown.
    /// Only a status error keeps it.
    #[must_use]
    pub fn with_retry_after(mut self, wait: impl Into<Option<Duration>>) -> Self {
        if let Repr::Status { retry_after, .. } = &mut self.0 {
            *retry_after = wait.into();
        }
        self
    }

    /// The URL that answered, shown in the message. Only a status error keeps it.
    #[must_use]
    pub fn with_url(mut self, address: impl Into<String>) -> Self {
        if let Repr::Status { url, .. } = &mut self.0 {
            *url = Some(address.into());
        }
        self
    }

    /// The status the server answered with; `None` for a transport failure or a refusal.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match &self.0 {
            Repr::Status { status, .. } => Some(*status),
            Repr::Transport(_) | Repr::Refused(_) => None,
        }
    }

    /// The URL that answered, if known.
    #[must_use]
    pub fn url(&self) -> Option<&str> {
        match &self.0 {
            Repr::Status { url, .. } => url.as_deref(),
            Repr::Transport(_) | Repr::Refused(_) => None,
        }
    }

    /// The wait a `Retry-After` header value asks for: delta-seconds (`"120"`, fractions accepted) or an HTTP-date
    /// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, counted from now on the system clock; a date in the past is no wait).
    /// `None` for a value that is neither.
    ///
    /// ```
    /// use std::time::Duration;
    /// use adk_runtime::HttpError;
    ///
    /// assert_eq!(HttpError::parse_retry_after("2"), Some(Duration::from_secs(2)));
    /// assert_eq!(HttpError::parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
    /// assert_eq!(HttpError::parse_retry_after("soon"), None);
    /// ```
    #[must_use]
    pub fn parse_retry_after(value: &str) -> Option<Duration> {
        retry_after_at(value, SystemTime::now())
    }

    /// The wait a `retry-after-ms` header value (milliseconds, as OpenAI and Azure OpenAI send it beside
    /// `Retry-After`) asks for.
    ///
    /// ```
    /// use std::time::Duration;
    /// use adk_runtime::HttpError;
    ///
    /// assert_eq!(HttpError::parse_retry_after_ms("1500"), Some(Duration::from_millis(1500)));
    /// ```
    #[must_use]
    pub fn parse_retry_after_ms(value: &str) -> Option<Duration> {
        decimal(value).and_then(|millis| Duration::try_from_secs_f64(millis / 1000.0).ok())
    }
}

/// `Retry-After` relative to `now`.
fn retry_after_at(value: &str, now: SystemTime) -> Option<Duration> {
    if let Some(seconds) = decimal(value) {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = httpdate::parse_http_date(value.trim()).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A non-negative decimal number of reasonable size: digits, optionally a fraction; no sign, no exponent.
fn decimal(value: &str) -> Option<f64> {
    let value = value.trim();
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || value.ends_with('.') {
        return None;
    }
    value.parse().ok()
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Status { status, retry_after, url } => {
                write!(f, "HTTP status {status}")?;
                if let Some(url) = url {
                    write!(f, " from {url}")?;
                }
                if let Some(wait) = retry_after {
                    write!(f, ", retry after {wait:?}")?;
                }
                Ok(())
            }
            Repr::Transport(error) => fmt::Display::fmt(error, f),
            Repr::Refused(error) => fmt::Display::fmt(error, f),
        }
    }
}

/// A transport failure or a refusal is transparent, as thiserror's `#[error(transparent)]`: its message and its
/// source are the wrapped error's.
impl StdError for HttpError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.0 {
            Repr::Status { .. } => None,
            Repr::Transport(error) => error.source(),
            Repr::Refused(error) => error.source(),
        }
    }
}

impl From<Error> for HttpError {
    fn from(error: Error) -> Self {
        HttpError(Repr::Refused(error))
    }
}

#[cfg(feature = "reqwest")]
impl From<reqwest::Error> for HttpError {
    fn from(error: reqwest::Error) -> Self {
        HttpError::transport(error)
    }
}

/// A status by [`ErrorClass::from_http_status`], with the server's wait; a transport failure by its chain
/// (transient if adk knows none of it); a refusal as itself.
impl Classify for HttpError {
    fn class(&self) -> ErrorClass {
        match &self.0 {
            Repr::Status { status, .. } => ErrorClass::from_http_status(*status),
            Repr::Transport(error) => chain::class(&**error),
            Repr::Refused(error) => error.class(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match &self.0 {
            Repr::Status { retry_after, .. } => *retry_after,
            Repr::Transport(error) => chain::first_known(&**error).and_then(Classify::retry_after),
            Repr::Refused(error) => error.retry_after(),
        }
    }

    fn adk_error(&self) -> Option<&Error> {
        match &self.0 {
            Repr::Status { .. } => None,
            Repr::Transport(error) => chain::first_known(&**error).and_then(Classify::adk_error),
            Repr::Refused(error) => Some(error),
        }
    }
}

/// A closed or timed-out connection and a cancelled request are transient, a malformed message or a misuse of the
/// API permanent; otherwise the error it wraps decides (an io error, say), transient if none.
#[cfg(any(feature = "http", feature = "reqwest", feature = "tonic"))]
#[diagnostic::do_not_recommend]
impl Classify for hyper::Error {
    fn class(&self) -> ErrorClass {
        if self.is_timeout()
            || self.is_closed()
            || self.is_canceled()
            || self.is_incomplete_message()
            || self.is_body_write_aborted()
        {
            ErrorClass::Transient
        } else if self.is_parse() || self.is_parse_status() || self.is_user() {
            ErrorClass::Permanent
        } else {
            self.source().map_or(ErrorClass::Transient, chain::class)
        }
    }
}

/// A request or response that could not be built (an invalid header, URI or method): permanent.
#[cfg(any(feature = "http", feature = "reqwest", feature = "tonic"))]
#[diagnostic::do_not_recommend]
impl Classify for hyper::http::Error {
    fn class(&self) -> ErrorClass {
        ErrorClass::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_rules() {
        for transient in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(ErrorClass::from_http_status(transient), ErrorClass::Transient, "{transient}");
        }
        for permanent in [400, 401, 403, 404, 409, 422, 200, 301, 0] {
            assert_eq!(ErrorClass::from_http_status(permanent), ErrorClass::Permanent, "{permanent}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(retry_after_at("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after_at(" 1.5 ", now), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after_at("Sun, 06 Nov 1994 08:49:39 GMT", now), Some(Duration::from_secs(2)));
        // The two obsolete formats RFC 9110 asks recipients to accept.
        assert_eq!(retry_after_at("Sunday, 06-Nov-94 08:49:40 GMT", now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after_at("Sun Nov  6 08:49:41 1994", now), Some(Duration::from_secs(4)));
        assert_eq!(retry_after_at("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO), "a past date");
        for bad in ["", "-1", "+5", "1e3", "soon", "1.", ".5", "99999999999999999999999"] {
            assert_eq!(retry_after_at(bad, now), None, "{bad:?}");
        }
        assert_eq!(HttpError::parse_retry_after_ms("250"), Some(Duration::from_millis(250)));
        assert_eq!(HttpError::parse_retry_after_ms("12.5"), Some(Duration::from_micros(12_500)));
        assert_eq!(HttpError::parse_retry_after_ms("later"), None);
    }

    #[test]
    fn an_http_error_classifies_what_it_holds() {
        let busy = HttpError::from_status(503).with_retry_after(Duration::from_secs(2));
        assert_eq!(
            (busy.class(), busy.retry_after(), busy.status()),
            (ErrorClass::Transient, Some(Duration::from_secs(2)), Some(503))
        );
        assert!(busy.adk_error().is_none());
        assert_eq!(HttpError::from_status(404).class(), ErrorClass::Permanent);
        let refused = HttpError::from(Error::circuit_open("provider", Duration::from_secs(9)));
        assert_eq!(refused.retry_after(), Some(Duration::from_secs(9)));
        assert!(matches!(refused.adk_error(), Some(Error::CircuitOpen { .. })));
        assert_eq!(refused.to_string(), "circuit breaker `provider` is open; next trial in 9s");
        let reset = HttpError::transport(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(reset.class(), ErrorClass::Transient);
        assert_eq!(HttpError::transport("who knows").class(), ErrorClass::Transient);
        assert_eq!(HttpError::from_status(500).with_url("http://x/").to_string(), "HTTP status 500 from http://x/");
    }
}
