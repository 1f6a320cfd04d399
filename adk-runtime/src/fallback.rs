//! `#[fallback]`: answer another way when a call fails.
//!
//! The chain itself is expanded inline (each alternative is called with the function's own arguments, so the compiler
//! checks its signature); this module holds what the expansion records.

/// The fallback configuration of one function.
#[derive(Debug)]
pub struct FallbackPolicy {
    function: &'static str,
}

impl FallbackPolicy {
    /// The fallback policy of `function`.
    pub const fn new(function: &'static str) -> Self {
        FallbackPolicy { function }
    }

    /// Notes that the primary call (or the alternative `index`, 1-based) failed and the next alternative answers.
    #[cold]
    pub fn engaged<E: std::fmt::Debug>(&self, error: &E, index: usize) {
        tracing::debug!(function = self.function, alternative = index, ?error, "falling back");
    }
}
