//! Reclaims expired entries of caches nobody reads, so memory returns after expiry without the user driving the
//! cache, and publishes every cache's length to `adk_cache_entries`. Reads already drop what they find expired; this
//! covers the keys that are never read again.
//!
//! One thread for the process, started with the first cache: sync callers have no tokio runtime to host a
//! task, and a runtime-bound task would die with the runtime of whichever test or request created the cache.
//!
//! The thread reads the real clock. Expiry proper follows tokio's clock on every read (paused in tests), so the sweep
//! only removes entries past their deadline by [`GRACE`] on the real clock: a paused-time test reading an entry that
//! is fresh on its virtual clock is not raced by the sweep unless the test spends that long in real time.

use std::sync::{Mutex, Once, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::store::{CacheKey, CacheValue, Store};

/// Time between sweeps.
const INTERVAL: Duration = Duration::from_secs(1);
/// How long past its deadline (on the real clock) an entry is left for reads to notice.
const GRACE: Duration = Duration::from_secs(1);

pub(crate) trait Sweep: Send + Sync {
    fn sweep(&self, now: Instant);
}

impl<K: CacheKey, V: CacheValue> Sweep for Store<K, V> {
    fn sweep(&self, now: Instant) {
        Store::sweep(self, now);
    }
}

static WATCHED: Mutex<Vec<Weak<dyn Sweep>>> = Mutex::new(Vec::new());

/// Sweeps `store` from now on, until it is dropped.
pub(crate) fn watch(store: Weak<dyn Sweep>) {
    WATCHED.lock().unwrap_or_else(|e| e.into_inner()).push(store);
    static START: Once = Once::new();
    START.call_once(|| {
        let spawned = std::thread::Builder::new().name("adk-cache-sweeper".into()).spawn(|| {
            loop {
                std::thread::sleep(INTERVAL);
                sweep_all(Instant::from_std(std::time::Instant::now()));
            }
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the cache sweeper; expired entries are reclaimed only when read");
        }
    });
}

fn sweep_all(now: Instant) {
    let Some(cutoff) = now.checked_sub(GRACE) else { return };
    let stores: Vec<_> = {
        let mut watched = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
        watched.retain(|store| store.strong_count() > 0);
        watched.iter().filter_map(Weak::upgrade).collect()
    };
    for store in stores {
        store.sweep(cutoff);
    }
}
