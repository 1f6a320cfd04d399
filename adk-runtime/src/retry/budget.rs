//! A retry budget in the manner of tower's `TpsBudget` and Finagle's `RetryBudget`: every call deposits, every retry
//! withdraws, so retries can add at most a set fraction of the load; an outage cannot become a retry storm.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub(super) const SLOTS: usize = 10;
/// Fixed-point unit: a call deposits this much, a retry withdraws `UNIT / ratio`.
pub(super) const UNIT: i64 = 1000;

/// Bounds retries to `ratio` x calls over a sliding `ttl`, plus `min_per_sec` retries a second that are always allowed
/// (so a quiet service can still retry at all).
///
/// Lock-free: a sliding window of ten slots, each one atomic word holding its generation (which tenth of the `ttl` it
/// counts) beside its balance, so the caller who first lands in a new generation restarts the slot in the same
/// compare-and-swap that counts its own call, and no deposit or withdrawal is lost to the rotation. A withdrawal takes
/// its price first and gives it back if that left the window in debt, so concurrent retries never spend more than the
/// budget holds (two racing for the last unit may both be refused). Balances saturate at about 5 x 10^8 calls per
/// slot. The model checks in `retry/loom.rs` prove both properties.
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
    /// What a call earns: nothing when retries earn no share of the calls (`ratio` 0), only the reserve.
    deposit_amount: i64,
    withdraw_amount: i64,
    reserve: i64,
    slot_nanos: u64,
    slots: [AtomicU64; SLOTS],
}

impl RetryBudget {
    /// A budget letting retries add at most `ratio` (e.g. `0.2` = 20%) of the calls made over the last `ttl`, plus
    /// `min_per_sec` retries per second regardless of load.
    pub const fn new(ratio: f64, min_per_sec: u32, ttl: Duration) -> Self {
        let (deposit_amount, withdraw_amount) =
            if ratio <= 0.0 { (0, UNIT) } else { (UNIT, ((UNIT as f64) / ratio) as i64) };
        let withdraw_amount = if withdraw_amount < 1 { 1 } else { withdraw_amount };
        let ttl_secs = if ttl.as_secs() == 0 { 1 } else { ttl.as_secs() as i64 };
        let slot_nanos = (ttl.as_nanos() / SLOTS as u128) as u64;
        RetryBudget {
            deposit_amount,
            withdraw_amount,
            reserve: (min_per_sec as i64).saturating_mul(ttl_secs).saturating_mul(withdraw_amount),
            slot_nanos: if slot_nanos == 0 { 1 } else { slot_nanos },
            slots: [const { AtomicU64::new(0) }; SLOTS],
        }
    }

    /// Records one call (first attempts only, retries do not earn budget).
    pub fn deposit(&self) {
        if self.deposit_amount > 0 {
            add(&self.slots, self.generation_now(), self.deposit_amount);
        }
    }

    /// Takes the price of one retry from the budget; `false` when the budget is spent and the retry must not happen.
    pub fn withdraw(&self) -> bool {
        withdraw(&self.slots, self.generation_now(), self.withdraw_amount, self.reserve)
    }

    /// Retries' worth currently available (for metrics and tests).
    pub fn available(&self) -> i64 {
        (balance(&self.slots, self.generation_now()) + self.reserve).max(0) / self.withdraw_amount
    }

    fn generation_now(&self) -> u64 {
        // One process-wide epoch keeps the budget free of drop glue, so it can be built in a `const`.
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let epoch = *EPOCH.get_or_init(Instant::now);
        (Instant::now().saturating_duration_since(epoch).as_nanos() / self.slot_nanos as u128) as u64
    }
}

/// One slot's word: the low 24 bits of its generation above a 40-bit signed balance. Generations are compared modulo
/// 2^24 (a slot left untouched for 2^24 - 10 tenths of the `ttl`, 194 days at 10 s, would be read as fresh again).
pub(super) trait Word {
    fn load(&self) -> u64;
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64>;
}

impl Word for AtomicU64 {
    fn load(&self) -> u64 {
        AtomicU64::load(self, Ordering::Relaxed)
    }

    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64> {
        AtomicU64::compare_exchange_weak(self, current, new, Ordering::Relaxed, Ordering::Relaxed)
    }
}

const BALANCE_BITS: u32 = 40;
const GENERATION_MASK: u64 = (1 << (64 - BALANCE_BITS)) - 1;
const MAX_BALANCE: i64 = (1 << (BALANCE_BITS - 1)) - 1;

fn pack(generation: u64, balance: i64) -> u64 {
    let balance = balance.clamp(-MAX_BALANCE, MAX_BALANCE);
    ((generation & GENERATION_MASK) << BALANCE_BITS) | (balance as u64 & ((1 << BALANCE_BITS) - 1))
}

fn unpack(word: u64) -> (u64, i64) {
    (word >> BALANCE_BITS, ((word << (64 - BALANCE_BITS)) as i64) >> (64 - BALANCE_BITS))
}

/// How many generations `generation` lies behind `now`, modulo 2^24; a slot ahead of `now` (written by a caller whose
/// clock read came later) is behind by nearly 2^24.
fn age(now: u64, generation: u64) -> u64 {
    now.wrapping_sub(generation) & GENERATION_MASK
}

/// Adds `delta` to the slot of generation `now`, restarting the slot if it still holds an older generation.
pub(super) fn add<W: Word>(slots: &[W; SLOTS], now: u64, delta: i64) {
    let slot = &slots[(now % SLOTS as u64) as usize];
    let mut current = slot.load();
    loop {
        let (generation, balance) = unpack(current);
        let next = match age(now, generation) {
            0 => pack(generation, balance.saturating_add(delta)),
            // A caller whose clock read came before the slot's latest generation adds to it as it is.
            age if age > GENERATION_MASK / 2 => pack(generation, balance.saturating_add(delta)),
            _ => pack(now, delta),
        };
        match slot.compare_exchange(current, next) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

/// The sum of the balances of the slots inside the window ending at generation `now`.
pub(super) fn balance<W: Word>(slots: &[W; SLOTS], now: u64) -> i64 {
    slots
        .iter()
        .map(|slot| unpack(slot.load()))
        .filter(|&(generation, _)| age(now, generation) < SLOTS as u64)
        .fold(0, |sum: i64, (_, balance)| sum.saturating_add(balance))
}

/// Takes `amount` at generation `now` and keeps it unless that left the window (plus `reserve`) in debt.
pub(super) fn withdraw<W: Word>(slots: &[W; SLOTS], now: u64, amount: i64, reserve: i64) -> bool {
    if balance(slots, now).saturating_add(reserve) < amount {
        return false;
    }
    add(slots, now, -amount);
    if balance(slots, now).saturating_add(reserve) < 0 {
        add(slots, now, amount);
        return false;
    }
    true
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
    async fn without_a_ratio_only_the_minimum_is_allowed() {
        let budget = RetryBudget::new(0.0, 1, Duration::from_secs(10));
        for _ in 0..1_000 {
            budget.deposit();
        }
        assert_eq!((0..100).filter(|_| budget.withdraw()).count(), 10, "1 per second over a 10 s window");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_service_keeps_its_minimum_retries() {
        let budget = RetryBudget::new(0.2, 2, Duration::from_secs(10));
        let granted = (0..100).filter(|_| budget.withdraw()).count();
        assert_eq!(granted, 20, "2 per second over a 10 s window");
    }

    #[test]
    fn a_word_holds_a_generation_beside_a_signed_balance_and_saturates() {
        for (generation, balance) in [(0, 0), (1, -1), (GENERATION_MASK, MAX_BALANCE), (7, -MAX_BALANCE)] {
            assert_eq!(unpack(pack(generation, balance)), (generation, balance));
        }
        assert_eq!(unpack(pack(3, i64::MAX)), (3, MAX_BALANCE));
        assert_eq!(unpack(pack(GENERATION_MASK + 2, 5)), (1, 5), "generations wrap at 2^24");
        let slots: [AtomicU64; SLOTS] = Default::default();
        add(&slots, 4, UNIT);
        add(&slots, 14, UNIT);
        assert_eq!(balance(&slots, 14), UNIT, "the slot of generation 4 was restarted for 14");
        add(&slots, 4, UNIT);
        assert_eq!(balance(&slots, 14), 2 * UNIT, "a late caller adds to the newer generation");
        assert_eq!(balance(&slots, 24), 0, "and it all expires with the window");
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
