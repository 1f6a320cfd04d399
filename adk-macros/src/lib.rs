//! Attribute macros of adk. Use them through the `adk` crate: `#[adk::retry]`, `#[adk::timeout]`, `#[adk::fallback]`.
//!
//! # Stacking
//! Written order is wrapping order: the first attribute is the outermost layer. The first adk attribute on a function
//! expands the whole stack at once, validates it as a whole and produces one flat function. Recommended order,
//! outermost first: `fallback` -> `timeout` (total) -> `retry` -> `timeout` (per attempt) -> the function.
//! `retry` above `fallback` is a compile error; two timeouts with no `retry` between them are a warning.
//!
//! # Rules shared by every attribute
//! - Parameters are `key = value`; unknown keys get a "did you mean" and the list of valid ones; a key given twice is
//!   an error; durations are literals with a unit (`"250ms"`, `"30s"`, `"5m"`, `"1h"`).
//! - All mistakes of a stack are reported together. When the arguments or the signature are wrong, the function is
//!   emitted as written (without the adk attributes) next to the errors, so one mistake never cascades.
//! - `crate = "name"` on any attribute of the stack names a renamed `adk` dependency.
//! - Works on `async fn`, methods (`&self`, `&mut self`) in inherent and trait impls, generic functions, `where`
//!   clauses, explicit lifetimes, `impl Trait` arguments, and methods rewritten by `#[async_trait]`.

mod args;
mod attrs;
mod expand;
mod order;
mod sig;
mod stack;

use proc_macro::TokenStream;

use attrs::Kind;

/// Re-runs the function on transient failure, with backoff, jitter, an optional retry budget and `retry_after` hints.
///
/// ```
/// # #[derive(Debug, thiserror::Error)]
/// # enum AgentError {
/// #     #[error("provider unavailable")] Unavailable,
/// #     #[error("invalid prompt")] InvalidPrompt,
/// #     #[error(transparent)] Adk(#[from] adk::Error),
/// # }
/// # impl adk::Classify for AgentError {
/// #     fn class(&self) -> adk::ErrorClass {
/// #         match self { AgentError::InvalidPrompt => adk::ErrorClass::Permanent, _ => adk::ErrorClass::Transient }
/// #     }
/// # }
/// #[adk::retry(attempts = 4, backoff = "exponential", base = "200ms", max_delay = "5s", jitter)]
/// async fn complete(prompt: &str) -> Result<String, AgentError> {
///     Err(AgentError::InvalidPrompt) // permanent: returned at once, never retried
/// }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() { assert!(complete("x").await.is_err()); }
/// ```
///
/// | parameter | meaning | default |
/// |---|---|---|
/// | `attempts = N` | total calls, the first included (Polly's `MaxRetryAttempts = N` is `attempts = N + 1`), 1..=100 | 3 |
/// | `backoff = "exponential" \| "constant" \| "linear"` | the n-th retry waits `base x multiplier^(n-1)`, `base`, or `base x n` | exponential |
/// | `base = "200ms"` | the first retry's wait | 100ms |
/// | `max_delay = "5s"` | cap on any single wait (saturating); a `retry_after` hint beyond it ends the retries | 30s |
/// | `multiplier = 2` | growth of the exponential backoff (>= 1) | 2 |
/// | `jitter` / `jitter = "full" \| "equal" \| "decorrelated"` | randomise each wait within `0..=d`, `d/2..=d`, or AWS's decorrelated jitter | none |
/// | `when = path` | `fn(&E) -> bool`: `true` retries; replaces `Classify` (and its hints) for this function | `Classify::class` |
/// | `budget = 0.2` | retries may add at most this fraction of calls over 10 s, plus 10 retries a second (tower's `TpsBudget`) | no budget |
/// | `max_elapsed = "30s"` | no retry starts if its wait would end past this time since the first call | none |
///
/// Which errors are retried: without `when`, the error type implements [`adk::Classify`]: `Transient` errors are
/// retried, `Permanent` and `Critical` ones returned at once. A `retry_after` from `Classify` (for example an
/// `adk::Error::RateLimited` or `CircuitOpen` wrapped in the error, exposed by `Classify::adk_error`) is waited out when
/// it is longer than the backoff; a hint longer than `max_delay` or the time left under `max_elapsed` returns the
/// error at once rather than hammering an open breaker or an exhausted quota.
///
/// Arguments are reused across attempts: `&T` arguments are re-borrowed, `&mut T` re-borrowed mutably, and owned
/// arguments cloned for each attempt (an owned argument that is not `Clone` is a compile error naming it and suggesting
/// `&T`). `self` by value cannot be retried. The function must be `async` (waits follow tokio's clock, so
/// `#[tokio::test(start_paused = true)]` steps through backoffs without sleeping) and return `Result<T, E>`.
///
/// Metrics: `adk_retry_attempts_total{function, outcome}` with outcomes `retried`, `recovered`, `not_retryable`,
/// `exhausted` and `budget_exhausted` (first-try successes are plain calls and are not counted here).
#[proc_macro_attribute]
pub fn retry(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Retry, args.into(), item.into()).into()
}

/// Bounds the call on tokio's clock; a call still running after the bound is dropped and the function returns
/// `Err(E::from(adk::Error::Timeout { after, .. }))`.
///
/// ```
/// # #[derive(Debug, thiserror::Error)]
/// # enum AgentError {
/// #     #[error("provider unavailable")] Unavailable,
/// #     #[error("invalid prompt")] InvalidPrompt,
/// #     #[error(transparent)] Adk(#[from] adk::Error),
/// # }
/// # impl adk::Classify for AgentError {
/// #     fn class(&self) -> adk::ErrorClass {
/// #         match self { AgentError::InvalidPrompt => adk::ErrorClass::Permanent, _ => adk::ErrorClass::Transient }
/// #     }
/// # }
/// #[adk::timeout("2s")]
/// async fn complete(prompt: &str) -> Result<String, AgentError> {
///     tokio::time::sleep(std::time::Duration::from_secs(60)).await;
///     Ok(prompt.to_owned())
/// }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// assert!(matches!(complete("x").await, Err(AgentError::Adk(adk::Error::Timeout { .. }))));
/// # }
/// ```
///
/// The duration is a literal with a unit: `"250ms"`, `"2s"`, `"5m"`, `"1h"`, `"1m30s"`. Placed above `#[retry]` it
/// bounds the whole call, below it each attempt; both may be given. Requires an `async fn` returning `Result<T, E>`
/// with `E: From<adk::Error>`. Metric: `adk_timeouts_total{function}`.
#[proc_macro_attribute]
pub fn timeout(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Timeout, args.into(), item.into()).into()
}

/// Answers another way when the function (and every layer below this attribute) fails.
///
/// ```
/// # #[derive(Debug, thiserror::Error)]
/// # enum AgentError {
/// #     #[error("provider unavailable")] Unavailable,
/// #     #[error("invalid prompt")] InvalidPrompt,
/// #     #[error(transparent)] Adk(#[from] adk::Error),
/// # }
/// # impl adk::Classify for AgentError {
/// #     fn class(&self) -> adk::ErrorClass {
/// #         match self { AgentError::InvalidPrompt => adk::ErrorClass::Permanent, _ => adk::ErrorClass::Transient }
/// #     }
/// # }
/// async fn cheaper_model(prompt: &str) -> Result<String, AgentError> {
///     Err(AgentError::Unavailable)
/// }
///
/// fn transient(error: &AgentError) -> bool {
///     !matches!(error, AgentError::InvalidPrompt)
/// }
///
/// #[adk::fallback(cheaper_model, value = String::from("Sorry, try again later."), on = transient)]
/// async fn complete(prompt: &str) -> Result<String, AgentError> {
///     Err(AgentError::Unavailable)
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() { assert_eq!(complete("x").await.unwrap(), "Sorry, try again later."); }
/// ```
///
/// - `fallback(f)` calls `f` with the same arguments; `fallback(a, b, c)` tries them in order and returns the last
///   error if all fail. An alternative whose parameters or return type differ from the function's is a compile error
///   pointing at the alternative. On methods, an alternative named by a bare identifier is a method of the same
///   type, called on the same receiver (`Self::name(self, ..)`).
/// - `value = expr` answers `Ok(expr)`; it may end a chain.
/// - `on = path`: `fn(&E) -> bool` selects which errors fall back (default: all); others are returned as they are.
///
/// Works on `async fn` and plain `fn`. Owned arguments are cloned for every alternative but the last. Place it above
/// `#[retry]` (the reverse is a compile error: the fallback would answer every failure before the retry saw it).
/// Metric: `adk_fallbacks_total{function}`.
#[proc_macro_attribute]
pub fn fallback(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Fallback, args.into(), item.into()).into()
}
