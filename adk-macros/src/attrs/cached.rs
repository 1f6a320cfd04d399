//! `#[cached(ttl = "5m", tti = "1m", max_entries = 10_000, key = expr, name = "...")]`: answer from a cache keyed by
//! the arguments (or `key`), running the layers inside once for all concurrent callers missing on one key.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};

use crate::args::{self, Arg, BareInteger, Errors, Slot};
use crate::attrs::{Attribute, Kind};
use crate::expand::{Cx, Declare};
use crate::sig::{Borrow, FnInfo};

pub const PARAMS: &[&str] = &["ttl", "tti", "max_entries", "key", "name", "backend"];
const BACKENDS: &[&str] = &["memory", "redis"];

pub struct Cached {
    pub span: Span,
    ttl: Option<u64>,
    tti: Option<u64>,
    max_entries: Option<u64>,
    key: Option<syn::Expr>,
    name: Option<String>,
    /// The span of `backend = "redis"`, when given.
    redis: Option<Span>,
}

impl Cached {
    pub fn parse(args: Vec<Arg>, span: Span, errors: &mut Errors) -> Self {
        let attr = Kind::Cached.name();
        let mut ttl = Slot::default();
        let mut tti = Slot::default();
        let mut max_entries = Slot::default();
        let mut key = Slot::default();
        let mut name = Slot::default();
        let mut backend = Slot::default();
        for item in args::key_values(args, attr, PARAMS) {
            let Some((k, value)) = errors.ok(item) else { continue };
            match k.to_string().as_str() {
                "ttl" | "tti" => {
                    let what = format!("`{k}` (an integer means seconds)");
                    let setting = if k == "ttl" { "ttl" } else { "tti" };
                    let nanos = errors.ok(args::duration(&value, &what, BareInteger::Seconds)
                        .and_then(|n| args::rule(&value, adk_settings::expiry(setting, n))));
                    if k == "ttl" {
                        ttl.set_once(&k, nanos, attr, errors)
                    } else {
                        tti.set_once(&k, nanos, attr, errors)
                    }
                }
                "max_entries" => {
                    let n = errors.ok(args::lit_u64(&value, "`max_entries`")
                        .and_then(|n| args::rule(&value, adk_settings::max_entries(n))));
                    max_entries.set_once(&k, n, attr, errors);
                }
                "key" => key.set_once(&k, Some(value), attr, errors),
                "name" => {
                    let n = errors.ok(args::instance_name(&value));
                    name.set_once(&k, n, attr, errors);
                }
                "backend" => {
                    let b = errors
                        .ok(args::lit_str(&value, "`backend`")
                            .and_then(|b| args::one_of(&b, BACKENDS, "backend", &value)));
                    backend.set_once(&k, b, attr, errors);
                }
                _ => errors.push(args::unknown_key(&k, attr, PARAMS)),
            }
        }
        let redis = backend.span().filter(|_| backend.get().is_some_and(|b: &String| b == "redis"));
        Cached {
            span,
            redis,
            ttl: ttl.take(),
            tti: tti.take(),
            max_entries: max_entries.take(),
            key: key.take(),
            name: name.take(),
        }
    }
}

impl Attribute for Cached {
    fn kind(&self) -> Kind {
        Kind::Cached
    }

    fn span(&self) -> Span {
        self.span
    }

    fn check(&self, info: &FnInfo, errors: &mut Errors) {
        if let (Some(span), false) = (self.redis, info.is_async) {
            errors.at(span, "`backend = \"redis\"` needs an async function: a lookup in Redis is a network round trip");
        }
        if info.is_method() && self.key.is_none() {
            let args: Vec<String> = info.params.iter().map(owned_key_part).collect();
            let (with_self, without_self) = match args.as_slice() {
                [] => ("self.id.clone()".to_owned(), "()".to_owned()),
                [one] => (format!("(self.tenant.clone(), {one})"), one.clone()),
                many => (format!("(self.tenant.clone(), {})", many.join(", ")), format!("({})", many.join(", "))),
            };
            errors.spanned(
                &info.receiver_tokens,
                format!(
                    "#[adk::cached] on a method needs `key = ...`: `self` is not part of the default key, so receivers with different state (tenants, clients) would be served each other's answers\n  \
                     key on what tells them apart: #[adk::cached(key = {with_self})]\n  \
                     or share entries across every receiver deliberately: #[adk::cached(key = {without_self})]"
                ),
            );
        }
    }

    fn expand(&self, cx: &Cx, inner: TokenStream) -> TokenStream {
        let k = &cx.krate;
        let call_site = &cx.call_site;
        let mut policy = TokenStream::new();
        if let Some(name) = &self.name {
            policy.extend(quote!(.with_name(#name)));
        }
        for (method, nanos) in [("with_ttl", self.ttl), ("with_tti", self.tti)] {
            if let Some(nanos) = nanos {
                let method = syn::Ident::new(method, Span::call_site());
                policy.extend(quote!(.#method(#k::__private::Duration::from_nanos(#nanos))));
            }
        }
        if let Some(n) = self.max_entries {
            policy.extend(quote!(.with_max_entries(#n)));
        }
        let key = match &self.key {
            Some(expr) => args::operand(expr).to_token_stream(),
            None => self.key_of_arguments(cx),
        };
        // A `Result` caches its `Ok` values only; any other output is cached whole.
        let mode = match cx.info.output_is_named_result() {
            true => quote_spanned!(cx.info.output_span=> #k::__private::cache::OkValues),
            false => quote_spanned!(cx.info.output_span=> #k::__private::cache::Outputs),
        };
        let (declare, policy_static) = cx.policy(
            "__ADK_CACHE",
            quote!(#k::__private::cache::CachePolicy),
            |function| quote!(#k::__private::cache::CachePolicy::new(#function, #call_site) #policy),
            Declare::Shared { named: self.name.is_some(), create: "handle" },
        );
        let lookup = if let (Some(span), true) = (self.redis, cx.info.is_async) {
            // Through the facade, which names its `redis` feature in the error when it is off.
            let policy = quote_spanned!(span=> #k::__private::cache_redis::<()>(&#policy_static));
            quote!(#policy.get_or_run_redis(#key, async { #inner }, #mode).await)
        } else if cx.info.is_async {
            quote!(#policy_static.get_or_run(#key, async { #inner }, #mode).await)
        } else {
            quote!(#policy_static.get_or_run_sync(#key, || #inner, #mode))
        };
        quote! {{
            #declare
            #lookup
        }}
    }
}

impl Cached {
    /// `(a.clone(), b.to_owned(), ..)`: every argument but the receiver, owned, each checked to be usable as a key.
    fn key_of_arguments(&self, cx: &Cx) -> TokenStream {
        let k = &cx.krate;
        let parts = cx.info.params.iter().map(|param| {
            let ident = &param.ident;
            let shown = crate::expand::escape_braces(&crate::sig::pretty(&param.span_tokens));
            let message = format!(
                "argument `{shown}` is part of the cache key, so #[adk::cached] needs `{{Self}}` to be `Hash + Eq + Clone + Send + Sync + 'static`"
            );
            let note = "choose the key yourself with `key = ...` (e.g. `key = request.id`)";
            let span = param.ident.span();
            let (bound_impl, call) = match param.borrow {
                Borrow::Owned => (
                    quote_spanned! {span=>
                        impl<T: #k::__private::cache::CacheKey> __AdkKey for T {
                            type Key = T;
                            #[inline]
                            fn __adk_key(&self) -> T { ::core::clone::Clone::clone(self) }
                        }
                    },
                    quote_spanned!(span=> __AdkKey::__adk_key(&#ident)),
                ),
                Borrow::Shared | Borrow::Unique => (
                    quote_spanned! {span=>
                        impl<T> __AdkKey for T
                        where
                            T: ?::core::marker::Sized + ::std::borrow::ToOwned,
                            <T as ::std::borrow::ToOwned>::Owned: #k::__private::cache::CacheKey,
                        {
                            type Key = <T as ::std::borrow::ToOwned>::Owned;
                            #[inline]
                            fn __adk_key(&self) -> Self::Key { ::std::borrow::ToOwned::to_owned(self) }
                        }
                    },
                    quote_spanned!(span=> __AdkKey::__adk_key(&*#ident)),
                ),
            };
            quote_spanned! {span=>
                {
                    #[diagnostic::on_unimplemented(message = #message, label = "not usable as a cache key", note = #note)]
                    trait __AdkKey { type Key; fn __adk_key(&self) -> Self::Key; }
                    #bound_impl
                    #call
                }
            }
        });
        quote!((#(#parts,)*))
    }
}

/// How an argument appears in a suggested key: owned, as the default key would hold it.
fn owned_key_part(param: &crate::sig::Param) -> String {
    let ident = &param.ident;
    match param.borrow {
        Borrow::Owned => format!("{ident}.clone()"),
        Borrow::Shared | Borrow::Unique => format!("{ident}.to_owned()"),
    }
}
