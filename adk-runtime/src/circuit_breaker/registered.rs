//! Named circuit breakers in the registry, and the registry's view of them.

use std::sync::Arc;

use super::CircuitBreaker;
use crate::registry::{Instance, Kind, Registry};

impl Kind {
    /// Circuit breakers.
    pub const CIRCUIT_BREAKER: Kind = Kind::new("circuit_breaker");
}

impl Instance for CircuitBreaker {
    const KIND: Kind = Kind::CIRCUIT_BREAKER;

    fn reset(&self) {
        CircuitBreaker::reset(self);
    }
}

/// The registry's view of CircuitBreakers.
impl Registry {
    /// The circuit breaker called `name`, once a function declares it (or a policy was first used): the instance
    /// is made from an annotated function's declaration, with its settings, before any call.
    ///
    /// ```
    /// use adk_runtime::{CircuitState, registry};
    /// use adk_runtime::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
    ///
    /// static OPENAI: CircuitBreakerPolicy =
    ///     CircuitBreakerPolicy::new("doc-registry-openai", "a.rs:1", CircuitBreakerConfig::new());
    /// assert!(registry().circuit_breaker("doc-registry-openai").is_none(), "not used yet");
    /// OPENAI.breaker();
    /// let openai = registry().circuit_breaker("doc-registry-openai").unwrap();
    /// openai.force_open();
    /// assert_eq!(openai.state(), CircuitState::Open);
    /// openai.reset();
    /// ```
    pub fn circuit_breaker(&self, name: &str) -> Option<Arc<CircuitBreaker>> {
        self.lookup::<CircuitBreaker>(name)
    }

    /// Every circuit breaker in use, by name.
    ///
    /// ```
    /// let open = adk_runtime::registry()
    ///     .circuit_breakers()
    ///     .into_iter()
    ///     .filter(|b| b.state() == adk_runtime::CircuitState::Open)
    ///     .count();
    /// assert_eq!(open, 0);
    /// ```
    pub fn circuit_breakers(&self) -> Vec<Arc<CircuitBreaker>> {
        self.instances::<CircuitBreaker>().all()
    }
}
