//! The atomics and the lock that the circuit breaker's state word and trial slots live in, named once so that the same
//! code runs on std's in every build and on loom's in the model checks (`circuit_breaker/loom.rs`).
//!
//! Gated on `test` as well as `loom`, as tokio and bytes gate theirs: a crate that depends on adk and runs its own loom
//! models with `--cfg loom` keeps adk's atomics std's, which work outside a loom model.

#[cfg(all(test, loom))]
pub(crate) use loom::sync::{Mutex, MutexGuard, atomic::AtomicU64};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard, atomic::AtomicU64};
