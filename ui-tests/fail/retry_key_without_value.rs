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

#[adk::retry(attempts)]
async fn complete() -> Result<(), AgentError> {
    Ok(())
}

#[adk::retry(attempts(3))]
async fn listed() -> Result<(), AgentError> {
    Ok(())
}

fn main() {}
