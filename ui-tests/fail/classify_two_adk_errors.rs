#[derive(Debug, adk::Classify)]
enum AgentError {
    Both { first: adk::Error, second: adk::Error },
}

fn main() {}
