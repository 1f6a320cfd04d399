//! [`CachePolicy::builder`]: a cache's settings checked at run time.

use std::time::Duration;

use super::CachePolicy;
use crate::settings::{SettingsError, nanos};

/// Settings of a [`CachePolicy`] made at run time (behind a tower `CacheLayer`, per test); the same parameters and
/// defaults as `#[adk::cached]`, checked by the same rules in [`build`](Self::build). The cache is the registry's
/// cache of that name, shared with the attributes naming it, unless it is [`private`](Self::private).
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::cache::CachePolicy;
///
/// let answers = CachePolicy::builder("doc-builder-answers").ttl(Duration::from_secs(600)).max_entries(1_000).build();
/// assert_eq!(answers.unwrap().settings().ttl, Some(Duration::from_secs(600)));
/// let error = CachePolicy::builder("doc-builder-x").ttl(Duration::ZERO).build().unwrap_err();
/// assert_eq!((error.policy, error.setting), ("cache", "ttl"));
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct CachePolicyBuilder {
    name: &'static str,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    max_entries: Option<u64>,
    private: bool,
}

impl CachePolicy {
    /// Starts the settings of the cache called `name`.
    pub fn builder(name: &'static str) -> CachePolicyBuilder {
        CachePolicyBuilder { name, ttl: None, tti: None, max_entries: None, private: false }
    }
}

impl CachePolicyBuilder {
    /// Serves an entry for at most `ttl` after it was stored (above zero).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Drops an entry not read for `tti` (above zero).
    pub fn tti(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Holds at most about `max_entries` entries (at least 1).
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = Some(max_entries);
        self
    }

    /// A cache of its own, in no registry: one per tenant or per test, however many share the name. The name still
    /// labels its metrics.
    ///
    /// ```
    /// use adk_runtime::cache::CachePolicy;
    ///
    /// let tenant = |_: &str| CachePolicy::builder("doc-tenant-answers").private().build().unwrap();
    /// let (acme, globex) = (tenant("acme"), tenant("globex"));
    /// acme.insert("greeting", "hello from acme");
    /// assert_eq!(acme.get::<_, &str>(&"greeting"), Some("hello from acme"));
    /// assert_eq!(globex.get::<_, &str>(&"greeting"), None, "the two caches are apart");
    /// assert!(adk_runtime::registry().cache("doc-tenant-answers").is_none());
    /// ```
    pub fn private(mut self) -> Self {
        self.private = true;
        self
    }

    /// The policy, or the first setting it cannot work with.
    pub fn build(self) -> Result<CachePolicy, SettingsError> {
        let invalid = |invalid| SettingsError::new("cache", invalid);
        let mut policy = CachePolicy::new(self.name, self.name).with_name(self.name);
        if self.private {
            policy.private = Some(std::sync::OnceLock::new());
        }
        if let Some(ttl) = self.ttl {
            adk_settings::expiry("ttl", nanos(ttl)).map_err(invalid)?;
            policy = policy.with_ttl(ttl);
        }
        if let Some(tti) = self.tti {
            adk_settings::expiry("tti", nanos(tti)).map_err(invalid)?;
            policy = policy.with_tti(tti);
        }
        if let Some(max_entries) = self.max_entries {
            policy = policy.with_max_entries(adk_settings::max_entries(max_entries).map_err(invalid)?);
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_the_attribute_checks_is_checked_by_build() {
        let refused = |builder: CachePolicyBuilder| builder.build().unwrap_err().setting;
        assert_eq!(refused(CachePolicy::builder("cache-builder").ttl(Duration::ZERO)), "ttl");
        assert_eq!(refused(CachePolicy::builder("cache-builder").tti(Duration::ZERO)), "tti");
        assert_eq!(refused(CachePolicy::builder("cache-builder").max_entries(0)), "max_entries");
        let policy = CachePolicy::builder("cache-builder-ok").tti(Duration::from_secs(5)).build().unwrap();
        assert_eq!((policy.name(), policy.settings().tti), ("cache-builder-ok", Some(Duration::from_secs(5))));
    }
}
