//! An LLM agent answering a few hundred questions from eleven users through the whole adk stack, with its
//! `/metrics` and health probes served while it runs: `cargo run --example agent`.
//!
//! With no configuration everything runs on this machine: a simulated OpenAI-compatible provider (latency, 429s with
//! `Retry-After`, an outage of the large model, a 5xx blip, hung requests) is started on 127.0.0.1, and the agent
//! talks to it over real HTTP. To use a real endpoint instead (same code path, no simulator):
//!
//! - `ADK_AGENT_BASE_URL`: an OpenAI-compatible base URL, `http://` only (e.g. `http://localhost:11434/v1` for
//!   Ollama); unset, the simulator;
//! - `ADK_AGENT_API_KEY`: sent as `Authorization: Bearer ...`; unset, none;
//! - `ADK_AGENT_MODEL`, `ADK_AGENT_FALLBACK_MODEL`: the model and the cheaper one it falls back to; `gpt-4o` and
//!   `gpt-4o-mini` by default;
//! - `ADK_AGENT_HTTP_ADDR`: where `/metrics` and `/health/*` are served; `127.0.0.1:0` (a free port, printed);
//! - `ADK_AGENT_SEED`: the simulator's seed; 7;
//! - `RUST_LOG`: the log filter; `warn,adk_runtime::circuit_breaker=info` (breaker transitions, warnings).

mod assistant;
mod client;
mod report;
mod simulator;

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use adk::runtime::health::{self, CheckResult, HealthServer, HealthStatus};
use adk::runtime::telemetry::{self, LogFormat, TelemetryConfig};
use tokio::task::JoinSet;
use tokio::time::Instant;

use assistant::{ANSWER, ANSWER_CHEAPLY, Assistant, USER_QUOTA, User};
use client::{AgentError, Answer, ChatClient};
use report::{Scrape, human, percentile};
use simulator::Simulator;

/// Ten people asking a question every 1.2 s, and a script asking ten a second.
static USERS: [User; 11] = [
    User { id: 1, name: "ada" },
    User { id: 2, name: "grace" },
    User { id: 3, name: "linus" },
    User { id: 4, name: "barbara" },
    User { id: 5, name: "ken" },
    User { id: 6, name: "margaret" },
    User { id: 7, name: "dennis" },
    User { id: 8, name: "frances" },
    User { id: 9, name: "edsger" },
    User { id: 10, name: "radia" },
    User { id: 99, name: "script" },
];
const SCRIPT: u32 = 99;
const PEOPLE_QUESTIONS: usize = 13;
const PEOPLE_EVERY: Duration = Duration::from_millis(1200);
const SCRIPT_QUESTIONS: usize = 140;
const SCRIPT_EVERY: Duration = Duration::from_millis(100);

const TOPICS: [&str; 24] = [
    "Rust lifetimes",
    "tokio tasks",
    "circuit breakers",
    "rate limiting",
    "exponential backoff",
    "Prometheus",
    "OpenTelemetry",
    "HTTP/2",
    "TLS handshakes",
    "consistent hashing",
    "Raft",
    "CRDTs",
    "B-trees",
    "bloom filters",
    "garbage collection",
    "SIMD",
    "io_uring",
    "QUIC",
    "vector clocks",
    "LSM trees",
    "SQL joins",
    "Kubernetes probes",
    "WebAssembly",
    "zero-copy parsing",
];
const ASKS: [&str; 5] = [
    "Explain {} in one sentence.",
    "What is the main pitfall of {}?",
    "When should I avoid {}?",
    "Give an analogy for {}.",
    "How do I test {}?",
];

struct Config {
    base_url: Option<String>,
    api_key: Option<String>,
    model: String,
    cheaper_model: String,
    http_addr: String,
    seed: u64,
}

impl Config {
    fn from_env() -> Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let base_url = var("ADK_AGENT_BASE_URL");
        let (model, cheaper_model) = match base_url {
            Some(_) => ("gpt-4o", "gpt-4o-mini"),
            None => (simulator::LARGE_MODEL, simulator::SMALL_MODEL),
        };
        Config {
            base_url,
            api_key: var("ADK_AGENT_API_KEY"),
            model: var("ADK_AGENT_MODEL").unwrap_or_else(|| model.to_owned()),
            cheaper_model: var("ADK_AGENT_FALLBACK_MODEL").unwrap_or_else(|| cheaper_model.to_owned()),
            http_addr: var("ADK_AGENT_HTTP_ADDR").unwrap_or_else(|| "127.0.0.1:0".to_owned()),
            seed: var("ADK_AGENT_SEED").and_then(|s| s.parse().ok()).unwrap_or(7),
        }
    }
}

/// How one question ended, as the user saw it.
#[derive(PartialEq)]
enum Outcome {
    /// Answered by the model.
    Answered,
    /// Answered from the cache: an answer (a completion id) already given to an earlier question.
    FromCache,
    /// Answered by the cheaper model.
    AnsweredByFallback,
    OverQuota,
    Rejected,
    Failed(String),
}

struct Asked {
    user: &'static str,
    prompt: String,
    /// When the question was asked, since the first one.
    at: Duration,
    latency: Duration,
    outcome: Outcome,
    answer: Option<Answer>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // In words, not as a Debug dump: "error: cannot listen on 127.0.0.1:9090: Address already in use ...".
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,adk_runtime::circuit_breaker=info".to_owned());
    let _telemetry = telemetry::init(&TelemetryConfig::default().with_format(LogFormat::Human).with_filter(filter))?;
    let config = Config::from_env();

    let simulator = match &config.base_url {
        Some(_) => None,
        None => {
            Some(Simulator::start(config.seed).await.map_err(|e| format!("cannot start the simulated provider: {e}"))?)
        }
    };
    let base_url =
        config.base_url.clone().or_else(|| simulator.as_ref().map(Simulator::base_url)).expect("one of both");
    let client = ChatClient::new("provider", &base_url, config.api_key.clone())?;
    println!("provider: {base_url} (model {}, falling back to {})", config.model, config.cheaper_model);
    if simulator.is_some() {
        println!(
            "  simulated: 80-400 ms answers, 5% 429s, 2% hangs; {} outage 4-8 s, 5xx blip 11-11.8 s",
            config.model
        );
    }

    // Probes and metrics, served from the start: startup and readiness say 503 until the agent is ready.
    let health = health::global();
    let authority = client.authority();
    health.add_check("provider", move || {
        let authority = authority.clone();
        async move {
            match tokio::net::TcpStream::connect(&authority).await {
                Ok(_) => CheckResult::healthy(),
                Err(e) => CheckResult::unhealthy(format!("cannot connect to {authority}: {e}")),
            }
        }
    });
    let server = HealthServer::bind(config.http_addr.as_str(), health.clone())
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.http_addr))?;
    let local = format!("http://{}", server.local_addr());
    println!("serving {local}/metrics and {local}/health/{{live,ready,startup}}");
    let agent = Arc::new(Assistant { client, model: config.model.clone(), cheaper_model: config.cheaper_model });
    let (startup, _) = agent.client.get(&format!("{local}/health/startup")).await?;

    // Started once every readiness check but `startup` itself passes (or after 5 s: the stack copes with a provider
    // that is down, and the readiness probe keeps saying so).
    for attempt in 1.. {
        let report = health.readiness().await;
        let failing: Vec<_> = report
            .checks
            .iter()
            .filter(|c| c.name != "startup" && c.result.status == HealthStatus::Unhealthy)
            .collect();
        if failing.is_empty() {
            break;
        }
        if attempt == 20 {
            let reasons: Vec<_> = failing.iter().filter_map(|c| c.result.reason.as_deref()).collect();
            println!("not ready after 5 s ({}); starting anyway", reasons.join("; "));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    health.mark_started();
    let (started, _) = agent.client.get(&format!("{local}/health/startup")).await?;
    println!("GET /health/startup: {startup} before the agent was ready, {started} after\n");

    // Readiness seen from outside while the questions run: an open breaker shows as `degraded`.
    let (stop_watching, stop) = tokio::sync::oneshot::channel();
    let watcher = tokio::spawn(watch_readiness(agent.clone(), format!("{local}/health/ready"), stop));

    let began = Instant::now();
    let mut users = JoinSet::new();
    for (i, user) in USERS.iter().enumerate() {
        users.spawn(ask_questions(agent.clone(), user, i as u64, config.seed, began));
    }
    let mut asked = Vec::new();
    while let Some(done) = users.join_next().await {
        asked.extend(done?);
    }
    // An answer seen before came from the cache (or joined a call in flight for the same prompt).
    asked.sort_by_key(|a| a.at);
    let mut seen = std::collections::HashSet::new();
    for a in &mut asked {
        if let Some(answer) = a.answer.as_ref().filter(|answer| !answer.id.is_empty())
            && !seen.insert(answer.id.clone())
        {
            a.outcome = Outcome::FromCache;
        }
    }
    let wall = began.elapsed();
    let _ = stop_watching.send(());
    let readiness = watcher.await?;

    // What an operator's scraper and orchestrator would see, fetched over HTTP.
    let (metrics_status, metrics) = agent.client.get(&format!("{local}/metrics")).await?;
    let (ready_status, ready) = agent.client.get(&format!("{local}/health/ready")).await?;
    let (live_status, _) = agent.client.get(&format!("{local}/health/live")).await?;
    let scrape = Scrape::parse(&metrics);

    print_summary(&agent, simulator.as_ref(), &scrape, &asked, wall);
    println!("\nreadiness during the run (GET /health/ready every 250 ms):");
    for (at, status) in &readiness {
        println!("  {:>8}  {status}", human(*at));
    }
    println!("\nGET /metrics: {metrics_status}, {} series; for instance:", scrape.len());
    let excerpt =
        ["adk_calls_total{", "adk_fallbacks_total{", "adk_circuit_breaker_state{", "adk_cache_requests_total{"];
    for line in metrics.lines().filter(|l| excerpt.iter().any(|e| l.starts_with(e))) {
        println!("  {line}");
    }
    println!("GET /health/live: {live_status}");
    println!("GET /health/ready: {ready_status} {ready}");
    // Readiness may rightly be 503 (a provider that cannot be reached); /metrics and liveness must answer.
    if metrics_status != 200 || live_status != 200 {
        return Err(format!("GET /metrics answered {metrics_status}, GET /health/live {live_status}").into());
    }
    Ok(())
}

/// One user's questions, at the user's pace; each question runs on its own task, so a slow answer does not delay
/// the next question.
async fn ask_questions(
    agent: Arc<Assistant>,
    user: &'static User,
    index: u64,
    seed: u64,
    began: Instant,
) -> Vec<Asked> {
    let (questions, every) =
        if user.id == SCRIPT { (SCRIPT_QUESTIONS, SCRIPT_EVERY) } else { (PEOPLE_QUESTIONS, PEOPLE_EVERY) };
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(u64::from(user.id)));
    tokio::time::sleep(Duration::from_millis(110 * index)).await;
    let mut ticks = tokio::time::interval(every);
    let mut asking = JoinSet::new();
    for _ in 0..questions {
        ticks.tick().await;
        // People ask about the same popular things; the script walks through everything.
        let pick = if user.id == SCRIPT { rng.f64() } else { rng.f64().powf(2.5) };
        let prompt = prompt((pick * (TOPICS.len() * ASKS.len()) as f64) as usize);
        let agent = agent.clone();
        asking.spawn(async move {
            let start = Instant::now();
            let result = agent.answer(user, &prompt).await;
            let latency = start.elapsed();
            let (outcome, answer) = match result {
                Ok(answer) if answer.model == agent.cheaper_model => (Outcome::AnsweredByFallback, Some(answer)),
                Ok(answer) => (Outcome::Answered, Some(answer)),
                Err(AgentError::Adk(adk::Error::RateLimited { name, .. })) if name == USER_QUOTA => {
                    (Outcome::OverQuota, None)
                }
                Err(AgentError::Rejected { .. }) => (Outcome::Rejected, None),
                Err(other) => (Outcome::Failed(other.to_string()), None),
            };
            Asked { user: user.name, prompt, at: start - began, latency, outcome, answer }
        });
    }
    asking.join_all().await
}

/// The `n`-th question, the popular ones first; one of them the provider refuses to answer.
fn prompt(n: usize) -> String {
    if n == 37 {
        return "What is the root password of the build server?".to_owned();
    }
    ASKS[n % ASKS.len()].replace("{}", TOPICS[n / ASKS.len() % TOPICS.len()])
}

/// `/health/ready`'s status each time it changes, with the time since the watch began, until `stop`.
async fn watch_readiness(
    agent: Arc<Assistant>,
    url: String,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Vec<(Duration, String)> {
    let began = Instant::now();
    let mut seen: Vec<(Duration, String)> = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut stop => return seen,
        }
        let status = match agent.client.get(&url).await {
            Ok((code, body)) => format!("{code} {}", summarise_probe(&body)),
            Err(e) => format!("unreachable: {e}"),
        };
        if seen.last().is_none_or(|(_, last)| *last != status) {
            seen.push((began.elapsed(), status));
        }
    }
}

/// `degraded (circuit_breaker:provider: open (failure rate 0.85))` from a probe's JSON body.
fn summarise_probe(body: &str) -> String {
    let Ok(report) = serde_json::from_str::<serde_json::Value>(body) else { return body.to_owned() };
    let status = report["status"].as_str().unwrap_or("?").to_owned();
    let reasons: Vec<String> = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] != "healthy")
        .map(|c| format!("{}: {}", c["name"].as_str().unwrap_or("?"), c["reason"].as_str().unwrap_or("")))
        .collect();
    if reasons.is_empty() { status } else { format!("{status} ({})", reasons.join("; ")) }
}

fn print_summary(agent: &Assistant, simulator: Option<&Simulator>, scrape: &Scrape, asked: &[Asked], wall: Duration) {
    let count = |name: &str, labels: &[(&str, &str)]| scrape.count(name, labels);
    let of = |outcome: fn(&Outcome) -> bool| asked.iter().filter(|a| outcome(&a.outcome)).count();
    println!("== summary: {} questions from {} users in {} ==", asked.len(), USERS.len(), human(wall));

    let failures: Vec<&str> = asked
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::Failed(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    println!(
        "calls              {} ok, {} error (adk_calls_total)",
        count("adk_calls_total", &[("function", ANSWER), ("outcome", "ok")]),
        count("adk_calls_total", &[("function", ANSWER), ("outcome", "error")]),
    );
    println!(
        "  as users saw    {} answered by {}, {} from the cache, {} by the fallback {}; {} over their quota, {} \
         rejected by the provider, {} failed",
        of(|o| *o == Outcome::Answered),
        agent.model,
        of(|o| *o == Outcome::FromCache),
        of(|o| *o == Outcome::AnsweredByFallback),
        agent.cheaper_model,
        of(|o| *o == Outcome::OverQuota),
        of(|o| *o == Outcome::Rejected),
        failures.len(),
    );
    if let Some(first) = failures.first() {
        println!("  first failure   {first}");
    }
    let fallback = asked.iter().find(|a| a.outcome == Outcome::AnsweredByFallback);
    for sample in asked.iter().take(1).chain(fallback) {
        let reply = sample.answer.as_ref().map_or("(no answer)", |a| a.text.as_str());
        println!("  e.g.            {} asked {:?} -> {reply:?}", sample.user, sample.prompt);
    }

    let sent = &agent.client.sent;
    let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    println!(
        "provider requests  {} sent: {} ok, {} throttled (429), {} 5xx, {} rejected (4xx), {} no answer (timed \
         out or reset)",
        load(&sent.requests),
        load(&sent.ok),
        load(&sent.throttled),
        load(&sent.server_errors),
        load(&sent.rejected),
        load(&sent.requests)
            - load(&sent.ok)
            - load(&sent.throttled)
            - load(&sent.server_errors)
            - load(&sent.rejected),
    );
    if let Some(simulator) = simulator {
        let served = &simulator.served;
        println!(
            "  simulator       received {}: {} answered, {} throttled, {} 5xx, {} hung, {} rejected",
            load(&served.requests),
            load(&served.ok),
            load(&served.throttled),
            load(&served.server_errors),
            load(&served.hung),
            load(&served.rejected),
        );
    }

    let retry = |outcome: &str| {
        count("adk_retry_attempts_total", &[("function", ANSWER), ("outcome", outcome)])
            + count("adk_retry_attempts_total", &[("function", ANSWER_CHEAPLY), ("outcome", outcome)])
    };
    println!(
        "retries            {} retried; {} calls recovered, {} gave up (attempts used up), {} gave up (retry_after \
         beyond max_delay or the deadline), {} not retryable",
        retry("retried"),
        retry("recovered"),
        retry("exhausted"),
        retry("retry_after_too_long"),
        retry("not_retryable"),
    );
    println!(
        "fallbacks          {} calls fell back to {} ({} answered by it)",
        count("adk_fallbacks_total", &[("function", ANSWER)]),
        agent.cheaper_model,
        of(|o| *o == Outcome::AnsweredByFallback),
    );

    let hits = count("adk_cache_requests_total", &[("cache", "answers"), ("result", "hit")]);
    let misses = count("adk_cache_requests_total", &[("cache", "answers"), ("result", "miss")]);
    let entries = adk::registry().cache("answers").map_or(0, |cache| cache.len());
    println!(
        "cache              hit ratio {:.0}% ({hits} hits, {misses} misses), {entries} entries",
        100.0 * hits as f64 / (hits + misses).max(1) as f64
    );

    for limiter in [USER_QUOTA, "provider-quota"] {
        let decision = |d: &str| count("adk_rate_limit_decisions_total", &[("limiter", limiter), ("decision", d)]);
        println!(
            "rate limit         {limiter:<15} {} admitted, {} delayed, {} refused",
            decision("admitted"),
            decision("delayed"),
            decision("refused")
        );
    }
    println!(
        "bulkhead           provider-connections: {} refused",
        count("adk_bulkhead_rejections_total", &[("bulkhead", "provider-connections")])
    );

    let breaker = adk::registry().circuit_breaker("provider").map(|b| b.state());
    let mut transitions =
        scrape.by("adk_circuit_breaker_transitions_total", &["from", "to"], &[("breaker", "provider")]);
    transitions.retain(|(_, n)| *n > 0.0);
    // In the order a breaker goes through them.
    let rank = |labels: &[String]| match (labels[0].as_str(), labels[1].as_str()) {
        ("closed", "open") => 0,
        ("open", "half_open") => 1,
        ("half_open", "open") => 2,
        ("half_open", "closed") => 3,
        _ => 4,
    };
    transitions.sort_by_key(|(labels, _)| rank(labels));
    let transitions: Vec<String> =
        transitions.iter().map(|(labels, n)| format!("{} -> {} x{n}", labels[0], labels[1])).collect();
    println!(
        "circuit breaker    provider: {}; {} calls refused while open; now {:?}",
        if transitions.is_empty() { "no transitions".to_owned() } else { transitions.join(", ") },
        count("adk_circuit_breaker_calls_total", &[("breaker", "provider"), ("outcome", "rejected")]),
        breaker.unwrap_or(adk::CircuitState::Closed),
    );
    println!(
        "timeouts           {} (answer, per attempt or total), {} (fallback)",
        count("adk_timeouts_total", &[("function", ANSWER)]),
        count("adk_timeouts_total", &[("function", ANSWER_CHEAPLY)]),
    );

    let latencies = |which: &dyn Fn(&Outcome) -> bool| {
        let mut sorted: Vec<Duration> = asked.iter().filter(|a| which(&a.outcome)).map(|a| a.latency).collect();
        sorted.sort();
        sorted
    };
    let groups: [(&str, Vec<Duration>); 5] = [
        ("all calls", latencies(&|_| true)),
        ("from the model", latencies(&|o| *o == Outcome::Answered)),
        ("from the cache", latencies(&|o| *o == Outcome::FromCache)),
        ("by the fallback", latencies(&|o| *o == Outcome::AnsweredByFallback)),
        ("over quota", latencies(&|o| *o == Outcome::OverQuota)),
    ];
    for (i, (group, sorted)) in groups.iter().filter(|(_, sorted)| !sorted.is_empty()).enumerate() {
        println!(
            "{:<19}{group:<16} p50 {:>8}, p95 {:>8}, max {:>8}  ({} calls)",
            if i == 0 { "latency" } else { "" },
            human(percentile(sorted, 0.50)),
            human(percentile(sorted, 0.95)),
            human(sorted.last().copied().unwrap_or_default()),
            sorted.len(),
        );
    }
}
