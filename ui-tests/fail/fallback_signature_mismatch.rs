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

async fn cheaper(prompt: String) -> Result<String, AgentError> {
    Ok(prompt)
}

#[adk::fallback(cheaper)]
async fn complete(prompt: &str, max_tokens: u32) -> Result<String, AgentError> {
    let _ = (prompt, max_tokens);
    Err(AgentError::Failed)
}

fn main() {}
