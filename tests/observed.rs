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

/// Installs, once, a global subscriber that enables everything and writes nothing. `tracing` decides whether a
/// callsite is enabled when it is first hit, by asking the subscribers alive at that moment, and caches the answer: a
/// test hitting a shared callsite (the error event of `#[observed]`) with no subscriber while another test is
/// installing its own can cache "disabled", and that other test's line goes missing. With a global subscriber alive,
/// no callsite is ever cached as disabled.
fn keep_callsites_enabled() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry()).expect("the only global subscriber")
    });
}

#[tokio::test]
async fn calls_are_counted_by_outcome_and_the_error_is_logged_once_with_the_span_fields() {
    keep_callsites_enabled();
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
    keep_callsites_enabled();
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
    keep_callsites_enabled();
    let _ = tokio::time::timeout(std::time::Duration::from_millis(10), forever()).await;
    let text = adk::metrics::render();
    assert!(text.contains(r#"adk_calls_total{function="observed::forever",outcome="cancelled"} 1"#), "{text}");
    assert!(text.contains(r#"adk_calls_in_flight{function="observed::forever"} 0"#));
}

/// adk's JSON lines: the error event of `#[observed]` carries the span's fields, at the level of the error's class.
#[cfg(feature = "telemetry")]
mod json_logs {
    use adk::runtime::telemetry::{self, TelemetryConfig};

    use super::*;

    /// The lines adk's own JSON format (`adk::runtime::telemetry`) writes while `body` runs.
    async fn adk_json_lines(body: impl Future<Output = ()>) -> Vec<serde_json::Value> {
        keep_callsites_enabled();
        let out = Captured::default();
        let (dispatch, _telemetry) =
            telemetry::dispatch(&TelemetryConfig::default().with_filter("trace"), out.clone()).expect("a valid config");
        let _guard = tracing::dispatcher::set_default(&dispatch);
        body.await;
        out.lines()
    }

    /// What `answer` fails with, by prompt.
    #[derive(Debug, thiserror::Error)]
    enum AgentError {
        #[error("prompt rejected")]
        Rejected,
        #[error("index corrupted")]
        Corrupted,
        #[error("provider overloaded")]
        Overloaded,
    }

    impl adk::Classify for AgentError {
        fn class(&self) -> adk::ErrorClass {
            match self {
                AgentError::Rejected => adk::ErrorClass::Permanent,
                AgentError::Corrupted => adk::ErrorClass::Critical,
                AgentError::Overloaded => adk::ErrorClass::Transient,
            }
        }
    }

    fn failure(prompt: &str) -> AgentError {
        match prompt {
            "rejected" => AgentError::Rejected,
            "corrupted" => AgentError::Corrupted,
            _ => AgentError::Overloaded,
        }
    }

    #[adk::observed(fields(user = user_id))]
    async fn answer(user_id: u64, prompt: &str, attempt: u32) -> Result<String, AgentError> {
        let _ = attempt;
        Err(failure(prompt))
    }

    #[adk::observed(err(level = "info"))]
    async fn answer_quietly(prompt: &str) -> Result<String, AgentError> {
        Err(failure(prompt))
    }

    #[adk::observed]
    async fn fail_unclassified() -> Result<(), LlmError> {
        Err(LlmError)
    }

    #[adk::observed(skip(error))]
    fn fail_generic<E: std::fmt::Display + adk::Classify>(error: E) -> Result<(), E> {
        Err(error)
    }

    #[adk::observed(skip(error))]
    fn fail_generic_unclassified<E: std::fmt::Display>(error: E) -> Result<(), E> {
        Err(error)
    }

    /// The `adk::observed` error event among `lines`, for `function`.
    fn error_event<'a>(lines: &'a [serde_json::Value], function: &str) -> &'a serde_json::Value {
        let events: Vec<_> =
            lines.iter().filter(|l| l["target"] == "adk::observed" && l["function"] == function).collect();
        assert_eq!(events.len(), 1, "one error event for {function}: {lines:#?}");
        events[0]
    }

    #[tokio::test]
    async fn the_json_error_line_carries_the_span_fields_and_recorded_arguments_as_top_level_keys() {
        let lines = adk_json_lines(async {
            assert!(answer(7, "overloaded", 2).await.is_err());
        })
        .await;
        let line = error_event(&lines, "observed::json_logs::answer");
        assert_eq!((&line["level"], &line["message"]), (&"ERROR".into(), &"call failed".into()));
        assert_eq!((&line["error"], &line["span"]), (&"provider overloaded".into(), &"answer".into()));
        assert_eq!(line["user"], 7, "`fields(user = user_id)` keeps its JSON type: {line}");
        assert_eq!((&line["user_id"], &line["attempt"]), (&"7".into(), &"2".into()), "arguments, with Debug: {line}");
        assert_eq!(line["prompt"], r#""overloaded""#);
        assert!(
            line.get("fields").is_none() && line.get("otel.status_code").is_none(),
            "flat, no exporter fields: {line}"
        );
    }

    #[tokio::test]
    async fn a_field_of_the_calls_span_wins_over_the_same_field_of_an_enclosing_span() {
        let lines = adk_json_lines(async {
            let request = tracing::info_span!("request", user = "outer", region = "eu", request_id = "r-1");
            let _ = tracing::Instrument::instrument(answer(7, "overloaded", 1), request).await;
        })
        .await;
        let line = error_event(&lines, "observed::json_logs::answer");
        assert_eq!(line["user"], 7, "the inner span's `user`: {line}");
        assert_eq!(
            (&line["region"], &line["request_id"]),
            (&"eu".into(), &"r-1".into()),
            "the parent's others: {line}"
        );
    }

    #[tokio::test]
    async fn a_permanent_error_is_logged_at_warn_other_classes_at_error_and_an_explicit_level_overrides_every_class() {
        let lines = adk_json_lines(async {
            assert!(answer(1, "rejected", 1).await.is_err());
            assert!(answer(2, "corrupted", 1).await.is_err());
            assert!(answer(3, "overloaded", 1).await.is_err());
            assert!(answer_quietly("rejected").await.is_err());
            assert!(answer_quietly("corrupted").await.is_err());
        })
        .await;
        let levels = |function: &str| -> Vec<(String, String)> {
            lines
                .iter()
                .filter(|l| l["target"] == "adk::observed" && l["function"] == function)
                .map(|l| (l["error"].as_str().unwrap().to_owned(), l["level"].as_str().unwrap().to_owned()))
                .collect()
        };
        let expected = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(e, l)| ((*e).to_owned(), (*l).to_owned())).collect()
        };
        assert_eq!(
            levels("observed::json_logs::answer"),
            expected(&[("prompt rejected", "WARN"), ("index corrupted", "ERROR"), ("provider overloaded", "ERROR")])
        );
        assert_eq!(
            levels("observed::json_logs::answer_quietly"),
            expected(&[("prompt rejected", "INFO"), ("index corrupted", "INFO")])
        );
    }

    #[tokio::test]
    async fn an_error_type_without_classify_is_logged_at_error_as_is_a_generic_one_without_the_bound() {
        let lines = adk_json_lines(async {
            assert!(fail_unclassified().await.is_err());
            assert!(fail_generic(AgentError::Rejected).is_err());
            assert!(fail_generic_unclassified(AgentError::Rejected).is_err());
        })
        .await;
        assert_eq!(
            error_event(&lines, "observed::json_logs::fail_unclassified")["level"],
            "ERROR",
            "LlmError does not implement Classify"
        );
        assert_eq!(
            error_event(&lines, "observed::json_logs::fail_generic")["level"],
            "WARN",
            "classified through `E: Classify`"
        );
        assert_eq!(
            error_event(&lines, "observed::json_logs::fail_generic_unclassified")["level"],
            "ERROR",
            "without the bound the class is not known where the function is expanded"
        );
    }
}
