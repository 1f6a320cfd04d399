use std::time::Duration;

#[derive(Debug, adk::Classify)]
enum AgentError {
    #[adk(retry_after = wiat)]
    Busy { wait: Duration, reason: String },
}

fn main() {}
