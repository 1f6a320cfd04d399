//! The fields a span recorded, as JSON values, kept with the span so every JSON line inside it can carry them without
//! visiting the span again.

use std::fmt;

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::ids::ID_FIELDS;
use crate::json;

/// A recorded value with the JSON type `tracing` gave it: numbers and bools stay numbers and bools, `Debug`,
/// `Display` and error values become strings.
#[derive(Debug)]
pub(crate) enum JsonValue {
    Str(String),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
}

impl JsonValue {
    pub(crate) fn write_json(&self, w: &mut impl fmt::Write) -> fmt::Result {
        match self {
            JsonValue::Str(s) => json::string(w, s),
            JsonValue::I64(n) => write!(w, "{n}"),
            JsonValue::U64(n) => write!(w, "{n}"),
            JsonValue::I128(n) => write!(w, "{n}"),
            JsonValue::U128(n) => write!(w, "{n}"),
            JsonValue::F64(n) if n.is_finite() => write!(w, "{n}"),
            // JSON has no NaN or infinity.
            JsonValue::F64(n) => json::string(w, &n.to_string()),
            JsonValue::Bool(b) => write!(w, "{b}"),
        }
    }
}

/// Hands every recorded value to the closure as a [`JsonValue`].
pub(crate) struct JsonVisitor<F>(pub(crate) F);

impl<F: FnMut(&Field, JsonValue)> Visit for JsonVisitor<F> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        (self.0)(field, JsonValue::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        (self.0)(field, JsonValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        (self.0)(field, JsonValue::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        (self.0)(field, JsonValue::I128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        (self.0)(field, JsonValue::U128(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        (self.0)(field, JsonValue::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        (self.0)(field, JsonValue::Str(value.to_owned()));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        (self.0)(field, JsonValue::Str(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        (self.0)(field, JsonValue::Str(format!("{value:?}")));
    }
}

/// The fields one span carries into JSON lines, in the order they were first recorded, the latest value of each.
#[derive(Debug, Default)]
pub(crate) struct SpanFields(Vec<(&'static str, JsonValue)>);

impl SpanFields {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, &JsonValue)> {
        self.0.iter().map(|(name, value)| (*name, value))
    }

    /// Takes in the values `record` visits: a span's attributes when created, a `Record` when recorded into later.
    fn record(&mut self, record: impl FnOnce(&mut dyn Visit)) {
        record(&mut JsonVisitor(|field: &Field, value| {
            let name = field.name();
            if !carried(name) {
                return;
            }
            match self.0.iter_mut().find(|(n, _)| *n == name) {
                Some((_, slot)) => *slot = value,
                None => self.0.push((name, value)),
            }
        }));
    }
}

/// Whether a span field goes into JSON lines as a field of its own. The ids are written already, nearest span first,
/// by [`CarriedIds`](super::ids::CarriedIds); `otel.*` fields are instructions to the OpenTelemetry exporter (the
/// exported span's name, kind and status), not data, and `otel.status_description` would repeat the error event's
/// own `error`.
fn carried(name: &str) -> bool {
    !ID_FIELDS.contains(&name) && !name.starts_with("otel.")
}

/// Keeps each span's [`SpanFields`] in its extensions, from its creation and every `Span::record` after, so an event
/// reads them instead of formatting the span's fields again.
pub(crate) struct SpanFieldsLayer;

impl<S> Layer<S> for SpanFieldsLayer
where
    S: Subscriber + for<'l> LookupSpan<'l>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !attrs.metadata().fields().iter().any(|f| carried(f.name())) {
            return;
        }
        let mut fields = SpanFields::default();
        fields.record(|visitor| attrs.record(visitor));
        if !fields.0.is_empty()
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            Some(fields) => fields.record(|visitor| values.record(visitor)),
            None => {
                let mut fields = SpanFields::default();
                fields.record(|visitor| values.record(visitor));
                if !fields.0.is_empty() {
                    extensions.insert(fields);
                }
            }
        }
    }
}
