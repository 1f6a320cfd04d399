#[derive(Debug)]
pub enum AgentError {
    Failed,
    Adk(adk::Error),
}

impl From<adk::Error> for AgentError {
    fn from(e: adk::Error) -> Self {
        AgentError::Adk(e)
    }
}

impl adk::Classify for AgentError {
    fn adk_error(&self) -> Option<&adk::Error> {
        match self {
            AgentError::Adk(e) => Some(e),
            AgentError::Failed => None,
        }
    }
}

pub struct User {
    pub id: u64,
}

async fn cheaper(user: &User, prompt: &str) -> Result<String, AgentError> {
    Ok(format!("{}: {prompt}", user.id))
}

// The recommended order, outermost first, compiles without a warning.
#[deny(warnings)]
#[adk::observed(skip(user), fields(user = user.id), err(Debug))]
#[adk::fallback(cheaper)]
#[adk::cached(ttl = "5m", key = (user.id, prompt.to_owned()))]
#[adk::timeout("10s")]
#[adk::retry(attempts = 3, backoff = "exponential", base = "200ms", jitter)]
#[adk::circuit_breaker(name = "openai", failure_rate = 0.5, open_for = "30s")]
#[adk::rate_limited(name = "openai", rpm = 3500)]
#[adk::rate_limited(rpm = 60, key = user.id)]
#[adk::bulkhead(max_concurrent = 16)]
#[adk::timeout("2s")]
async fn complete(user: &User, prompt: &str) -> Result<String, AgentError> {
    Ok(format!("{}: {prompt}", user.id))
}

// A breaker outside retry (one outcome per logical call) is legitimate.
#[deny(warnings)]
#[adk::circuit_breaker(name = "outer")]
#[adk::retry(attempts = 2)]
async fn outer_breaker() -> Result<(), AgentError> {
    Ok(())
}

fn main() {
    let user = User { id: 1 };
    let _ = (complete(&user, "hi"), outer_breaker());
}
