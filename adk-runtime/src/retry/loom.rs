//! Model checks of the retry budget's slots: loom runs each model under every interleaving of the slots' atomics
//! that its bounds allow, on the same functions as the budget itself (`budget.rs`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p adk-runtime --release --lib retry::loom
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use ::loom::sync::atomic::AtomicU64;
use ::loom::thread;

use super::budget::{SLOTS, UNIT, Word, add, balance, withdraw};

impl Word for AtomicU64 {
    fn load(&self) -> u64 {
        AtomicU64::load(self, Relaxed)
    }

    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64> {
        AtomicU64::compare_exchange_weak(self, current, new, Relaxed, Relaxed)
    }
}

fn slots() -> Arc<[AtomicU64; SLOTS]> {
    Arc::new(std::array::from_fn(|_| AtomicU64::new(0)))
}

/// A call that rotates a slot into a new generation while another thread withdraws in that generation: neither the
/// deposit nor the withdrawal is lost to the rotation.
#[test]
fn a_rotation_loses_no_deposit_or_withdrawal() {
    ::loom::model(|| {
        let slots = slots();
        add(&slots, 3, 5 * UNIT); // slot 3, generation 3: out of the window of generation 13
        add(&slots, 12, 2 * UNIT); // slot 2, generation 12: inside it
        let depositor = thread::spawn({
            let slots = slots.clone();
            move || add(&slots, 13, UNIT) // rotates slot 3 to generation 13
        });
        let granted = withdraw(&slots, 13, UNIT, 0);
        depositor.join().unwrap();
        assert!(granted, "two calls' worth was there before the deposit");
        assert_eq!(balance(&slots, 13), 2 * UNIT, "3 deposited in the window, 1 withdrawn");
    });
}

/// Two retries racing for the last retry's worth: at most one is granted, and the window is never left in debt.
#[test]
fn concurrent_withdrawals_never_spend_more_than_the_budget_holds() {
    ::loom::model(|| {
        let slots = slots();
        add(&slots, 7, UNIT);
        let other = thread::spawn({
            let slots = slots.clone();
            move || withdraw(&slots, 7, UNIT, 0)
        });
        let mine = withdraw(&slots, 7, UNIT, 0);
        let theirs = other.join().unwrap();
        assert!(!(mine && theirs), "one retry's worth granted twice");
        let granted = i64::from(mine) + i64::from(theirs);
        assert_eq!(balance(&slots, 7), UNIT - granted * UNIT);
    });
}
