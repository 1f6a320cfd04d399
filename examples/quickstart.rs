//! A flaky "LLM provider" answered through #[adk::fallback], #[adk::timeout], #[adk::retry]: run it with
//! `cargo run --example quickstart`. The provider is simulated in-process: it fails transiently, is sometimes slow,
//! and refuses bad prompts; the stack turns that into answers, and the metrics show what happened.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
enum AgentError {
    #[error("provider overloaded (HTTP 503)")]
    Overloaded,
    #[error("prompt rejected (HTTP 400)")]
    Rejected,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for AgentError {
    fn class(&self) -> adk::ErrorClass {
        match self {
            AgentError::Rejected => adk::ErrorClass::Permanent,
            AgentError::Overloaded => adk::ErrorClass::Transient,
            AgentError::Adk(e) => e.class(),
        }
    }
    fn adk_error(&self) -> Option<&adk::Error> {
        match self {
            AgentError::Adk(e) => Some(e),
            _ => None,
        }
    }
}

static PROVIDER_CALLS: AtomicU64 = AtomicU64::new(0);

/// The simulated provider: a deterministic mix of fast answers, 503s, slow answers and rejections.
async fn provider(model: &str, prompt: &str) -> Result<String, AgentError> {
    let n = PROVIDER_CALLS.fetch_add(1, Ordering::Relaxed);
    if prompt.contains("forbidden") {
        return Err(AgentError::Rejected);
    }
    match n % 7 {
        0 | 3 => Err(AgentError::Overloaded),
        5 => {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok(format!("[{model}] slow answer to {prompt:?}"))
        }
        _ => {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(format!("[{model}] answer to {prompt:?}"))
        }
    }
}

async fn cheaper_model(prompt: &str) -> Result<String, AgentError> {
    provider("small-model", prompt).await
}

#[adk::fallback(cheaper_model, value = String::from("Sorry, I can't answer right now."))]
#[adk::timeout("2s")]
#[adk::retry(attempts = 3, backoff = "exponential", base = "50ms", jitter)]
#[adk::timeout("250ms")]
async fn complete(prompt: &str) -> Result<String, AgentError> {
    provider("large-model", prompt).await
}

#[tokio::main]
async fn main() {
    let prompts = ["summarise the meeting", "translate to French", "forbidden topic", "write a haiku", "plan a trip"];
    let started = tokio::time::Instant::now();
    for round in 0..4 {
        for prompt in prompts {
            let answer = complete(prompt).await.unwrap_or_else(|e| format!("error: {e}"));
            if round == 0 {
                println!("{prompt:>24} -> {answer}");
            }
        }
    }
    println!(
        "\n{} logical calls, {} provider calls, {:?} in all\n",
        4 * prompts.len(),
        PROVIDER_CALLS.load(Ordering::Relaxed),
        started.elapsed()
    );
    for line in adk::metrics::render().lines().filter(|l| !l.starts_with('#')) {
        println!("{line}");
    }
}
