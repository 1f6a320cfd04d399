//! Arguments used only in attribute expressions (keys, costs, fields) and arguments re-used across attempts compile
//! clean under `deny(warnings)`.
#![deny(warnings)]

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("failed")]
    Failed,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for AgentError {}

#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub tier: u8,
}

pub async fn cheaper(user_id: u64, _tokens: u64, user: User, prompt: String) -> Result<String, AgentError> {
    Ok(format!("{}:{prompt}", user.tier + (user_id as u8)))
}

#[adk::observed(fields(user = user_id, tokens = tokens))]
#[adk::fallback(cheaper)]
#[adk::cached(ttl = "1m", key = (user.id, prompt.clone()))]
#[adk::timeout("10s")]
#[adk::retry(attempts = 3)]
#[adk::circuit_breaker(name = "lint-provider")]
#[adk::rate_limited(name = "lint-provider", rpm = 600, key = user.tier, cost = tokens)]
#[adk::bulkhead(max_concurrent = 4)]
#[adk::timeout("2s")]
pub async fn complete(user_id: u64, tokens: u64, user: User, prompt: String) -> Result<String, AgentError> {
    if prompt.is_empty() { Err(AgentError::Failed) } else { Ok(prompt) }
}

pub struct Tenant {
    pub name: String,
}

impl Tenant {
    #[adk::observed(fields(tenant = self.name.as_str()))]
    #[adk::cached(key = (self.name.clone(), id))]
    #[adk::retry(attempts = 2)]
    pub async fn lookup(&self, id: u64, trace: &str) -> Result<u64, AgentError> {
        let _ = trace;
        Ok(id)
    }

    #[adk::observed(fields(request = request))]
    #[adk::retry(attempts = 2)]
    pub async fn forward(&mut self, request: u64, mut body: String) -> Result<usize, AgentError> {
        body.push('!');
        self.name.push('.');
        Ok(body.len())
    }
}

fn main() {}
