#![deny(deprecated)]
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

#[adk::timeout("1s")]
#[adk::observed(err(Debug))]
async fn call(user: &str) -> Result<u32, AgentError> {
    let _ = user;
    Ok(1)
}

fn main() {}
