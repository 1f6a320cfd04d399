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

#[adk::rate_limited(rps = 10, backend = "redsi")]
async fn call() -> Result<u32, AgentError> {
    Ok(1)
}

#[adk::rate_limited(rps = 10, backend = "redis", on_backend_error = "retry", fleet_size = 0)]
async fn other() -> Result<u32, AgentError> {
    Ok(1)
}

fn main() {}
