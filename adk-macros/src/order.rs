//! Rules about the stack as a whole: duplicates and orders that are almost certainly mistakes.
//!
//! Errors are for orders that defeat a layer outright; warnings (emitted as a deprecation note, the one warning a
//! stable proc-macro can raise) for orders that work but cost more than the user likely wants.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;

use crate::args::Errors;
use crate::attrs::{Kind, Layer};

/// Checks the stack; returns warning tokens to place in the function body.
pub fn check(layers: &[Layer], errors: &mut Errors) -> TokenStream {
    let mut warnings = TokenStream::new();
    for (index, layer) in layers.iter().enumerate() {
        let kind = layer.kind();
        if !kind.repeatable() && layers[..index].iter().any(|l| l.kind() == kind) {
            errors.at(
                layer.span(),
                format!(
                    "#[adk::{0}] appears twice on this function; one function has one {0} policy, so merge the parameters into one attribute",
                    kind.name()
                ),
            );
        }
    }
    let position = |kind: Kind| layers.iter().position(|l| l.kind() == kind);
    if let (Some(retry), Some(fallback)) = (position(Kind::Retry), position(Kind::Fallback))
        && retry < fallback
    {
        errors.at(
            layers[retry].span(),
            "#[adk::retry] is outside #[adk::fallback]: the fallback answers every failure, so the retry never sees one; put #[adk::fallback] above #[adk::retry]",
        );
    }
    if let (Some(retry), Some(cached)) = (position(Kind::Retry), position(Kind::Cached))
        && retry < cached
    {
        errors.at(
            layers[cached].span(),
            "#[adk::cached] is inside #[adk::retry]: every attempt would consult the cache and a hit would still pay for the retry; put #[adk::cached] above #[adk::retry]",
        );
    }
    if let (Some(cached), Some(fallback)) = (position(Kind::Cached), position(Kind::Fallback))
        && cached < fallback
    {
        warnings.extend(warning(
            layers[cached].span(),
            "#[adk::cached] is above #[adk::fallback], so fallback answers are cached as if the function had answered; put #[adk::fallback] above #[adk::cached]",
        ));
    }
    if let (Some(bulkhead), Some(retry)) = (position(Kind::Bulkhead), position(Kind::Retry))
        && bulkhead < retry
    {
        warnings.extend(warning(
            layers[bulkhead].span(),
            "#[adk::bulkhead] is above #[adk::retry], so a call holds its slot through every backoff wait; put #[adk::bulkhead] below #[adk::retry]",
        ));
    }
    if let Some(observed) = position(Kind::Observed)
        && observed > 0
    {
        warnings.extend(warning(
            layers[observed].span(),
            "#[adk::observed] is not the outermost attribute, so its span and metrics see each layer's retries or refusals as separate calls; put it first",
        ));
    }
    let timeouts: Vec<usize> =
        layers.iter().enumerate().filter(|(_, l)| l.kind() == Kind::Timeout).map(|(i, _)| i).collect();
    for pair in timeouts.windows(2) {
        let between = &layers[pair[0] + 1..pair[1]];
        if !between.iter().any(|l| l.kind() == Kind::Retry) {
            warnings.extend(warning(
                layers[pair[1]].span(),
                "two #[adk::timeout]s with no #[adk::retry] between them: only the shorter can ever fire; keep one, or put the total timeout above #[adk::retry] and the per-attempt one below it",
            ));
        }
    }
    warnings
}

/// A compile-time warning at `span`.
pub fn warning(span: Span, message: &str) -> TokenStream {
    quote_spanned! {span=>
        {
            #[deprecated(note = #message)]
            #[allow(non_upper_case_globals)]
            const adk_attribute_order: () = ();
            let () = adk_attribute_order;
        }
    }
}
