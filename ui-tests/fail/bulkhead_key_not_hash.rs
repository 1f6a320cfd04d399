#[derive(Debug)]
pub enum AgentError {
    Adk(adk::Error),
}

impl From<adk::Error> for AgentError {
    fn from(e: adk::Error) -> Self {
        AgentError::Adk(e)
    }
}

pub struct Region {
    pub latitude: f64,
}

#[adk::bulkhead(max_concurrent = 2, key = region)]
async fn forecast(region: Region) -> Result<f64, AgentError> {
    Ok(region.latitude)
}

fn main() {}
