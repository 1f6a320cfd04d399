//! `backend = "redis"` with its failure settings compiles (with the `redis` feature, which the UI tests run with).

#[derive(Debug)]
pub enum AgentError {
    Adk(adk::Error),
}

impl From<adk::Error> for AgentError {
    fn from(e: adk::Error) -> Self {
        AgentError::Adk(e)
    }
}

impl adk::Classify for AgentError {}

#[adk::rate_limited(name = "provider", rpm = 3500, backend = "redis", on_backend_error = "local", fleet_size = 4)]
#[adk::rate_limited(rps = 2, key = user, backend = "redis", on_backend_error = "deny")]
async fn call(user: u64) -> Result<u64, AgentError> {
    Ok(user)
}

#[adk::rate_limited(rps = 2, backend = "memory")]
async fn local() -> Result<u64, AgentError> {
    Ok(1)
}

fn main() {
    let _ = (call(1), local());
}
