//! #[adk::observed]: one span per call with #[instrument]'s parameters, the call metrics, and the error logged once.

use std::io;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

#[derive(Debug, thiserror::Error)]
#[error("model overloaded")]
struct LlmError;

#[adk::observed(skip(api_key), fields(model = %model), labels(team = "observed-test"))]
async fn complete(api_key: &str, model: &str, prompt: &str) -> Result<String, LlmError> {
    let _ = api_key;
    if prompt == "fail" { Err(LlmError) } else { Ok(format!("{model}:{prompt}")) }
}

#[adk::observed(name = "lookup_user", level = "debug", ret)]
fn lookup(id: u32) -> String {
    format!("user-{id}")
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON lines"))
            .collect()
    }
}

#[tokio::test]
async fn calls_are_counted_by_outcome_and_the_error_is_logged_once_with_the_span_fields() {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(out.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    assert_eq!(complete("secret", "small", "hi").await.unwrap(), "small:hi");
    assert!(complete("secret", "small", "fail").await.is_err());
    assert_eq!(lookup(7), "user-7");

    let text = adk::metrics::render();
    for series in [
        r#"adk_calls_total{function="observed::complete",outcome="ok",team="observed-test"} 1"#,
        r#"adk_calls_total{function="observed::complete",outcome="error",team="observed-test"} 1"#,
        r#"adk_calls_in_flight{function="observed::complete",team="observed-test"} 0"#,
        r#"adk_call_duration_seconds_count{function="observed::complete",team="observed-test"} 2"#,
        r#"adk_calls_total{function="observed::lookup",outcome="ok"} 1"#,
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }

    let lines = out.lines();
    let errors: Vec<_> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "the error is logged once: {lines:#?}");
    let error = errors[0];
    assert_eq!(error["fields"]["error"], "model overloaded");
    assert_eq!(error["fields"]["function"], "observed::complete");
    let span = &error["span"];
    assert_eq!(span["name"], "complete");
    assert_eq!(span["model"], "small");
    assert_eq!(span["prompt"], "\"fail\"");
    assert!(span.get("api_key").is_none(), "skipped arguments are not recorded: {span}");

    let ret = lines.iter().find(|l| l["fields"].get("return").is_some()).expect("ret event");
    assert_eq!(ret["fields"]["return"], "\"user-7\"");
    assert_eq!(ret["span"]["name"], "lookup_user");
    assert_eq!(ret["level"], "DEBUG");
}

#[adk::observed]
#[adk::timeout("1s")]
async fn slow() -> Result<(), Timeout> {
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Timeout(#[from] adk::Error);

#[tokio::test(start_paused = true)]
async fn durations_follow_tokio_clock_and_refusals_count_as_errors() {
    assert!(slow().await.is_err());
    let text = adk::metrics::render();
    assert!(text.contains(r#"adk_calls_total{function="observed::slow",outcome="error"} 1"#), "{text}");
    assert!(text.contains(r#"adk_call_duration_seconds_bucket{function="observed::slow",le="1"} 1"#), "{text}");
}

#[adk::observed]
async fn forever() -> Result<(), LlmError> {
    std::future::pending::<()>().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_counts_as_cancelled_and_leaves_the_in_flight_gauge() {
    let _ = tokio::time::timeout(std::time::Duration::from_millis(10), forever()).await;
    let text = adk::metrics::render();
    assert!(text.contains(r#"adk_calls_total{function="observed::forever",outcome="cancelled"} 1"#), "{text}");
    assert!(text.contains(r#"adk_calls_in_flight{function="observed::forever"} 0"#));
}
