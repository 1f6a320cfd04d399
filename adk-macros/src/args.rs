//! The argument toolkit every attribute shares: `key = value` items with spans, `set_once`, duration and number
//! literals, "did you mean" for unknown keys, and one collector for all errors.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, Token};

/// One item of an attribute's argument list.
pub enum Arg {
    /// `key = value`
    KeyValue { key: Ident, value: Expr },
    /// `key(a, b = c, ...)`
    List { key: Ident, items: Vec<Arg> },
    /// A lone path, flag or literal: `jitter`, `cheaper_model`, `"2s"`.
    Bare(Expr),
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Ident::peek_any) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
            let key = input.call(Ident::parse_any)?;
            input.parse::<Token![=]>()?;
            // `field = %expr` / `field = ?expr`, as tracing's field syntax has them; kept verbatim for the span.
            if input.peek(Token![%]) || input.peek(Token![?]) {
                let sigil: proc_macro2::TokenTree = input.parse()?;
                let expr: Expr = input.parse()?;
                return Ok(Arg::KeyValue { key, value: Expr::Verbatim(quote::quote!(#sigil #expr)) });
            }
            return Ok(Arg::KeyValue { key, value: input.parse()? });
        }
        if input.peek(Ident) && input.peek2(syn::token::Paren) {
            let key: Ident = input.parse()?;
            let content;
            syn::parenthesized!(content in input);
            let items = Punctuated::<Arg, Token![,]>::parse_terminated(&content)?;
            return Ok(Arg::List { key, items: items.into_iter().collect() });
        }
        Ok(Arg::Bare(input.parse()?))
    }
}

/// Parses an attribute's argument tokens.
pub fn parse_args(tokens: TokenStream) -> syn::Result<Vec<Arg>> {
    use syn::parse::Parser;
    let items = Punctuated::<Arg, Token![,]>::parse_terminated.parse2(tokens)?;
    Ok(items.into_iter().collect())
}

/// Every error found while reading one stack of attributes, reported together.
#[derive(Default)]
pub struct Errors(Vec<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        self.0.push(error);
    }

    pub fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.0.push(syn::Error::new(span, message));
    }

    pub fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.0.push(syn::Error::new_spanned(tokens, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Records the error of `result`, if any, and passes its value on.
    pub fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    pub fn to_compile_errors(&self) -> TokenStream {
        self.0.iter().map(syn::Error::to_compile_error).collect()
    }
}

/// A parameter that may be given once, with the span of its key for later cross-checks.
pub struct Slot<T> {
    pub value: Option<(T, Span)>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot { value: None }
    }
}

impl<T> Slot<T> {
    /// Stores `value`; a second value for the same key is an error at the second key.
    pub fn set_once(&mut self, key: &Ident, value: Option<T>, attr: &str, errors: &mut Errors) {
        if self.value.is_some() {
            errors.at(key.span(), format!("duplicate parameter `{key}` for #[adk::{attr}]; give it once"));
            return;
        }
        if let Some(value) = value {
            self.value = Some((value, key.span()));
        }
    }

    pub fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(value, _)| value)
    }

    pub fn span(&self) -> Option<Span> {
        self.value.as_ref().map(|(_, span)| *span)
    }

    pub fn take(&mut self) -> Option<T> {
        self.value.take().map(|(value, _)| value)
    }
}

/// The `key = value` items of an attribute that takes nothing else, in written order; any other item is an error (an
/// unknown flag with a "did you mean"), left in its place so the caller reports every mistake in order.
pub fn key_values(args: Vec<Arg>, attr: &str, valid: &[&str]) -> Vec<syn::Result<(Ident, Expr)>> {
    args.into_iter()
        .map(|arg| match arg {
            Arg::KeyValue { key, value } => Ok((key, value)),
            Arg::Bare(Expr::Path(p)) if p.path.get_ident().is_some() => {
                Err(unknown_key(p.path.get_ident().expect("checked"), attr, valid))
            }
            Arg::Bare(other) => Err(syn::Error::new_spanned(
                other,
                format!("#[adk::{attr}] takes `key = value` parameters; valid parameters: {}", valid.join(", ")),
            )),
            Arg::List { key, .. } => Err(unknown_key(&key, attr, valid)),
        })
        .collect()
}

/// The error for a key the attribute does not know, with a suggestion when one is close.
pub fn unknown_key(key: &Ident, attr: &str, valid: &[&str]) -> syn::Error {
    let name = key.unraw().to_string();
    if valid.contains(&name.as_str()) {
        // A known key in the wrong shape (`attempts` alone, `attempts(3)`): say what it takes, not "did you mean" it.
        return syn::Error::new(key.span(), format!("`{name}` needs a value here: #[adk::{attr}({name} = ...)]"));
    }
    let suggestion = closest(&name, valid).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
    syn::Error::new(
        key.span(),
        format!("unknown parameter `{name}` for #[adk::{attr}]{suggestion}\nvalid parameters: {}", valid.join(", ")),
    )
}

/// The valid name closest to `name`, if it is close enough to be a likely typo.
pub fn closest<'a>(name: &str, valid: &[&'a str]) -> Option<&'a str> {
    valid
        .iter()
        .map(|candidate| (edit_distance(name, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len().max(name.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Edits (insertions, deletions, substitutions and swaps of neighbours) from `a` to `b`: the optimal string
/// alignment distance, so a transposed pair (`wiat` for `wait`) counts as one typo, not two.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut table = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in table.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in table[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = table[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(table[i - 1][j] + 1).min(table[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[i - 2][j - 2] + 1);
            }
            table[i][j] = best;
        }
    }
    table[a.len()][b.len()]
}

/// `value` if it is one of `valid`, else an error listing them (with a suggestion when one is close).
pub fn one_of(value: &str, valid: &[&str], what: &str, expr: &Expr) -> syn::Result<String> {
    if valid.contains(&value) {
        return Ok(value.to_owned());
    }
    let hint = closest(value, valid).map(|s| format!("; did you mean {s:?}?")).unwrap_or_default();
    let choices: Vec<String> = valid.iter().map(|v| format!("{v:?}")).collect();
    Err(syn::Error::new_spanned(expr, format!("unknown {what} {value:?}{hint}\nvalid values: {}", choices.join(", "))))
}

/// A string literal's value.
pub fn lit_str(expr: &Expr, what: &str) -> syn::Result<String> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Ok(s.value()),
        _ => Err(syn::Error::new_spanned(expr, format!("expected a string literal for {what}"))),
    }
}

/// A `name = "..."` shared by every function naming it: a non-empty string.
pub fn instance_name(expr: &Expr) -> syn::Result<String> {
    let name = lit_str(expr, "`name`")?;
    if name.trim().is_empty() {
        return Err(syn::Error::new_spanned(expr, "`name` cannot be empty: it is how functions share one instance"));
    }
    Ok(name)
}

/// A non-negative integer literal (underscores allowed).
pub fn lit_u64(expr: &Expr, what: &str) -> syn::Result<u64> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => i.base10_parse(),
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), .. }) => {
            Err(syn::Error::new_spanned(expr, format!("{what} cannot be negative")))
        }
        _ => Err(syn::Error::new_spanned(expr, format!("expected an integer literal for {what}, like `3`"))),
    }
}

/// A number literal, integer or float, possibly negative (ranges are checked by the caller).
pub fn lit_f64(expr: &Expr, what: &str) -> syn::Result<f64> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Float(f), .. }) => f.base10_parse(),
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => i.base10_parse::<u64>().map(|v| v as f64),
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr: inner, .. }) => lit_f64(inner, what).map(|v| -v),
        _ => Err(syn::Error::new_spanned(expr, format!("expected a number for {what}, like `0.5`"))),
    }
}

/// A path, e.g. a predicate or fallback function.
pub fn path(expr: &Expr, what: &str) -> syn::Result<syn::Path> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => Ok(p.path.clone()),
        _ => Err(syn::Error::new_spanned(expr, format!("expected a path to {what}, like `my_module::my_fn`"))),
    }
}

/// How a bare integer is read where a duration is expected.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum BareInteger {
    /// Integers mean seconds (e.g. `ttl = 300`).
    Seconds,
    /// Integers are rejected: a unit must be written.
    Rejected,
}

/// A duration literal in nanoseconds: `"250ms"`, `"30s"`, `"5m"`, `"1h"`, `"1m30s"`, `"1.5s"`, or an integer of seconds
/// where allowed.
pub fn duration(expr: &Expr, what: &str, bare: BareInteger) -> syn::Result<u64> {
    const EXAMPLES: &str = "like \"250ms\", \"30s\", \"5m\" or \"1h\"";
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => parse_duration(&s.value()).map_err(|reason| {
            syn::Error::new(
                s.span(),
                format!("invalid duration {:?} for {what}: {reason}; write it {EXAMPLES}", s.value()),
            )
        }),
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) if bare == BareInteger::Seconds => {
            let secs: u64 = i.base10_parse()?;
            secs.checked_mul(1_000_000_000)
                .ok_or_else(|| syn::Error::new(i.span(), format!("{what} of {secs} seconds is too long")))
        }
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => Err(syn::Error::new(
            i.span(),
            format!("{what} needs a unit: write it as a string {EXAMPLES} (e.g. \"{}s\")", i.base10_digits()),
        )),
        _ => Err(syn::Error::new_spanned(expr, format!("expected a duration for {what}, {EXAMPLES}"))),
    }
}

/// Parses `"1h30m"`, `"250ms"`, `"1.5s"` into nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty".into());
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        let number: f64 = rest[..number_len]
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{:?} is not a number", &rest[..number_len]))?;
        rest = rest[number_len..].trim_start();
        let unit_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let nanos_per_unit: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "" => return Err("a unit is missing (ms, s, m, h)".into()),
            other => {
                let suggestion = match other.to_ascii_lowercase().as_str() {
                    "sec" | "secs" | "second" | "seconds" => Some("s"),
                    "min" | "mins" | "minute" | "minutes" => Some("m"),
                    "hr" | "hrs" | "hour" | "hours" => Some("h"),
                    "msec" | "millis" | "millisecond" | "milliseconds" => Some("ms"),
                    "day" | "days" => Some("d"),
                    short => closest(short, &["ns", "us", "ms", "s", "m", "h", "d"]).filter(|_| short.len() <= 3),
                };
                let hint = suggestion.map(|u| format!(" (did you mean `{u}`?)")).unwrap_or_default();
                return Err(format!("unknown unit `{other}`{hint}"));
            }
        };
        total += (number * nanos_per_unit).round() as u128;
        rest = rest[unit_len..].trim_start();
    }
    u64::try_from(total).map_err(|_| "it is too long".into())
}

/// A user expression as one operand, keeping its precedence without parentheses (which would trip `unused_parens`
/// in the user's crate): an invisible group, as `macro_rules!` gives an `$e:expr`.
/// A setting checked by its shared rule (`adk_settings`, also used by the runtime's builders), as an error on `value`.
pub fn rule<T>(value: &Expr, checked: Result<T, adk_settings::Invalid>) -> syn::Result<T> {
    checked.map_err(|invalid| syn::Error::new_spanned(value, invalid.reason))
}

pub fn operand(expr: &Expr) -> proc_macro2::Group {
    let mut group = proc_macro2::Group::new(proc_macro2::Delimiter::None, quote::ToTokens::to_token_stream(expr));
    group.set_span(syn::spanned::Spanned::span(expr));
    group
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("30s"), Ok(30_000_000_000));
        assert_eq!(parse_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert!(parse_duration("5").unwrap_err().contains("unit is missing"));
        assert_eq!(parse_duration("5 min").unwrap_err(), "unknown unit `min` (did you mean `m`?)");
        assert_eq!(parse_duration("2 seconds").unwrap_err(), "unknown unit `seconds` (did you mean `s`?)");
        assert_eq!(parse_duration("1 s"), Ok(1_000_000_000));
        assert!(parse_duration("3sec").unwrap_err().contains("unknown unit `sec`"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let valid = ["attempts", "backoff", "base", "max_delay", "jitter"];
        assert_eq!(closest("atempts", &valid), Some("attempts"));
        assert_eq!(closest("max_dealy", &valid), Some("max_delay"));
        assert_eq!(closest("jiter", &valid), Some("jitter"));
        assert_eq!(closest("bsae", &valid), Some("base"), "a swapped pair is one typo");
        assert_eq!(closest("frobnicate", &valid), None);
    }
}
