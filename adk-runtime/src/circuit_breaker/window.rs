//! The sliding window a closed breaker judges.
//!
//! The hot path is a fast success on a closed breaker, and it must scale across threads, so it writes only to a
//! per-thread stripe (a cache line of its own) and reads one word that changes rarely (`mark`). That is enough because
//! a fast success can never raise the failure or slow rate of a full-enough window: the window only has to be looked
//! at when a failure or a slow call is recorded, while it fills up to `min_calls`, and (for a time window) when old
//! calls may have slid out, i.e. once per step. Those cold paths take the window's lock.
//!
//! - Count window: every recorded call has a sequence number, the number of calls recorded before it plus one (the sum
//!   of the stripes plus the failures and slow calls). Failures and slow calls keep their sequence numbers in queues;
//!   the window is the last `n` sequence numbers. Exact when calls do not race each other; under concurrency a call
//!   that is being recorded while another is judged may be counted on either side of the boundary.
//! - Time window: 60 buckets (steps) of `window / 60`. Failures and slow calls go into the bucket directly; fast
//!   successes are counted in the stripe's own current step and moved into the bucket when the stripe first records in
//!   a later step, so a bucket is complete once every stripe has moved on.
//!
//! Times are nanoseconds since the breaker was built, handed in by the breaker: a time window is always given one, a
//! count window never needs it.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::algorithm::Tally;
use super::config::Window as WindowSetting;

pub(super) struct Window {
    /// `1` when a count window holds at least `min_calls`; `step << 1 | 1` when a time window held at least
    /// `min_calls` when last judged during `step`. Anything else sends a success to [`Window::judge`].
    mark: AtomicU64,
    min_calls: u64,
    stripes: Box<[Stripe]>,
    stripe_mask: usize,
    shape: Shape,
    events: Mutex<Events>,
}

enum Shape {
    Count { size: u64 },
    Time { step_nanos: u64 },
}

enum Events {
    Count(CountEvents),
    Time(Box<[Bucket]>),
}

#[derive(Default)]
struct CountEvents {
    /// Failures and slow calls recorded since the breaker was built (they are not in the stripes).
    recorded: u64,
    /// The sequence number of the last call before the current window was started afresh.
    start: u64,
    failures: VecDeque<u64>,
    slow: VecDeque<u64>,
}

#[derive(Clone, Copy, Default)]
struct Bucket {
    step: u64,
    calls: u64,
    failures: u64,
    slow: u64,
}

/// One thread's counters, alone on its cache line.
#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    /// Fast successes seen through this stripe, ever (for metrics, and the count window's sequence numbers).
    successes: AtomicU64,
    /// Time window: `step << 32 | count`, the fast successes of the stripe's current step (the step truncated to 32
    /// bits, compared with wrapping arithmetic).
    step_successes: AtomicU64,
}

const STEPS: u64 = WindowSetting::TIME_STEPS as u64;

impl Window {
    pub(super) fn new(setting: WindowSetting, min_calls: u32) -> Self {
        let stripes = stripe_count();
        let (shape, events) = match setting {
            WindowSetting::Calls(size) => (Shape::Count { size: size.into() }, Events::Count(CountEvents::default())),
            WindowSetting::Time(length) => {
                let step_nanos = (length.as_nanos() / u128::from(STEPS)).clamp(1, u64::MAX.into()) as u64;
                (Shape::Time { step_nanos }, Events::Time(vec![Bucket::default(); STEPS as usize].into()))
            }
        };
        Window {
            mark: AtomicU64::new(0),
            min_calls: min_calls.into(),
            stripes: (0..stripes).map(|_| Stripe::default()).collect(),
            stripe_mask: stripes - 1,
            shape,
            events: Mutex::new(events),
        }
    }

    /// Whether recording needs the time.
    pub(super) fn is_timed(&self) -> bool {
        matches!(self.shape, Shape::Time { .. })
    }

    /// Records a fast success and says whether the window must now be judged (see [`Window::judge`]). `now` is
    /// required for a time window.
    #[inline]
    pub(super) fn record_success(&self, now: Option<u64>) -> bool {
        let stripe = self.stripe();
        stripe.successes.fetch_add(1, Relaxed);
        match self.shape {
            Shape::Time { step_nanos } => {
                let step = step_of(step_nanos, now);
                self.count_in_step(stripe, step);
                self.mark.load(Relaxed) != (step << 1 | 1)
            }
            Shape::Count { .. } => self.mark.load(Relaxed) != 1,
        }
    }

    /// Counts a success that belongs to no window (a trial call, or a call admitted before the window was started
    /// afresh), for metrics only.
    pub(super) fn count_success_outside(&self) {
        self.stripe().successes.fetch_add(1, Relaxed);
    }

    /// Every fast success ever recorded or counted.
    pub(super) fn successes(&self) -> u64 {
        self.stripes.iter().map(|s| s.successes.load(Relaxed)).sum()
    }

    /// Records a failure or a slow call (or both) and returns the window as it now stands.
    pub(super) fn record_event(&self, failure: bool, slow: bool, now: Option<u64>) -> Tally {
        let mut events = self.lock();
        match (&mut *events, &self.shape) {
            (Events::Count(count), Shape::Count { size }) => {
                count.recorded += 1;
                let sequence = self.successes() + count.recorded;
                if failure {
                    count.failures.push_back(sequence);
                }
                if slow {
                    count.slow.push_back(sequence);
                }
                self.judged(count_tally(count, sequence, *size), 0)
            }
            (Events::Time(buckets), Shape::Time { step_nanos }) => {
                let step = step_of(*step_nanos, now);
                let bucket = bucket_for(buckets, step);
                bucket.calls += 1;
                bucket.failures += u64::from(failure);
                bucket.slow += u64::from(slow);
                self.judged(self.time_tally(buckets, step), step)
            }
            _ => unreachable!("events match the shape"),
        }
    }

    /// The window as it stands, remembering whether it holds `min_calls` so that fast successes can skip judging.
    pub(super) fn judge(&self, now: Option<u64>) -> Tally {
        let mut events = self.lock();
        match (&mut *events, &self.shape) {
            (Events::Count(count), Shape::Count { size }) => {
                let sequence = self.successes() + count.recorded;
                self.judged(count_tally(count, sequence, *size), 0)
            }
            (Events::Time(buckets), Shape::Time { step_nanos }) => {
                let step = step_of(*step_nanos, now);
                self.judged(self.time_tally(buckets, step), step)
            }
            _ => unreachable!("events match the shape"),
        }
    }

    /// Forgets every call: the window starts afresh.
    pub(super) fn restart(&self) {
        let mut events = self.lock();
        match &mut *events {
            Events::Count(count) => {
                count.start = self.successes() + count.recorded;
                count.failures.clear();
                count.slow.clear();
            }
            Events::Time(buckets) => {
                buckets.fill(Bucket::default());
                for stripe in &self.stripes {
                    stripe.step_successes.store(0, Relaxed);
                }
            }
        }
        self.mark.store(0, Relaxed);
    }

    fn judged(&self, tally: Tally, step: u64) -> Tally {
        let warm = tally.calls >= self.min_calls;
        let mark = match self.shape {
            Shape::Count { .. } => u64::from(warm),
            Shape::Time { .. } => step << 1 | u64::from(warm),
        };
        self.mark.store(mark, Relaxed);
        tally
    }

    #[inline]
    fn stripe(&self) -> &Stripe {
        &self.stripes[thread_index() & self.stripe_mask]
    }

    #[inline]
    fn count_in_step(&self, stripe: &Stripe, step: u64) {
        let tag = step as u32;
        let mut current = stripe.step_successes.load(Relaxed);
        loop {
            let (current_tag, count) = ((current >> 32) as u32, current as u32);
            let next = if current_tag == tag { pack(tag, count.saturating_add(1)) } else { pack(tag, 1) };
            match stripe.step_successes.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                Ok(_) if current_tag != tag && count > 0 => return self.move_into_bucket(current_tag, count, step),
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    #[cold]
    fn move_into_bucket(&self, tag: u32, count: u32, now_step: u64) {
        let age = u64::from((now_step as u32).wrapping_sub(tag));
        if age >= STEPS || age > now_step {
            return;
        }
        let step = now_step - age;
        if let Events::Time(buckets) = &mut *self.lock() {
            let bucket = &mut buckets[(step % STEPS) as usize];
            if bucket.step == step {
                bucket.calls += u64::from(count);
            } else if bucket.step < step {
                *bucket = Bucket { step, calls: count.into(), ..Bucket::default() };
            }
        }
    }

    fn time_tally(&self, buckets: &[Bucket], step: u64) -> Tally {
        let mut tally = Tally::default();
        for bucket in buckets.iter().filter(|b| b.step <= step && step - b.step < STEPS) {
            tally.calls += bucket.calls;
            tally.failures += bucket.failures;
            tally.slow += bucket.slow;
        }
        for stripe in &self.stripes {
            let current = stripe.step_successes.load(Relaxed);
            let (tag, count) = ((current >> 32) as u32, current as u32);
            if u64::from((step as u32).wrapping_sub(tag)) < STEPS {
                tally.calls += u64::from(count);
            }
        }
        tally
    }

    fn lock(&self) -> MutexGuard<'_, Events> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The count window ending at `sequence`: drops what slid out and counts what is left.
fn count_tally(count: &mut CountEvents, sequence: u64, size: u64) -> Tally {
    let calls = sequence.saturating_sub(count.start).min(size);
    let oldest_excluded = sequence - calls;
    for queue in [&mut count.failures, &mut count.slow] {
        while queue.front().is_some_and(|&s| s <= oldest_excluded) {
            queue.pop_front();
        }
    }
    Tally { calls, failures: count.failures.len() as u64, slow: count.slow.len() as u64 }
}

fn bucket_for(buckets: &mut [Bucket], step: u64) -> &mut Bucket {
    let bucket = &mut buckets[(step % STEPS) as usize];
    if bucket.step != step {
        *bucket = Bucket { step, ..Bucket::default() };
    }
    bucket
}

#[inline]
fn step_of(step_nanos: u64, now: Option<u64>) -> u64 {
    now.expect("a time window is always given the time") / step_nanos
}

#[inline]
fn pack(tag: u32, count: u32) -> u64 {
    u64::from(tag) << 32 | u64::from(count)
}

/// Enough stripes that the threads of a busy runtime rarely share one: twice the cores, 8 to 64.
fn stripe_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        (cores * 2).next_power_of_two().clamp(8, 64)
    })
}

/// A small number for the current thread, handed out in order, so that up to `stripe_count()` threads get distinct
/// stripes.
#[inline]
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        let mut i = index.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Relaxed);
            index.set(i);
        }
        i
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_window_holds_exactly_the_last_n_calls() {
        let window = Window::new(WindowSetting::Calls(3), 3);
        assert_eq!(window.record_event(true, false, None), Tally { calls: 1, failures: 1, slow: 0 });
        window.record_success(None);
        window.record_success(None);
        assert_eq!(window.judge(None), Tally { calls: 3, failures: 1, slow: 0 });
        window.record_success(None);
        assert_eq!(window.judge(None), Tally { calls: 3, failures: 0, slow: 0 }, "the failure slid out");
        assert_eq!(window.record_event(false, true, None), Tally { calls: 3, failures: 0, slow: 1 });
        window.restart();
        assert_eq!(window.judge(None), Tally::default());
        assert_eq!(window.successes(), 3);
    }

    #[test]
    fn fast_successes_skip_judging_once_min_calls_are_in_a_count_window() {
        let window = Window::new(WindowSetting::Calls(10), 2);
        assert!(window.record_success(None), "one call: still filling");
        window.judge(None);
        assert!(window.record_success(None));
        window.judge(None);
        assert!(!window.record_success(None), "two calls judged: warm");
        window.restart();
        assert!(window.record_success(None), "a fresh window fills again");
    }

    #[test]
    fn a_time_window_slides_in_steps_and_judges_once_per_step() {
        const S: u64 = 1_000_000_000;
        let window = Window::new(WindowSetting::Time(std::time::Duration::from_secs(60)), 1);
        window.record_success(Some(0));
        window.judge(Some(0));
        assert!(!window.record_success(Some(0)), "same step, warm: no need to judge");
        assert!(window.record_success(Some(30 * S)), "a new step: calls may have slid out");
        window.record_event(true, false, Some(30 * S));
        assert_eq!(window.judge(Some(30 * S)), Tally { calls: 4, failures: 1, slow: 0 });
        assert_eq!(window.judge(Some(61 * S)), Tally { calls: 2, failures: 1, slow: 0 }, "t=0 slid out");
        assert_eq!(window.judge(Some(91 * S)), Tally::default());
    }
}
