//! `#[retry]`: an inline loop over attempts; the runtime's cursor decides after each outcome.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::args::{self, Arg, BareInteger, Errors, Slot};
use crate::attrs::{Attribute, Kind, Needs, require_async, require_result};
use crate::expand::{Cx, Declare};
use crate::sig::{FnInfo, Receiver};

pub const PARAMS: &[&str] =
    &["attempts", "backoff", "base", "max_delay", "multiplier", "jitter", "when", "budget", "max_elapsed"];
const BACKOFFS: &[&str] = &["exponential", "constant", "linear"];
const JITTERS: &[&str] = &["full", "equal", "decorrelated", "none"];

pub struct Retry {
    pub span: Span,
    attempts: Option<u32>,
    backoff: Option<(String, Span)>,
    base: Option<u64>,
    max_delay: Option<u64>,
    multiplier: Option<f64>,
    jitter: Option<String>,
    pub when: Option<syn::Path>,
    budget: Option<f64>,
    max_elapsed: Option<u64>,
}

impl Retry {
    pub fn parse(args: Vec<Arg>, span: Span, errors: &mut Errors) -> Self {
        let attr = Kind::Retry.name();
        let mut attempts = Slot::default();
        let mut backoff = Slot::default();
        let mut base = Slot::default();
        let mut max_delay = Slot::default();
        let mut multiplier = Slot::default();
        let mut jitter = Slot::default();
        let mut when = Slot::default();
        let mut budget = Slot::default();
        let mut max_elapsed = Slot::default();
        // `jitter` alone is a flag (full jitter); everything else is `key = value`.
        let mut pairs = Vec::with_capacity(args.len());
        for arg in args {
            match arg {
                Arg::Bare(syn::Expr::Path(p)) if p.path.is_ident("jitter") => {
                    let key = p.path.get_ident().expect("checked").clone();
                    jitter.set_once(&key, Some("full".to_owned()), attr, errors);
                }
                other => pairs.push(other),
            }
        }
        for item in args::key_values(pairs, attr, PARAMS) {
            let Some((key, value)) = errors.ok(item) else { continue };
            let name = key.to_string();
            match name.as_str() {
                "attempts" => {
                    let v = errors
                        .ok(args::lit_u64(&value, "`attempts`")
                            .and_then(|n| args::rule(&value, adk_settings::attempts(n))));
                    attempts.set_once(&key, v, attr, errors);
                }
                "backoff" => {
                    let v = errors.ok(args::lit_str(&value, "`backoff`")
                        .and_then(|s| args::one_of(&s, BACKOFFS, "backoff", &value).map(|s| (s, value.span()))));
                    backoff.set_once(&key, v, attr, errors);
                }
                "base" | "max_delay" | "max_elapsed" => {
                    let (setting, slot) = match name.as_str() {
                        "base" => ("base", &mut base),
                        "max_delay" => ("max_delay", &mut max_delay),
                        _ => ("max_elapsed", &mut max_elapsed),
                    };
                    let v = errors.ok(args::duration(&value, &format!("`{name}`"), BareInteger::Rejected).and_then(
                        |nanos| match setting {
                            "base" => Ok(nanos),
                            _ => args::rule(&value, adk_settings::above_zero(setting, nanos)),
                        },
                    ));
                    slot.set_once(&key, v, attr, errors);
                }
                "multiplier" => {
                    let v = errors.ok(args::lit_f64(&value, "`multiplier`")
                        .and_then(|m| args::rule(&value, adk_settings::multiplier(m))));
                    multiplier.set_once(&key, v, attr, errors);
                }
                "jitter" => {
                    let v =
                        errors
                            .ok(args::lit_str(&value, "`jitter`")
                                .and_then(|s| args::one_of(&s, JITTERS, "jitter", &value)));
                    jitter.set_once(&key, v, attr, errors);
                }
                "when" => {
                    let v = errors.ok(args::path(&value, "a predicate `fn(&E) -> bool`"));
                    when.set_once(&key, v, attr, errors);
                }
                "budget" => {
                    let v =
                        errors
                            .ok(args::lit_f64(&value, "`budget`")
                                .and_then(|b| args::rule(&value, adk_settings::budget(b))));
                    budget.set_once(&key, v, attr, errors);
                }
                _ => errors.push(args::unknown_key(&key, attr, PARAMS)),
            }
        }
        let retry = Retry {
            span,
            attempts: attempts.take(),
            backoff: backoff.take(),
            base: base.get().copied(),
            max_delay: max_delay.get().copied(),
            multiplier: multiplier.get().copied(),
            jitter: jitter.take(),
            when: when.take(),
            budget: budget.take(),
            max_elapsed: max_elapsed.take(),
        };
        if let (Some(m), Some((kind, _))) = (multiplier.span(), &retry.backoff)
            && kind != "exponential"
        {
            errors.at(m, format!("`multiplier` only applies to `backoff = \"exponential\"`, not {kind:?}"));
        }
        if let (Some(base_nanos), Some(max), Some(max_span)) = (retry.base, retry.max_delay, max_delay.span())
            && let Err(invalid) = adk_settings::max_delay(base_nanos, max)
        {
            errors.at(max_span, invalid);
        }
        retry
    }
}

impl Attribute for Retry {
    fn kind(&self) -> Kind {
        Kind::Retry
    }

    fn span(&self) -> Span {
        self.span
    }

    fn check(&self, info: &FnInfo, errors: &mut Errors) {
        require_async(Kind::Retry, "it waits between attempts on tokio's timer", info, errors);
        require_result(Kind::Retry, info, errors);
        if info.receiver == Receiver::Value {
            errors.at(
                info.receiver_span,
                "#[adk::retry] calls the body again on each attempt, but `self` is taken by value and consumed by the first; take `&self` or `&mut self`",
            );
        }
    }

    fn needs(&self) -> Needs {
        Needs { classify: self.when.is_none(), ..Needs::default() }
    }

    fn expand(&self, cx: &Cx, inner: TokenStream) -> TokenStream {
        let k = &cx.krate;
        let mut settings = TokenStream::new();
        if let Some(n) = self.attempts {
            settings.extend(quote!(.with_attempts(#n)));
        }
        let backoff = match self.backoff.as_ref().map(|(s, _)| s.as_str()) {
            Some("constant") => Some(quote!(#k::__private::retry::Backoff::Constant)),
            Some("linear") => Some(quote!(#k::__private::retry::Backoff::Linear)),
            Some(_) | None => {
                self.multiplier.map(|m| quote!(#k::__private::retry::Backoff::Exponential { multiplier: #m }))
            }
        };
        if let Some(backoff) = backoff {
            settings.extend(quote!(.with_backoff(#backoff)));
        }
        for (method, nanos) in
            [("with_base", self.base), ("with_max_delay", self.max_delay), ("with_max_elapsed", self.max_elapsed)]
        {
            if let Some(nanos) = nanos {
                let method = syn::Ident::new(method, Span::call_site());
                settings.extend(quote!(.#method(#k::__private::Duration::from_nanos(#nanos))));
            }
        }
        if let Some(jitter) = &self.jitter {
            let variant = syn::Ident::new(
                match jitter.as_str() {
                    "full" => "Full",
                    "equal" => "Equal",
                    "decorrelated" => "Decorrelated",
                    _ => "None",
                },
                Span::call_site(),
            );
            settings.extend(quote!(.with_jitter(#k::__private::retry::Jitter::#variant)));
        }
        if let Some(ratio) = self.budget {
            settings.extend(quote!(.with_budget(#k::__private::retry::RetryBudget::new(
                #ratio, 10, #k::__private::Duration::from_secs(10)
            ))));
        }
        let verdict = match &self.when {
            Some(when) => {
                let e = cx.local("__adk_error");
                quote_spanned!(when.span()=> |#e| #k::__private::retry::by_predicate(#when(#e)))
            }
            None => cx.classify.to_token_stream(),
        };
        let reuse = cx.reuse_args(Kind::Retry, "for every attempt");
        let (attempts, result, done, delay) =
            (cx.local("__adk_attempts"), cx.local("__adk_result"), cx.local("__adk_done"), cx.local("__adk_delay"));
        let (declare, policy_static) = cx.policy(
            "__ADK_RETRY",
            quote!(#k::__private::retry::RetryPolicy),
            |function| quote!(#k::__private::retry::RetryPolicy::new(#function) #settings),
            Declare::No,
        );
        // With `max_elapsed`, each attempt runs under the retry's own deadline; without it, under the enclosing one.
        let run = match self.max_elapsed {
            Some(_) => quote!(#attempts.attempt(async { #reuse #inner }).await),
            None => quote!({ #reuse #inner }),
        };
        quote! {{
            #declare
            let mut #attempts = #policy_static.start();
            loop {
                let #result = #run;
                match #attempts.next(#result, #verdict) {
                    #k::__private::retry::Step::Done(#done) => break #done,
                    #k::__private::retry::Step::Retry(#delay) => #k::__private::retry::pause(#delay).await,
                }
            }
        }}
    }
}
