#[derive(Debug)]
pub struct PlainError;

#[adk::timeout("2s")]
#[adk::retry(attempts = 2, when = always)]
#[adk::timeout("1s")]
async fn complete() -> Result<String, PlainError> {
    Err(PlainError)
}

fn always(_: &PlainError) -> bool {
    true
}

fn main() {}
