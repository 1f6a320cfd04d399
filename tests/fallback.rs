//! #[adk::fallback]: alternatives answer with the same arguments, in order, for the errors `on` selects.

use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum LlmError {
    #[error("overloaded")]
    Overloaded,
    #[error("invalid prompt")]
    InvalidPrompt,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for LlmError {}

async fn cheaper(prompt: &str, tokens: u32) -> Result<String, LlmError> {
    Ok(format!("cheap:{prompt}:{tokens}"))
}

#[adk::fallback(cheaper)]
async fn complete(prompt: &str, tokens: u32) -> Result<String, LlmError> {
    if prompt == "ok" { Ok(format!("main:{prompt}:{tokens}")) } else { Err(LlmError::Overloaded) }
}

#[tokio::test]
async fn a_failure_is_answered_by_the_fallback_with_the_same_arguments() {
    assert_eq!(complete("ok", 5).await.unwrap(), "main:ok:5");
    assert_eq!(complete("hard", 7).await.unwrap(), "cheap:hard:7");
    assert!(adk::metrics::render().contains(r#"adk_fallbacks_total{function="fallback::complete"} 1"#));
}

static TRIED: AtomicU32 = AtomicU32::new(0);

async fn first(_prompt: String) -> Result<String, LlmError> {
    TRIED.fetch_add(1, Ordering::SeqCst);
    Err(LlmError::Overloaded)
}

async fn second(prompt: String) -> Result<String, LlmError> {
    TRIED.fetch_add(10, Ordering::SeqCst);
    if prompt == "all fail" { Err(LlmError::InvalidPrompt) } else { Ok(format!("second:{prompt}")) }
}

#[adk::fallback(first, second)]
async fn chained(prompt: String) -> Result<String, LlmError> {
    let _owned: String = prompt;
    Err(LlmError::Overloaded)
}

#[tokio::test]
async fn a_chain_is_tried_in_order_and_the_last_error_returned_if_all_fail() {
    assert_eq!(chained("x".into()).await.unwrap(), "second:x");
    assert_eq!(TRIED.swap(0, Ordering::SeqCst), 11, "first, then second");
    assert_eq!(chained("all fail".into()).await, Err(LlmError::InvalidPrompt));
}

fn only_overload(error: &LlmError) -> bool {
    matches!(error, LlmError::Overloaded | LlmError::Adk(_))
}

#[adk::fallback(value = String::from("canned answer"), on = only_overload)]
async fn guarded(error: LlmError) -> Result<String, LlmError> {
    Err(error)
}

#[tokio::test]
async fn on_selects_which_errors_fall_back_and_value_answers_directly() {
    assert_eq!(guarded(LlmError::Overloaded).await.unwrap(), "canned answer");
    assert_eq!(guarded(LlmError::InvalidPrompt).await, Err(LlmError::InvalidPrompt), "bad input is not hidden");
}

struct Agent {
    name: &'static str,
}

impl Agent {
    async fn offline_answer(&self, question: &str) -> Result<String, LlmError> {
        Ok(format!("{} (offline): {question}", self.name))
    }

    #[adk::fallback(offline_answer)]
    async fn answer(&self, question: &str) -> Result<String, LlmError> {
        let _ = question;
        Err(LlmError::Overloaded)
    }
}

#[tokio::test]
async fn on_methods_the_fallback_is_a_method_of_the_same_receiver() {
    let agent = Agent { name: "ada" };
    assert_eq!(agent.answer("why?").await.unwrap(), "ada (offline): why?");
}

fn parse_strict(input: &str) -> Result<u32, LlmError> {
    input.parse().map_err(|_| LlmError::InvalidPrompt)
}

fn parse_lenient(input: &str) -> Result<u32, LlmError> {
    Ok(input.trim().len() as u32)
}

#[adk::fallback(parse_lenient)]
fn parse(input: &str) -> Result<u32, LlmError> {
    parse_strict(input)
}

#[test]
fn sync_functions_fall_back_too() {
    assert_eq!(parse("42").unwrap(), 42);
    assert_eq!(parse(" abc ").unwrap(), 3);
}

async fn from_cache(_q: &str) -> Result<String, LlmError> {
    Ok("cached".into())
}

#[adk::fallback(from_cache)]
#[adk::timeout("1s")]
async fn slow(q: &str) -> Result<String, LlmError> {
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    Ok(q.to_owned())
}

#[tokio::test(start_paused = true)]
async fn the_fallback_catches_refusals_of_the_layers_inside_it() {
    assert_eq!(slow("q").await.unwrap(), "cached");
}
