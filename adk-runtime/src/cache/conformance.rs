//! What every [`Backend`] must do, as one suite any backend runs: `conformance_suite!` makes one test per check
//! for a [`Harness`] that builds that backend and lets time pass on its clock. The in-memory store runs it below,
//! on tokio's paused clock; a remote backend runs the same checks against its server.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::backend::Backend;

/// A backend under test, and its clock.
pub(crate) trait Harness {
    type Backend: Backend<u64, String> + 'static;

    /// A backend holding nothing, sharing nothing with the ones built before.
    fn backend(&self) -> Self::Backend;

    /// Lets `duration` pass on the backend's clock.
    async fn pass(&self, duration: Duration);
}

/// The time to live the checks give entries and leases: long enough for a remote round trip, short enough for
/// real time.
const TTL: Duration = Duration::from_millis(200);

fn text(s: &str) -> String {
    s.to_owned()
}

pub(crate) async fn get_answers_what_insert_stored(harness: &impl Harness) {
    let backend = harness.backend();
    assert_eq!(backend.get(&1).await.unwrap(), None, "nothing is stored at first");
    backend.insert(1, text("one"), None).await.unwrap();
    assert_eq!(backend.get(&1).await.unwrap(), Some(text("one")));
    assert_eq!(backend.get(&2).await.unwrap(), None, "another key holds nothing");
}

pub(crate) async fn an_entry_is_served_until_its_ttl_and_not_after(harness: &impl Harness) {
    let backend = harness.backend();
    backend.insert(1, text("brief"), Some(TTL)).await.unwrap();
    backend.insert(2, text("lasting"), None).await.unwrap();
    harness.pass(TTL / 2).await;
    assert_eq!(backend.get(&1).await.unwrap(), Some(text("brief")), "served before its ttl");
    harness.pass(TTL).await;
    assert_eq!(backend.get(&1).await.unwrap(), None, "gone after its ttl");
    assert_eq!(backend.get(&2).await.unwrap(), Some(text("lasting")), "an entry without a ttl stays");
}

pub(crate) async fn an_insert_replaces_the_value_and_its_ttl(harness: &impl Harness) {
    let backend = harness.backend();
    backend.insert(1, text("first"), Some(TTL)).await.unwrap();
    backend.insert(1, text("second"), None).await.unwrap();
    backend.insert(2, text("first"), None).await.unwrap();
    backend.insert(2, text("second"), Some(TTL)).await.unwrap();
    assert_eq!(backend.len().await.unwrap(), 2, "a replaced entry is still one entry");
    assert_eq!(backend.get(&2).await.unwrap(), Some(text("second")));
    harness.pass(TTL * 2).await;
    assert_eq!(backend.get(&1).await.unwrap(), Some(text("second")), "the new entry has no ttl");
    assert_eq!(backend.get(&2).await.unwrap(), None, "the new entry's ttl applies");
}

pub(crate) async fn invalidate_removes_one_key(harness: &impl Harness) {
    let backend = harness.backend();
    backend.insert(1, text("one"), None).await.unwrap();
    backend.insert(2, text("two"), None).await.unwrap();
    assert!(backend.invalidate(&1).await.unwrap(), "there was an entry");
    assert!(!backend.invalidate(&1).await.unwrap(), "there is none any more");
    assert!(!backend.invalidate(&3).await.unwrap(), "there never was one");
    assert_eq!(backend.get(&1).await.unwrap(), None);
    assert_eq!(backend.get(&2).await.unwrap(), Some(text("two")), "the other key stays");
    assert_eq!(backend.len().await.unwrap(), 1);
}

pub(crate) async fn invalidate_all_removes_every_key(harness: &impl Harness) {
    let backend = harness.backend();
    for key in 0..10 {
        backend.insert(key, key.to_string(), None).await.unwrap();
    }
    assert_eq!(backend.len().await.unwrap(), 10);
    assert!(!backend.is_empty().await.unwrap());
    backend.invalidate_all().await.unwrap();
    assert_eq!(backend.len().await.unwrap(), 0);
    assert!(backend.is_empty().await.unwrap());
    for key in 0..10 {
        assert_eq!(backend.get(&key).await.unwrap(), None);
    }
    backend.insert(3, text("again"), None).await.unwrap();
    assert_eq!(backend.get(&3).await.unwrap(), Some(text("again")), "the backend is usable afterwards");
}

pub(crate) async fn concurrent_inserts_keep_every_key_and_one_written_value(harness: &impl Harness) {
    const THREADS: u64 = 4;
    const OWN: u64 = 250;
    const SHARED: u64 = 50;
    let backend = Arc::new(harness.backend());
    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let backend = backend.clone();
            let runtime = tokio::runtime::Handle::current();
            // Threads of their own, so the in-memory store is written in parallel, not interleaved on one task.
            tokio::task::spawn_blocking(move || {
                runtime.block_on(async {
                    for i in 0..OWN {
                        let key = 1_000 * (thread + 1) + i;
                        backend.insert(key, key.to_string(), None).await.unwrap();
                        backend.insert(i % SHARED, thread.to_string(), None).await.unwrap();
                    }
                })
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("a writer panicked");
    }
    assert_eq!(backend.len().await.unwrap(), (THREADS * OWN + SHARED) as usize);
    for thread in 0..THREADS {
        for i in 0..OWN {
            let key = 1_000 * (thread + 1) + i;
            assert_eq!(backend.get(&key).await.unwrap(), Some(key.to_string()));
        }
    }
    let written: HashSet<String> = (0..THREADS).map(|thread| thread.to_string()).collect();
    for key in 0..SHARED {
        let value = backend.get(&key).await.unwrap().expect("a shared key is held");
        assert!(written.contains(&value), "{value:?} under {key} was never written");
    }
}

pub(crate) async fn a_lease_excludes_others_until_it_is_filled_or_released(harness: &impl Harness) {
    let backend = harness.backend();
    let first = backend.lease(&1, TTL).await.unwrap().expect("a free key is leased");
    assert_eq!(backend.lease(&1, TTL).await.unwrap(), None, "held by the first caller");
    let other = backend.lease(&2, TTL).await.unwrap().expect("another key is free");
    backend.release(&1, first).await.unwrap();
    let second = backend.lease(&1, TTL).await.unwrap().expect("free once released");
    assert!(backend.fill(1, text("filled"), None, second).await.unwrap(), "a holder's fill is stored");
    assert_eq!(backend.get(&1).await.unwrap(), Some(text("filled")));
    assert!(backend.lease(&1, TTL).await.unwrap().is_some(), "a fill ends the lease");
    assert!(backend.fill(2, text("two"), Some(TTL), other).await.unwrap());
    harness.pass(TTL * 2).await;
    assert_eq!(backend.get(&2).await.unwrap(), None, "a fill's ttl applies");
}

pub(crate) async fn a_lapsed_lease_frees_the_key_and_no_longer_fills_or_releases(harness: &impl Harness) {
    let backend = harness.backend();
    let lapsed = backend.lease(&1, TTL).await.unwrap().unwrap();
    harness.pass(TTL * 2).await;
    let current = backend.lease(&1, TTL * 10).await.unwrap().expect("a lapsed lease frees its key");
    assert_ne!(lapsed, current, "each grant has a token of its own");
    let stale = crate::cache::Lease::new(lapsed.token());
    assert!(!backend.fill(1, text("late"), None, lapsed).await.unwrap(), "a lapsed lease stores nothing");
    assert_eq!(backend.get(&1).await.unwrap(), None);
    backend.release(&1, stale).await.unwrap();
    assert_eq!(backend.lease(&1, TTL).await.unwrap(), None, "releasing a lapsed lease leaves the current one");
    assert!(backend.fill(1, text("current"), None, current).await.unwrap());
    assert_eq!(backend.get(&1).await.unwrap(), Some(text("current")));
}

pub(crate) async fn invalidation_revokes_leases(harness: &impl Harness) {
    let backend = harness.backend();
    let one = backend.lease(&1, TTL).await.unwrap().unwrap();
    let two = backend.lease(&2, TTL).await.unwrap().unwrap();
    assert!(!backend.invalidate(&1).await.unwrap(), "no entry yet");
    assert!(!backend.fill(1, text("stale"), None, one).await.unwrap(), "computed before the invalidation");
    assert_eq!(backend.get(&1).await.unwrap(), None);
    assert!(backend.lease(&3, TTL).await.unwrap().is_some());
    backend.invalidate_all().await.unwrap();
    assert!(!backend.fill(2, text("stale"), None, two).await.unwrap(), "computed before invalidate_all");
    assert!(backend.lease(&3, TTL).await.unwrap().is_some(), "invalidate_all frees every key");
    assert_eq!(backend.len().await.unwrap(), 0);
}

pub(crate) async fn concurrent_lease_requests_grant_one(harness: &impl Harness) {
    let backend = Arc::new(harness.backend());
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let backend = backend.clone();
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                runtime.block_on(async {
                    let mut granted = 0;
                    for key in 0..100 {
                        granted += usize::from(backend.lease(&key, TTL * 100).await.unwrap().is_some());
                    }
                    granted
                })
            })
        })
        .collect();
    let mut granted = 0;
    for request in requests {
        granted += request.await.expect("a request panicked");
    }
    assert_eq!(granted, 100, "each of the 100 keys leased exactly once among four threads");
}

/// One test per check, for the harness `$harness` under the test attribute `$test`.
macro_rules! conformance_suite {
    (#[$test:meta] $harness:expr) => {
        crate::cache::conformance::conformance_suite!(@checks #[$test] $harness;
            get_answers_what_insert_stored,
            an_entry_is_served_until_its_ttl_and_not_after,
            an_insert_replaces_the_value_and_its_ttl,
            invalidate_removes_one_key,
            invalidate_all_removes_every_key,
            concurrent_inserts_keep_every_key_and_one_written_value,
            a_lease_excludes_others_until_it_is_filled_or_released,
            a_lapsed_lease_frees_the_key_and_no_longer_fills_or_releases,
            invalidation_revokes_leases,
            concurrent_lease_requests_grant_one,
        );
    };
    (@checks #[$test:meta] $harness:expr; $($check:ident,)*) => {
        $(
            #[$test]
            async fn $check() {
                crate::cache::conformance::$check(&$harness).await;
            }
        )*
    };
}
pub(crate) use conformance_suite;

mod memory {
    use std::time::Duration;

    use super::Harness;
    use crate::cache::CachePolicy;
    use crate::cache::named::CacheMetrics;
    use crate::cache::store::Store;

    /// The in-memory store, on tokio's paused clock.
    struct Memory;

    impl Harness for Memory {
        type Backend = Store<u64, String>;

        fn backend(&self) -> Store<u64, String> {
            let settings = CachePolicy::new("cache::conformance::memory", "conformance.rs:1").settings();
            Store::new(settings, CacheMetrics::new("cache::conformance::memory"))
        }

        async fn pass(&self, duration: Duration) {
            tokio::time::advance(duration).await;
        }
    }

    conformance_suite!(
        #[tokio::test(start_paused = true)]
        Memory
    );
}
