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

pub struct Report(String);

#[adk::cached(ttl = 60)]
async fn report(id: u32) -> Result<Report, AgentError> {
    Ok(Report(id.to_string()))
}

fn main() {}
