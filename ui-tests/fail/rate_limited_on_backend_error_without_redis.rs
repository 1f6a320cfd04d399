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

#[adk::rate_limited(rps = 10, on_backend_error = "deny", fleet_size = 3)]
async fn call() -> Result<u32, AgentError> {
    Ok(1)
}

fn main() {}
