//! [`Bulkhead::builder`]: a bulkhead as a value, outside the registry, with its settings checked.

use std::sync::Arc;

use super::Bulkhead;
use crate::settings::SettingsError;

/// Settings of a [`Bulkhead`] built by hand (per tenant, per test, behind a tower layer), checked by the rules
/// `#[adk::bulkhead]` checks at compile time. `max_wait` belongs to each caller: pass it to
/// [`Bulkhead::acquire`] or [`Bulkhead::run`].
///
/// ```
/// use adk_runtime::bulkhead::Bulkhead;
///
/// let pool = Bulkhead::builder("tenant-42:db", 2).build().unwrap();
/// let (_a, _b) = (pool.try_acquire().unwrap(), pool.try_acquire().unwrap());
/// assert!(pool.try_acquire().is_err(), "two in use");
/// assert!(Bulkhead::builder("x", 0).build().is_err());
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct BulkheadBuilder {
    name: String,
    max_concurrent: u64,
}

impl Bulkhead {
    /// Starts a bulkhead called `name` (its metric label) of `max_concurrent` slots.
    pub fn builder(name: impl Into<String>, max_concurrent: u64) -> BulkheadBuilder {
        BulkheadBuilder { name: name.into(), max_concurrent }
    }
}

impl BulkheadBuilder {
    /// A new bulkhead of its own (not the registry's instance of that name), or the setting it cannot work with.
    pub fn build(self) -> Result<Arc<Bulkhead>, SettingsError> {
        let max = adk_settings::max_concurrent(self.max_concurrent)
            .map_err(|invalid| SettingsError::new("bulkhead", invalid))?;
        Ok(Bulkhead::new(&self.name, max as usize))
    }
}
