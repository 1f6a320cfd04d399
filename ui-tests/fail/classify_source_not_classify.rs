#[derive(Debug)]
pub struct ParseError;

#[derive(Debug, adk::Classify)]
enum AgentError {
    Parse(#[adk(source)] ParseError),
}

fn main() {}
