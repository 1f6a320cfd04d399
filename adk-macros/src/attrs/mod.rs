//! One module per attribute: `parse` (typed arguments) -> `check` (against the function and the stack) -> `expand`.

pub mod fallback;
pub mod retry;
pub mod timeout;

use proc_macro2::{Span, TokenStream};

use crate::args::{Arg, Errors};
use crate::expand::Cx;
use crate::sig::FnInfo;
use crate::stack::Entry;

/// The attributes adk knows, by the name users write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Fallback,
    Timeout,
    Retry,
}

impl Kind {
    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "fallback" => Kind::Fallback,
            "timeout" => Kind::Timeout,
            "retry" => Kind::Retry,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Fallback => "fallback",
            Kind::Timeout => "timeout",
            Kind::Retry => "retry",
        }
    }

    /// Whether one function may carry this attribute more than once (an outer total timeout and an inner
    /// per-attempt one are both meaningful).
    pub fn repeatable(self) -> bool {
        matches!(self, Kind::Timeout)
    }
}

/// A parsed attribute of the stack.
pub enum Layer {
    Fallback(fallback::Fallback),
    Timeout(timeout::Timeout),
    Retry(retry::Retry),
}

/// What a layer needs bound once at the top of the function.
#[derive(Default, Clone, Copy)]
pub struct Needs {
    /// `__adk_refuse`: turns an `adk::Error` into the function's own return value.
    pub refuse: bool,
    /// `__adk_classify`: the `Classify`-based verdict on the function's error type.
    pub classify: bool,
}

impl Layer {
    pub fn parse(entry: Entry, errors: &mut Errors) -> Option<Layer> {
        let args: Vec<Arg> = entry.args.into_iter().filter(|a| !crate::stack::is_crate_key(a)).collect();
        let before = errors.len();
        let layer = match entry.kind {
            Kind::Fallback => Layer::Fallback(fallback::Fallback::parse(args, entry.span, errors)),
            Kind::Timeout => Layer::Timeout(timeout::Timeout::parse(args, entry.span, errors)),
            Kind::Retry => Layer::Retry(retry::Retry::parse(args, entry.span, errors)),
        };
        (errors.len() == before).then_some(layer)
    }

    pub fn kind(&self) -> Kind {
        match self {
            Layer::Fallback(_) => Kind::Fallback,
            Layer::Timeout(_) => Kind::Timeout,
            Layer::Retry(_) => Kind::Retry,
        }
    }

    pub fn span(&self) -> Span {
        match self {
            Layer::Fallback(l) => l.span,
            Layer::Timeout(l) => l.span,
            Layer::Retry(l) => l.span,
        }
    }

    pub fn check(&self, info: &FnInfo, errors: &mut Errors) {
        match self {
            Layer::Fallback(l) => l.check(info, errors),
            Layer::Timeout(l) => l.check(info, errors),
            Layer::Retry(l) => l.check(info, errors),
        }
    }

    pub fn needs(&self) -> Needs {
        match self {
            Layer::Fallback(_) => Needs::default(),
            Layer::Timeout(_) => Needs { refuse: true, classify: false },
            Layer::Retry(l) => Needs { refuse: false, classify: l.when.is_none() },
        }
    }

    pub fn expand(&self, cx: &Cx, inner: TokenStream) -> TokenStream {
        match self {
            Layer::Fallback(l) => l.expand(cx, inner),
            Layer::Timeout(l) => l.expand(cx, inner),
            Layer::Retry(l) => l.expand(cx, inner),
        }
    }
}

/// Checks shared by the policies that answer with `Err(adk::Error)` or inspect errors: the function must return a
/// `Result` (aliases are checked by the type checker, spanned at the return type).
pub fn require_result(kind: Kind, info: &FnInfo, errors: &mut Errors) {
    if let Some(found) = info.output_cannot_be_result() {
        errors.at(
            info.output_span,
            format!(
                "#[adk::{}] needs the function to return `Result<T, E>` with `E: From<adk::Error>`, but `{}` returns {found}",
                kind.name(),
                info.name
            ),
        );
    }
}

/// Checks for policies that wait on tokio's timer: the function must be `async`.
pub fn require_async(kind: Kind, what: &str, info: &FnInfo, errors: &mut Errors) {
    if !info.is_async {
        errors.at(
            info.name.span(),
            format!(
                "#[adk::{}] needs an `async fn`: {what}; make `{}` async or remove the attribute",
                kind.name(),
                info.name
            ),
        );
    }
}
