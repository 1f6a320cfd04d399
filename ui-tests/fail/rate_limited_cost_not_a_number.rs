#[derive(Debug)]
pub enum AgentError {
    Adk(adk::Error),
}

impl From<adk::Error> for AgentError {
    fn from(e: adk::Error) -> Self {
        AgentError::Adk(e)
    }
}

#[adk::rate_limited(rpm = 60, cost = "ten")]
async fn complete(prompt: &str) -> Result<usize, AgentError> {
    Ok(prompt.len())
}

fn main() {}
