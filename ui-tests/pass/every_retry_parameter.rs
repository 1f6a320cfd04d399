#![deny(warnings)]
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

impl adk::Classify for AgentError {}

fn transient(_: &AgentError) -> bool {
    true
}

#[adk::retry(
    attempts = 5,
    backoff = "exponential",
    base = "50ms",
    max_delay = "2s",
    multiplier = 1.5,
    jitter = "decorrelated",
    when = transient,
    budget = 0.2,
    max_elapsed = "10s"
)]
async fn complete(prompt: &str) -> Result<String, AgentError> {
    Ok(prompt.to_owned())
}

async fn cheaper(prompt: &str) -> Result<String, AgentError> {
    Ok(prompt.to_owned())
}

#[adk::fallback(cheaper, value = String::from("sorry"))]
#[adk::timeout("10s")]
#[adk::retry(attempts = 3, jitter)]
#[adk::timeout("2s")]
async fn layered(prompt: &str) -> Result<String, AgentError> {
    Ok(prompt.to_owned())
}

// Imported attributes work without the `adk::` prefix.
use adk::{retry, timeout};

#[retry(attempts = 2)]
#[timeout("1s")]
async fn imported() -> Result<(), AgentError> {
    Ok(())
}

fn main() {
    let _ = (complete("x"), layered("y"), imported());
}
