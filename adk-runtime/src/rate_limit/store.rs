//! Where a limiter's cells live in memory: one pair of cells for calls without a key, and a sharded table for keyed
//! calls. The store's contract is small on purpose: apply a pure transition to a key's cell atomically.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::algorithm::Algorithm;

/// Cells addressed by a 64-bit key.
pub(crate) trait Store {
    /// Applies `transition` to the cell at `key` atomically, giving it the cell's value (0 when absent) and the value
    /// of the cell at `read` (0 when absent or `None`). The transition may run several times and must be pure; its
    /// second result is the new value, `None` to leave the cell as it is. An absent cell is only created when the
    /// transition changes it.
    fn update<T>(
        &self,
        key: u64,
        read: Option<u64>,
        now: u64,
        transition: impl FnMut(u64, u64) -> (T, Option<u64>),
    ) -> T;

    /// The value at `key`, 0 when absent.
    fn load(&self, key: u64) -> u64;
}

#[inline]
fn apply<T>(cell: &AtomicU64, other: u64, mut transition: impl FnMut(u64, u64) -> (T, Option<u64>)) -> T {
    // The cell is the only datum shared through it, so relaxed ordering suffices: the compare-and-swap alone orders
    // the decisions on one key.
    let mut current = cell.load(Relaxed);
    loop {
        let (outcome, new) = transition(current, other);
        let Some(new) = new else { return outcome };
        match cell.compare_exchange_weak(current, new, Relaxed, Relaxed) {
            Ok(_) => return outcome,
            Err(actual) => current = actual,
        }
    }
}

/// Keeps a hot cell on its own cache line, away from its neighbours' writes.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded<T>(T);

/// The two cells of calls without a key (the second serves the sliding window's other parity).
#[derive(Debug, Default)]
pub(crate) struct SingleStore {
    cells: [Padded<AtomicU64>; 2],
}

impl Store for SingleStore {
    #[inline]
    fn update<T>(
        &self,
        key: u64,
        read: Option<u64>,
        _now: u64,
        transition: impl FnMut(u64, u64) -> (T, Option<u64>),
    ) -> T {
        let other = read.map_or(0, |read| self.load(read));
        apply(&self.cells[(key & 1) as usize].0, other, transition)
    }

    fn load(&self, key: u64) -> u64 {
        self.cells[(key & 1) as usize].0.load(Relaxed)
    }
}

impl SingleStore {
    /// Back to the state of no call yet. A decision racing this fails its compare-and-swap and decides again.
    pub(crate) fn clear(&self) {
        for cell in &self.cells {
            cell.0.store(0, Relaxed);
        }
    }
}

/// Shards of the keyed table; a power of two. Enough that two threads rarely meet on one shard's lock.
const SHARDS: usize = 64;
/// Which bits of a key choose its shard: clear of the low bits the table uses for its buckets and of the top seven
/// it uses as tags, so keys in one shard still spread over its buckets.
const SHARD_SHIFT: u32 = 40;
/// A shard's table is swept of fresh cells before it grows past this, and after that whenever it doubles.
const MIN_SWEEP_LEN: usize = 1024;

/// Keys are already hashes: the table uses them as they are.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

type Cells = HashMap<u64, AtomicU64, BuildHasherDefault<PassThrough>>;

#[derive(Default)]
struct Table {
    cells: Cells,
    sweep_at: usize,
}

#[repr(align(128))]
#[derive(Default)]
struct Shard {
    table: RwLock<Table>,
}

impl Shard {
    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One cell per key, in shards each behind its own lock: a call on a known key takes its shard's read lock and
/// compare-and-swaps the cell, without allocating; only a new key takes the write lock.
///
/// Memory stays bounded without any call from the user: a cell that [`Algorithm::is_fresh`] decides nothing, so it is
/// dropped (1) from a shard about to grow past twice what it held after its last sweep, which bounds a shard to about
/// twice its live keys under any churn, and (2) from one shard at a time, round-robin, as the limiter's own calls pass
/// a sweep deadline, so that all shards are visited once per cycle (the time a key's state lasts, between 1 s and
/// 60 s). Sweeps read the calls' own clock, so they follow paused time; a limiter that is never called again keeps
/// its last keys until its next call.
pub(crate) struct KeyedStore {
    algorithm: Algorithm,
    shards: Box<[Shard]>,
    next_sweep: AtomicU64,
    cursor: AtomicUsize,
    sweep_every: u64,
}

impl KeyedStore {
    pub(crate) fn new(algorithm: Algorithm) -> Self {
        const SECOND: u64 = 1_000_000_000;
        let cycle = algorithm.memory().clamp(SECOND, 60 * SECOND);
        KeyedStore {
            algorithm,
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            next_sweep: AtomicU64::new(0),
            cursor: AtomicUsize::new(0),
            sweep_every: cycle / SHARDS as u64,
        }
    }

    /// Entries held (one per key; a sliding window keeps two for a key used in consecutive windows).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().cells.len()).sum()
    }

    /// Forgets every key and returns the tables' memory.
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            *shard.write() = Table::default();
        }
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().cells.capacity()).sum()
    }

    fn shard(&self, key: u64) -> &Shard {
        &self.shards[(key >> SHARD_SHIFT) as usize & (SHARDS - 1)]
    }

    #[cold]
    #[inline(never)]
    fn insert<T>(
        &self,
        key: u64,
        read: Option<u64>,
        now: u64,
        transition: impl FnMut(u64, u64) -> (T, Option<u64>),
    ) -> T {
        let mut table = self.shard(key).write();
        if table.cells.len() >= table.sweep_at.max(MIN_SWEEP_LEN) {
            self.sweep(&mut table, now);
        }
        let other = read.and_then(|read| table.cells.get(&read)).map_or(0, |cell| cell.load(Relaxed));
        let cell = table.cells.entry(key).or_default();
        apply(cell, other, transition)
    }

    fn sweep(&self, table: &mut Table, now: u64) {
        table.cells.retain(|_, cell| !self.algorithm.is_fresh(*cell.get_mut(), now));
        let len = table.cells.len();
        if table.cells.capacity() >= 4 * (len + 16) {
            table.cells.shrink_to(2 * len);
        }
        table.sweep_at = 2 * len;
    }

    #[cold]
    #[inline(never)]
    fn sweep_next_shard(&self, now: u64) {
        let due = self.next_sweep.load(Relaxed);
        if now < due
            || self.next_sweep.compare_exchange(due, now.saturating_add(self.sweep_every), Relaxed, Relaxed).is_err()
        {
            return;
        }
        let shard = &self.shards[self.cursor.fetch_add(1, Relaxed) % SHARDS];
        let mut table = shard.write();
        if !table.cells.is_empty() {
            self.sweep(&mut table, now);
        }
    }
}

impl Store for KeyedStore {
    #[inline]
    fn update<T>(
        &self,
        key: u64,
        read: Option<u64>,
        now: u64,
        mut transition: impl FnMut(u64, u64) -> (T, Option<u64>),
    ) -> T {
        if now >= self.next_sweep.load(Relaxed) {
            self.sweep_next_shard(now);
        }
        {
            let table = self.shard(key).read();
            let other = read.and_then(|read| table.cells.get(&read)).map_or(0, |cell| cell.load(Relaxed));
            if let Some(cell) = table.cells.get(&key) {
                return apply(cell, other, transition);
            }
            // A refused call leaves no trace of a key never seen.
            let (outcome, new) = transition(0, other);
            if new.is_none() {
                return outcome;
            }
        }
        self.insert(key, read, now, transition)
    }

    fn load(&self, key: u64) -> u64 {
        self.shard(key).read().cells.get(&key).map_or(0, |cell| cell.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::algorithm::{Outcome, Patience};
    use crate::rate_limit::{Quota, Strategy};

    const SEC: u64 = 1_000_000_000;

    fn admit(store: &impl Store, algorithm: &Algorithm, key: u64, now: u64) -> bool {
        let cells = algorithm.cells(now);
        let verdict = store.update(key + cells.write, cells.read.map(|read| key + read), now, |cell, other| {
            algorithm.decide(cell, other, now, 1, Patience::Within(0))
        });
        verdict == Outcome::Admit { wait: 0 }
    }

    #[test]
    fn keys_have_separate_state_and_refusals_create_none() {
        let algorithm = Algorithm::new(Quota::per_second(1).with_burst(2));
        let store = KeyedStore::new(algorithm);
        let (alice, bob) = (2 << SHARD_SHIFT, 4 << SHARD_SHIFT);
        assert!(admit(&store, &algorithm, alice, 0) && admit(&store, &algorithm, alice, 0));
        assert!(!admit(&store, &algorithm, alice, 0));
        assert!(admit(&store, &algorithm, bob, 0), "bob has his own bucket");
        let costly = store.update(6, None, 0, |cell, other| algorithm.decide(cell, other, 0, 3, Patience::Within(0)));
        assert_eq!(costly, Outcome::TooCostly);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn idle_keys_are_swept_as_calls_go_by_and_the_memory_is_returned() {
        let algorithm = Algorithm::new(Quota::per_second(10));
        let store = KeyedStore::new(algorithm);
        for key in 0..100_000u64 {
            assert!(admit(&store, &algorithm, key.wrapping_mul(0x9E37_79B9_7F4A_7C16), 0));
        }
        assert_eq!(store.len(), 100_000);
        // One active key keeps calling; its calls sweep every shard within one cycle of the idle keys refilling.
        let mut now = SEC;
        while now < 3 * SEC {
            admit(&store, &algorithm, 0, now);
            now += store.sweep_every;
        }
        assert!(store.len() <= 1, "{} keys left", store.len());
        assert!(store.capacity() < 1_000, "{} cells of capacity left", store.capacity());
    }

    #[test]
    fn churn_through_many_keys_keeps_the_table_near_its_live_keys() {
        let algorithm = Algorithm::new(Quota::per_second(1).with_burst(1));
        let store = KeyedStore::new(algorithm);
        // A million distinct keys, 10,000 a second; each key's state lasts one second.
        for i in 0..1_000_000u64 {
            let now = i * (SEC / 10_000);
            admit(&store, &algorithm, i.wrapping_mul(0x9E37_79B9_7F4A_7C16), now);
        }
        assert!(store.len() < 3 * 10_000 + SHARDS * MIN_SWEEP_LEN, "{} keys held", store.len());
    }

    #[test]
    fn a_sliding_window_reads_the_previous_window_from_the_sibling_cell() {
        let algorithm = Algorithm::new(Quota::per_second(4).with_strategy(Strategy::SlidingWindow));
        let store = KeyedStore::new(algorithm);
        let key = 8 << SHARD_SHIFT;
        assert_eq!((0..6).filter(|_| admit(&store, &algorithm, key, 0)).count(), 4);
        assert_eq!((0..6).filter(|_| admit(&store, &algorithm, key, SEC + SEC / 2)).count(), 2);
        assert_eq!(store.len(), 2, "one cell per window parity");
    }
}
