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

#[adk::retry(attempts = 0)]
async fn complete() -> Result<String, AgentError> {
    Err(AgentError::Failed)
}

fn main() {}
