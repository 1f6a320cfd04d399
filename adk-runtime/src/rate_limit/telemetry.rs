//! A limiter's metrics. Decisions are counted in per-thread stripes and folded into
//! `adk_rate_limit_decisions_total` when the metrics are gathered: one shared counter bumped by every call would be
//! the only cache line two threads on a keyed limiter both write. `adk_rate_limit_keys` is read from the limiters at
//! the same moment.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Weak};

use prometheus::{IntCounter, IntGauge};

use crate::metrics::{self, Refresh, family};

family! {
    /// `adk_rate_limit_decisions_total{limiter,decision}`, `decision` one of `admitted`, `delayed`, `refused`. Limiters
    /// count in per-thread stripes and fold them in here when the metrics are gathered.
    static DECISIONS_TOTAL: counter("adk_rate_limit_decisions_total", "Rate limiter decisions.", ["limiter", "decision"]);
}
family! {
    /// `adk_rate_limit_keys{limiter}`: keys whose state a limiter holds, read when the metrics are gathered.
    static KEYS: gauge("adk_rate_limit_keys", "Keys whose state a rate limiter holds.", ["limiter"]);
}

const STRIPES: usize = 8;

/// What happened to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Admitted at once.
    Admitted = 0,
    /// Admitted after waiting its turn.
    Delayed = 1,
    /// Refused.
    Refused = 2,
}

impl Decision {
    const ALL: [Decision; 3] = [Decision::Admitted, Decision::Delayed, Decision::Refused];

    /// The `decision` label.
    const fn label(self) -> &'static str {
        match self {
            Decision::Admitted => "admitted",
            Decision::Delayed => "delayed",
            Decision::Refused => "refused",
        }
    }
}

#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    counts: [AtomicU64; 3],
}

pub(crate) struct Telemetry {
    stripes: [Stripe; STRIPES],
    decisions: [IntCounter; 3],
    keys: IntGauge,
    /// The keys this limiter last added to `keys`: limiters sharing a name (built apart from the registry) share the
    /// series, so each adds what changed rather than setting it.
    reported_keys: AtomicI64,
}

impl Telemetry {
    /// Resolves the limiter's labelled series once.
    pub(crate) fn new(limiter: &str) -> Self {
        Telemetry {
            stripes: Default::default(),
            decisions: Decision::ALL.map(|decision| DECISIONS_TOTAL.with(&[limiter, decision.label()])),
            keys: KEYS.with(&[limiter]),
            reported_keys: AtomicI64::new(0),
        }
    }

    #[inline]
    pub(crate) fn record(&self, decision: Decision) {
        self.stripes[stripe()].counts[decision as usize].fetch_add(1, Relaxed);
    }

    /// Moves the striped counts into the Prometheus counters.
    pub(crate) fn flush(&self) {
        for stripe in &self.stripes {
            for (count, counter) in stripe.counts.iter().zip(&self.decisions) {
                let n = count.swap(0, Relaxed);
                if n > 0 {
                    counter.inc_by(n);
                }
            }
        }
    }

    /// Publishes that the limiter now holds `keys` keys.
    fn report_keys(&self, keys: usize) {
        let keys = i64::try_from(keys).unwrap_or(i64::MAX);
        let before = self.reported_keys.swap(keys, Relaxed);
        self.keys.add(keys - before);
    }

    /// Drops the counts not yet moved into the Prometheus counters, as those are zeroed by a reset of the metrics.
    fn rebase(&self) {
        for stripe in &self.stripes {
            for count in &stripe.counts {
                count.store(0, Relaxed);
            }
        }
    }
}

/// This thread's stripe: threads take stripes in turn, so up to `STRIPES` threads never share one.
#[inline]
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|stripe| {
        let mut index = stripe.get();
        if index == usize::MAX {
            index = NEXT.fetch_add(1, Relaxed) % STRIPES;
            stripe.set(index);
        }
        index
    })
}

/// What the metrics read from a limiter, whatever its backend.
pub(crate) trait Tracked: Send + Sync {
    fn telemetry(&self) -> &Telemetry;
    /// Keys whose state this process holds.
    fn keys(&self) -> usize;
}

/// Has `limiter` publish its decisions and keys whenever the metrics are gathered, for as long as it lives.
pub(crate) fn track<L: Tracked + 'static>(limiter: &Arc<L>) {
    let limiter: Weak<dyn Refresh> = Arc::downgrade(limiter) as Weak<L>;
    metrics::refresh_before_gathering(limiter);
}

impl<L: Tracked> Refresh for L {
    fn refresh(&self) {
        let telemetry = self.telemetry();
        telemetry.flush();
        telemetry.report_keys(self.keys());
    }

    fn rebase(&self) {
        self.telemetry().rebase();
    }
}

impl Drop for Telemetry {
    /// A dropped limiter holds no keys.
    fn drop(&mut self) {
        self.report_keys(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebase_drops_the_decisions_not_yet_reported() {
        // Not tracked, so no gathering elsewhere flushes it behind the test's back.
        let telemetry = Telemetry::new("telemetry::tests::rebase");
        telemetry.record(Decision::Admitted);
        telemetry.flush();
        telemetry.record(Decision::Admitted);
        telemetry.record(Decision::Refused);
        telemetry.rebase();
        telemetry.record(Decision::Refused);
        telemetry.flush();
        let counts = telemetry.decisions.each_ref().map(IntCounter::get);
        assert_eq!(counts, [1, 0, 1], "admitted once before the rebase, refused once after it");
    }
}
