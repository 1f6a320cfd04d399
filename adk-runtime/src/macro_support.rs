//! What generated code reaches through `::adk::__private`. Not a public API: names here may change in any release.

pub use crate::{bulkhead, cache, circuit_breaker, fallback, observed, rate_limit, retry, timeout};
pub use core::time::Duration;
/// Span macros expand in the user's crate through this path, so the span's callsite, target and module are the
/// user's and the user needs no `tracing` dependency of their own.
pub use tracing;

use crate::error::{Classify, Error};

/// A return type an annotated function can have: `Result<T, E>`.
#[diagnostic::on_unimplemented(
    message = "adk attributes need the function to return `Result<T, E>`, but it returns `{Self}`",
    label = "not a `Result`",
    note = "policies answer refusals with `Err(E::from(adk::Error))`: return `Result<T, E>` with `E: From<adk::Error>`"
)]
pub trait AdkResult {
    /// The error type `E`.
    type Err;
    /// `Err(error)`.
    fn from_err(error: Self::Err) -> Self;
}

impl<T, E> AdkResult for Result<T, E> {
    type Err = E;
    #[inline]
    fn from_err(error: E) -> Self {
        Err(error)
    }
}

/// An error type that can carry adk's refusals.
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` cannot carry adk's refusals",
    label = "`{Self}` must implement `From<adk::Error>`",
    note = "add `impl From<adk::Error> for {Self}` (or a `#[from] adk::Error` variant with thiserror)"
)]
pub trait FromAdkError {
    /// Wraps a refusal.
    fn from_adk(error: Error) -> Self;
}

impl<E: From<Error>> FromAdkError for E {
    #[inline]
    fn from_adk(error: Error) -> Self {
        E::from(error)
    }
}

/// Turns a refusal into the function's own return value. The expansion binds `refuse::<ReturnType>` once, spanned
/// at the return type, so a missing `From<adk::Error>` is reported once, there.
#[inline]
pub fn refuse<R>(error: Error) -> R
where
    R: AdkResult,
    <R as AdkResult>::Err: FromAdkError,
{
    R::from_err(<R::Err as FromAdkError>::from_adk(error))
}

/// The default retry predicate, bound once per function so a missing `Classify` is reported once.
#[inline]
pub fn classify<R>(error: &<R as AdkResult>::Err) -> retry::Verdict
where
    R: AdkResult,
    <R as AdkResult>::Err: Classify,
{
    retry::by_class(error)
}

/// The default breaker judgement ([`circuit_breaker::by_class`]), bound once per function so a missing `Classify` is
/// reported once.
#[inline]
pub fn breaker_record<R>(error: &<R as AdkResult>::Err) -> circuit_breaker::Record
where
    R: AdkResult,
    <R as AdkResult>::Err: Classify,
{
    circuit_breaker::by_class(error)
}
