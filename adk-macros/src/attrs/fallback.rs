//! `#[fallback(a, b, value = expr, on = path)]`: when the layers inside fail, answer with the alternatives in order.
//!
//! Each alternative is called with the function's own arguments, spanned at its path, so a signature that differs
//! from the function's is a type error pointing at the alternative.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::args::{self, Arg, Errors, Slot};
use crate::attrs::{Attribute, Kind, require_result};
use crate::expand::{Cx, Declare};
use crate::sig::{FnInfo, Receiver};

pub const PARAMS: &[&str] = &["value", "on"];

pub struct Fallback {
    pub span: Span,
    alternatives: Vec<syn::Path>,
    value: Option<syn::Expr>,
    on: Option<syn::Path>,
}

impl Fallback {
    pub fn parse(args: Vec<Arg>, span: Span, errors: &mut Errors) -> Self {
        let attr = Kind::Fallback.name();
        let mut alternatives = Vec::new();
        let mut value = Slot::default();
        let mut on = Slot::default();
        for arg in args {
            match arg {
                Arg::Bare(expr) => {
                    if value.get().is_some() {
                        errors.spanned(&expr, "`value = ...` answers every failure, so it must come last in the chain");
                    }
                    if let Some(path) = errors.ok(args::path(&expr, "a fallback function with the same signature")) {
                        alternatives.push(path);
                    }
                }
                Arg::KeyValue { key, value: v } if key == "value" => value.set_once(&key, Some(v), attr, errors),
                Arg::KeyValue { key, value: v } if key == "on" => {
                    let path = errors.ok(args::path(&v, "a predicate `fn(&E) -> bool`"));
                    on.set_once(&key, path, attr, errors);
                }
                Arg::KeyValue { key, .. } | Arg::List { key, .. } => {
                    errors.push(args::unknown_key(&key, attr, PARAMS));
                }
            }
        }
        if alternatives.is_empty() && value.get().is_none() {
            errors.at(
                span,
                "#[adk::fallback] needs something to answer with: a function with the same signature, like #[adk::fallback(cheaper_model)], a chain #[adk::fallback(a, b)], or #[adk::fallback(value = ...)]",
            );
        }
        Fallback { span, alternatives, value: value.take(), on: on.take() }
    }
}

impl Attribute for Fallback {
    fn kind(&self) -> Kind {
        Kind::Fallback
    }

    fn span(&self) -> Span {
        self.span
    }

    fn check(&self, info: &FnInfo, errors: &mut Errors) {
        require_result(Kind::Fallback, info, errors);
        if info.receiver == Receiver::Value && !self.alternatives.is_empty() {
            errors.at(
                info.receiver_span,
                "#[adk::fallback] calls the alternative with the same receiver, but `self` is taken by value and consumed by the first call; take `&self` or `&mut self`",
            );
        }
    }

    fn expand(&self, cx: &Cx, inner: TokenStream) -> TokenStream {
        let k = &cx.krate;
        let (declare, policy) = cx.policy(
            "__ADK_FALLBACK",
            quote!(#k::__private::fallback::FallbackPolicy),
            |function| quote!(#k::__private::fallback::FallbackPolicy::new(#function)),
            Declare::No,
        );
        let (result, error, other) = (cx.local("__adk_result"), cx.local("__adk_error"), cx.local("__adk_other"));
        let applies = match &self.on {
            Some(on) => quote_spanned!(on.span()=> #on(&#error)),
            None => quote!(true),
        };
        let reuse = cx.reuse_args(Kind::Fallback, "so the fallback can be called with it");

        // The last answer is called with the arguments themselves; earlier ones with clones.
        let mut chain = match &self.value {
            Some(value) => quote_spanned!(value.span()=> ::core::result::Result::Ok(#value)),
            None => self.call(cx, self.alternatives.last().expect("checked at parse")),
        };
        let earlier = if self.value.is_some() {
            &self.alternatives[..]
        } else {
            &self.alternatives[..self.alternatives.len() - 1]
        };
        for (index, alternative) in earlier.iter().enumerate().rev() {
            let call = self.call(cx, alternative);
            let next = index + 1;
            chain = quote! {
                match { #reuse #call } {
                    ::core::result::Result::Err(#error) if #applies => {
                        #policy.engaged(#next);
                        #chain
                    }
                    #other => #other,
                }
            };
        }
        quote! {{
            #declare
            let #result = { #reuse #inner };
            match #result {
                ::core::result::Result::Err(#error) if #applies => {
                    #policy.engaged(0);
                    #chain
                }
                #other => #other,
            }
        }}
    }
}

impl Fallback {
    /// `alternative(args..)` (or `Self::alternative(self, args..)` on methods), awaited for async functions, spanned
    /// at the alternative's path so signature mismatches point there.
    fn call(&self, cx: &Cx, alternative: &syn::Path) -> TokenStream {
        let span = alternative.span();
        // The arguments carry the alternative's span too, so a mismatch is reported at the alternative alone.
        let args = cx.info.params.iter().map(|p| syn::Ident::new(&p.ident.to_string(), span));
        let receiver = (cx.info.receiver != Receiver::None).then(|| quote!(self,));
        let callee = match (cx.info.receiver, alternative.get_ident()) {
            (Receiver::None, _) | (_, None) => quote!(#alternative),
            (_, Some(ident)) => quote_spanned!(span=> Self::#ident),
        };
        if cx.info.is_async {
            // Boxed: the alternative's future is only built when it answers, and the caller's future stays small.
            quote_spanned!(span=> ::std::boxed::Box::pin(#callee(#receiver #(#args),*)).await)
        } else {
            quote_spanned!(span=> #callee(#receiver #(#args),*))
        }
    }
}
