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

#[derive(Clone)]
pub struct Answer(String);

#[adk::cached(ttl = "1m", backend = "redis")]
async fn answer(question: String) -> Result<Answer, AgentError> {
    Ok(Answer(question))
}

#[adk::cached(ttl = "1m", backend = "redis")]
fn sync_answer(question: String) -> Result<String, AgentError> {
    Ok(question)
}

#[adk::cached(ttl = "1m", backend = "redsi")]
async fn typo(question: String) -> Result<String, AgentError> {
    Ok(question)
}

fn main() {}
