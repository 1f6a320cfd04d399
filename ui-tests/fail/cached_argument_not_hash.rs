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

pub struct Filter {
    pub min: f64,
}

#[adk::cached(ttl = 60)]
async fn search(filter: Filter) -> Result<u32, AgentError> {
    Ok(filter.min as u32)
}

fn main() {}
