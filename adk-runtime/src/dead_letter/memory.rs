//! The in-memory dead-letter store: bounded, oldest dropped first.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Backend, Claim, DeadLetter};
use crate::error::ErrorClass;

/// A dead-letter queue in this process's memory, holding at most `max_entries`: when full, a new entry pushes out
/// the oldest, and [`dropped`](MemoryBackend::dropped) counts those lost. Entries last as long as the process.
///
/// Ids count up from `1` in push order. Leases follow tokio's clock (so paused-time tests step through them);
/// [`purge_expired`](Backend::purge_expired) compares the entries' wall-clock timestamps with the system clock.
///
/// ```
/// use adk_runtime::ErrorClass;
/// use adk_runtime::dead_letter::{Backend, DeadLetter, MemoryBackend};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let queue = MemoryBackend::new(2);
/// for n in 0..3 {
///     let Ok(_) = queue.push(DeadLetter::new("doc::f", serde_json::json!(n), "failed", ErrorClass::Permanent)).await;
/// }
/// let Ok(kept) = queue.list(10).await;
/// assert_eq!(kept.iter().map(|letter| letter.args.clone()).collect::<Vec<_>>(), [1, 2]);
/// assert_eq!(queue.dropped(), 1);
/// # });
/// ```
#[derive(Debug)]
pub struct MemoryBackend {
    max_entries: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Keyed by id, so the first entry is the oldest.
    entries: BTreeMap<u64, Entry>,
    next_id: u64,
    next_token: u64,
    dropped: u64,
}

#[derive(Debug)]
struct Entry {
    letter: DeadLetter,
    claim: Option<Held>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    token: u64,
    until: Instant,
}

impl Entry {
    fn claimable(&self, now: Instant) -> bool {
        self.claim.is_none_or(|held| held.until <= now)
    }

    fn held_by(&self, claim: &Claim, now: Instant) -> bool {
        self.claim.is_some_and(|held| held.token == claim.token && held.until > now)
    }
}

impl State {
    fn claim(&mut self, id: u64, lease: Duration, now: Instant) -> Option<Claim> {
        let entry = self.entries.get_mut(&id).filter(|entry| entry.claimable(now))?;
        self.next_token += 1;
        entry.claim = Some(Held { token: self.next_token, until: now + lease });
        Some(Claim::new(entry.letter.clone(), self.next_token))
    }

    /// The entry `claim` still holds.
    fn held(&mut self, claim: &Claim, now: Instant) -> Option<(u64, &mut Entry)> {
        let id = parse(&claim.letter.id)?;
        self.entries.get_mut(&id).filter(|entry| entry.held_by(claim, now)).map(|entry| (id, entry))
    }
}

/// Ids this backend gave out are decimal counters; anything else names no entry.
fn parse(id: &str) -> Option<u64> {
    id.parse().ok()
}

impl MemoryBackend {
    /// An empty queue holding at most `max_entries` (at least one).
    pub fn new(max_entries: usize) -> Self {
        MemoryBackend { max_entries: max_entries.max(1), state: Mutex::default() }
    }

    /// How many entries the queue holds at most.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Entries pushed out by newer ones since the queue was built.
    pub fn dropped(&self) -> u64 {
        self.state().dropped
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent before anything can panic, so a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Each future is ready on its first poll; the lock is never held across an await.
impl Backend for MemoryBackend {
    type Error = Infallible;

    async fn push(&self, mut letter: DeadLetter) -> Result<String, Infallible> {
        let mut state = self.state();
        while state.entries.len() >= self.max_entries {
            state.entries.pop_first();
            state.dropped += 1;
        }
        state.next_id += 1;
        let id = state.next_id;
        letter.id = id.to_string();
        let assigned = letter.id.clone();
        state.entries.insert(id, Entry { letter, claim: None });
        Ok(assigned)
    }

    async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, Infallible> {
        Ok(self.state().entries.values().take(limit).map(|entry| entry.letter.clone()).collect())
    }

    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, Infallible> {
        Ok(parse(id).and_then(|id| self.state().entries.get(&id).map(|entry| entry.letter.clone())))
    }

    async fn claim(&self, id: &str, lease: Duration) -> Result<Option<Claim>, Infallible> {
        Ok(parse(id).and_then(|id| self.state().claim(id, lease, Instant::now())))
    }

    async fn claim_next(&self, lease: Duration) -> Result<Option<Claim>, Infallible> {
        let now = Instant::now();
        let mut state = self.state();
        let id = state.entries.iter().find(|(_, entry)| entry.claimable(now)).map(|(&id, _)| id);
        Ok(id.and_then(|id| state.claim(id, lease, now)))
    }

    async fn complete(&self, claim: &Claim) -> Result<bool, Infallible> {
        let mut state = self.state();
        let Some((id, _)) = state.held(claim, Instant::now()) else { return Ok(false) };
        state.entries.remove(&id);
        Ok(true)
    }

    async fn fail(&self, claim: &Claim, error: &str, class: ErrorClass) -> Result<bool, Infallible> {
        let mut state = self.state();
        let Some((_, entry)) = state.held(claim, Instant::now()) else { return Ok(false) };
        let letter = &mut entry.letter;
        letter.tries = letter.tries.saturating_add(1);
        letter.error = error.to_owned();
        letter.class = class;
        letter.last_failed = SystemTime::now();
        entry.claim = None;
        Ok(true)
    }

    async fn delete(&self, id: &str) -> Result<bool, Infallible> {
        Ok(parse(id).is_some_and(|id| self.state().entries.remove(&id).is_some()))
    }

    async fn len(&self) -> Result<usize, Infallible> {
        Ok(self.state().entries.len())
    }

    async fn purge_expired(&self, retention: Duration) -> Result<usize, Infallible> {
        // Before the system clock's origin, nothing can be older than the cutoff.
        let Some(cutoff) = SystemTime::now().checked_sub(retention) else { return Ok(0) };
        let now = Instant::now();
        let mut state = self.state();
        let before = state.entries.len();
        state.entries.retain(|_, entry| entry.letter.last_failed >= cutoff || !entry.claimable(now));
        Ok(before - state.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(n: u64) -> DeadLetter {
        DeadLetter::new("tests::send", serde_json::json!({ "n": n }), format!("failure {n}"), ErrorClass::Transient)
    }

    async fn push(queue: &MemoryBackend, n: u64) -> String {
        let Ok(id) = queue.push(letter(n)).await;
        id
    }

    fn n(letter: &DeadLetter) -> u64 {
        letter.args["n"].as_u64().unwrap()
    }

    const LEASE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn entries_are_kept_with_their_arguments_and_listed_oldest_first() {
        let queue = MemoryBackend::new(10);
        let ids = [push(&queue, 1).await, push(&queue, 2).await, push(&queue, 3).await];
        assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
        assert_eq!((queue.len().await, queue.is_empty().await), (Ok(3), Ok(false)));
        let Ok(listed) = queue.list(2).await;
        assert_eq!(listed.iter().map(n).collect::<Vec<_>>(), [1, 2], "oldest first, at most the limit");
        let Ok(Some(second)) = queue.get(&ids[1]).await else { panic!("the second entry is kept") };
        assert_eq!((second.id.as_str(), second.error.as_str(), second.tries), (ids[1].as_str(), "failure 2", 1));
        assert_eq!(second.function, "tests::send");
        assert_eq!(queue.get("no such id").await, Ok(None));
        assert_eq!(queue.get("999").await, Ok(None));
    }

    #[tokio::test]
    async fn a_full_queue_drops_its_oldest_entries_and_counts_them() {
        let queue = MemoryBackend::new(3);
        let first = push(&queue, 1).await;
        for i in 2..=5 {
            push(&queue, i).await;
        }
        let Ok(kept) = queue.list(10).await;
        assert_eq!(kept.iter().map(n).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!((queue.dropped(), queue.len().await), (2, Ok(3)));
        assert_eq!(queue.get(&first).await, Ok(None));
    }

    #[tokio::test(start_paused = true)]
    async fn one_claimant_at_a_time_replays_an_entry() {
        let queue = MemoryBackend::new(10);
        let (first, second) = (push(&queue, 1).await, push(&queue, 2).await);
        let Ok(Some(claim)) = queue.claim(&first, LEASE).await else { panic!("unclaimed entry") };
        assert_eq!(n(&claim.letter), 1);
        assert_eq!(queue.claim(&first, LEASE).await, Ok(None), "held by the first claim");
        let Ok(Some(next)) = queue.claim_next(LEASE).await else { panic!("the second entry is free") };
        assert_eq!(next.letter.id, second, "the next claim skips the held entry");
        assert_eq!(queue.claim_next(LEASE).await, Ok(None), "every entry is held");
        assert_eq!(queue.complete(&claim).await, Ok(true));
        assert_eq!(queue.complete(&claim).await, Ok(false), "completed once");
        assert_eq!((queue.get(&first).await, queue.len().await), (Ok(None), Ok(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_replay_keeps_the_entry_with_one_more_try_and_frees_it() {
        let queue = MemoryBackend::new(10);
        let id = push(&queue, 1).await;
        let Ok(Some(claim)) = queue.claim(&id, LEASE).await else { panic!() };
        assert_eq!(queue.fail(&claim, "still down", ErrorClass::Permanent).await, Ok(true));
        let Ok(Some(kept)) = queue.get(&id).await else { panic!("the entry is kept") };
        assert_eq!((kept.tries, kept.error.as_str(), kept.class), (2, "still down", ErrorClass::Permanent));
        assert!(kept.last_failed >= kept.first_failed);
        assert_eq!(queue.fail(&claim, "again", ErrorClass::Transient).await, Ok(false), "the claim was released");
        assert!(matches!(queue.claim(&id, LEASE).await, Ok(Some(_))), "claimable again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_whose_lease_ran_out_can_be_taken_over_and_no_longer_acts() {
        let queue = MemoryBackend::new(10);
        let id = push(&queue, 1).await;
        let Ok(Some(stalled)) = queue.claim(&id, LEASE).await else { panic!() };
        tokio::time::advance(LEASE - Duration::from_millis(1)).await;
        assert_eq!(queue.claim_next(LEASE).await, Ok(None), "still within the lease");
        tokio::time::advance(Duration::from_millis(1)).await;
        let Ok(Some(takeover)) = queue.claim_next(LEASE).await else { panic!("the lease ran out") };
        assert_ne!(takeover.token, stalled.token);
        assert_eq!(queue.complete(&stalled).await, Ok(false), "the stalled replayer cannot remove it");
        assert_eq!(queue.fail(&stalled, "late", ErrorClass::Transient).await, Ok(false));
        assert_eq!(queue.complete(&takeover).await, Ok(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deleted_entry_is_gone_even_while_claimed() {
        let queue = MemoryBackend::new(10);
        let id = push(&queue, 1).await;
        let Ok(Some(claim)) = queue.claim(&id, LEASE).await else { panic!() };
        assert_eq!(queue.delete(&id).await, Ok(true));
        assert_eq!(queue.delete(&id).await, Ok(false));
        assert_eq!(queue.complete(&claim).await, Ok(false));
        assert_eq!((queue.len().await, queue.is_empty().await), (Ok(0), Ok(true)));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_past_their_retention_are_purged_unless_being_replayed() {
        let queue = MemoryBackend::new(10);
        let hour = Duration::from_secs(3600);
        let mut ids = Vec::new();
        for i in 0..3 {
            let mut old = letter(i);
            old.last_failed = SystemTime::now() - 2 * hour;
            let Ok(id) = queue.push(old).await;
            ids.push(id);
        }
        push(&queue, 9).await;
        let Ok(Some(_replaying)) = queue.claim(&ids[2], LEASE).await else { panic!() };
        assert_eq!(queue.purge_expired(hour).await, Ok(2));
        let Ok(kept) = queue.list(10).await;
        assert_eq!(kept.iter().map(n).collect::<Vec<_>>(), [2, 9], "the one being replayed, and the recent one");
        assert_eq!(queue.purge_expired(3 * hour).await, Ok(0));
    }
}
