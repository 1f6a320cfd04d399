//! The two line formats. Both put the ids of the enclosing spans on every line; JSON lines are flat objects, the
//! event's fields and those of every enclosing span side by side, so log stores index `request_id`, `user` and
//! friends without unnesting.

use std::fmt;

use tracing::field::Field;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::fields::{JsonValue, JsonVisitor, SpanFields};
use super::ids::CarriedIds;
use crate::json;

/// Keys of a JSON line that no field, the event's or a span's, may overwrite.
const RESERVED_KEYS: [&str; 5] = ["timestamp", "level", "target", "span", "message"];

/// `{"timestamp":...,"level":"INFO","request_id":...,"target":...,"span":...,"message":...,<event fields>,
/// <span fields>}`: the fields of the current span and its parents follow the event's, each name once (the event's
/// value, else the nearest span's).
pub(crate) struct JsonLines {
    pub(crate) otel_trace_ids: bool,
}

/// The span text of JSON lines: none. They read each span's [`SpanFields`] instead, so the text the fmt layer keeps
/// for every span would be formatted for nothing.
pub(crate) struct NoSpanText;

impl<'writer> FormatFields<'writer> for NoSpanText {
    fn format_fields<R: RecordFields>(&self, _: Writer<'writer>, _: R) -> fmt::Result {
        Ok(())
    }
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
        event.record(&mut JsonVisitor(|field: &Field, value| fields.push(field, value)));
        let ids = line_ids(ctx, self.otel_trace_ids);
        let metadata = event.metadata();

        writer.write_str("{\"timestamp\":")?;
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        json::string(&mut writer, &timestamp)?;
        write!(writer, ",\"level\":\"{}\"", metadata.level())?;
        for (name, value) in ids.iter() {
            if !fields.values.iter().any(|(field, _)| *field == name) {
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
            write_field(&mut writer, name, value)?;
        }
        // Innermost first, so the nearest span wins a name two spans share.
        let mut from_spans: Vec<&'static str> = Vec::new();
        for span in ctx.event_scope().into_iter().flatten() {
            let extensions = span.extensions();
            let Some(span_fields) = extensions.get::<SpanFields>() else { continue };
            for (name, value) in span_fields.iter() {
                let taken = |written: &&str| same_key(written, name);
                if !fields.values.iter().map(|(n, _)| n).any(taken) && !from_spans.iter().any(taken) {
                    write_field(&mut writer, name, value)?;
                    from_spans.push(name);
                }
            }
        }
        writer.write_str("}\n")
    }
}

/// Writes `,"name":value`, moving a field named like one of the line's own keys to `fields.<name>`.
fn write_field(w: &mut impl fmt::Write, name: &str, value: &JsonValue) -> fmt::Result {
    w.write_char(',')?;
    if RESERVED_KEYS.contains(&name) {
        json::string(w, &format!("fields.{name}"))?;
    } else {
        json::string(w, name)?;
    }
    w.write_char(':')?;
    value.write_json(w)
}

/// Whether fields `a` and `b` land on the same key of a JSON line (`span` and `fields.span` do).
fn same_key(a: &str, b: &str) -> bool {
    let moved = |reserved: &str, other: &str| {
        RESERVED_KEYS.contains(&reserved) && other.strip_prefix("fields.") == Some(reserved)
    };
    a == b || moved(a, b) || moved(b, a)
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
    values: Vec<(&'static str, JsonValue)>,
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
            name => self.values.push((name, value)),
        }
    }
}

/// Writes `s` with control characters escaped, so a value cannot forge lines or terminal colours.
fn plain_text(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    for c in s.chars() {
        if c.is_control() { write!(w, "{}", c.escape_default())? } else { w.write_char(c)? }
    }
    Ok(())
}
