use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;
use crate::rate_limit::conformance;
use crate::redis::RedisSettings;

use crate::redis_server;
use redis_server::{RedisCluster, RedisServer};

/// A fresh prefix per backend, so that each starts with every key unseen.
fn backend(settings: impl Fn() -> RedisSettings, clock: &Arc<AtomicU64>) -> RedisBackend {
    let prefix = format!("conformance-{:016x}", fastrand::u64(..));
    let connection = RedisConnection::new(settings().prefix(prefix).command_timeout(Duration::from_secs(2)))
        .expect("valid settings");
    // Refusing when Redis fails, so that no answer comes from the local fallback.
    RedisBackend::new(connection).on_backend_error(OnBackendError::Deny).with_manual_clock(clock.clone())
}

async fn conforms(settings: impl Fn() -> RedisSettings) {
    let clock = Arc::new(AtomicU64::new(0));
    let advance = |by: Duration| {
        clock.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
        std::future::ready(())
    };
    conformance::run(|| backend(&settings, &clock), advance).await;
}

#[tokio::test]
async fn the_redis_backend_conforms() {
    let Some(server) = RedisServer::start("the_redis_backend_conforms") else { return };
    conforms(|| RedisSettings::url(server.url())).await;
}

#[tokio::test]
async fn the_redis_backend_conforms_on_a_cluster() {
    let Some(cluster) = RedisCluster::start("the_redis_backend_conforms_on_a_cluster") else { return };
    conforms(|| RedisSettings::cluster(cluster.urls())).await;
}

/// Far from the epoch, times pass 2^53 ns: the script's split of microseconds and nanoseconds must stay exact there,
/// for intervals that divide a microsecond and for those that do not.
#[tokio::test]
async fn decisions_stay_exact_at_todays_time_with_intervals_of_odd_nanoseconds() {
    let Some(server) = RedisServer::start("decisions_stay_exact") else { return };
    let epoch = std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap().as_nanos() as u64 + 123;
    for strategy in
        [Strategy::Gcra, Strategy::TokenBucket, Strategy::LeakyBucket, Strategy::FixedWindow, Strategy::SlidingWindow]
    {
        // 3500 a minute: an interval of 17,142,857 ns; the window starts at a multiple of 60 s since the epoch.
        let quota = Quota::per_minute(3_500).with_burst(7).with_strategy(strategy);
        let spec = LimiterSpec::new(format!("exact-{strategy}"), quota);
        let clock = Arc::new(AtomicU64::new(0));
        let remote = backend(|| RedisSettings::url(server.url()), &clock);
        clock.store(epoch, Ordering::SeqCst);
        // The memory backend counts from its creation: a manual clock at 0 aligns windows to the epoch as Redis does.
        let mut rng = fastrand::Rng::with_seed(5);
        let algorithm = spec.algorithm();
        let mut cells = [0u64; 2];
        let mut now = epoch;
        for step in 0..400 {
            now += rng.u64(0..40_000_000);
            clock.store(now, Ordering::SeqCst);
            let cost = rng.u64(1..=3);
            let patience = if rng.bool() { Patience::Within(rng.u64(0..100_000_000)) } else { Patience::Immediately };
            let at = algorithm.cells(now);
            let other = at.read.map_or(0, |read| cells[read as usize]);
            let (expected, new) = algorithm.decide(cells[at.write as usize], other, now, cost, patience);
            if let Some(new) = new {
                cells[at.write as usize] = new;
            }
            let start = match patience {
                Patience::Immediately => Start::Immediately,
                Patience::Within(nanos) => Start::Within(Duration::from_nanos(nanos)),
            };
            let verdict = remote.decide(&spec, Some(KeyHash::new(9)), cost, start).await.unwrap();
            assert_eq!(verdict, Verdict::from_outcome(expected, cost, algorithm.limit()), "{strategy}, step {step}");
        }
    }
}

#[test]
fn a_fleet_share_divides_rate_and_burst() {
    let quota = Quota::per_second(100).with_burst(40);
    let shared = share(quota, 4);
    assert_eq!(shared.rate().interval(), Duration::from_millis(40), "25 a second");
    assert_eq!(shared.burst(), 10);
    let window = share(Quota::per_second(10).with_strategy(Strategy::FixedWindow), 4);
    assert_eq!((window.limit(), window.rate().period()), (2, Duration::from_secs(1)));
    assert_eq!(share(Quota::per_second(3).with_burst(1), 8).burst(), 1, "at least one");
    assert_eq!(share(quota, 1), quota);
}
