//! `#[rate_limited(backend = "redis")]` and `RateLimiter::builder(..).backend(RedisBackend)`: one quota in Redis,
//! shared by functions, by limiters and by processes. The two-process tests run this test binary twice more as
//! children (selected by `ADK_TEST_CHILD`), each spending the same quota under load.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adk::redis::{RedisConnection, RedisSettings};
use adk::runtime::rate_limit::{OnBackendError, RateLimiter, RedisBackend, Start};

#[path = "../adk-runtime/tests/support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

#[adk::rate_limited(name = "redis-shared", rps = 1, burst = 3, backend = "redis")]
async fn shared_first() -> Result<(), ApiError> {
    Ok(())
}

#[adk::rate_limited(name = "redis-shared", rps = 1, burst = 3, backend = "redis")]
async fn shared_second() -> Result<(), ApiError> {
    Ok(())
}

#[adk::rate_limited(rps = 10, backend = "redis", on_backend_error = "deny")]
async fn denied_without_redis() -> Result<(), ApiError> {
    Ok(())
}

#[adk::rate_limited(rph = 1, burst = 2, key = user, backend = "redis", fleet_size = 2)]
async fn per_user(user: &str) -> Result<(), ApiError> {
    let _ = user;
    Ok(())
}

/// The two-process quota: 1,000 a second with a burst of 100, shared by every caller.
#[adk::rate_limited(name = "fleet", rps = 1_000, burst = 100, backend = "redis")]
async fn fleet_call() -> Result<(), ApiError> {
    Ok(())
}

static COMPUTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[adk::cached(name = "answers", ttl = "1m", backend = "redis")]
async fn answer(question: &str) -> Result<String, ApiError> {
    COMPUTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(format!("the answer to {question}"))
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// Everything that needs the process's Redis in one test, which owns the server (a `static` one would outlive it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_limiters_decide_in_redis() {
    if std::env::var_os("ADK_TEST_CHILD").is_some() {
        return;
    }
    let Some(server) = RedisServer::start("attribute_limiters_decide_in_redis") else { return };
    let prefix = format!("attr-{:016x}", fastrand::u64(..));
    adk::redis::configure(RedisSettings::url(server.url()).prefix(prefix.clone())).unwrap();

    // Two functions naming one limiter spend one burst of 3.
    assert!(shared_first().await.is_ok());
    assert!(shared_second().await.is_ok());
    assert!(shared_first().await.is_ok());
    match shared_second().await {
        Err(ApiError::Adk(adk::Error::RateLimited { retry_after, limit: 3, .. })) => {
            assert!(
                retry_after <= Duration::from_secs(1) && retry_after > Duration::from_millis(900),
                "{retry_after:?}"
            );
        }
        other => panic!("the shared burst is spent: {other:?}"),
    }
    assert!(denied_without_redis().await.is_ok());
    // A keyed limit, per user.
    assert!(per_user("ada").await.is_ok() && per_user("ada").await.is_ok());
    assert!(matches!(per_user("ada").await, Err(ApiError::Adk(adk::Error::RateLimited { .. }))));
    assert!(per_user("grace").await.is_ok());

    // The state is in Redis, under the prefix and the limiter's hash tag: another limiter over another connection to
    // the same Redis sees it.
    let connection = RedisConnection::new(RedisSettings::url(server.url()).prefix(prefix)).unwrap();
    let outside = RateLimiter::builder("redis-shared")
        .rps(1)
        .burst(3)
        .backend(RedisBackend::new(connection).on_backend_error(OnBackendError::Deny))
        .build()
        .unwrap();
    let verdict = outside.decide(None::<&()>, 1, Start::Immediately).await.unwrap();
    assert!(!verdict.is_admitted(), "the attribute's calls spent the quota in Redis");

    // A cache in Redis: concurrent misses compute once (the others wait for the lease's value), later calls hit, and
    // the entry is there for any process to read, as JSON under the cache's hash tag.
    use adk::runtime::cache::Backend as _;
    let calls: Vec<_> = (0..4).map(|_| tokio::spawn(answer_owned("life"))).collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "the answer to life");
    }
    assert_eq!(answer("life").await.unwrap(), "the answer to life");
    assert_eq!(COMPUTED.load(std::sync::atomic::Ordering::SeqCst), 1, "computed once");
    let entries: adk::runtime::cache::RedisBackend<(String,), String> =
        adk::runtime::cache::RedisBackend::new(adk::redis::connection().unwrap(), "answers");
    assert_eq!(entries.get(&("life".to_owned(),)).await.unwrap().as_deref(), Some("the answer to life"));
    entries.invalidate_all().await.unwrap();
    assert_eq!(answer("life").await.unwrap(), "the answer to life");
    assert_eq!(COMPUTED.load(std::sync::atomic::Ordering::SeqCst), 2, "computed again once invalidated");

    // Deny refuses with BackendUnavailable once Redis is gone; the default (local) decides on the fleet's share.
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let denied = denied_without_redis().await;
    assert!(
        matches!(denied, Err(ApiError::Adk(adk::Error::BackendUnavailable { ref name, .. })) if name.ends_with("denied_without_redis")),
        "{denied:?}"
    );
    assert_eq!(answer("death").await.unwrap(), "the answer to death", "computed without the cache");
    assert!(per_user("linus").await.is_ok(), "a local share of 1 for a fleet of 2");
    assert!(matches!(per_user("linus").await, Err(ApiError::Adk(adk::Error::RateLimited { limit: 1, .. }))));
}

async fn answer_owned(question: &'static str) -> Result<String, ApiError> {
    answer(question).await
}

/// What a child process spends, printed for its parent: `admitted first_ns last_ns`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_spends_a_shared_quota() {
    let Ok(role) = std::env::var("ADK_TEST_CHILD") else { return };
    let url = std::env::var("ADK_TEST_REDIS_URL").unwrap();
    let prefix = std::env::var("ADK_TEST_PREFIX").unwrap();
    // Measuring sharing, not failures: a loaded machine must not time a decision out.
    let settings =
        |url: String, prefix: String| RedisSettings::url(url).prefix(prefix).command_timeout(Duration::from_secs(2));
    adk::redis::configure(settings(url.clone(), prefix.clone())).unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let (role, url, prefix) = (role.clone(), url.clone(), prefix.clone());
        tasks.push(tokio::spawn(async move {
            let (mut admitted, first, mut last) = (0u64, now_nanos(), 0u128);
            if role == "keyless" {
                // The quota runs from the first decision, not from before the connection was made.
                let mut first_decided = None;
                while tokio::time::Instant::now() < until {
                    admitted += u64::from(fleet_call().await.is_ok());
                    last = now_nanos();
                    first_decided.get_or_insert(last);
                }
                return (admitted, first_decided.unwrap_or(first), last);
            }
            // 1,000 keys of 20 each (refilled once an hour): each task walks all of them until each has refused it.
            let connection = RedisConnection::new(settings(url, prefix)).unwrap();
            let backend = RedisBackend::new(connection).on_backend_error(OnBackendError::Deny);
            let limiter = RateLimiter::builder("fleet-keyed").rph(1).burst(20).backend(backend).build().unwrap();
            let mut refused = vec![false; 1_000];
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            let mut key = (task * 125) as usize;
            while refused.iter().any(|r| !r) && tokio::time::Instant::now() < deadline {
                key = (key + 1) % 1_000;
                if refused[key] {
                    continue;
                }
                match limiter.decide(Some(&key), 1, Start::Immediately).await.unwrap().is_admitted() {
                    true => admitted += 1,
                    false => refused[key] = true,
                }
            }
            last = now_nanos();
            (admitted, first, last)
        }));
    }
    let (mut admitted, mut first, mut last) = (0, u128::MAX, 0);
    for task in tasks {
        let (a, f, l) = task.await.unwrap();
        admitted += a;
        first = first.min(f);
        last = last.max(l);
    }
    println!("ADK_CHILD_RESULT {admitted} {first} {last}");
}

/// Runs two children of `role` against `server`; their admissions and the span of time they ran over.
fn two_children(server: &RedisServer, role: &str) -> (u64, u128) {
    let prefix = format!("fleet-{:016x}", fastrand::u64(..));
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "child_process_spends_a_shared_quota", "--nocapture", "--test-threads", "1"])
                .env("ADK_TEST_CHILD", role)
                .env("ADK_TEST_REDIS_URL", server.url())
                .env("ADK_TEST_PREFIX", &prefix)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut admitted, mut first, mut last) = (0, u128::MAX, 0);
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "a child failed");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().find_map(|l| l.split_once("ADK_CHILD_RESULT ")).expect("the child's result").1;
        let fields: Vec<u128> = line.split(' ').map(|f| f.parse().unwrap()).collect();
        admitted += fields[0] as u64;
        first = first.min(fields[1]);
        last = last.max(fields[2]);
    }
    (admitted, last - first)
}

#[test]
fn two_processes_share_one_quota() {
    if std::env::var_os("ADK_TEST_CHILD").is_some() {
        return;
    }
    let Some(server) = RedisServer::start("two_processes_share_one_quota") else { return };
    let (admitted, span) = two_children(&server, "keyless");
    // Saturated all along, a GCRA admits its burst plus the rate over the time the calls ran, to within one unit.
    let quota = 100.0 + 1_000.0 * (span as f64 / 1e9);
    let share = admitted as f64 / quota;
    assert!((0.99..=1.01).contains(&share), "{admitted} admitted of a quota of {quota:.0} over {span} ns");
}

#[test]
fn two_processes_share_a_keyed_quota_across_a_thousand_keys() {
    if std::env::var_os("ADK_TEST_CHILD").is_some() {
        return;
    }
    let Some(server) = RedisServer::start("two_processes_share_a_keyed_quota") else { return };
    let (admitted, _) = two_children(&server, "keyed");
    // 20 a key, and the hourly refill adds nothing within the run: 20,000 in all (each process alone would admit
    // that much again).
    let share = admitted as f64 / 20_000.0;
    assert!((0.99..=1.01).contains(&share), "{admitted} admitted of 20,000");
}
