#[derive(Debug, Clone)]
pub struct LlmError;

pub struct Tenant {
    pub name: String,
}

impl Tenant {
    #[adk::cached(ttl = "5m")]
    pub async fn greet(&self, prompt: &str) -> Result<String, LlmError> {
        Ok(format!("{} says {prompt}", self.name))
    }
}

fn main() {}
