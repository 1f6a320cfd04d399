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
mod classify;
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
/// | `max_elapsed = "30s"` | a deadline this long after the first call: no wait ends past it, and the layers below honour it | none |
///
/// Which errors are retried: without `when`, the error type implements [`adk::Classify`]: `Transient` errors are
/// retried, `Permanent` and `Critical` ones returned at once. A `retry_after` from `Classify` (for example an
/// `adk::Error::RateLimited` or `CircuitOpen` wrapped in the error, exposed by `Classify::adk_error`) is waited out when
/// it is longer than the backoff; a hint longer than `max_delay`, or ending after the deadline, returns the error at
/// once rather than hammering an open breaker or an exhausted quota.
///
/// Deadlines: the retry never sleeps past the deadline it runs under, the earlier of `max_elapsed` and an enclosing
/// `#[timeout]` (the total one above it, or one around an annotated caller awaiting this function; see
/// `adk::runtime::deadline`). So under `#[timeout("5s")]` a quota refusal or an open breaker whose `retry_after`
/// ends after those 5 s is returned at once as that refusal (`RateLimited`, `CircuitOpen`: HTTP 429/503), not as a
/// `Timeout` 5 s later; one ending before the deadline is waited out and retried. With `max_elapsed`, each attempt
/// runs under the retry's deadline, so a rate limiter's wait or a bulkhead's queue below it is cut to it too.
///
/// Arguments are reused across attempts: `&T` arguments are re-borrowed, `&mut T` re-borrowed mutably, and owned
/// arguments cloned for each attempt (an owned argument that is not `Clone` is a compile error naming it and suggesting
/// `&T`). `self` by value cannot be retried. The function must be `async` (waits follow tokio's clock, so
/// `#[tokio::test(start_paused = true)]` steps through backoffs without sleeping) and return `Result<T, E>`.
///
/// Metrics: `adk_retry_attempts_total{function, outcome}` with outcomes `retried`, `recovered`, `not_retryable`,
/// `exhausted` (the attempts ran out, or the next wait would end past the deadline), `retry_after_too_long` (the hint
/// is longer than `max_delay` or ends past the deadline) and `budget_exhausted` (first-try successes are plain calls
/// and are not counted here). The `function` label is the function's path, with the `Self` type on a method.
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
///
/// The bound is also a deadline for everything inside it, kept in a tokio task-local (`adk::runtime::deadline`) as
/// gRPC propagates deadlines: `#[retry]` below it never sleeps past it and returns a refusal whose `retry_after`
/// ends after it at once, a rate limiter's `on_limit = "wait"` and a bulkhead's `max_wait` are cut to it, and
/// annotated functions awaited inside the body inherit it (an inner deadline is never later than the outer one). A
/// task spawned inside starts without it.
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

/// Memoises the function: answers from a cache keyed by its arguments, running the body once for all concurrent
/// callers missing on one key (single flight).
///
/// ```
/// # #[derive(Debug, Clone, thiserror::Error)]
/// # #[error("weather service down")]
/// # struct WeatherError;
/// #[adk::cached(ttl = "5m", max_entries = 1_000, name = "forecasts")]
/// async fn forecast(city: &str, days: u8) -> Result<String, WeatherError> {
///     Ok(format!("{days} days of sun in {city}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// assert_eq!(forecast("Paris", 3).await.unwrap(), "3 days of sun in Paris"); // runs the body
/// assert_eq!(forecast("Paris", 3).await.unwrap(), "3 days of sun in Paris"); // a hit
/// let cache = adk::registry().cache("forecasts").unwrap();
/// assert_eq!(cache.len(), 1);
/// assert!(cache.invalidate(&("Paris".to_owned(), 3u8)));
/// # }
/// ```
///
/// | parameter | meaning | default |
/// |---|---|---|
/// | `ttl = "5m"` (or `ttl = 300`, seconds) | an entry is served for at most this long after it was stored | no expiry |
/// | `tti = "1m"` (or seconds) | an entry not read for this long is dropped | none |
/// | `max_entries = 10_000` | bound on the entries held (frequently read entries are kept over one-off ones) | 10,000 |
/// | `key = expr` | the key, computed from the arguments, e.g. `key = (req.model.clone(), req.prompt.clone())` | all arguments |
/// | `name = "weather"` | share one cache among functions and reach it with `adk::registry().cache(name)` | the function's path |
/// | `backend = "memory" \| "redis"` | where entries live: this process, or Redis shared by a fleet (feature `redis`; async functions; arguments and value `Serialize + DeserializeOwned`, stored as JSON; a missing key computed once in the fleet; on a Redis failure the body runs uncached; `tti` and `max_entries` apply to memory only) | memory |
///
/// - The default key is every argument, owned: `&str` becomes `String`, `&T` becomes `T::Owned`, owned
///   arguments are cloned; each must be `Hash + Eq + Clone + Send + Sync + 'static`, or a compile error names it and
///   suggests `key = ...`. The registry's `invalidate(&key)` takes that same tuple, e.g. `&(city.to_owned(), days)`.
/// - A method with a `self` receiver needs `key = ...`: `self` is never silently left out of a key (two tenants'
///   clients would share each other's answers). Key on what tells receivers apart,
///   `key = (self.tenant.clone(), prompt.to_owned())`, or leave `self` out deliberately to share entries among all
///   of them, `key = prompt.to_owned()`. Without it, the function is a compile error that says so.
/// - A function returning `Result` (a type named `Result` or `...Result`) caches only `Ok` values: errors pass
///   through and the next caller runs the body again. Any other output is cached whole. The cached value must be
///   `Clone` (wrap it in an `Arc` otherwise).
/// - Single flight: concurrent misses on one key run one call at a time. If it fails (its error goes to its own caller
///   only) or is cancelled, the caller that has waited longest takes over; the others keep waiting for its value, or
///   for the next turn if it fails too. So a failing dependency is not hit by every waiter at once, and a `#[timeout]`
///   above `#[cached]` bounds a caller's whole wait (one below it, each call). Nobody is left waiting.
/// - Expiry follows tokio's clock (paused-time tests step through it). Expired entries nobody reads again are
///   reclaimed by the cache's own traffic: every 16th miss or insertion looks at up to 64 entries past their deadline,
///   so memory returns without reads of the same keys. Works on `async fn` and plain `fn` (sync callers have no single
///   flight).
/// - Place it above `#[retry]` (inside it is a compile error) and below `#[fallback]` (above it, fallback answers would
///   be cached: a warning). Metrics: `adk_cache_requests_total{cache,result}`, `adk_cache_entries{cache}`,
///   `adk_cache_evictions_total{cache}`.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Cached, args.into(), item.into()).into()
}

/// Stops calling a failing dependency: after enough failures the breaker opens and calls are refused with
/// `adk::Error::CircuitOpen { name, retry_after, .. }` without running the body, until a few trial calls show the
/// dependency is back.
///
/// ```
/// # #[derive(Debug, thiserror::Error)]
/// # enum DbError {
/// #     #[error("connection reset")] Reset,
/// #     #[error(transparent)] Adk(#[from] adk::Error),
/// # }
/// # impl adk::Classify for DbError {
/// #     fn adk_error(&self) -> Option<&adk::Error> { match self { DbError::Adk(e) => Some(e), _ => None } }
/// # }
/// #[adk::circuit_breaker(name = "db", failure_rate = 0.5, min_calls = 4, window = 20, open_for = "30s")]
/// async fn query(sql: &str) -> Result<u32, DbError> {
///     Err(DbError::Reset)
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// for _ in 0..4 {
///     assert!(matches!(query("select 1").await, Err(DbError::Reset)));
/// }
/// // Four failures out of four calls: the breaker is open and the body no longer runs.
/// assert!(matches!(query("select 1").await, Err(DbError::Adk(adk::Error::CircuitOpen { .. }))));
/// let db = adk::registry().circuit_breaker("db").unwrap();
/// assert_eq!(db.state(), adk::CircuitState::Open);
/// db.reset();
/// # }
/// ```
///
/// | parameter | meaning | default |
/// |---|---|---|
/// | `name = "openai"` | one breaker per dependency: functions naming it share it | the function's path |
/// | `failure_rate = 0.5` | opens when this share of the window failed (`>=`), in (0, 1] | 0.5 |
/// | `min_calls = 10` | no verdict before the window holds this many calls | 10 |
/// | `window = 100` / `window = "60s"` | the last N calls, or the calls of the last duration | 100 calls |
/// | `slow_call = "5s"`, `slow_rate = 0.8` | calls longer than `slow_call` are slow; opens when the slow share reaches `slow_rate` | off; `slow_rate` 1.0 |
/// | `open_for = "30s"` | how long it stays open before trial calls | 60s |
/// | `max_open_for = "5m"` | re-opening doubles `open_for` up to this | no growth |
/// | `half_open_calls = 10` | trial calls admitted at once when half open; it decides after exactly that many | 10 |
/// | `record = path` | `fn(&E) -> bool`: which errors count as failures (replaces the default) | see below |
///
/// By default (through [`adk::Classify`]): a `Timeout` counts; adk refusals (`RateLimited`, `BulkheadFull`, another
/// breaker's `CircuitOpen`) do not, since the dependency was not at fault; other transient and critical errors count
/// and permanent ones do not. Every transition is a `tracing` event with the breaker's name, from, to and the rate
/// that caused it. Operators steer a breaker through `adk::registry().circuit_breaker(name)`: `state()`,
/// `force_open()`, `force_closed()`, `reset()`, `snapshot()`. Two functions declaring one name with different settings
/// are reported at start-up (the registry's first use) with both call sites, as an `ERROR` event and in
/// `adk::registry().conflicts()`; the first function to run under the name sets its settings, and the conflict's
/// `in_force` then says which declaration that was.
///
/// The default name is the function's path; on a method with a receiver it includes the `Self` type
/// (`providers::OpenAi::complete`), so `OpenAi::complete` and `Anthropic::complete` never share a breaker. Give
/// `name` to share one deliberately (one breaker per provider, across its functions).
///
/// Placed below `#[retry]` it sees every attempt; above it, one outcome per logical call. Both are valid. Under a
/// total `#[timeout]`, a retry facing an open breaker waits out its `retry_after` only when that ends before the
/// deadline, and otherwise returns `CircuitOpen` at once.
///
/// Metrics: `adk_circuit_breaker_state{breaker}` (a gauge: 0 closed, 1 open, 2 half open),
/// `adk_circuit_breaker_transitions_total{breaker,from,to}` (`from`/`to`: `closed`, `open`, `half_open`),
/// `adk_circuit_breaker_calls_total{breaker,outcome}` (`success`, `failure`, `slow_success`, `slow_failure`,
/// `ignored` for errors that do not count, `rejected` for calls refused while open).
#[proc_macro_attribute]
pub fn circuit_breaker(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::CircuitBreaker, args.into(), item.into()).into()
}

/// Bounds how many calls run at once; a call finding no free slot waits up to `max_wait` (default: not at all) and is
/// then refused with `adk::Error::BulkheadFull`.
///
/// ```
/// # #[derive(Debug, thiserror::Error)]
/// # enum DbError {
/// #     #[error("connection reset")] Reset,
/// #     #[error(transparent)] Adk(#[from] adk::Error),
/// # }
/// # impl adk::Classify for DbError {
/// #     fn adk_error(&self) -> Option<&adk::Error> { match self { DbError::Adk(e) => Some(e), _ => None } }
/// # }
/// #[adk::bulkhead(max_concurrent = 8, max_wait = "500ms", name = "db-pool")]
/// async fn query(sql: &str) -> Result<usize, DbError> {
///     Ok(sql.len())
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() { assert_eq!(query("select 1").await.unwrap(), 8); }
/// ```
///
/// `max_concurrent` is required (at least 1). Functions naming the same bulkhead share its slots. Waiting calls are
/// admitted in the order they arrived, and a call arriving while others wait queues behind them (or, with no
/// `max_wait`, is refused) rather than taking a slot as it frees. A cancelled call (its future dropped, also while
/// waiting) gives its slot back. Place it below `#[retry]`: above it, a call would hold
/// its slot through the backoff waits (a warning). A wait is cut to the deadline of an enclosing `#[timeout]` or
/// `max_elapsed`. The default name is the function's path (with the `Self` type on a method). Metrics:
/// `adk_bulkhead_in_use{bulkhead}` (a gauge: slots held now, 0 to `max_concurrent`),
/// `adk_bulkhead_rejections_total{bulkhead}`.
///
/// With `key = expr`, the bound applies to each key (each user, each tenant): at most `max_concurrent` calls of one
/// key run at once, whatever the other keys do. The key is any `Hash` expression of the arguments, evaluated before
/// the call and hashed at once (it is not held). A key takes memory only while it has calls running or waiting. The
/// metrics are the same, summed over keys (a key is never a label); operators find it with
/// `adk::registry().keyed_bulkhead(name)`.
///
/// ```
/// # #[derive(Debug, thiserror::Error)]
/// # enum AgentError { #[error(transparent)] Adk(#[from] adk::Error) }
/// # pub struct User { id: u64 }
/// #[adk::bulkhead(max_concurrent = 2, key = user.id)]
/// async fn research(user: &User, topic: &str) -> Result<String, AgentError> {
///     Ok(format!("notes on {topic} for {}", user.id))
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() { assert!(research(&User { id: 7 }, "tides").await.is_ok()); }
/// ```
#[proc_macro_attribute]
pub fn bulkhead(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Bulkhead, args.into(), item.into()).into()
}

/// Admits, refuses or delays each call against a quota, globally, per key, or shared by name among functions.
///
/// ```
/// # #[derive(Debug, thiserror::Error)]
/// # enum AgentError { #[error(transparent)] Adk(#[from] adk::Error) }
/// # pub struct User { id: u64 }
/// #[adk::rate_limited(name = "provider", rpm = 3500)]            // one limiter for every fn naming it
/// #[adk::rate_limited(rpm = 2, burst = 2, key = user.id)]         // and a quota per user
/// async fn complete(user: &User, prompt: &str) -> Result<String, AgentError> {
///     Ok(prompt.to_owned())
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ada = User { id: 1 };
/// assert!(complete(&ada, "a").await.is_ok());
/// assert!(complete(&ada, "b").await.is_ok());
/// match complete(&ada, "c").await {
///     Err(AgentError::Adk(adk::Error::RateLimited { retry_after, .. })) => {
///         assert_eq!(retry_after, std::time::Duration::from_secs(30)) // exact: one cell every 30 s
///     }
///     other => panic!("{other:?}"),
/// }
/// assert!(complete(&User { id: 2 }, "d").await.is_ok()); // another user, another quota
/// # }
/// ```
///
/// | parameter | meaning | default |
/// |---|---|---|
/// | `rps`, `rpm`, `rph`, `rpd = N` or `rate = "N/unit"` | the rate (exactly one; `rate = "90000/min"`, `"5/30s"`) | required |
/// | `burst = N` | calls admitted at once from a full bucket | one period's worth (`rpm = 60` -> 60) |
/// | `key = expr` | separate quota per value (any `Hash` expression of the arguments, e.g. `user.id`) | one quota |
/// | `name = "openai"` | share one limiter among functions; `adk::registry().rate_limiter(name)` | the function's path |
/// | `strategy = "gcra" \| "token_bucket" \| "leaky_bucket" \| "fixed_window" \| "sliding_window"` | the algorithm | gcra |
/// | `cost = expr` | units the call spends (tokens, cents): an integer expression of the arguments | 1 |
/// | `on_limit = "reject" \| "wait"`, `max_wait = "2s"` | refuse at once, or wait to be admitted up to `max_wait` | reject; 30s |
/// | `backend = "memory" \| "redis"` | where the state lives: this process, or Redis shared by a fleet (feature `redis`) | memory |
/// | `on_backend_error = "local" \| "allow" \| "deny"` | with `backend = "redis"`, when Redis cannot answer: decide locally on the fleet's share, admit, or refuse with `adk::Error::BackendUnavailable` | local |
/// | `fleet_size = N` | with `backend = "redis"`, the processes sharing the quota: a local decision allows each 1/N of it | 1 |
///
/// With `backend = "redis"` the limiter decides in the process's Redis (`adk::redis::connect`/`configure`, else
/// `ADK_REDIS_URL`, else `redis://127.0.0.1:6379`), one script run per decision on the server's clock, with the same
/// answers as in memory; see `adk::runtime::rate_limit::RedisBackend`.
///
/// A refusal is `adk::Error::RateLimited { retry_after, limit, remaining, reset, .. }`, with `retry_after` the exact
/// time until the call would be admitted; a `cost` larger than the burst can never be admitted and is refused with the
/// permanent `adk::Error::CostAboveLimit`. Per-key state of idle keys is evicted by the runtime, so memory stays bounded
/// under millions of keys; the key is never a metric label.
///
/// Where it goes: a provider's quota below `#[retry]`, so each attempt spends a permit, as the provider counts them; a
/// per-user quota above `#[retry]` (below `#[cached]`, so a hit spends nothing): one permit per question, so a
/// provider failure's retry is neither charged to the user nor refused by their own quota, and an over-quota user is
/// answered at once. Under a total `#[timeout]`, `on_limit = "wait"` never waits past its deadline, and a retry above
/// the limiter returns a `RateLimited` whose `retry_after` ends after the deadline at once.
///
/// The default name is the function's path (with the `Self` type on a method); `name` shares one limiter. Metrics:
/// `adk_rate_limit_decisions_total{limiter,decision}` (`admitted`, `delayed` for admitted after waiting, `refused`),
/// `adk_rate_limit_keys{limiter}` (a gauge: keys whose state the limiter holds).
#[proc_macro_attribute]
pub fn rate_limited(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::RateLimited, args.into(), item.into()).into()
}

/// A `tracing` span per call and Prometheus metrics for it: calls by outcome, duration, calls in flight; an error is
/// logged once, with the function and error fields.
///
/// ```
/// # #[derive(Debug, thiserror::Error)]
/// # #[error("model overloaded")]
/// # struct LlmError;
/// #[adk::observed(skip(api_key), fields(model = %model), labels(team = "search"))]
/// async fn complete(api_key: &str, model: &str, prompt: &str) -> Result<String, LlmError> {
///     Ok(format!("{model}: {prompt}"))
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// complete("secret", "small", "hi").await.unwrap();
/// let metrics = adk::metrics::render();
/// assert!(metrics.contains(r#"::complete",outcome="ok",team="search"} 1"#), "{metrics}");
/// # }
/// ```
///
/// Parameters mean what they mean in `#[tracing::instrument]`, so switching needs no relearning:
///
/// | parameter | meaning | default |
/// |---|---|---|
/// | `name = "..."` | the span's name | the function's name |
/// | `skip(a, b)`, `skip_all` | arguments not recorded as span fields (the rest are recorded with `Debug`) | record all but `self` |
/// | `fields(k = expr, k2 = %expr, k3 = ?expr)` | extra span fields | none |
/// | `level = "debug"` | the span's level (and `ret`'s) | info |
/// | `ret`, `ret(Display)` | an event with the returned `Ok` value | off |
/// | `err(Debug)`, `err(level = "info")` | how the error event formats the error, and its level for every error | `Display`, by class (below) |
/// | `labels(team = "search")` | constant labels added to this function's metric series | none |
///
/// The error event (target `adk::observed`, fields `function` and `error`) is logged once per failed call, at a level
/// that follows the error's `adk::Classify::class` unless `err(level = ...)` fixes one: `WARN` for a `Permanent`
/// error (bad input, not found: the caller's to fix, not an outage), `ERROR` for `Transient` and `Critical` ones.
/// `Classify` is not required: an error type that does not implement it logs at `ERROR`. Whether it does is decided
/// by the types the signature names, so a generic error type `E` is classified only when the function bounds it
/// (`E: adk::Classify`); without the bound its errors log at `ERROR` whatever type `E` turns out to be.
///
/// In adk's JSON logs (`adk::runtime::telemetry`), every line logged inside the call, the error event included,
/// carries the span's fields as top-level keys: the recorded arguments (`"prompt":"\"hi\""`, with `Debug`) and the
/// `fields(...)` (`fields(user = user.id)` gives `"user":42`, keeping its JSON type), beside the fields of enclosing
/// spans; on a name clash the event's own field wins, then the innermost span's.
///
/// Metrics: `adk_calls_total{function,outcome}` (outcome `ok`, `error`, or `cancelled` for a dropped future),
/// `adk_call_duration_seconds{function}` (buckets from 5 ms to 5 min, for LLM and service calls),
/// `adk_calls_in_flight{function}` (a gauge: calls running now); `function` is the function's path, with the `Self`
/// type on a method (`agent::OpenAi::complete`). Handles are resolved once per function, so a call touches only atomics. The span
/// carries `otel.status_code`, so failed calls are marked failed when exported to OpenTelemetry. Unlike
/// `#[instrument]`, `self` is not recorded unless named in `fields`. Put it first (outermost): one span and one
/// histogram observation per logical call, retries included.
#[proc_macro_attribute]
pub fn observed(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Observed, args.into(), item.into()).into()
}

/// Derives `adk::Classify` for an error enum or struct: which failures `#[retry]` tries again, which count against
/// a `#[circuit_breaker]`, how long the failed dependency asked to wait, and which adk refusal the error carries.
///
/// ```
/// use std::time::Duration;
///
/// #[derive(Debug, thiserror::Error, adk::Classify)]
/// enum AgentError {
///     #[error("provider overloaded")]
///     Overloaded,                                     // transient: the container's default
///     #[error("prompt rejected: {0}")]
///     #[adk(permanent)]
///     Rejected(String),                               // never retried, not a breaker failure
///     #[error("provider down")]
///     #[adk(critical)]
///     ProviderDown,                                   // never retried, always a breaker failure
///     #[error("slow down")]
///     #[adk(retry_after = wait)]
///     SlowDown { wait: Duration },                    // retried after `wait`
///     #[error(transparent)]
///     Io(#[from] #[adk(source)] std::io::Error),      // classified as the io::Error is
///     #[error(transparent)]
///     Adk(#[from] adk::Error),                        // found without a mark: refusals keep their meaning
/// }
///
/// use adk::{Classify, ErrorClass};
/// assert_eq!(AgentError::Overloaded.class(), ErrorClass::Transient);
/// assert_eq!(AgentError::Rejected("empty".into()).class(), ErrorClass::Permanent);
/// assert_eq!(AgentError::ProviderDown.class(), ErrorClass::Critical);
/// assert_eq!(AgentError::SlowDown { wait: Duration::from_secs(2) }.retry_after(), Some(Duration::from_secs(2)));
/// let not_found = AgentError::from(std::io::Error::from(std::io::ErrorKind::NotFound));
/// assert_eq!(not_found.class(), ErrorClass::Permanent);
/// let limited = AgentError::from(adk::Error::rate_limited("openai", Duration::from_secs(1), 0, 0));
/// assert!(matches!(limited.adk_error(), Some(adk::Error::RateLimited { .. })));
/// ```
///
/// | attribute | on | meaning |
/// |---|---|---|
/// | `#[adk(transient)]`, `#[adk(permanent)]`, `#[adk(critical)]` | a variant | its class |
/// | the same | the enum | the class of variants that neither say nor wrap one (default: transient) |
/// | the same | a struct | its class |
/// | `#[adk(source)]` | a field | classify by this wrapped error: its class (unless the variant says one), `retry_after` and `adk_error` |
/// | `#[adk(retry_after = field)]` | a variant or a struct | the wait, from a `Duration` or `Option<Duration>` field (`retry_after = 0` for a tuple field); before the source's |
/// | `#[adk(crate = "my_adk")]` | the enum or struct | the path of a renamed `adk` dependency |
///
/// thiserror's `#[from]` or `#[source]` alone does not make a field the source (it may wrap an error adk cannot
/// classify): add `#[adk(source)]` beside it. A field of type `adk::Error` (written `adk::Error`) is a source without a
/// mark, so refusals wrapped in the
/// error keep their class and `retry_after`, and a breaker sees that a `RateLimited` is not the dependency's fault.
/// A `#[adk(source)]` field may be any type that implements `Classify`: `std::io::Error`, `adk::HttpError`,
/// `anyhow::Error` (feature `anyhow`, on by default), `reqwest::Error` (feature `reqwest`), `tonic::Status`
/// (feature `tonic`), a boxed error, or another derived type, which is how a foreign error adk does not know gets
/// classified: wrap it in a variant and say its class there. In a generic type, a source of a parameter's type
/// (`Inner(#[adk(source)] E)`) adds the bound `E: Classify` to the impl.
///
/// Classes: `Transient` errors are retried and count as breaker failures; `Permanent` ones (bad input, not found,
/// unauthorised) are returned at once and do not count; `Critical` ones (a provider down, corrupted storage, a
/// security violation) are returned at once and always count.
///
/// Mistakes are compile errors at the token: an unknown key (with "did you mean"), a key in the wrong place, two
/// classes on one variant, `source` on two fields, `retry_after` naming a field that does not exist or is not a
/// `Duration`, a derive on a union. The derive works on enums and structs (named, tuple or unit), generic or not.
#[proc_macro_derive(Classify, attributes(adk))]
pub fn derive_classify(item: TokenStream) -> TokenStream {
    classify::derive(item.into()).into()
}
