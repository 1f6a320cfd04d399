//! Which entries of a store to look at when memory is reclaimed: the keys of entries that expire, ordered by when.
//!
//! Reads drop what they find expired, but a key nobody reads again would stay until evicted for size. So the store's
//! own traffic does the rest: every [`EVERY`]-th miss or insertion runs one bounded step, which looks at the entries
//! whose deadline has passed, at most [`STEP`] of them, removes those still expired and puts back those whose
//! deadline moved (read within their `tti`, or replaced). Deadlines are on tokio's clock, as the reads' are, so
//! paused time steps through reclamation too, and no thread of its own races it. The price: a store that sees no
//! traffic at all keeps its expired entries (at most `max_entries`) until its next miss or insertion.
//!
//! A key is queued each time an entry with a deadline is stored, so a queue can hold keys whose entries were since
//! replaced, evicted or invalidated; each is dropped when its turn comes, and once the queue holds more than twice
//! the store's bound, one step goes through all of it, keeping one element per key still held.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use quick_cache::DefaultHashBuilder;
use tokio::time::Instant;

/// A maintenance step runs on every `EVERY`-th miss or insertion of a store.
pub(crate) const EVERY: u64 = 16;
/// Most due entries one step looks at: a step's work is bounded, and four times `EVERY`, so reclaiming keeps ahead
/// of a store that only inserts.
pub(crate) const STEP: usize = 64;
/// The queue is compacted past this many elements at least (or twice the store's bound, if larger).
const MIN_COMPACTION: usize = 1_024;

/// What to do with a queued key when its turn comes.
pub(crate) enum Verdict {
    /// Its entry is gone (expired and now removed, replaced by nothing, evicted, invalidated): forget the key.
    Forget,
    /// Its entry is held and expires at this instant: look again then.
    Requeue(Instant),
}

struct Due<K> {
    at: Instant,
    key: K,
}

// Ordered by deadline alone, earliest first out of the max-heap.
impl<K> PartialEq for Due<K> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl<K> Eq for Due<K> {}

impl<K> PartialOrd for Due<K> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Due<K> {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.at.cmp(&self.at)
    }
}

pub(crate) struct ExpiryQueue<K> {
    due: Mutex<BinaryHeap<Due<K>>>,
    /// Misses and insertions so far, to pick every [`EVERY`]-th.
    ops: AtomicU64,
    /// Held by the one step running: a caller finding it taken skips its turn rather than wait.
    stepping: AtomicBool,
    /// Past this length, the next step compacts the queue.
    compact_past: usize,
}

impl<K: Hash + Eq> ExpiryQueue<K> {
    /// A queue for a store holding at most about `bound` entries.
    pub(crate) fn new(bound: u64) -> Self {
        let twice = usize::try_from(bound.saturating_mul(2)).unwrap_or(usize::MAX);
        ExpiryQueue {
            due: Mutex::new(BinaryHeap::new()),
            ops: AtomicU64::new(0),
            stepping: AtomicBool::new(false),
            compact_past: twice.max(MIN_COMPACTION),
        }
    }

    /// Looks at `key` again at `at`.
    pub(crate) fn push(&self, at: Instant, key: K) {
        self.lock().push(Due { at, key });
    }

    /// Counts one miss or insertion; true when it is the one that runs a step.
    #[inline]
    pub(crate) fn tick(&self) -> bool {
        self.ops.fetch_add(1, Ordering::Relaxed) % EVERY == EVERY - 1
    }

    /// Looks at up to [`STEP`] keys due at `now` (or, past the compaction length, at every key once), with `look`
    /// deciding each one's fate. Returns how many keys it looked at.
    pub(crate) fn step(&self, now: Instant, mut look: impl FnMut(&K) -> Verdict) -> usize {
        if self.stepping.swap(true, Ordering::Acquire) {
            return 0;
        }
        let _done = Stepping(&self.stepping);
        if self.lock().len() > self.compact_past {
            return self.compact(look);
        }
        let mut looked = 0;
        while looked < STEP {
            let Some(Due { key, .. }) = ({
                let mut due = self.lock();
                // Looked at one by one, with the lock released between, so pushes never wait behind a step.
                if due.peek().is_some_and(|first| first.at <= now) { due.pop() } else { None }
            }) else {
                break;
            };
            looked += 1;
            if let Verdict::Requeue(at) = look(&key) {
                self.push(at, key);
            }
        }
        looked
    }

    /// Looks at every queued key once, dropping duplicates: afterwards the queue holds at most one element per key
    /// still held.
    fn compact(&self, mut look: impl FnMut(&K) -> Verdict) -> usize {
        // Taken out whole, so insertions go on queueing while the keys are looked at.
        let queued = std::mem::take(&mut *self.lock()).into_vec();
        let looked = queued.len();
        let verdicts: Vec<Option<Instant>> = {
            let mut seen = HashSet::with_capacity_and_hasher(queued.len(), DefaultHashBuilder::default());
            queued
                .iter()
                .map(|due| match seen.insert(&due.key) {
                    true => match look(&due.key) {
                        Verdict::Requeue(at) => Some(at),
                        Verdict::Forget => None,
                    },
                    false => None,
                })
                .collect()
        };
        let kept =
            queued.into_iter().zip(verdicts).filter_map(|(due, verdict)| Some(Due { at: verdict?, key: due.key }));
        self.lock().extend(kept);
        looked
    }

    /// Forgets every key (the store was emptied).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, BinaryHeap<Due<K>>> {
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Releases the step on every way out, a panic in `look` included.
struct Stepping<'a>(&'a AtomicBool);

impl Drop for Stepping<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_step_looks_only_at_due_keys_earliest_first_and_at_most_step_of_them() {
        let queue = ExpiryQueue::new(10_000);
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        for key in (0..200_u64).rev() {
            queue.push(at(key), key);
        }
        let mut seen = Vec::new();
        let looked = queue.step(at(99), |&key| {
            seen.push(key);
            Verdict::Forget
        });
        assert_eq!(looked, STEP);
        assert_eq!(seen, (0..STEP as u64).collect::<Vec<_>>(), "earliest first");
        let looked = queue.step(at(99), |_| Verdict::Forget);
        assert_eq!(looked, 100 - STEP, "then only the rest of those due");
        assert_eq!(queue.len(), 100, "the keys not yet due stay");
    }

    #[test]
    fn a_requeued_key_comes_back_at_its_new_deadline() {
        let queue = ExpiryQueue::new(10_000);
        let start = Instant::now();
        queue.push(start, "k");
        let later = start + Duration::from_secs(5);
        assert_eq!(queue.step(start, |_| Verdict::Requeue(later)), 1);
        assert_eq!(queue.step(start, |_| panic!("not due yet")), 0);
        assert_eq!(queue.step(later, |_| Verdict::Forget), 1);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn past_twice_the_bound_a_step_compacts_to_one_element_per_held_key() {
        let queue = ExpiryQueue::new(1);
        let far = Instant::now() + Duration::from_secs(3_600);
        for round in 0..2_000_u32 {
            queue.push(far, round % 3);
        }
        let mut looked_at = Vec::new();
        let looked = queue.step(Instant::now(), |&key| {
            looked_at.push(key);
            if key == 2 { Verdict::Forget } else { Verdict::Requeue(far) }
        });
        assert_eq!(looked, 2_000);
        looked_at.sort_unstable();
        assert_eq!(looked_at, [0, 1, 2], "each key looked at once");
        assert_eq!(queue.len(), 2, "one element for each key still held");
    }

    #[test]
    fn one_tick_in_every_runs_a_step() {
        let queue = ExpiryQueue::<u32>::new(10);
        let steps = (0..EVERY * 10).filter(|_| queue.tick()).count();
        assert_eq!(steps, 10);
    }
}
