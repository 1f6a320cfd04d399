#[derive(Debug, adk::Classify)]
enum AgentError {
    #[adk(retry_after = wait_secs)]
    Busy { wait_secs: u64 },
}

fn main() {}
