//! `#[fallback]`: answer another way when a call fails.
//!
//! The chain itself is expanded inline (each alternative is called with the function's own arguments, so the compiler
//! checks its signature); this module holds what the expansion records.

use std::sync::OnceLock;

use prometheus::IntCounter;

use crate::metrics::family;

family! {
    /// `adk_fallbacks_total{function}`
    pub(crate) static FALLBACKS_TOTAL: counter(
        "adk_fallbacks_total",
        "Calls whose failure was handed to a fallback (counted once per call, whether or not the fallback then succeeded).",
        ["function"]
    );
}

/// The fallback configuration of one function.
///
/// ```
/// use adk_runtime::fallback::FallbackPolicy;
///
/// static POLICY: FallbackPolicy = FallbackPolicy::new("doc::answer");
/// POLICY.engaged(0);
/// assert!(adk_runtime::metrics::render().contains("adk_fallbacks_total{function=\"doc::answer\"} 1"));
/// ```
#[derive(Debug)]
pub struct FallbackPolicy {
    function: &'static str,
    engaged: OnceLock<IntCounter>,
}

impl FallbackPolicy {
    /// The fallback policy of `function`.
    pub const fn new(function: &'static str) -> Self {
        FallbackPolicy { function, engaged: OnceLock::new() }
    }

    /// Notes that the primary call (`index` 0) or the alternative `index` failed and the next alternative answers.
    #[cold]
    pub fn engaged(&self, index: usize) {
        self.engaged.get_or_init(|| FALLBACKS_TOTAL.with(&[self.function])).inc();
        tracing::debug!(function = self.function, failed = index, "falling back");
    }
}
