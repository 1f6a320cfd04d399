//! The ids a span carries (`request_id`, `trace_id`, `agent_id`), kept with the span so every log line inside it can
//! name them.

use std::fmt;

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, Scope};

/// The field names that are carried into every log line.
pub(crate) const ID_FIELDS: [&str; 3] = ["request_id", "trace_id", "agent_id"];

/// The ids one span declares itself, by position in [`ID_FIELDS`].
#[derive(Debug, Default, Clone)]
pub(crate) struct CarriedIds([Option<String>; 3]);

impl CarriedIds {
    /// The ids in force inside `scope` (innermost first): for each name, the nearest span that carries it.
    pub(crate) fn in_scope<'a, S>(scope: Option<Scope<'a, S>>) -> CarriedIds
    where
        S: for<'l> LookupSpan<'l>,
    {
        let mut ids = CarriedIds::default();
        for span in scope.into_iter().flatten() {
            if let Some(own) = span.extensions().get::<CarriedIds>() {
                for (slot, value) in ids.0.iter_mut().zip(&own.0) {
                    if slot.is_none() {
                        slot.clone_from(value);
                    }
                }
            }
            if ids.0.iter().all(Option::is_some) {
                break;
            }
        }
        ids
    }

    /// `(name, value)` of each id present.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        ID_FIELDS.iter().zip(&self.0).filter_map(|(name, value)| value.as_deref().map(|v| (*name, v)))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        ID_FIELDS.iter().position(|n| *n == name).and_then(|i| self.0[i].as_deref())
    }

    pub(crate) fn set(&mut self, name: &str, value: String) {
        if let Some(i) = ID_FIELDS.iter().position(|n| *n == name) {
            self.0[i] = Some(value);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

impl Visit for CarriedIds {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if ID_FIELDS.contains(&field.name()) {
            self.set(field.name(), format!("{value:?}"));
        }
    }
}

/// Records the ids of each span as it is created or recorded into.
pub(crate) struct IdsLayer;

impl<S> Layer<S> for IdsLayer
where
    S: Subscriber + for<'l> LookupSpan<'l>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !attrs.metadata().fields().iter().any(|f| ID_FIELDS.contains(&f.name())) {
            return;
        }
        let mut ids = CarriedIds::default();
        attrs.record(&mut ids);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(ids);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut recorded = CarriedIds::default();
        values.record(&mut recorded);
        if recorded.is_empty() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<CarriedIds>() {
            Some(ids) => {
                for (slot, value) in ids.0.iter_mut().zip(recorded.0) {
                    if value.is_some() {
                        *slot = value;
                    }
                }
            }
            None => extensions.insert(recorded),
        }
    }
}
