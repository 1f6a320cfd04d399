//! Default names: a method's policies and `function` label include its `Self` type, so methods of different types
//! with one name never share a breaker, a limiter or a metric series.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
enum ProviderError {
    #[error("provider down")]
    Down,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for ProviderError {
    fn adk_error(&self) -> Option<&adk::Error> {
        match self {
            ProviderError::Adk(e) => Some(e),
            ProviderError::Down => None,
        }
    }
}

struct OpenAi {
    up: bool,
}

struct Anthropic;

impl OpenAi {
    #[adk::observed]
    #[adk::circuit_breaker(min_calls = 1, window = 1, open_for = "30s")]
    #[adk::rate_limited(rps = 1, burst = 1)]
    async fn complete(&self, prompt: &str) -> Result<String, ProviderError> {
        if self.up { Ok(format!("openai: {prompt}")) } else { Err(ProviderError::Down) }
    }
}

impl Anthropic {
    #[adk::observed]
    #[adk::circuit_breaker(min_calls = 1, window = 1, open_for = "30s")]
    #[adk::rate_limited(rps = 1, burst = 1)]
    async fn complete(&self, prompt: &str) -> Result<String, ProviderError> {
        Ok(format!("anthropic: {prompt}"))
    }
}

struct Pool<T>(T);

impl<T: Send + Sync> Pool<T> {
    #[adk::circuit_breaker(min_calls = 1, window = 1)]
    async fn checkout(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn methods_of_two_types_with_one_name_have_their_own_breaker_limiter_and_series() {
    let openai = OpenAi { up: false };
    assert!(matches!(openai.complete("hi").await, Err(ProviderError::Down)));
    let breaker = adk::registry().circuit_breaker("names::OpenAi::complete").expect("named after its type");
    assert_eq!(breaker.state(), adk::CircuitState::Open);

    // Anthropic's breaker and limiter are its own: neither OpenAi's open breaker nor its spent permit refuses it.
    assert_eq!(Anthropic.complete("hi").await.unwrap(), "anthropic: hi");
    let theirs = adk::registry().circuit_breaker("names::Anthropic::complete").expect("named after its type");
    assert_eq!(theirs.state(), adk::CircuitState::Closed);
    assert!(adk::registry().rate_limiter("names::OpenAi::complete").is_some());
    assert!(adk::registry().rate_limiter("names::Anthropic::complete").is_some());
    assert!(adk::registry().circuit_breaker("names::complete").is_none(), "no name without the type");

    let metrics = adk::metrics::render();
    assert!(metrics.contains(r#"adk_calls_total{function="names::OpenAi::complete",outcome="error"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"adk_calls_total{function="names::Anthropic::complete",outcome="ok"} 1"#), "{metrics}");

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(matches!(openai.complete("again").await, Err(ProviderError::Adk(adk::Error::CircuitOpen { .. }))));
}

#[tokio::test]
async fn a_generic_type_is_named_without_its_arguments() {
    Pool(1_u8).checkout().await.unwrap();
    Pool("x").checkout().await.unwrap();
    assert!(adk::registry().circuit_breaker("names::Pool::checkout").is_some());
}
