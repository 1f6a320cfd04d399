//! The registry of named policy instances: one breaker, limiter, cache or bulkhead per name, shared by every function
//! that names it, reachable at run time by operators and tests.
//!
//! The mechanism is generic and names no policy: each kind of instance implements `Instance`, and the registry
//! keeps one `Named` table per kind, made on first use. The typed views (`registry().circuit_breaker(name)`, ...)
//! live with their policies, so a new policy adds its own view without touching this module.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, RwLock};

/// A kind of named instance the registry holds.
pub(crate) trait Instance: Send + Sync + 'static {
    /// The kind, as declarations and conflicts report it.
    const KIND: Kind;

    /// Back to the instance's initial state, for [`Registry::reset`].
    fn reset(&self);
}

/// A kind of named instance: breakers, limiters, caches, bulkheads... Each policy module defines its own constant
/// (`Kind::CIRCUIT_BREAKER`, `Kind::RATE_LIMITER`, `Kind::CACHE`, `Kind::BULKHEAD`), so a new kind touches no other.
///
/// ```
/// use adk_runtime::registry::Kind;
///
/// assert_eq!(Kind::CIRCUIT_BREAKER.name(), "circuit_breaker");
/// assert_ne!(Kind::CIRCUIT_BREAKER, Kind::RATE_LIMITER);
/// assert_eq!(Kind::CACHE.to_string(), "cache");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(&'static str);

impl Kind {
    pub(crate) const fn new(name: &'static str) -> Self {
        Kind(name)
    }

    /// The kind's name, as logs, configuration sections and the ops views spell it (`"circuit_breaker"`, ...).
    pub const fn name(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A named instance's settings as declared, kept typed: two declarations conflict when their settings differ as
/// values, and a reader gets the policy's own settings type back with [`downcast_ref`](Self::downcast_ref).
///
/// ```
/// use adk_runtime::rate_limit::Quota;
/// use adk_runtime::registry::Settings;
///
/// let a = Settings::new(Quota::per_minute(60));
/// assert_eq!(a, Settings::new(Quota::per_minute(60)));
/// assert_ne!(a, Settings::new(Quota::per_minute(61)));
/// assert_eq!(a.downcast_ref::<Quota>().map(|q| q.limit()), Some(60));
/// ```
#[derive(Clone)]
pub struct Settings(Arc<dyn AnySettings>);

trait AnySettings: Any + Send + Sync + fmt::Debug {
    fn same_as(&self, other: &dyn AnySettings) -> bool;
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + Send + Sync + fmt::Debug + PartialEq> AnySettings for T {
    fn same_as(&self, other: &dyn AnySettings) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Settings {
    /// Settings of a policy's own type.
    pub fn new<T: Any + Send + Sync + fmt::Debug + PartialEq>(settings: T) -> Self {
        Settings(Arc::new(settings))
    }

    /// The settings as their own type, when they are a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }
}

impl PartialEq for Settings {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_as(&*other.0)
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A [`Named`] table seen without its type, for what the registry does to every kind.
trait AnyNamed: Send + Sync {
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    fn reset_all(&self);
}

impl<T: Instance> AnyNamed for Named<T> {
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn reset_all(&self) {
        for instance in self.all() {
            instance.reset();
        }
    }
}

/// Every named policy instance of the process. Reach it with [`registry()`].
///
/// ```
/// assert!(adk_runtime::registry().conflicts().is_empty());
/// ```
pub struct Registry {
    conflicts: RwLock<Vec<Conflict>>,
    /// One table per kind of instance, by the kind's type.
    kinds: RwLock<HashMap<TypeId, Arc<dyn AnyNamed>>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// The process-wide registry. The first call (the first call of any annotated function, or an explicit call at
/// start-up) also compares every named policy the program declares, and reports names declared with different
/// settings in [`Registry::conflicts`] and as an `ERROR` event, with both call sites.
pub fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
        let registry = Registry::new();
        registry.check_declarations();
        registry
    });
    &REGISTRY
}

impl Registry {
    fn new() -> Self {
        Registry { conflicts: RwLock::default(), kinds: RwLock::default() }
    }

    /// The table of instances of kind `T`, made on first use. Reached when a policy first runs and by operators,
    /// never on a per-call path.
    pub(crate) fn instances<T: Instance>(&self) -> Arc<Named<T>> {
        let found = self.kinds.read().unwrap_or_else(|e| e.into_inner()).get(&TypeId::of::<T>()).cloned();
        let table = match found {
            Some(table) => table,
            None => self
                .kinds
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(TypeId::of::<T>())
                .or_insert_with(|| Arc::new(Named::<T>::new()))
                .clone(),
        };
        table.as_any().downcast::<Named<T>>().unwrap_or_else(|_| unreachable!("tables are keyed by their type"))
    }

    /// The instance of kind `T` called `name`: the one in use, or one made from an annotated function's declaration
    /// (with its settings) when none has run yet. Only the process-wide registry makes instances from declarations.
    pub(crate) fn lookup<T: Instance>(&self, name: &str) -> Option<Arc<T>> {
        let table = self.instances::<T>();
        if let Some(instance) = table.get(name) {
            return Some(instance);
        }
        if !std::ptr::eq(self, registry()) {
            return None;
        }
        let declared = inventory::iter::<Declared>.into_iter().find(|declared| {
            let (kind, declared_name, _) = (declared.0)();
            kind == T::KIND && declared_name == name
        })?;
        (declared.1)();
        table.get(name)
    }

    /// Puts every named instance back in its initial state and zeroes the metrics adk records, keeping the instances
    /// themselves, so functions holding them in `static`s go on working (and recording) after it. Made for test
    /// suites, where one process runs many tests against the same process-wide instances.
    ///
    /// - **Circuit breakers**: closed, with a fresh window and the initial `open_for`, forced states released. Calls
    ///   admitted before the reset that then fail are not recorded in the fresh window.
    /// - **Rate limiters**: every key forgotten, the shared state too: a full quota for everyone
    ///   ([`RateLimiter::reset`]).
    /// - **Caches**: every entry invalidated; a value being computed meanwhile still answers its callers but is not
    ///   stored ([`CacheHandle::invalidate_all`](crate::cache::CacheHandle::invalidate_all)).
    /// - **Bulkheads**: their slots are the calls in flight, so they are left alone. A call holding a slot keeps it
    ///   and frees it when it ends, a call waiting for one keeps waiting in its place in the queue, and `in_use` and
    ///   `waiting` go on counting them; only the count of refusals (`adk_bulkhead_rejections_total`) starts again
    ///   from 0.
    /// - **Metrics**: every counter and histogram starts again from 0, with its series and labels kept. Gauges mirror
    ///   live state and stay true to it: `adk_calls_in_flight` and `adk_bulkhead_in_use` go on counting the calls
    ///   still running (zeroed, they would drop below 0 as those calls end), `adk_circuit_breaker_state` shows the
    ///   closed breakers, `adk_cache_entries` and `adk_rate_limit_keys` the emptied caches and limiters.
    ///
    /// Declarations, and [`conflicts`](Self::conflicts) among them, are kept. Calls running during the reset may be
    /// counted on either side of it.
    ///
    /// Rust runs the tests of one binary in parallel threads by default, and the reset is process-wide: it also
    /// resets the breakers, quotas, caches and counters of the tests running at that moment, whatever their names.
    /// Reset between tests that run one at a time (`--test-threads=1`, or a lock every test of the binary takes);
    /// tests left to run in parallel stay apart without a reset, each with instance names of its own, looking only
    /// at its own series.
    ///
    /// ```
    /// use adk_runtime::{CircuitState, registry};
    /// use adk_runtime::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
    /// use adk_runtime::rate_limit::{Quota, RateLimitPolicy};
    ///
    /// static PAYMENTS: CircuitBreakerPolicy =
    ///     CircuitBreakerPolicy::new("doc-reset-payments", "a.rs:1", CircuitBreakerConfig::new());
    /// static QUOTA: RateLimitPolicy =
    ///     RateLimitPolicy::new("doc::charge", "a.rs:2", Quota::per_minute(1)).with_name("doc-reset-quota");
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// // One test leaves the breaker open and the quota spent...
    /// PAYMENTS.breaker().force_open();
    /// assert!(QUOTA.limiter().check().is_ok());
    /// assert!(QUOTA.limiter().check().is_err());
    ///
    /// // ...and the next one starts from scratch, with the same statics.
    /// registry().reset();
    /// assert_eq!(PAYMENTS.breaker().state(), CircuitState::Closed);
    /// assert!(QUOTA.limiter().check().is_ok());
    /// let metrics = adk_runtime::metrics::render();
    /// assert!(metrics.contains(r#"adk_rate_limit_decisions_total{decision="refused",limiter="doc-reset-quota"} 0"#));
    /// assert!(metrics.contains(r#"adk_rate_limit_decisions_total{decision="admitted",limiter="doc-reset-quota"} 1"#));
    /// # });
    /// ```
    ///
    /// [`RateLimiter::reset`]: crate::rate_limit::RateLimiter::reset
    pub fn reset(&self) {
        self.reset_instances();
        crate::metrics::reset();
    }

    fn reset_instances(&self) {
        let kinds: Vec<Arc<dyn AnyNamed>> =
            self.kinds.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for kind in kinds {
            kind.reset_all();
        }
    }

    /// Declarations of one name with different settings, in the order they were found.
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.conflicts.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn report_conflict(&self, conflict: Conflict) {
        let mut conflicts = self.conflicts.write().unwrap_or_else(|e| e.into_inner());
        let sites = |c: &Conflict| {
            let mut sites = [c.first.call_site, c.second.call_site];
            sites.sort();
            sites
        };
        // Found at start-up and again when the second declaration is first used: report it once, keeping what the
        // later report knows of the declaration in force.
        if let Some(known) = conflicts
            .iter_mut()
            .find(|c| c.kind == conflict.kind && c.name == conflict.name && sites(c) == sites(&conflict))
        {
            if known.in_force.is_none() {
                known.in_force = conflict.in_force;
            }
            return;
        }
        match &conflict.in_force {
            Some(in_force) => tracing::error!(
                kind = conflict.kind.name(),
                name = %conflict.name,
                first = %conflict.first,
                second = %conflict.second,
                in_force = %in_force,
                "one name declared with different settings; the instance has the settings of the first to run"
            ),
            None => tracing::error!(
                kind = conflict.kind.name(),
                name = %conflict.name,
                first = %conflict.first,
                second = %conflict.second,
                "one name declared with different settings; the first function to run under it sets them"
            ),
        }
        conflicts.push(conflict);
    }

    /// Records which declaration created the instance called `name`, for the conflicts found at start-up.
    fn note_in_force(&self, kind: Kind, name: &str, declaration: &Declaration) {
        let mut conflicts = self.conflicts.write().unwrap_or_else(|e| e.into_inner());
        for conflict in conflicts.iter_mut().filter(|c| c.kind == kind && c.name == name && c.in_force.is_none()) {
            conflict.in_force = Some(declaration.clone());
        }
    }

    /// Compares every declaration the program links in (each named policy registers one at start-up), so two
    /// functions declaring one name with different settings are reported before either runs.
    fn check_declarations(&self) {
        let mut seen: HashMap<(Kind, &'static str), Declaration> = HashMap::new();
        for declared in inventory::iter::<Declared> {
            let (kind, name, declaration) = (declared.0)();
            match seen.get(&(kind, name)) {
                Some(first) if first.settings != declaration.settings => self.report_conflict(Conflict {
                    kind,
                    name: name.to_owned(),
                    first: first.clone(),
                    second: declaration,
                    in_force: None,
                }),
                Some(_) => {}
                None => {
                    seen.insert((kind, name), declaration);
                }
            }
        }
    }
}

/// A named policy's declaration, registered at link time by the attribute's expansion so that conflicting names are
/// found at start-up: a function returning (kind, name, declaration), and one that puts the policy's instance in the
/// registry, so that a declared name can be looked up before any call under it.
#[doc(hidden)]
pub struct Declared(pub fn() -> (Kind, &'static str, Declaration), pub fn());

inventory::collect!(Declared);

/// Where and how a named instance was declared.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    /// `file:line` of the declaring attribute (or the builder call).
    pub call_site: &'static str,
    /// The settings, as the policy's own type.
    pub settings: Settings,
}

impl fmt::Display for Declaration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.call_site, self.settings)
    }
}

/// Two declarations of one name whose settings differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// What kind of instance the name is for.
    pub kind: Kind,
    /// The shared name.
    pub name: String,
    /// One declaration (at start-up, the first the program links; at run time, the one that created the instance).
    pub first: Declaration,
    /// A declaration that disagreed with it.
    pub second: Declaration,
    /// The declaration whose settings the shared instance has: the first function to run under the name created it
    /// with its own. `None` while no function using the name has run (a conflict found at start-up).
    pub in_force: Option<Declaration>,
}

/// Instances of one kind by name. Looked up when a function first runs (its handle is then kept in a `static`), and by
/// operators; never on a per-call path.
pub(crate) struct Named<T> {
    entries: RwLock<HashMap<String, (Declaration, Arc<T>)>>,
}

impl<T: Instance> Named<T> {
    pub(crate) fn new() -> Self {
        Named { entries: RwLock::new(HashMap::new()) }
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
        registry().note_in_force(T::KIND, name, &declaration);
        entries.insert(name.to_owned(), (declaration, instance.clone()));
        instance
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<T>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).get(name).map(|(_, instance)| instance.clone())
    }

    /// Every instance, ordered by name.
    pub(crate) fn all(&self) -> Vec<Arc<T>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<(&String, &Arc<T>)> = entries.iter().map(|(name, (_, instance))| (name, instance)).collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all.into_iter().map(|(_, instance)| instance.clone()).collect()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        names.sort();
        names
    }

    fn check(&self, name: &str, first: &Declaration, second: &Declaration) {
        if first.settings != second.settings {
            registry().report_conflict(Conflict {
                kind: T::KIND,
                name: name.to_owned(),
                first: first.clone(),
                second: second.clone(),
                in_force: Some(first.clone()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_is_one_instance_and_differing_settings_are_reported() {
        struct Token(u32);
        impl Instance for Token {
            const KIND: Kind = Kind::new("test_kind");
            fn reset(&self) {}
        }
        let named: Named<Token> = Named::new();
        let decl = |site, n: u32| Declaration { call_site: site, settings: Settings::new(n) };
        let a = named.declare("shared-x", decl("a.rs:1", 1), || Arc::new(Token(1)));
        let b = named.declare("shared-x", decl("b.rs:2", 1), || Arc::new(Token(2)));
        assert!(Arc::ptr_eq(&a, &b));
        let c = named.declare("shared-x", decl("c.rs:3", 3), || Arc::new(Token(3)));
        assert_eq!(c.0, 1, "the first declaration stays in force");
        let conflict = registry().conflicts().into_iter().find(|c| c.name == "shared-x").expect("reported");
        assert_eq!((conflict.first.call_site, conflict.second.call_site), ("a.rs:1", "c.rs:3"));
        assert_eq!(conflict.in_force.map(|d| d.call_site), Some("a.rs:1"));
        assert_eq!(conflict.second.settings.downcast_ref::<u32>(), Some(&3), "the settings stay typed");
        assert!(conflict.second.to_string().ends_with("(3)"), "{}", conflict.second);
        assert_eq!(named.names(), ["shared-x"]);
        assert!(named.get("missing").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_returns_every_instance_to_its_first_state_and_keeps_the_instances() {
        use std::time::Duration;

        use crate::CircuitState;
        use crate::bulkhead::Bulkhead;
        use crate::cache::{CachePolicy, NamedCache};
        use crate::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig};
        use crate::rate_limit::{Quota, RateLimiter};

        // A registry of its own: resetting the process-wide one would reset the other tests' instances.
        let registry = Registry::new();
        let decl = || Declaration { call_site: "registry.rs:1", settings: Settings::new(()) };
        let breaker = registry.instances::<CircuitBreaker>().declare("reset-breaker", decl(), || {
            CircuitBreaker::new("registry::tests::reset-breaker", CircuitBreakerConfig::new())
        });
        let limiter = registry.instances::<RateLimiter>().declare("reset-limiter", decl(), || {
            RateLimiter::new("registry::tests::reset-limiter", Quota::per_minute(1))
        });
        let cache = registry.instances::<NamedCache>().declare("reset-cache", decl(), || {
            Arc::new(NamedCache::new("registry::tests::reset-cache", CachePolicy::new("f", "registry.rs:1").settings()))
        });
        let bulkhead = registry
            .instances::<Bulkhead>()
            .declare("reset-bulkhead", decl(), || Bulkhead::new("registry::tests::reset-bulkhead", 1));

        breaker.force_open();
        limiter.check_key("alice").unwrap();
        assert!(limiter.check_key("alice").is_err());
        let store = cache.store::<u64, u64>();
        store.insert(7, 49, store.epoch());
        let held = bulkhead.try_acquire().unwrap();
        let waiter = tokio::spawn({
            let bulkhead = bulkhead.clone();
            async move { bulkhead.acquire(Duration::from_secs(60)).await.map(drop) }
        });
        tokio::task::yield_now().await;

        registry.reset_instances();

        assert_eq!((breaker.state(), breaker.is_forced()), (CircuitState::Closed, false));
        assert!(limiter.check_key("alice").is_ok());
        assert_eq!(registry.cache("reset-cache").unwrap().len(), 0);
        assert_eq!(bulkhead.in_use(), 1, "a call in flight keeps its slot");
        assert!(bulkhead.try_acquire().is_err(), "and the bound still counts it");
        assert_eq!(bulkhead.waiting(), 1, "a queued call keeps waiting");
        drop(held);
        assert!(bulkhead.try_acquire().is_err(), "the freed slot went to the queued call");
        waiter.await.unwrap().unwrap();
        assert_eq!(bulkhead.in_use(), 0);
        let same = |a: &Arc<CircuitBreaker>| Arc::ptr_eq(a, &registry.circuit_breaker("reset-breaker").unwrap());
        assert!(same(&breaker), "the instances are kept");
    }
}
