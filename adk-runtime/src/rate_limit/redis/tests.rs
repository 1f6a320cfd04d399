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

/// Keys sit under the prefix and the limiter's hash tag, with a time to live of at least `idle_after`; a flushed
/// script cache (a restarted or failed-over server) is refilled by the next decision.
#[tokio::test]
async fn keys_carry_the_hash_tag_and_a_ttl_and_a_flushed_script_is_loaded_again() {
    let Some(server) = RedisServer::start("keys_carry_the_hash_tag") else { return };
    let connection = RedisConnection::new(RedisSettings::url(server.url()).prefix("tagged")).unwrap();
    let backend = RedisBackend::new(connection).on_backend_error(OnBackendError::Deny);
    let spec = LimiterSpec::new("openai", Quota::per_minute(60).with_burst(10));
    let key = backend.hash_key("alice");
    assert!(backend.decide(&spec, Some(key), 1, Start::Immediately).await.unwrap().is_admitted());
    assert!(backend.decide(&spec, None, 1, Start::Immediately).await.unwrap().is_admitted());

    let client = ::redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = ::redis::cmd("KEYS").arg("*").query_async(&mut raw).await.unwrap();
    keys.sort();
    assert_eq!(keys, [format!("tagged:rl:{{openai}}:{:016x}", key.get()), "tagged:rl:{openai}:shared".to_owned()]);
    for name in &keys {
        let ttl: i64 = ::redis::cmd("PTTL").arg(name).query_async(&mut raw).await.unwrap();
        let idle = spec.idle_after().as_millis() as i64;
        assert!(ttl >= idle - 1_000 && ttl <= idle + 1, "{name}: a ttl of {ttl} ms for an idle_after of {idle} ms");
    }

    let () = ::redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut raw).await.unwrap();
    assert!(backend.decide(&spec, Some(key), 1, Start::Immediately).await.unwrap().is_admitted(), "NOSCRIPT handled");
    // The hash is SipHash-1-3 under the fixed default key: the same in every process and release.
    assert_eq!(
        backend.hash_key("alice"),
        RedisBackend::new(RedisConnection::new(RedisSettings::url("redis://x")).unwrap()).hash_key("alice")
    );
    let other_key = RedisConnection::new(RedisSettings::url("redis://x").hash_key(*b"another fleet's!")).unwrap();
    assert_ne!(backend.hash_key("alice"), RedisBackend::new(other_key).hash_key("alice"));
}

/// A fleet mid-deploy runs two releases side by side: a change of the key hash would split every key's quota in
/// two. This pins it.
#[test]
fn the_key_hash_is_pinned() {
    let backend = RedisBackend::new(RedisConnection::new(RedisSettings::url("redis://127.0.0.1")).unwrap());
    assert_eq!(backend.hash_key("alice").get(), 0xa57a_b7a8_2287_4ab9);
    // Integers hash by their bytes in the machine's order: little-endian here, as on every mainstream server.
    #[cfg(target_endian = "little")]
    assert_eq!(backend.hash_key(&42u64).get(), 0x3e94_9c51_f1b6_1823);
}
