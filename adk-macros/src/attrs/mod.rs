//! One module per attribute: `parse` (typed arguments) -> `check` (against the function and the stack) -> `expand`.

pub mod bulkhead;
pub mod cached;
pub mod circuit_breaker;
pub mod fallback;
pub mod observed;
pub mod rate_limited;
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
    Bulkhead,
    Cached,
    CircuitBreaker,
    Fallback,
    Observed,
    RateLimited,
    Timeout,
    Retry,
}

impl Kind {
    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "bulkhead" => Kind::Bulkhead,
            "cached" => Kind::Cached,
            "circuit_breaker" => Kind::CircuitBreaker,
            "fallback" => Kind::Fallback,
            "observed" => Kind::Observed,
            "rate_limited" => Kind::RateLimited,
            "timeout" => Kind::Timeout,
            "retry" => Kind::Retry,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Bulkhead => "bulkhead",
            Kind::Cached => "cached",
            Kind::CircuitBreaker => "circuit_breaker",
            Kind::Fallback => "fallback",
            Kind::Observed => "observed",
            Kind::RateLimited => "rate_limited",
            Kind::Timeout => "timeout",
            Kind::Retry => "retry",
        }
    }

    /// Whether one function may carry this attribute more than once: an outer total timeout and an inner
    /// per-attempt one, or a per-provider and a per-user rate limit, are both meaningful.
    pub fn repeatable(self) -> bool {
        matches!(self, Kind::Timeout | Kind::RateLimited)
    }
}

/// A parsed attribute of the stack: `check` against the function, then `expand` around the layers inside it.
pub trait Attribute {
    fn kind(&self) -> Kind;
    /// Where errors about the attribute as a whole point.
    fn span(&self) -> Span;
    fn check(&self, info: &FnInfo, errors: &mut Errors);
    /// What the attribute needs bound once at the top of the function.
    fn needs(&self) -> Needs {
        Needs::default()
    }
    /// Wraps `inner`, an expression of the function's output type, into another.
    fn expand(&self, cx: &Cx, inner: TokenStream) -> TokenStream;
}

pub type Layer = Box<dyn Attribute>;

/// What a layer needs bound once at the top of the function.
#[derive(Default, Clone, Copy)]
pub struct Needs {
    /// `__adk_refuse`: turns an `adk::Error` into the function's own return value.
    pub refuse: bool,
    /// `__adk_classify`: the `Classify`-based retry verdict on the function's error type.
    pub classify: bool,
    /// `__adk_record`: the `Classify`-based breaker verdict on the function's error type.
    pub record: bool,
}

impl Needs {
    pub fn union(self, other: Needs) -> Needs {
        Needs {
            refuse: self.refuse || other.refuse,
            classify: self.classify || other.classify,
            record: self.record || other.record,
        }
    }
}

/// Reads one attribute's arguments; `None` if they hold a mistake (reported in `errors`).
pub fn parse(entry: Entry, errors: &mut Errors) -> Option<Layer> {
    let args: Vec<Arg> = entry.args.into_iter().filter(|a| !crate::stack::is_crate_key(a)).collect();
    let before = errors.len();
    let span = entry.span;
    let layer: Layer = match entry.kind {
        Kind::Bulkhead => Box::new(bulkhead::Bulkhead::parse(args, span, errors)),
        Kind::Cached => Box::new(cached::Cached::parse(args, span, errors)),
        Kind::CircuitBreaker => Box::new(circuit_breaker::CircuitBreaker::parse(args, span, errors)),
        Kind::Fallback => Box::new(fallback::Fallback::parse(args, span, errors)),
        Kind::Observed => Box::new(observed::Observed::parse(args, span, errors)),
        Kind::RateLimited => Box::new(rate_limited::RateLimited::parse(args, span, errors)),
        Kind::Retry => Box::new(retry::Retry::parse(args, span, errors)),
        Kind::Timeout => Box::new(timeout::Timeout::parse(args, span, errors)),
    };
    (errors.len() == before).then_some(layer)
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
