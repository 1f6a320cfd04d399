//! Redis-backed rate limit decisions under load: 64 concurrent callers on loopback, decisions per second and the
//! latency of one decision (p50, p99), beside a naive fixed window (`INCR` + `PEXPIRE` in one pipeline) over the same
//! connection, and `redis-benchmark` running the decision script by `EVALSHA` with 64 clients in the same run.
//!
//! Starts its own `redis-server` on a free port (skipped with a notice where there is none). Run with
//! `cargo bench --bench redis --features redis`.

use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adk::redis::{RedisConnection, RedisSettings};
use adk::runtime::rate_limit::{OnBackendError, Quota, RateLimiter, RedisBackend, Start};

#[path = "../adk-runtime/tests/support/redis_server.rs"]
mod redis_server;

const CALLERS: usize = 64;
const RUN: Duration = Duration::from_secs(3);

/// Runs `call` from `CALLERS` tasks for `RUN`; prints decisions per second and latency percentiles.
async fn load<F, Fut>(label: &str, call: F)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let until = Instant::now() + RUN;
    let tasks: Vec<_> = (0..CALLERS as u64)
        .map(|caller| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = caller * 1_000_003;
                while Instant::now() < until {
                    let started = Instant::now();
                    call(i).await;
                    latencies.push(started.elapsed().as_nanos() as u64);
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort_unstable();
    let at = |q: f64| Duration::from_nanos(latencies[((latencies.len() - 1) as f64 * q) as usize]);
    println!(
        "{label:<40} {:>9.0} decisions/s   p50 {:>9.1?}   p99 {:>9.1?}",
        latencies.len() as f64 / RUN.as_secs_f64(),
        at(0.50),
        at(0.99)
    );
}

fn main() {
    let Some(server) = redis_server::RedisServer::start("redis bench") else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let settings = RedisSettings::url(server.url()).prefix("bench").command_timeout(Duration::from_secs(1));
        let connection = RedisConnection::new(settings).unwrap();
        println!("{CALLERS} concurrent callers, {RUN:?} each, one connection (multiplexed), loopback\n");

        // Every call admitted: a huge quota, a key per call out of 10,000.
        let backend = RedisBackend::new(connection.clone()).on_backend_error(OnBackendError::Deny);
        let limiter = RateLimiter::with_backend("bench-gcra", Quota::per_second(1_000_000_000), backend);
        let gcra = limiter.clone();
        load("adk GCRA (EVALSHA, keyed)", move |i| {
            let limiter = gcra.clone();
            async move {
                limiter.decide(Some(&(i % 10_000)), 1, Start::Immediately).await.unwrap();
            }
        })
        .await;

        let window = RedisBackend::new(connection.clone()).on_backend_error(OnBackendError::Deny);
        let quota = Quota::per_second(1_000_000_000).with_strategy(adk::runtime::rate_limit::Strategy::SlidingWindow);
        let sliding = RateLimiter::with_backend("bench-sliding", quota, window);
        load("adk sliding window (EVALSHA, keyed)", move |i| {
            let limiter = sliding.clone();
            async move {
                limiter.decide(Some(&(i % 10_000)), 1, Start::Immediately).await.unwrap();
            }
        })
        .await;

        let client = redis::Client::open(server.url()).unwrap();
        let naive = client.get_multiplexed_async_connection().await.unwrap();
        load("naive INCR + PEXPIRE (pipelined)", move |i| {
            let mut connection = naive.clone();
            async move {
                let key = format!("bench:naive:{}", i % 10_000);
                let _: (i64, i64) =
                    redis::pipe().incr(&key, 1).pexpire(&key, 1_000).query_async(&mut connection).await.unwrap();
            }
        })
        .await;
    });

    // The script's own ceiling on this server, without adk's client in the way.
    let sha = redis::Script::new(include_str!("../adk-runtime/src/rate_limit/redis/decide.lua")).get_hash().to_owned();
    let port = server.port.to_string();
    let status = Command::new("redis-cli")
        .args(["-p", &port, "script", "load", include_str!("../adk-runtime/src/rate_limit/redis/decide.lua")])
        .output();
    if status.is_ok() {
        let output = Command::new("redis-benchmark")
            .args(["-p", &port, "-c", "64", "-n", "200000", "-q"])
            .args(["EVALSHA", &sha, "2", "bench:rl:{b}:__rand_int__", "bench:rl:{b}:generation"])
            .args(["0", "1000", "1000000000", "1000000000000", "1", "0", "1001"])
            .output();
        match output {
            Ok(output) => {
                let text = String::from_utf8_lossy(&output.stdout);
                let last = text.rsplit('\r').next().unwrap_or(&text).trim();
                println!("redis-benchmark EVALSHA decide.lua (64 clients): {last}");
            }
            Err(error) => println!("redis-benchmark not run: {error}"),
        }
    }
}
