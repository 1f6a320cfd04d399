//! Named caches in the registry, and the registry's view of them.

use super::{CacheHandle, NamedCache};
use crate::registry::{Instance, Kind, Registry};

impl Kind {
    /// Caches.
    pub const CACHE: Kind = Kind::new("cache");
}

impl Instance for NamedCache {
    const KIND: Kind = Kind::CACHE;

    fn reset(&self) {
        NamedCache::invalidate_all(self);
    }
}

/// The registry's view of NamedCaches.
impl Registry {
    /// The cache called `name`, once a function declares it (or a policy's handle was taken): the instance is
    /// made from an annotated function's declaration, with its settings, before any call.
    ///
    /// ```
    /// use adk_runtime::cache::CachePolicy;
    ///
    /// static PROFILES: CachePolicy = CachePolicy::new("doc::profile", "doc.rs:1").with_name("doc-profiles");
    ///
    /// assert!(adk_runtime::registry().cache("doc-profiles").is_none());
    /// PROFILES.insert(7_u64, "Ada".to_owned());
    /// let profiles = adk_runtime::registry().cache("doc-profiles").unwrap();
    /// assert!(profiles.invalidate(&7_u64));
    /// ```
    pub fn cache(&self, name: &str) -> Option<CacheHandle> {
        self.lookup::<NamedCache>(name).map(CacheHandle::new)
    }

    /// The names of the caches declared so far, sorted.
    pub fn cache_names(&self) -> Vec<String> {
        self.instances::<NamedCache>().names()
    }
}
