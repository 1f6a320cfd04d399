//! The registry of named policy instances: one breaker, limiter, cache or bulkhead per name, shared by every function
//! that names it, reachable at run time by operators and tests.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, RwLock};

use crate::rate_limit::RateLimiter;

/// Every named policy instance of the process. Reach it with [`registry()`].
///
/// ```
/// assert!(adk_runtime::registry().conflicts().is_empty());
/// ```
pub struct Registry {
    conflicts: RwLock<Vec<Conflict>>,
    pub(crate) rate_limiters: Named<RateLimiter>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// The process-wide registry.
pub fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);
    &REGISTRY
}

impl Registry {
    fn new() -> Self {
        Registry { conflicts: RwLock::default(), rate_limiters: Named::new("rate_limiter") }
    }

    /// The rate limiter called `name` (a `name = "..."` of `#[rate_limited]`, or the path of a function limited
    /// without one), once a function using it has run.
    ///
    /// ```
    /// use adk_runtime::rate_limit::{Quota, RateLimitPolicy};
    ///
    /// static LIMIT: RateLimitPolicy = RateLimitPolicy::new("doc::f", "src/lib.rs:1", Quota::per_minute(60)).with_name("doc-registry");
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let _: Result<(), adk_runtime::Error> = LIMIT.run(async { Ok(()) }, Err).await;
    /// let limiter = adk_runtime::registry().rate_limiter("doc-registry").unwrap();
    /// assert_eq!(limiter.snapshot().remaining, 59);
    /// assert!(adk_runtime::registry().rate_limiter("missing").is_none());
    /// # });
    /// ```
    pub fn rate_limiter(&self, name: &str) -> Option<Arc<RateLimiter>> {
        self.rate_limiters.get(name)
    }

    /// The names of all rate limiters in use, sorted.
    pub fn rate_limiter_names(&self) -> Vec<String> {
        self.rate_limiters.names()
    }

    /// Declarations of one name with different settings, in the order they were found.
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.conflicts.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn report_conflict(&self, conflict: Conflict) {
        tracing::error!(
            kind = conflict.kind,
            name = %conflict.name,
            first = %conflict.first,
            second = %conflict.second,
            "one name declared with different settings; the first declaration is used"
        );
        self.conflicts.write().unwrap_or_else(|e| e.into_inner()).push(conflict);
    }
}

/// Where and how a named instance was declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    /// `file:line` of the declaring attribute (or the builder call).
    pub call_site: &'static str,
    /// The settings, rendered for comparison and for the report.
    pub settings: String,
}

impl fmt::Display for Declaration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.call_site, self.settings)
    }
}

/// Two declarations of one name whose settings differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// `"circuit_breaker"`, `"rate_limiter"`, `"cache"` or `"bulkhead"`.
    pub kind: &'static str,
    /// The shared name.
    pub name: String,
    /// The declaration in force.
    pub first: Declaration,
    /// The declaration that disagreed with it.
    pub second: Declaration,
}

/// Instances of one kind by name. Looked up when a function first runs (its handle is then kept in a `static`), and by
/// operators; never on a per-call path.
pub(crate) struct Named<T: ?Sized> {
    kind: &'static str,
    entries: RwLock<HashMap<String, (Declaration, Arc<T>)>>,
}

impl<T: ?Sized> Named<T> {
    pub(crate) fn new(kind: &'static str) -> Self {
        Named { kind, entries: RwLock::new(HashMap::new()) }
    }

    /// The instance called `name`, created by `make` on first declaration. A later declaration with other settings
    /// gets the existing instance and is reported as a [`Conflict`].
    pub(crate) fn declare(&self, name: &str, declaration: Declaration, make: impl FnOnce() -> Arc<T>) -> Arc<T> {
        if let Some((first, instance)) = self.entries.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            self.check(name, first, &declaration);
            return instance.clone();
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some((first, instance)) = entries.get(name) {
            self.check(name, first, &declaration);
            return instance.clone();
        }
        let instance = make();
        entries.insert(name.to_owned(), (declaration, instance.clone()));
        instance
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<T>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).get(name).map(|(_, instance)| instance.clone())
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        names.sort();
        names
    }

    fn check(&self, name: &str, first: &Declaration, second: &Declaration) {
        if first.settings != second.settings {
            registry().report_conflict(Conflict {
                kind: self.kind,
                name: name.to_owned(),
                first: first.clone(),
                second: second.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_is_one_instance_and_differing_settings_are_reported() {
        let named: Named<u32> = Named::new("test_kind");
        let decl = |site, settings: &str| Declaration { call_site: site, settings: settings.to_owned() };
        let a = named.declare("shared-x", decl("a.rs:1", "n=1"), || Arc::new(1));
        let b = named.declare("shared-x", decl("b.rs:2", "n=1"), || Arc::new(2));
        assert!(Arc::ptr_eq(&a, &b));
        let c = named.declare("shared-x", decl("c.rs:3", "n=3"), || Arc::new(3));
        assert_eq!(*c, 1, "the first declaration stays in force");
        let conflict = registry().conflicts().into_iter().find(|c| c.name == "shared-x").expect("reported");
        assert_eq!((conflict.first.call_site, conflict.second.call_site), ("a.rs:1", "c.rs:3"));
        assert_eq!(named.names(), ["shared-x"]);
        assert!(named.get("missing").is_none());
    }
}
