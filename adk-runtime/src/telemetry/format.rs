//! The two line formats. Both put the ids of the enclosing spans on every line; JSON lines are flat objects so log
//! stores index `request_id` and friends without unnesting.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::ids::CarriedIds;
use crate::json;

/// Keys of a JSON line that an event's own fields must not overwrite.
const RESERVED_KEYS: [&str; 5] = ["timestamp", "level", "target", "span", "message"];

/// `{"timestamp":...,"level":"INFO","request_id":...,"target":...,"span":...,"message":...,<fields>}`.
pub(crate) struct JsonLines {
    pub(crate) otel_trace_ids: bool,
}

/// `timestamp LEVEL request_id=... span{fields}:child: target: message fields`.
pub(crate) struct HumanLines {
    pub(crate) otel_trace_ids: bool,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let ids = line_ids(ctx, self.otel_trace_ids);
        let metadata = event.metadata();

        writer.write_str("{\"timestamp\":")?;
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        json::string(&mut writer, &timestamp)?;
        write!(writer, ",\"level\":\"{}\"", metadata.level())?;
        for (name, value) in ids.iter() {
            if !fields.values.iter().any(|(field, _)| field == name) {
                write!(writer, ",\"{name}\":")?;
                json::string(&mut writer, value)?;
            }
        }
        writer.write_str(",\"target\":")?;
        json::string(&mut writer, fields.log_target.as_deref().unwrap_or(metadata.target()))?;
        if let Some(span) = ctx.parent_span() {
            writer.write_str(",\"span\":")?;
            json::string(&mut writer, span.name())?;
        }
        if let Some(message) = &fields.message {
            writer.write_str(",\"message\":")?;
            message.write_json(&mut writer)?;
        }
        for (name, value) in &fields.values {
            writer.write_char(',')?;
            if RESERVED_KEYS.contains(&name.as_str()) {
                json::string(&mut writer, &format!("fields.{name}"))?;
            } else {
                json::string(&mut writer, name)?;
            }
            writer.write_char(':')?;
            value.write_json(&mut writer)?;
        }
        writer.write_str("}\n")
    }
}

impl<S, N> FormatEvent<S, N> for HumanLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let ansi = writer.has_ansi_escapes();
        let metadata = event.metadata();
        let paint = |code: &'static str| if ansi { code } else { "" };
        let reset = paint("\x1b[0m");

        write!(writer, "{}", paint("\x1b[2m"))?;
        SystemTime.format_time(&mut writer)?;
        let level_colour = match *metadata.level() {
            Level::ERROR => "\x1b[31m",
            Level::WARN => "\x1b[33m",
            Level::INFO => "\x1b[32m",
            Level::DEBUG => "\x1b[34m",
            _ => "\x1b[35m",
        };
        write!(writer, "{reset} {}{:>5}{reset} ", paint(level_colour), metadata.level())?;

        for (name, value) in line_ids(ctx, self.otel_trace_ids).iter() {
            write!(writer, "{name}=")?;
            plain_text(&mut writer, value)?;
            writer.write_char(' ')?;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}{}{reset}", paint("\x1b[1m"), span.name())?;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_char(':')?;
            }
            writer.write_char(' ')?;
        }
        write!(writer, "{}{}:{reset} ", paint("\x1b[2m"), metadata.target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// The ids for a line: from the enclosing spans' fields, and with OpenTelemetry on, the exported trace's id when no
/// span names a `trace_id` of its own.
fn line_ids<S, N>(ctx: &FmtContext<'_, S, N>, otel_trace_ids: bool) -> CarriedIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let mut ids = CarriedIds::in_scope(ctx.event_scope());
    if otel_trace_ids
        && ids.get("trace_id").is_none()
        && let Some(span) = ctx.parent_span()
        && let Some(trace_id) = super::otel_trace_id(&span.id())
    {
        ids.set("trace_id", trace_id);
    }
    ids
}

/// An event's fields: the message apart, `log` crate metadata folded in, the rest in order.
#[derive(Default)]
struct EventFields {
    message: Option<JsonValue>,
    log_target: Option<String>,
    values: Vec<(String, JsonValue)>,
}

enum JsonValue {
    Str(String),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
}

impl JsonValue {
    fn write_json(&self, w: &mut impl fmt::Write) -> fmt::Result {
        match self {
            JsonValue::Str(s) => json::string(w, s),
            JsonValue::I64(n) => write!(w, "{n}"),
            JsonValue::U64(n) => write!(w, "{n}"),
            JsonValue::I128(n) => write!(w, "{n}"),
            JsonValue::U128(n) => write!(w, "{n}"),
            JsonValue::F64(n) if n.is_finite() => write!(w, "{n}"),
            JsonValue::F64(n) => json::string(w, &n.to_string()),
            JsonValue::Bool(b) => write!(w, "{b}"),
        }
    }
}

impl EventFields {
    fn push(&mut self, field: &Field, value: JsonValue) {
        match field.name() {
            "message" => self.message = Some(value),
            "log.target" => {
                if let JsonValue::Str(target) = value {
                    self.log_target = Some(target);
                }
            }
            // Already in `target` and the tracing metadata; noise on every bridged `log` record.
            "log.module_path" | "log.file" | "log.line" => {}
            name => self.values.push((name.to_owned(), value)),
        }
    }
}

impl Visit for EventFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, JsonValue::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, JsonValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, JsonValue::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.push(field, JsonValue::I128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.push(field, JsonValue::U128(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, JsonValue::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, JsonValue::Str(value.to_owned()));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, JsonValue::Str(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, JsonValue::Str(format!("{value:?}")));
    }
}

/// Writes `s` with control characters escaped, so a value cannot forge lines or terminal colours.
fn plain_text(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    for c in s.chars() {
        if c.is_control() { write!(w, "{}", c.escape_default())? } else { w.write_char(c)? }
    }
    Ok(())
}
