//! The error model: every policy refusal is an [`Error`] value, and [`Classify`] says which failures are worth another
//! try or count against a dependency.
//!
//! `Classify` is implemented for the errors applications already have, so most need no impl of their own:
//!
//! | error | feature | classified by |
//! |---|---|---|
//! | [`Error`] | | the refusal: transient with its `retry_after`, except [`Error::CostAboveLimit`] (permanent) |
//! | [`std::io::Error`] | | its kind (or the adk error it wraps) |
//! | `Box<dyn std::error::Error + Send + Sync>` | | the first error of its chain adk knows |
//! | `tokio::time::error::Elapsed` | | transient |
//! | [`HttpError`] | | its status ([`ErrorClass::from_http_status`]) and the server's `Retry-After` |
//! | `anyhow::Error` | `anyhow` (default) | the first error of its chain adk knows; transient if none |
//! | `eyre::Report` | `eyre` | the first error of its chain adk knows; transient if none |
//! | `reqwest::Error` | `reqwest` | timeouts and connect errors transient, then its status |
//! | `tonic::Status` | `tonic` | its code, with the delay of its `google.rpc.RetryInfo` detail |
//! | `hyper::Error`, `http::Error` | `http`, `reqwest` or `tonic` | timeouts and closed connections transient; malformed messages permanent |
//!
//! For an error type of your own, `#[derive(adk::Classify)]` (see the `adk` crate) writes the impl.

use std::time::Duration;

mod chain;
mod http;
#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "tonic")]
mod tonic;

pub use http::HttpError;

/// A refusal by one of adk's policies.
///
/// An annotated function's error type must implement `From<adk_runtime::Error>`, so refusals travel through the user's own
/// error type. Variants and their fields may grow: match with `..`.
///
/// ```
/// use std::time::Duration;
///
/// let refusal = adk_runtime::Error::timeout(Duration::from_secs(2));
/// match refusal {
///     adk_runtime::Error::Timeout { after, .. } => assert_eq!(after, Duration::from_secs(2)),
///     other => panic!("unexpected {other}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A rate limiter refused the call; it would be admitted after `retry_after`.
    #[error("rate limit `{name}` exceeded{}, retry after {retry_after:?}", capacity(*limit, *remaining))]
    #[non_exhaustive]
    RateLimited {
        /// The limiter's name.
        name: String,
        /// Time until the same call would be admitted.
        retry_after: Duration,
        /// The limiter's burst capacity.
        limit: u64,
        /// Capacity left at the moment of refusal.
        remaining: u64,
        /// Time until the limiter is back to full capacity.
        reset: Duration,
    },
    /// A rate limiter can never admit this call: it costs more units than the limiter holds at once. Permanent, not
    /// retried: waiting does not help; raise the limiter's burst or split the call.
    #[error("rate limit `{name}` can never admit a call costing {cost} units: it holds at most {limit}")]
    #[non_exhaustive]
    CostAboveLimit {
        /// The limiter's name.
        name: String,
        /// What the call would have spent.
        cost: u64,
        /// The most the limiter holds at once (its burst, or its units per window).
        limit: u64,
    },
    /// A circuit breaker is open: the dependency is not called until `retry_after` has passed.
    #[error("circuit breaker `{name}` is open; next trial in {retry_after:?}")]
    #[non_exhaustive]
    CircuitOpen {
        /// The breaker's name.
        name: String,
        /// Time left in the open state.
        retry_after: Duration,
    },
    /// The call did not finish within `after`.
    #[error("timed out after {after:?}")]
    #[non_exhaustive]
    Timeout {
        /// The bound that was exceeded.
        after: Duration,
    },
    /// A bulkhead had no free slot for the call.
    #[error("bulkhead `{name}` is full ({max_concurrent} calls in flight)")]
    #[non_exhaustive]
    BulkheadFull {
        /// The bulkhead's name.
        name: String,
        /// The bulkhead's bound.
        max_concurrent: usize,
    },
    /// A policy whose state lives in a shared backend (Redis) could not reach it, and is set to refuse rather than
    /// decide locally (`on_backend_error = "deny"`). Transient: the backend may be back soon.
    #[error("`{name}` refused the call: its {backend} backend is unavailable")]
    #[non_exhaustive]
    BackendUnavailable {
        /// The policy's name (a rate limiter's, a cache's).
        name: String,
        /// The backend, such as `redis`.
        backend: String,
    },
}

/// `": 2 of 10 left"`, or nothing when the limit is unknown (a remote 429 that did not say).
fn capacity(limit: u64, remaining: u64) -> String {
    if limit == 0 { String::new() } else { format!(": {remaining} of {limit} left") }
}

impl Error {
    /// A [`Error::Timeout`] for a call bounded by `after`.
    pub fn timeout(after: Duration) -> Self {
        Error::Timeout { after }
    }

    /// A [`Error::RateLimited`] refusal, e.g. to report a provider's 429 with its `Retry-After`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use adk_runtime::Classify;
    ///
    /// let e = adk_runtime::Error::rate_limited("openai", Duration::from_secs(3), 3500, 0);
    /// assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    /// ```
    pub fn rate_limited(name: impl Into<String>, retry_after: Duration, limit: u64, remaining: u64) -> Self {
        Error::RateLimited { name: name.into(), retry_after, limit, remaining, reset: retry_after }
    }

    /// A [`Error::CostAboveLimit`] refusal.
    ///
    /// ```
    /// use adk_runtime::{Classify, ErrorClass};
    ///
    /// let e = adk_runtime::Error::cost_above_limit("openai-tokens", 120_000, 90_000);
    /// assert_eq!(e.class(), ErrorClass::Permanent);
    /// assert_eq!(e.retry_after(), None);
    /// ```
    pub fn cost_above_limit(name: impl Into<String>, cost: u64, limit: u64) -> Self {
        Error::CostAboveLimit { name: name.into(), cost, limit }
    }

    /// A [`Error::CircuitOpen`] refusal.
    pub fn circuit_open(name: impl Into<String>, retry_after: Duration) -> Self {
        Error::CircuitOpen { name: name.into(), retry_after }
    }

    /// A [`Error::BackendUnavailable`] refusal.
    ///
    /// ```
    /// use adk_runtime::{Classify, ErrorClass};
    ///
    /// let e = adk_runtime::Error::backend_unavailable("openai", "redis");
    /// assert_eq!(e.class(), ErrorClass::Transient);
    /// assert_eq!(e.to_string(), "`openai` refused the call: its redis backend is unavailable");
    /// ```
    pub fn backend_unavailable(name: impl Into<String>, backend: impl Into<String>) -> Self {
        Error::BackendUnavailable { name: name.into(), backend: backend.into() }
    }

    /// A [`Error::BulkheadFull`] refusal.
    pub fn bulkhead_full(name: impl Into<String>, max_concurrent: usize) -> Self {
        Error::BulkheadFull { name: name.into(), max_concurrent }
    }
}

/// How a failure should be treated by `#[retry]` and `#[circuit_breaker]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Worth another try: the same call may succeed later (timeouts, refused connections, 5xx, 429).
    Transient,
    /// Will fail again the same way (bad input, not found, unauthorised): returned at once, never retried.
    Permanent,
    /// Something is badly wrong (out of memory, corrupted state): returned at once and always recorded by breakers.
    Critical,
}

/// Says which errors are worth retrying and whether they carry a `retry_after` hint.
///
/// Implemented for the error types applications already return (see [the module](self)); for an error type of your
/// own, derive it: `#[derive(adk::Classify)]` in the `adk` crate, with `#[adk(permanent)]` on the variants that
/// cannot succeed and `#[adk(source)]` on a wrapped error. By hand, the defaults treat every error as transient
/// without a hint; override `class` to stop retrying errors that cannot succeed, and `adk_error` if the type wraps
/// [`Error`].
///
/// ```
/// use adk_runtime::{Classify, ErrorClass};
///
/// #[derive(Debug)]
/// enum LlmError { BadPrompt, Overloaded, Adk(adk_runtime::Error) }
///
/// impl Classify for LlmError {
///     fn class(&self) -> ErrorClass {
///         match self {
///             LlmError::BadPrompt => ErrorClass::Permanent,
///             LlmError::Overloaded => ErrorClass::Transient,
///             LlmError::Adk(e) => e.class(),
///         }
///     }
///     // Lets policies see refusals (and their retry_after) inside LlmError.
///     fn adk_error(&self) -> Option<&adk_runtime::Error> {
///         match self { LlmError::Adk(e) => Some(e), _ => None }
///     }
/// }
/// assert_eq!(LlmError::BadPrompt.class(), ErrorClass::Permanent);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say which failures are worth retrying",
    label = "this error type must implement `adk::Classify`",
    note = "for an error type of your own, derive it: `#[derive(adk::Classify)]`, with `#[adk(permanent)]` or `#[adk(critical)]` on the variants that are not transient",
    note = "for `anyhow::Error`, `eyre::Report`, `reqwest::Error` or `tonic::Status`, turn on the `adk` feature of that name (`anyhow` is on by default)",
    note = "wrap any other foreign error in a type of your own and mark the field `#[adk(source)]`, or pass `when = path` (retry) / `record = path` (circuit breaker) with a predicate"
)]
pub trait Classify {
    /// The class of this failure. Default: the class of the wrapped [`Error`] if [`Classify::adk_error`] finds one,
    /// else [`ErrorClass::Transient`].
    fn class(&self) -> ErrorClass {
        self.adk_error().map_or(ErrorClass::Transient, Classify::class)
    }

    /// How long the failed dependency asked us to wait before trying again (e.g. an HTTP `Retry-After`). Default: the
    /// wrapped [`Error`]'s hint, if any.
    fn retry_after(&self) -> Option<Duration> {
        self.adk_error().and_then(Classify::retry_after)
    }

    /// The adk refusal this error carries, if it carries one. Lets policies tell a refusal (rate limited, bulkhead
    /// full) from a failure of the dependency itself; the defaults of `class` and `retry_after` read it too.
    fn adk_error(&self) -> Option<&Error> {
        None
    }
}

/// Refusals are transient (waiting helps), and carry their `retry_after` where they know it; a cost above a
/// limiter's limit is permanent (no wait helps).
impl Classify for Error {
    fn adk_error(&self) -> Option<&Error> {
        Some(self)
    }

    fn class(&self) -> ErrorClass {
        match self {
            Error::CostAboveLimit { .. } => ErrorClass::Permanent,
            Error::RateLimited { .. }
            | Error::CircuitOpen { .. }
            | Error::Timeout { .. }
            | Error::BulkheadFull { .. }
            | Error::BackendUnavailable { .. } => ErrorClass::Transient,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::CircuitOpen { retry_after, .. } => Some(*retry_after),
            Error::CostAboveLimit { .. }
            | Error::Timeout { .. }
            | Error::BulkheadFull { .. }
            | Error::BackendUnavailable { .. } => None,
        }
    }
}

/// Classified by kind: network hiccups are transient, bad input and missing things are permanent, running out of
/// memory is critical. An `io::Error` of kind `Other` made from an error adk knows (`io::Error::other(adk_error)`, a
/// `hyper::Error`) is classified by that error, which `io::Error` hides from `source()`; its `retry_after` and
/// `adk_error` come from the wrapped error whatever the kind.
impl Classify for std::io::Error {
    fn class(&self) -> ErrorClass {
        use std::io::ErrorKind::*;
        match self.kind() {
            TimedOut | Interrupted | WouldBlock | ConnectionRefused | ConnectionReset | ConnectionAborted
            | NotConnected | BrokenPipe | UnexpectedEof | AddrInUse | AddrNotAvailable | HostUnreachable
            | NetworkUnreachable | NetworkDown | ResourceBusy | StorageFull | QuotaExceeded => ErrorClass::Transient,
            OutOfMemory => ErrorClass::Critical,
            Other => chain::inside_io(self).map_or(ErrorClass::Permanent, Classify::class),
            _ => ErrorClass::Permanent,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        chain::inside_io(self).and_then(Classify::retry_after)
    }

    fn adk_error(&self) -> Option<&Error> {
        chain::inside_io(self).and_then(Classify::adk_error)
    }
}

/// Lets a function returning `std::io::Result` carry adk's policies: a refusal becomes an `io::Error` of the nearest
/// kind (`TimedOut` for a timeout, `Other` otherwise) that still holds the refusal, so `Classify` finds it again.
impl From<Error> for std::io::Error {
    fn from(error: Error) -> Self {
        let kind = match error {
            Error::Timeout { .. } => std::io::ErrorKind::TimedOut,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, error)
    }
}

/// A boxed error is classified by the first error of its chain adk knows (an [`Error`], an [`std::io::Error`], ...,
/// as in [the module](self)), anything else transient.
impl Classify for Box<dyn std::error::Error + Send + Sync> {
    fn class(&self) -> ErrorClass {
        chain::class(&**self)
    }

    fn retry_after(&self) -> Option<Duration> {
        chain::first_known(&**self).and_then(Classify::retry_after)
    }

    fn adk_error(&self) -> Option<&Error> {
        chain::first_known(&**self).and_then(Classify::adk_error)
    }
}

/// `tokio::time::timeout` ran out: transient, as any timeout.
impl Classify for tokio::time::error::Elapsed {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn refusals_are_transient_and_carry_their_hint() {
        let limited = Error::rate_limited("openai", Duration::from_millis(250), 10, 0);
        assert_eq!(limited.class(), ErrorClass::Transient);
        assert_eq!(limited.retry_after(), Some(Duration::from_millis(250)));
        let open = Error::circuit_open("db", Duration::from_secs(5));
        assert_eq!(open.retry_after(), Some(Duration::from_secs(5)));
        assert_eq!(Error::timeout(Duration::from_secs(1)).retry_after(), None);
    }

    #[test]
    fn a_remote_refusal_without_a_known_limit_says_so_plainly() {
        let remote = Error::rate_limited("openai", Duration::from_secs(2), 0, 0);
        assert_eq!(remote.to_string(), "rate limit `openai` exceeded, retry after 2s");
        let local = Error::rate_limited("users", Duration::from_millis(500), 10, 0);
        assert_eq!(local.to_string(), "rate limit `users` exceeded: 0 of 10 left, retry after 500ms");
    }

    #[test]
    fn io_errors_are_classified_by_kind() {
        assert_eq!(io::Error::from(io::ErrorKind::ConnectionReset).class(), ErrorClass::Transient);
        assert_eq!(io::Error::from(io::ErrorKind::TimedOut).class(), ErrorClass::Transient);
        assert_eq!(io::Error::from(io::ErrorKind::NotFound).class(), ErrorClass::Permanent);
        assert_eq!(io::Error::from(io::ErrorKind::PermissionDenied).class(), ErrorClass::Permanent);
        assert_eq!(io::Error::from(io::ErrorKind::OutOfMemory).class(), ErrorClass::Critical);
    }

    #[test]
    fn boxed_errors_are_classified_by_what_they_hold() {
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(io::Error::from(io::ErrorKind::InvalidInput));
        assert_eq!(boxed.class(), ErrorClass::Permanent);
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            Box::new(Error::rate_limited("x", Duration::from_secs(1), 1, 0));
        assert_eq!(boxed.retry_after(), Some(Duration::from_secs(1)));
    }
}
