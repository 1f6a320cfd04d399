//! What generated code reaches through `::adk::__private`. Not a public API: names here may change in any release.

pub use crate::{bulkhead, cache, circuit_breaker, fallback, observed, rate_limit, retry, timeout};
pub use core::time::Duration;
pub use inventory;

pub use crate::registry::Declared;
/// Span macros expand in the user's crate through this path, so the span's callsite, target and module are the
/// user's and the user needs no `tracing` dependency of their own.
pub use tracing;

pub use crate::error::{Classify, Error, ErrorClass};

/// The path of a method, `module::Type::method`, from the impl's `module_path!()`, `type_name::<Self>()` and the
/// method's name: the default name of its policies and its `function` label. Generic arguments and the type's own
/// module are left out, so every instantiation of a generic impl shares one name (as it shares its `static`s).
/// Interned: one allocation per method for the life of the process, taken on its first call.
///
/// ```
/// # use adk_runtime::macro_support::method_path;
/// let name = method_path("agent::providers", "agent::types::Client<alloc::string::String>", "complete");
/// assert_eq!(name, "agent::providers::Client::complete");
/// assert!(std::ptr::eq(name, method_path("agent::providers", "agent::types::Client<u8>", "complete")));
/// ```
#[cold]
pub fn method_path(module: &'static str, self_type: &'static str, method: &'static str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex, PoisonError};

    static PATHS: LazyLock<Mutex<HashMap<String, &'static str>>> = LazyLock::new(Mutex::default);
    let without_generics = self_type.split('<').next().unwrap_or(self_type);
    let type_name = without_generics.rsplit("::").next().unwrap_or(without_generics).trim_start_matches(['&', '*']);
    let path = format!("{module}::{type_name}::{method}");
    let mut paths = PATHS.lock().unwrap_or_else(PoisonError::into_inner);
    paths.entry(path).or_insert_with_key(|path| Box::leak(path.clone().into_boxed_str()))
}

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
    /// The error, if this is one.
    fn err_ref(&self) -> Option<&Self::Err>;
}

impl<T, E> AdkResult for Result<T, E> {
    type Err = E;
    #[inline]
    fn from_err(error: E) -> Self {
        Err(error)
    }

    #[inline]
    fn err_ref(&self) -> Option<&E> {
        self.as_ref().err()
    }
}

/// An error type that can carry adk's refusals.
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` cannot carry adk's refusals",
    label = "`{Self}` must implement `From<adk::Error>`",
    note = "for an error type of your own, add a `#[from] adk::Error` variant (thiserror) or `impl From<adk::Error> for {Self}`",
    note = "a foreign error type that cannot hold a refusal needs a wrapper: return `anyhow::Result<T>`, `Result<T, adk::HttpError>` (HTTP calls), or an error type of your own that holds it"
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

/// A field `#[derive(adk::Classify)]` reads a wait from (`#[adk(retry_after = field)]`).
#[diagnostic::on_unimplemented(
    message = "`#[adk(retry_after = ...)]` names a field of type `{Self}`, which holds no wait",
    label = "this field must be a `Duration` or an `Option<Duration>`",
    note = "name a `std::time::Duration` or `Option<std::time::Duration>` field, or remove `retry_after`"
)]
pub trait RetryAfterField {
    /// The wait the field holds.
    fn retry_after_field(&self) -> Option<Duration>;
}

impl RetryAfterField for Duration {
    #[inline]
    fn retry_after_field(&self) -> Option<Duration> {
        Some(*self)
    }
}

impl RetryAfterField for Option<Duration> {
    #[inline]
    fn retry_after_field(&self) -> Option<Duration> {
        *self
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

/// An error `#[observed]` can write into its log line with `Display`.
#[diagnostic::on_unimplemented(
    message = "#[adk::observed] logs the error with `Display`, but `{Self}` does not implement it",
    label = "the error type of this function",
    note = "implement `Display` (e.g. thiserror's `#[error(\"...\")]`), or log it with `Debug`: #[adk::observed(err(Debug))]"
)]
pub trait DisplayError {
    /// The error as `Display`.
    fn as_display(&self) -> &dyn std::fmt::Display;
}

impl<E: std::fmt::Display> DisplayError for E {
    #[inline]
    fn as_display(&self) -> &dyn std::fmt::Display {
        self
    }
}

/// An error `#[observed(err(Debug))]` can write into its log line with `Debug`.
#[diagnostic::on_unimplemented(
    message = "#[adk::observed(err(Debug))] logs the error with `Debug`, but `{Self}` does not implement it",
    label = "the error type of this function",
    note = "derive `Debug` for it"
)]
pub trait DebugError {
    /// The error as `Debug`.
    fn as_debug(&self) -> &dyn std::fmt::Debug;
}

impl<E: std::fmt::Debug> DebugError for E {
    #[inline]
    fn as_debug(&self) -> &dyn std::fmt::Debug {
        self
    }
}

/// Finishes an observed call, logging its error with `Display` at the level `class_of` (the expansion's
/// [`ClassProbe`]) chooses. Bound once per function at the return type.
#[inline]
pub fn observed_finish<R>(call: observed::ObservedCall<'_>, result: &R, class_of: ClassOf<R>)
where
    R: AdkResult,
    <R as AdkResult>::Err: DisplayError,
{
    match result.err_ref() {
        None => call.ok(),
        Some(error) => call.err_with_class(error.as_display(), class_of(error)),
    }
}

/// Finishes an observed call, logging its error with `Debug`.
#[inline]
pub fn observed_finish_debug<R>(call: observed::ObservedCall<'_>, result: &R, class_of: ClassOf<R>)
where
    R: AdkResult,
    <R as AdkResult>::Err: DebugError,
{
    struct AsDisplay<'a>(&'a dyn std::fmt::Debug);
    impl std::fmt::Display for AsDisplay<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }
    match result.err_ref() {
        None => call.ok(),
        Some(error) => call.err_with_class(&AsDisplay(error.as_debug()), class_of(error)),
    }
}

/// The class of a function's error, `None` for an error type that does not implement [`Classify`].
pub type ClassOf<R> = fn(&<R as AdkResult>::Err) -> Option<ErrorClass>;

/// Finds an error's class without requiring [`Classify`] (autoref specialisation): the expansion calls
/// `(&ClassProbe(error)).adk_error_class()` with [`ProbeClassify`] and [`ProbeUnclassified`] in scope. Method
/// lookup tries the receiver `&ClassProbe<E>` before `&&ClassProbe<E>`, so `ProbeClassify` answers when `E:
/// Classify` holds where the call is written, and `ProbeUnclassified` otherwise. That is decided by the types the
/// function names: a generic `E` without a `Classify` bound is unclassified, whatever type it is instantiated with.
pub struct ClassProbe<'a, E: ?Sized>(pub &'a E);

/// The probe's answer for an error type that implements [`Classify`]: its class.
pub trait ProbeClassify {
    /// `Some` of the error's class.
    fn adk_error_class(&self) -> Option<ErrorClass>;
}

impl<E: Classify + ?Sized> ProbeClassify for ClassProbe<'_, E> {
    #[inline]
    fn adk_error_class(&self) -> Option<ErrorClass> {
        Some(self.0.class())
    }
}

/// The probe's answer for any other error type: no class.
pub trait ProbeUnclassified {
    /// `None`.
    fn adk_error_class(&self) -> Option<ErrorClass>;
}

impl<E: ?Sized> ProbeUnclassified for &ClassProbe<'_, E> {
    #[inline]
    fn adk_error_class(&self) -> Option<ErrorClass> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe as the expansion writes it; the explicit borrow is what picks the method.
    macro_rules! class_of {
        ($error:expr) => {
            (&ClassProbe($error)).adk_error_class()
        };
    }

    struct Unclassified;

    #[test]
    fn the_class_probe_answers_for_classified_error_types_and_falls_back_for_others() {
        let not_found = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(class_of!(&not_found), Some(ErrorClass::Permanent));
        assert_eq!(class_of!(&Unclassified), None);
    }

    fn generic_class<E: Classify>(error: &E) -> Option<ErrorClass> {
        class_of!(error)
    }

    fn generic_unbounded<E>(error: &E) -> Option<ErrorClass> {
        class_of!(error)
    }

    #[test]
    fn a_generic_error_type_is_classified_only_through_a_classify_bound() {
        let timeout = Error::Timeout { after: std::time::Duration::from_secs(1) };
        assert_eq!(generic_class(&timeout), Some(ErrorClass::Transient));
        assert_eq!(generic_unbounded(&timeout), None);
    }
}
