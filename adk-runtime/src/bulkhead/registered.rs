//! Named bulkheads in the registry, and the registry's view of them.

use std::sync::Arc;

use super::Bulkhead;
use crate::registry::{Instance, Kind, Registry};

impl Kind {
    /// Bulkheads.
    pub const BULKHEAD: Kind = Kind::new("bulkhead");
}

impl Instance for Bulkhead {
    const KIND: Kind = Kind::BULKHEAD;

    /// A bulkhead's slots are the calls in flight: nothing to reset (see [`Registry::reset`]).
    fn reset(&self) {}
}

/// The registry's view of Bulkheads.
impl Registry {
    /// The bulkhead called `name`, once a function declares it (or a policy was first used): the instance is made
    /// from an annotated function's declaration, with its settings, before any call.
    ///
    /// ```
    /// use adk_runtime::registry;
    /// use adk_runtime::bulkhead::BulkheadPolicy;
    ///
    /// static DB: BulkheadPolicy = BulkheadPolicy::new("doc-registry-db", "a.rs:1", 8);
    /// DB.bulkhead();
    /// let db = registry().bulkhead("doc-registry-db").unwrap();
    /// assert_eq!((db.in_use(), db.max_concurrent()), (0, 8));
    /// ```
    pub fn bulkhead(&self, name: &str) -> Option<Arc<Bulkhead>> {
        self.lookup::<Bulkhead>(name)
    }

    /// Every bulkhead in use, by name.
    ///
    /// ```
    /// for bulkhead in adk_runtime::registry().bulkheads() {
    ///     println!("{}: {}/{}", bulkhead.name(), bulkhead.in_use(), bulkhead.max_concurrent());
    /// }
    /// ```
    pub fn bulkheads(&self) -> Vec<Arc<Bulkhead>> {
        self.instances::<Bulkhead>().all()
    }
}
