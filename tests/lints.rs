//! Expansions raise no lint of their own: this file denies every warning and clippy's pedantic group (which
//! `cargo clippy --all-targets -- -D warnings` checks), over every attribute and the arguments they read.
#![deny(warnings, clippy::pedantic)]

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
enum AgentError {
    #[error("failed")]
    Failed,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for AgentError {
    fn adk_error(&self) -> Option<&adk::Error> {
        match self {
            AgentError::Adk(e) => Some(e),
            AgentError::Failed => None,
        }
    }
}

/// The derive's expansion is held to the same standard, over every attribute it takes.
#[derive(Debug, thiserror::Error, adk::Classify)]
#[adk(transient)]
enum DerivedError {
    #[error("rejected")]
    #[adk(permanent)]
    Rejected,
    #[error("down")]
    #[adk(critical)]
    Down,
    #[error("slow down")]
    #[adk(retry_after = wait)]
    SlowDown { wait: Duration },
    #[error("maybe slow")]
    #[adk(retry_after = 0)]
    MaybeSlow(Option<Duration>),
    #[error(transparent)]
    Io(#[adk(source)] std::io::Error),
    #[error("http")]
    #[adk(permanent, retry_after = wait)]
    Http { source: adk::HttpError, wait: Duration },
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

#[derive(Debug, thiserror::Error, adk::Classify)]
#[error("wrapped")]
struct Wrapper<E: std::error::Error + 'static>(#[adk(source)] E);

#[derive(Debug, Clone)]
struct User {
    id: u64,
    tier: u8,
}

#[allow(clippy::unused_async)] // a fallback has the function's signature
async fn cheaper(user_id: u64, tokens: u64, user: User, prompt: String) -> Result<String, AgentError> {
    Ok(format!("{}:{}:{}:{prompt}", user_id + tokens, user.id, user.tier))
}

#[adk::observed(fields(user = user_id, tokens = tokens))]
#[adk::fallback(cheaper)]
#[adk::cached(ttl = "1m", key = (user.id, prompt.clone()))]
#[adk::timeout("10s")]
#[adk::retry(attempts = 3, base = "10ms", jitter)]
#[adk::circuit_breaker(name = "lints-provider", min_calls = 50)]
#[adk::rate_limited(name = "lints-provider", rpm = 600, key = user.tier, cost = tokens)]
#[adk::bulkhead(max_concurrent = 4, max_wait = "1s")]
#[adk::timeout("2s")]
async fn complete(user_id: u64, tokens: u64, user: User, prompt: String) -> Result<String, AgentError> {
    if prompt.is_empty() { Err(AgentError::Failed) } else { Ok(prompt) }
}

struct Tenant {
    name: String,
}

impl Tenant {
    #[adk::observed(fields(tenant = self.name.as_str()))]
    #[adk::cached(key = (self.name.clone(), id))]
    #[adk::retry(attempts = 2)]
    async fn lookup(&self, id: u64) -> Result<u64, AgentError> {
        Ok(id + self.name.len() as u64)
    }

    #[adk::observed(fields(request = request))]
    #[adk::retry(attempts = 2)]
    #[adk::circuit_breaker]
    async fn forward(&mut self, request: u64, body: &str) -> Result<usize, AgentError> {
        self.name.push_str(body);
        Ok(self.name.len())
    }
}

#[tokio::test(start_paused = true)]
async fn the_annotated_functions_run() {
    let user = User { id: 7, tier: 1 };
    assert_eq!(complete(1, 2, user.clone(), "hi".to_owned()).await.unwrap(), "hi");
    assert_eq!(complete(1, 2, user, String::new()).await.unwrap(), "3:7:1:", "the fallback answers");
    let mut tenant = Tenant { name: "acme".to_owned() };
    assert_eq!(tenant.lookup(1).await.unwrap(), 5);
    assert_eq!(tenant.forward(9, "!").await.unwrap(), 5);
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[adk::retry(attempts = 2, base = "1ms")]
async fn derived(error: fn() -> DerivedError) -> Result<(), Wrapper<DerivedError>> {
    Err(Wrapper(error()))
}

#[tokio::test(start_paused = true)]
async fn the_derived_impls_run() {
    use adk::Classify;
    assert_eq!(derived(|| DerivedError::Rejected).await.unwrap_err().class(), adk::ErrorClass::Permanent);
    assert_eq!(derived(|| DerivedError::Down).await.unwrap_err().class(), adk::ErrorClass::Critical);
    let slow = derived(|| DerivedError::SlowDown { wait: Duration::from_millis(5) }).await.unwrap_err();
    assert_eq!(slow.retry_after(), Some(Duration::from_millis(5)));
    assert_eq!(DerivedError::MaybeSlow(None).retry_after(), None);
    let http = DerivedError::Http { source: adk::HttpError::from_status(503), wait: Duration::from_secs(1) };
    assert_eq!((http.class(), http.retry_after()), (adk::ErrorClass::Permanent, Some(Duration::from_secs(1))));
    assert_eq!(
        DerivedError::Io(std::io::Error::from(std::io::ErrorKind::NotFound)).class(),
        adk::ErrorClass::Permanent
    );
    assert!(DerivedError::from(adk::Error::timeout(Duration::from_secs(1))).adk_error().is_some());
}
