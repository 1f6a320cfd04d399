#[derive(Debug, adk::Classify)]
enum AgentError {
    #[adk(transient, permanent)]
    Rejected,
}

fn main() {}
