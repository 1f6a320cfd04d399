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

pub struct Payload {
    pub body: String,
}

#[adk::retry(attempts = 3)]
async fn send(payload: Payload) -> Result<(), AgentError> {
    drop(payload);
    Ok(())
}

fn main() {}
