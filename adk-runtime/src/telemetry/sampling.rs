//! DEBUG sampling: a fraction of DEBUG and TRACE events reaches the log; everything else always does.

use tracing::subscriber::Interest;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::{Context, Filter};

/// Keeps each DEBUG or TRACE event with probability `rate`; spans and INFO-and-above events pass.
pub(crate) struct DebugSampler {
    rate: f64,
}

impl DebugSampler {
    /// `rate` is within `[0, 1]` (checked by the caller).
    pub(crate) fn new(rate: f64) -> Self {
        DebugSampler { rate }
    }

    fn always_kept(metadata: &Metadata<'_>) -> bool {
        metadata.is_span() || *metadata.level() <= Level::INFO
    }
}

impl<S> Filter<S> for DebugSampler {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::always_kept(metadata) || self.rate >= 1.0 || (self.rate > 0.0 && fastrand::f64() < self.rate)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::always_kept(metadata) || self.rate >= 1.0 {
            Interest::always()
        } else if self.rate <= 0.0 {
            Interest::never()
        } else {
            // Decided per event, in `enabled`.
            Interest::sometimes()
        }
    }
}
