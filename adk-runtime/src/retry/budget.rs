//! A retry budget in the manner of tower's `TpsBudget` and Finagle's `RetryBudget`: every call deposits, every retry
//! withdraws, so retries can add at most a set fraction of the load; an outage cannot become a retry storm.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

const SLOTS: usize = 10;
/// Fixed-point unit: a call deposits this much, a retry withdraws `UNIT / ratio`.
const UNIT: i64 = 1000;

/// Bounds retries to `ratio` x calls over a sliding `ttl`, plus `min_per_sec` retries a second that are always allowed
/// (so a quiet service can still retry at all).
///
/// Lock-free: a sliding window of ten slots of atomics, rotated lazily by whoever first lands in a new slot. Under heavy
/// contention two withdrawals may both pass on the last unit of balance; the bound is exact to within a few retries.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::retry::RetryBudget;
///
/// static BUDGET: RetryBudget = RetryBudget::new(0.2, 0, Duration::from_secs(10));
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// for _ in 0..10 { BUDGET.deposit(); }
/// assert!(BUDGET.withdraw());  // 10 calls pay for 2 retries
/// assert!(BUDGET.withdraw());
/// assert!(!BUDGET.withdraw());
/// # });
/// ```
#[derive(Debug)]
pub struct RetryBudget {
    withdraw_amount: i64,
    reserve: i64,
    slot_nanos: u64,
    slots: [Slot; SLOTS],
}

#[derive(Debug)]
struct Slot {
    generation: AtomicU64,
    balance: AtomicI64,
}

impl RetryBudget {
    /// A budget letting retries add at most `ratio` (e.g. `0.2` = 20%) of the calls made over the last `ttl`, plus
    /// `min_per_sec` retries per second regardless of load.
    pub const fn new(ratio: f64, min_per_sec: u32, ttl: Duration) -> Self {
        let withdraw_amount = if ratio <= 0.0 { i64::MAX / 4 } else { ((UNIT as f64) / ratio) as i64 };
        let withdraw_amount = if withdraw_amount < 1 { 1 } else { withdraw_amount };
        let ttl_secs = if ttl.as_secs() == 0 { 1 } else { ttl.as_secs() as i64 };
        let slot_nanos = (ttl.as_nanos() / SLOTS as u128) as u64;
        RetryBudget {
            withdraw_amount,
            reserve: (min_per_sec as i64).saturating_mul(ttl_secs).saturating_mul(withdraw_amount),
            slot_nanos: if slot_nanos == 0 { 1 } else { slot_nanos },
            slots: [const { Slot { generation: AtomicU64::new(0), balance: AtomicI64::new(0) } }; SLOTS],
        }
    }

    /// Records one call (first attempts only, retries do not earn budget).
    pub fn deposit(&self) {
        self.current_slot().balance.fetch_add(UNIT, Ordering::Relaxed);
    }

    /// Takes the price of one retry from the budget; `false` when the budget is spent and the retry must not happen.
    pub fn withdraw(&self) -> bool {
        let slot = self.current_slot();
        if self.balance() < self.withdraw_amount {
            return false;
        }
        slot.balance.fetch_sub(self.withdraw_amount, Ordering::Relaxed);
        true
    }

    /// Retries' worth currently available (for metrics and tests).
    pub fn available(&self) -> i64 {
        self.balance().max(0) / self.withdraw_amount
    }

    fn balance(&self) -> i64 {
        let now = self.generation_now();
        let oldest = now.saturating_sub(SLOTS as u64 - 1);
        let mut sum = self.reserve;
        for slot in &self.slots {
            let generation = slot.generation.load(Ordering::Acquire);
            if generation >= oldest && generation <= now {
                sum = sum.saturating_add(slot.balance.load(Ordering::Relaxed));
            }
        }
        sum
    }

    fn generation_now(&self) -> u64 {
        // One process-wide epoch keeps the budget free of drop glue, so it can be built in a `const`.
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let epoch = *EPOCH.get_or_init(Instant::now);
        // Generation 0 marks an untouched slot, so real generations start at 1.
        (Instant::now().saturating_duration_since(epoch).as_nanos() / self.slot_nanos as u128) as u64 + 1
    }

    fn current_slot(&self) -> &Slot {
        let now = self.generation_now();
        let slot = &self.slots[(now % SLOTS as u64) as usize];
        let seen = slot.generation.load(Ordering::Acquire);
        if seen != now && slot.generation.compare_exchange(seen, now, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            slot.balance.store(0, Ordering::Relaxed);
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_by_the_ratio_of_calls() {
        let budget = RetryBudget::new(0.1, 0, Duration::from_secs(10));
        for _ in 0..100 {
            budget.deposit();
        }
        let granted = (0..50).filter(|_| budget.withdraw()).count();
        assert_eq!(granted, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_service_keeps_its_minimum_retries() {
        let budget = RetryBudget::new(0.2, 2, Duration::from_secs(10));
        let granted = (0..100).filter(|_| budget.withdraw()).count();
        assert_eq!(granted, 20, "2 per second over a 10 s window");
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_expire_after_the_ttl() {
        let budget = RetryBudget::new(0.5, 0, Duration::from_secs(10));
        for _ in 0..10 {
            budget.deposit();
        }
        assert_eq!(budget.available(), 5);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(budget.available(), 0);
        assert!(!budget.withdraw());
    }
}
