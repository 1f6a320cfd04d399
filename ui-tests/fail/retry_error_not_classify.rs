#[derive(Debug)]
pub struct PlainError;

#[adk::retry(attempts = 3)]
async fn complete() -> Result<String, PlainError> {
    Err(PlainError)
}

fn main() {}
