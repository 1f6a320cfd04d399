#[derive(Debug, adk::Classify)]
enum AgentError {
    Both(#[adk(source)] std::io::Error, #[adk(source)] adk::HttpError),
}

fn main() {}
