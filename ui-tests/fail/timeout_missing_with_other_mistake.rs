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

// Both mistakes are reported together, each at its own attribute.
#[adk::retry(atempts = 2)]
#[adk::timeout]
async fn complete() -> Result<String, AgentError> {
    Ok(String::new())
}

fn main() {}
