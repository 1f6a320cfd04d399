//! `#[circuit_breaker(name = "openai", failure_rate = 0.5, ...)]`: stop calling a failing dependency.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::args::{self, Arg, BareInteger, Errors, Slot};
use crate::attrs::{Attribute, Kind, Needs, require_async, require_result};
use crate::expand::{Cx, Declare};
use crate::sig::FnInfo;

pub const PARAMS: &[&str] = &[
    "name",
    "failure_rate",
    "min_calls",
    "window",
    "slow_call",
    "slow_rate",
    "open_for",
    "max_open_for",
    "half_open_calls",
    "record",
];

enum Window {
    Calls(u64),
    Time(u64),
}

pub struct CircuitBreaker {
    pub span: Span,
    name: Option<String>,
    failure_rate: Option<f64>,
    min_calls: Option<u64>,
    window: Option<Window>,
    slow_call: Option<u64>,
    slow_rate: Option<f64>,
    open_for: Option<u64>,
    max_open_for: Option<u64>,
    half_open_calls: Option<u64>,
    pub record: Option<syn::Path>,
}

/// A share of the calls in the window, in (0, 1].
fn rate(value: &syn::Expr, key: &'static str) -> syn::Result<f64> {
    args::rule(value, adk_settings::share(key, args::lit_f64(value, &format!("`{key}`"))?))
}

/// A count checked by `rule`.
fn count(value: &syn::Expr, key: &str, rule: fn(u64) -> Result<u32, adk_settings::Invalid>) -> syn::Result<u64> {
    args::rule(value, rule(args::lit_u64(value, &format!("`{key}`"))?)).map(u64::from)
}

/// The runtime's default `open_for`, in nanoseconds, for comparing `max_open_for` with it.
const DEFAULT_OPEN_FOR: u64 = 60_000_000_000;

impl CircuitBreaker {
    pub fn parse(args: Vec<Arg>, span: Span, errors: &mut Errors) -> Self {
        let attr = Kind::CircuitBreaker.name();
        let mut name = Slot::default();
        let mut failure_rate = Slot::default();
        let mut min_calls = Slot::default();
        let mut window = Slot::default();
        let mut slow_call = Slot::default();
        let mut slow_rate = Slot::default();
        let mut open_for = Slot::default();
        let mut max_open_for = Slot::default();
        let mut half_open_calls = Slot::default();
        let mut record = Slot::default();
        for item in args::key_values(args, attr, PARAMS) {
            let Some((key, value)) = errors.ok(item) else { continue };
            let duration = |errors: &mut Errors, what: &'static str| {
                errors.ok(args::duration(&value, &format!("`{what}`"), BareInteger::Rejected)
                    .and_then(|n| args::rule(&value, adk_settings::above_zero(what, n))))
            };
            match key.to_string().as_str() {
                "name" => name.set_once(&key, errors.ok(args::instance_name(&value)), attr, errors),
                "failure_rate" => failure_rate.set_once(&key, errors.ok(rate(&value, "failure_rate")), attr, errors),
                "slow_rate" => slow_rate.set_once(&key, errors.ok(rate(&value, "slow_rate")), attr, errors),
                "min_calls" => {
                    let n = errors.ok(count(&value, "min_calls", adk_settings::min_calls));
                    min_calls.set_once(&key, n, attr, errors);
                }
                "half_open_calls" => {
                    let n = errors.ok(count(&value, "half_open_calls", adk_settings::half_open_calls));
                    half_open_calls.set_once(&key, n, attr, errors);
                }
                "window" => {
                    let w = match &value {
                        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(_), .. }) => {
                            errors.ok(count(&value, "window", adk_settings::call_window)).map(Window::Calls)
                        }
                        _ => errors
                            .ok(args::duration(
                                &value,
                                "`window` (a count like `20` or a time like \"60s\")",
                                BareInteger::Rejected,
                            )
                            .and_then(|n| args::rule(&value, adk_settings::time_window(n))))
                            .map(Window::Time),
                    };
                    window.set_once(&key, w, attr, errors);
                }
                "slow_call" => {
                    let d = duration(errors, "slow_call");
                    slow_call.set_once(&key, d, attr, errors)
                }
                "open_for" => {
                    let d = duration(errors, "open_for");
                    open_for.set_once(&key, d, attr, errors)
                }
                "max_open_for" => {
                    let d = duration(errors, "max_open_for");
                    max_open_for.set_once(&key, d, attr, errors)
                }
                "record" => {
                    let p = errors.ok(args::path(&value, "a predicate `fn(&E) -> bool`"));
                    record.set_once(&key, p, attr, errors);
                }
                _ => errors.push(args::unknown_key(&key, attr, PARAMS)),
            }
        }
        if let (Some(span), Err(invalid)) =
            (slow_rate.span(), adk_settings::slow_rate_needs_slow_call(slow_call.get().copied()))
        {
            errors.at(span, invalid);
        }
        if let (Some(max), Some(span)) = (max_open_for.get(), max_open_for.span()) {
            let open = open_for.get().copied().unwrap_or(DEFAULT_OPEN_FOR);
            if let Err(invalid) = adk_settings::max_open_for(open, *max) {
                errors.at(span, invalid);
            }
        }
        CircuitBreaker {
            span,
            name: name.take(),
            failure_rate: failure_rate.take(),
            min_calls: min_calls.take(),
            window: window.take(),
            slow_call: slow_call.take(),
            slow_rate: slow_rate.take(),
            open_for: open_for.take(),
            max_open_for: max_open_for.take(),
            half_open_calls: half_open_calls.take(),
            record: record.take(),
        }
    }
}

impl Attribute for CircuitBreaker {
    fn kind(&self) -> Kind {
        Kind::CircuitBreaker
    }

    fn span(&self) -> Span {
        self.span
    }

    fn check(&self, info: &FnInfo, errors: &mut Errors) {
        require_async(Kind::CircuitBreaker, "its open state and slow calls are timed on tokio's clock", info, errors);
        require_result(Kind::CircuitBreaker, info, errors);
    }

    fn needs(&self) -> Needs {
        Needs { refuse: true, record: self.record.is_none(), ..Needs::default() }
    }

    fn expand(&self, cx: &Cx, inner: TokenStream) -> TokenStream {
        let k = &cx.krate;
        let cb = quote!(#k::__private::circuit_breaker);
        let duration = |nanos: u64| quote!(#k::__private::Duration::from_nanos(#nanos));
        let mut config = quote!(#cb::CircuitBreakerConfig::new());
        if let Some(rate) = self.failure_rate {
            config.extend(quote!(.with_failure_rate(#rate)));
        }
        if let Some(n) = self.min_calls {
            let n = n as u32;
            config.extend(quote!(.with_min_calls(#n)));
        }
        match self.window {
            Some(Window::Calls(n)) => {
                let n = n as u32;
                config.extend(quote!(.with_window(#cb::Window::Calls(#n))));
            }
            Some(Window::Time(nanos)) => {
                let d = duration(nanos);
                config.extend(quote!(.with_window(#cb::Window::Time(#d))));
            }
            None => {}
        }
        if let Some(nanos) = self.slow_call {
            let (d, rate) = (duration(nanos), self.slow_rate.unwrap_or(1.0));
            config.extend(quote!(.with_slow_call(#d, #rate)));
        }
        if let Some(nanos) = self.open_for {
            let d = duration(nanos);
            config.extend(quote!(.with_open_for(#d)));
        }
        if let Some(nanos) = self.max_open_for {
            let d = duration(nanos);
            config.extend(quote!(.with_max_open_for(#d)));
        }
        if let Some(n) = self.half_open_calls {
            let n = n as u32;
            config.extend(quote!(.with_half_open_calls(#n)));
        }
        let name = |function: &TokenStream| match &self.name {
            Some(name) => name.to_token_stream(),
            None => function.clone(),
        };
        let record = match &self.record {
            Some(path) => {
                let e = cx.local("__adk_error");
                quote_spanned!(path.span()=> |#e: &_| #cb::by_predicate(#path(#e)))
            }
            None => cx.record.to_token_stream(),
        };
        let (call_site, refuse) = (&cx.call_site, &cx.refuse);
        let (declare, policy) = cx.policy(
            "__ADK_BREAKER",
            quote!(#cb::CircuitBreakerPolicy),
            |function| {
                let name = name(function);
                quote!(#cb::CircuitBreakerPolicy::new(#name, #call_site, #config))
            },
            Declare::Shared { named: self.name.is_some(), create: "breaker" },
        );
        quote! {{
            #declare
            #policy.run(async { #inner }, #record, #refuse).await
        }}
    }
}
