#[derive(Debug, adk::Classify)]
enum AgentError {
    #[adk(permanant)]
    Rejected,
    Overloaded,
}

fn main() {}
