#[derive(Debug)]
pub enum AgentError {
    Adk(adk::Error),
}

impl From<adk::Error> for AgentError {
    fn from(e: adk::Error) -> Self {
        AgentError::Adk(e)
    }
}

#[adk::bulkhead(max_concurrent = 2, key)]
async fn research(user: u64) -> Result<u64, AgentError> {
    Ok(user)
}

fn main() {}
