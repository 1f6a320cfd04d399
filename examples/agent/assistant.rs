//! The agent: one method answering prompts through the whole adk stack, in the recommended order.

use crate::client::{AgentError, Answer, ChatClient};

/// Who is asking. Each user has a quota of their own.
#[derive(Debug)]
pub struct User {
    pub id: u32,
    pub name: &'static str,
}

/// The name of the per-user limiter, as refusals report it.
pub const USER_QUOTA: &str = "user-quota";
/// The `function` label of `answer` in adk's metrics: a method's path includes its type.
pub const ANSWER: &str = concat!(module_path!(), "::Assistant::answer");
/// The `function` label of the fallback.
pub const ANSWER_CHEAPLY: &str = concat!(module_path!(), "::Assistant::answer_cheaply");

pub struct Assistant {
    pub client: ChatClient,
    pub model: String,
    pub cheaper_model: String,
}

impl Assistant {
    /// Answers `prompt` for `user`. Outermost first:
    ///
    /// - `observed`: one span and one duration sample per question, retries and fallback included. Errors that reach
    ///   the caller are the user's own (a quota, a rejected prompt), so they are logged at INFO, not ERROR;
    /// - `fallback`: when the large model cannot answer, the cheaper one does; not for the user's own quota (that
    ///   would hand over-quota users a free model) nor for prompts the provider rejects;
    /// - `cached`: repeated prompts are answered from memory, whoever asks; hits spend no quota. Fallback answers are
    ///   not cached (the cache is below the fallback), so the large model answers once it is back;
    /// - `timeout("10s")`: the most a question may take before the fallback steps in;
    /// - `rate_limited` per user, above `retry`: one permit per question, not per attempt, so a provider failure's
    ///   retry is neither charged to the user nor refused by their quota, and an over-quota user is told at once
    ///   (HTTP 429) and never spends a permit of the quota everyone shares;
    /// - `retry`: transient failures (5xx, 429, timeouts, resets) again, with jittered backoff; a `retry_after` longer
    ///   than `max_delay` or past the total timeout's deadline (an open breaker, an exhausted quota) ends the
    ///   retries at once, with that refusal;
    /// - `circuit_breaker`: one breaker per provider; it sees every attempt, counts 5xx and timeouts, not 429s, and
    ///   opens when half of the last 20 attempts failed;
    /// - `rate_limited` per provider, below the breaker: every attempt spends a permit, as the provider counts them;
    ///   it waits (up to 1 s, and never past the deadline) rather than refusing;
    /// - `bulkhead`: at most 16 requests in flight to the provider;
    /// - `timeout("4s")`: the most one attempt may take.
    #[adk::observed(skip(user), fields(user = user.name), err(level = "info"))]
    #[adk::fallback(answer_cheaply, on = worth_falling_back)]
    #[adk::cached(ttl = "10m", max_entries = 1_000, key = prompt.to_owned(), name = "answers")]
    #[adk::timeout("10s")]
    #[adk::rate_limited(name = "user-quota", rpm = 40, burst = 6, key = user.id)]
    #[adk::retry(attempts = 3, backoff = "exponential", base = "200ms", max_delay = "1s", jitter)]
    #[adk::circuit_breaker(name = "provider", min_calls = 10, window = 20, open_for = "2s", half_open_calls = 3)]
    #[adk::rate_limited(name = "provider-quota", rps = 12, burst = 8, on_limit = "wait", max_wait = "1s")]
    #[adk::bulkhead(max_concurrent = 16, max_wait = "1s", name = "provider-connections")]
    #[adk::timeout("4s")]
    pub async fn answer(&self, user: &User, prompt: &str) -> Result<Answer, AgentError> {
        self.client.complete(&self.model, prompt).await
    }

    /// The fallback: the cheaper model, with a stack of its own. It shares the provider's quota (same name, same
    /// settings) but not the large model's breaker: an outage of one model is not an outage of the other.
    #[adk::retry(attempts = 2, base = "200ms", max_delay = "1s", jitter)]
    #[adk::rate_limited(name = "provider-quota", rps = 12, burst = 8, on_limit = "wait", max_wait = "1s")]
    #[adk::timeout("4s")]
    async fn answer_cheaply(&self, _user: &User, prompt: &str) -> Result<Answer, AgentError> {
        self.client.complete(&self.cheaper_model, prompt).await
    }
}

/// Which failures the cheaper model should answer: not the user's own quota, not a prompt the provider rejects.
fn worth_falling_back(error: &AgentError) -> bool {
    match error {
        AgentError::Rejected { .. } => false,
        AgentError::Adk(adk::Error::RateLimited { name, .. }) => name != USER_QUOTA,
        _ => true,
    }
}
