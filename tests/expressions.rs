//! Expressions in attribute arguments are ordinary Rust expressions: operators, casts, method calls and blocks mean
//! what they mean anywhere else, wherever the expansion places them.

use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for ApiError {
    fn adk_error(&self) -> Option<&adk::Error> {
        match self {
            ApiError::Adk(e) => Some(e),
        }
    }
}

fn refused<T: std::fmt::Debug>(result: &Result<T, ApiError>) -> bool {
    matches!(result, Err(ApiError::Adk(adk::Error::RateLimited { .. })))
}

#[adk::rate_limited(rps = 1, burst = 1, key = shard % 4)]
async fn by_remainder(shard: u64) -> Result<u64, ApiError> {
    Ok(shard)
}

#[tokio::test(start_paused = true)]
async fn a_key_with_an_operator_is_one_expression() {
    assert_eq!(by_remainder(1).await.unwrap(), 1);
    assert!(refused(&by_remainder(5).await), "5 % 4 is 1's key");
    assert_eq!(by_remainder(2).await.unwrap(), 2, "another remainder, another key");
}

#[adk::rate_limited(rps = 1, burst = 1, key = a + b)]
async fn by_sum(a: u32, b: u32) -> Result<u32, ApiError> {
    Ok(a + b)
}

#[tokio::test(start_paused = true)]
async fn a_key_that_adds_two_arguments() {
    by_sum(1, 2).await.unwrap();
    assert!(refused(&by_sum(2, 1).await), "1 + 2 and 2 + 1 are one key");
    by_sum(2, 2).await.unwrap();
}

#[adk::rate_limited(rps = 1, burst = 1, key = id as u8)]
async fn by_cast(id: u32) -> Result<u32, ApiError> {
    Ok(id)
}

#[tokio::test(start_paused = true)]
async fn a_key_with_a_cast() {
    by_cast(7).await.unwrap();
    assert!(refused(&by_cast(263).await), "263 as u8 is 7");
}

#[adk::rate_limited(rps = 1, burst = 1, key = name.to_lowercase())]
async fn by_method(name: &str) -> Result<(), ApiError> {
    let _ = name;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_key_from_a_method_call() {
    by_method("Ada").await.unwrap();
    assert!(refused(&by_method("ADA").await));
}

#[adk::rate_limited(rpm = 10, burst = 10, cost = { let n = words.len() as u64; n * 2 })]
async fn priced(words: &[&str]) -> Result<(), ApiError> {
    let _ = words;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_cost_block_and_an_arithmetic_cost() {
    priced(&["a", "b", "c", "d"]).await.unwrap(); // 8 of 10
    assert!(refused(&priced(&["a", "b"]).await), "4 more would exceed the burst");
    priced(&["a"]).await.unwrap();
}

#[adk::rate_limited(rpm = 10, burst = 10, cost = base + extra * 2)]
async fn weighted(base: u64, extra: u64) -> Result<(), ApiError> {
    let _ = (base, extra);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_cost_with_operators_follows_precedence() {
    weighted(2, 4).await.unwrap(); // 10, not 12
    assert!(refused(&weighted(0, 1).await));
}

static CACHED_RUNS: AtomicU32 = AtomicU32::new(0);

#[adk::cached(key = n % 10)]
async fn cached_by_remainder(n: u32) -> Result<u32, ApiError> {
    CACHED_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(n % 10)
}

#[tokio::test]
async fn a_cache_key_with_an_operator() {
    assert_eq!(cached_by_remainder(13).await.unwrap(), 3);
    assert_eq!(cached_by_remainder(23).await.unwrap(), 3);
    assert_eq!(CACHED_RUNS.load(Ordering::SeqCst), 1);
}

#[adk::fallback(value = a * 10 + b)]
#[adk::rate_limited(rps = 1, burst = 1)]
async fn answered(a: u32, b: u32) -> Result<u32, ApiError> {
    Ok(a + b)
}

#[tokio::test(start_paused = true)]
async fn a_fallback_value_with_operators() {
    assert_eq!(answered(1, 2).await.unwrap(), 3);
    assert_eq!(answered(1, 2).await.unwrap(), 12, "the fallback's value is 1 * 10 + 2");
}

/// The fields of every span opened while it is the default subscriber, as `name=value` strings.
#[derive(Clone, Default)]
struct SpanFields(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanFields {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Visitor<'a>(&'a mut Vec<String>);
        impl tracing::field::Visit for Visitor<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push(format!("{}={value:?}", field.name()));
            }
        }
        attrs.record(&mut Visitor(&mut self.0.lock().unwrap()));
    }
}

#[adk::observed(skip_all, fields(total = a * 10 + b, shout = name.to_uppercase(), order = { if a > b { "above" } else { "below" } }))]
async fn recorded(a: u32, b: u32, name: &str) -> Result<(), ApiError> {
    let _ = (a, b, name);
    Ok(())
}

#[test]
fn span_fields_with_operators_method_calls_and_blocks() {
    use tracing_subscriber::layer::SubscriberExt;
    let fields = SpanFields::default();
    let subscriber = tracing_subscriber::registry().with(fields.clone());
    tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(recorded(3, 4, "ada")).unwrap();
    });
    let recorded = fields.0.lock().unwrap().clone();
    for expected in ["total=34", "shout=\"ADA\"", "order=\"below\""] {
        assert!(recorded.iter().any(|f| f == expected), "{expected} in {recorded:?}");
    }
}
