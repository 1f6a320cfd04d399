use std::time::Duration;

#[derive(Debug, adk::Classify)]
#[adk(retry_after = wait)]
enum AgentError {
    #[adk(source)]
    Io(std::io::Error),
    Busy {
        #[adk(permanent)]
        wait: Duration,
    },
}

fn main() {}
