#[derive(Debug, adk::Classify)]
enum AgentError {
    #[adk(permanent = true)]
    Rejected,
}

fn main() {}
