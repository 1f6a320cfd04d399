#[derive(Debug)]
pub enum AgentError {
    Adk(adk::Error),
}

impl From<adk::Error> for AgentError {
    fn from(e: adk::Error) -> Self {
        AgentError::Adk(e)
    }
}

pub struct User {
    pub id: u64,
    pub team: u32,
}

#[adk::bulkhead(max_concurrent = 2, key = user.id, key = user.team)]
async fn research(user: &User) -> Result<u64, AgentError> {
    Ok(user.id)
}

fn main() {}
