#[adk::retry(attempts = 3)]
pub struct Client {
    pub url: String,
}

fn main() {}
