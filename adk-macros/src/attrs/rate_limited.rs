//! `#[rate_limited(rpm = 60, burst = 10, key = user.id, name = "openai", cost = req.max_tokens, ...)]`: admit, refuse
//! or delay each call against a quota.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use crate::args::{self, Arg, BareInteger, Errors, Slot};
use crate::attrs::{Attribute, Kind, Needs, require_async, require_result};
use crate::expand::{Cx, Declare};
use crate::sig::FnInfo;

pub const PARAMS: &[&str] = &[
    "rps",
    "rpm",
    "rph",
    "rpd",
    "rate",
    "burst",
    "key",
    "name",
    "strategy",
    "cost",
    "on_limit",
    "max_wait",
    "backend",
    "on_backend_error",
    "fleet_size",
];
const BACKENDS: &[&str] = &["memory", "redis"];
const ON_BACKEND_ERROR: &[&str] = &["local", "allow", "deny"];
const STRATEGIES: &[&str] = &["gcra", "token_bucket", "leaky_bucket", "fixed_window", "sliding_window"];
const ON_LIMIT: &[&str] = &["reject", "wait"];
const NANOS_PER_SEC: u64 = 1_000_000_000;

pub struct RateLimited {
    pub span: Span,
    /// (count, period in nanoseconds)
    rate: (u64, u64),
    burst: Option<u64>,
    key: Option<syn::Expr>,
    name: Option<String>,
    strategy: Option<String>,
    cost: Option<syn::Expr>,
    max_wait: Option<Option<u64>>,
    /// `Some((on_backend_error, fleet_size))` for `backend = "redis"`.
    redis: Option<(u8, u32)>,
}

/// `"90000/min"`, `"10/s"`, `"5/30s"` -> (count, period in nanoseconds).
fn parse_rate(text: &str) -> Result<(u64, u64), String> {
    let (count, period) = text.split_once('/').ok_or("write it as \"count/period\", like \"100/min\" or \"5/30s\"")?;
    let count: u64 =
        count.trim().replace('_', "").parse().map_err(|_| format!("{:?} is not a whole number", count.trim()))?;
    let period = period.trim();
    let nanos = match period {
        "s" | "sec" | "second" => NANOS_PER_SEC,
        "m" | "min" | "minute" => 60 * NANOS_PER_SEC,
        "h" | "hour" => 3600 * NANOS_PER_SEC,
        "d" | "day" => 86_400 * NANOS_PER_SEC,
        other => args::parse_duration(other).map_err(|e| format!("bad period {other:?}: {e}"))?,
    };
    if nanos == 0 {
        return Err("the period cannot be zero".into());
    }
    Ok((count, nanos))
}

impl RateLimited {
    pub fn parse(args: Vec<Arg>, span: Span, errors: &mut Errors) -> Self {
        let attr = Kind::RateLimited.name();
        let before = errors.len();
        let mut rate: Slot<(u64, u64)> = Slot::default();
        let mut rate_key: Option<syn::Ident> = None;
        let mut burst = Slot::default();
        let mut key = Slot::default();
        let mut name = Slot::default();
        let mut strategy = Slot::default();
        let mut cost = Slot::default();
        let mut on_limit = Slot::default();
        let mut max_wait = Slot::default();
        let mut backend = Slot::default();
        let mut on_backend_error = Slot::default();
        let mut fleet_size = Slot::default();
        for item in args::key_values(args, attr, PARAMS) {
            let Some((k, value)) = errors.ok(item) else { continue };
            let name_of_key = k.to_string();
            match name_of_key.as_str() {
                "rps" | "rpm" | "rph" | "rpd" | "rate" => {
                    let parsed = if name_of_key == "rate" {
                        errors.ok(args::lit_str(&value, "`rate`").and_then(|text| {
                            parse_rate(&text)
                                .map_err(|e| syn::Error::new_spanned(&value, format!("invalid rate {text:?}: {e}")))
                        }))
                    } else {
                        let period = match name_of_key.as_str() {
                            "rps" => 1,
                            "rpm" => 60,
                            "rph" => 3600,
                            _ => 86_400,
                        } * NANOS_PER_SEC;
                        errors.ok(args::lit_u64(&value, &format!("`{k}`"))).map(|count| (count, period))
                    };
                    if let Some((count, _)) = parsed
                        && let Err(invalid) = adk_settings::rate(count)
                    {
                        errors.spanned(&value, invalid);
                        continue;
                    }
                    if let Some(first) = &rate_key {
                        errors.at(
                            k.span(),
                            format!("give one rate: `{first}` is already set, so `{k}` would contradict it"),
                        );
                        continue;
                    }
                    rate_key = Some(k.clone());
                    rate.set_once(&k, parsed, attr, errors);
                }
                "burst" => {
                    let b = errors
                        .ok(args::lit_u64(&value, "`burst`").and_then(|b| args::rule(&value, adk_settings::burst(b))));
                    burst.set_once(&k, b, attr, errors);
                }
                "key" => key.set_once(&k, Some(value), attr, errors),
                "cost" => cost.set_once(&k, Some(value), attr, errors),
                "name" => name.set_once(&k, errors.ok(args::instance_name(&value)), attr, errors),
                "strategy" => {
                    let s = errors.ok(args::lit_str(&value, "`strategy`")
                        .and_then(|s| args::one_of(&s, STRATEGIES, "strategy", &value)));
                    strategy.set_once(&k, s, attr, errors);
                }
                "on_limit" => {
                    let s = errors.ok(args::lit_str(&value, "`on_limit`")
                        .and_then(|s| args::one_of(&s, ON_LIMIT, "on_limit", &value)));
                    on_limit.set_once(&k, s, attr, errors);
                }
                "max_wait" => {
                    let d = errors.ok(args::duration(&value, "`max_wait`", BareInteger::Rejected));
                    max_wait.set_once(&k, d, attr, errors);
                }
                "backend" => {
                    let s = errors
                        .ok(args::lit_str(&value, "`backend`")
                            .and_then(|s| args::one_of(&s, BACKENDS, "backend", &value)));
                    backend.set_once(&k, s, attr, errors);
                }
                "on_backend_error" => {
                    let s = errors.ok(args::lit_str(&value, "`on_backend_error`")
                        .and_then(|s| args::one_of(&s, ON_BACKEND_ERROR, "on_backend_error", &value)));
                    on_backend_error.set_once(&k, s, attr, errors);
                }
                "fleet_size" => {
                    let n = errors.ok(args::lit_u64(&value, "`fleet_size`").and_then(|n| match u32::try_from(n) {
                        Ok(n) if n >= 1 => Ok(n),
                        _ => Err(syn::Error::new_spanned(
                            &value,
                            "`fleet_size` counts the processes sharing the quota: from 1 to 4294967295",
                        )),
                    }));
                    fleet_size.set_once(&k, n, attr, errors);
                }
                _ => errors.push(args::unknown_key(&k, attr, PARAMS)),
            }
        }
        if rate.get().is_none() && errors.len() == before {
            errors.at(span, "#[adk::rate_limited] needs a rate: one of `rps`, `rpm`, `rph`, `rpd` (e.g. `rpm = 60`) or `rate = \"100/min\"`");
        }
        let waits = on_limit.get().is_some_and(|s: &String| s == "wait");
        if let (Some(span), false) = (max_wait.span(), waits) {
            errors
                .at(span, "`max_wait` applies to `on_limit = \"wait\"`; without it a limited call is refused at once");
        }
        if let (Some(span), Some(s)) = (burst.span(), strategy.get())
            && (s == "fixed_window" || s == "sliding_window")
        {
            errors.at(
                span,
                format!("`burst` does not apply to strategy = {s:?}: a window admits the whole rate at once"),
            );
        }
        let redis = backend.get().is_some_and(|b: &String| b == "redis");
        for span in [on_backend_error.span(), fleet_size.span()].into_iter().flatten() {
            if !redis {
                errors.at(span, "`on_backend_error` and `fleet_size` apply to `backend = \"redis\"`: a limiter in memory cannot lose its backend");
            }
        }
        let on_backend_error = match on_backend_error.take().as_deref() {
            Some("allow") => 1,
            Some("deny") => 2,
            _ => 0,
        };
        RateLimited {
            span,
            redis: redis.then(|| (on_backend_error, fleet_size.take().unwrap_or(1))),
            rate: rate.take().unwrap_or((1, NANOS_PER_SEC)),
            burst: burst.take(),
            key: key.take(),
            name: name.take(),
            strategy: strategy.take(),
            cost: cost.take(),
            max_wait: waits.then(|| max_wait.take()),
        }
    }
}

impl Attribute for RateLimited {
    fn kind(&self) -> Kind {
        Kind::RateLimited
    }

    fn span(&self) -> Span {
        self.span
    }

    fn check(&self, info: &FnInfo, errors: &mut Errors) {
        require_async(Kind::RateLimited, "a limited call waits or is refused on tokio's clock", info, errors);
        require_result(Kind::RateLimited, info, errors);
    }

    fn needs(&self) -> Needs {
        Needs { refuse: true, ..Needs::default() }
    }

    fn expand(&self, cx: &Cx, inner: TokenStream) -> TokenStream {
        let k = &cx.krate;
        let rl = quote!(#k::__private::rate_limit);
        let (count, period) = self.rate;
        let mut quota = quote!(#rl::Quota::new(#rl::Rate::new(#count, #k::__private::Duration::from_nanos(#period))));
        if let Some(burst) = self.burst {
            quota.extend(quote!(.with_burst(#burst)));
        }
        if let Some(strategy) = &self.strategy {
            let variant = syn::Ident::new(
                match strategy.as_str() {
                    "token_bucket" => "TokenBucket",
                    "leaky_bucket" => "LeakyBucket",
                    "fixed_window" => "FixedWindow",
                    "sliding_window" => "SlidingWindow",
                    _ => "Gcra",
                },
                Span::call_site(),
            );
            quota.extend(quote!(.with_strategy(#rl::Strategy::#variant)));
        }
        let call_site = &cx.call_site;
        let mut policy = TokenStream::new();
        if let Some(name) = &self.name {
            policy.extend(quote!(.with_name(#name)));
        }
        if let Some(max_wait) = self.max_wait {
            let max_wait = match max_wait {
                Some(nanos) => quote!(#k::__private::Duration::from_nanos(#nanos)),
                None => quote!(#rl::RateLimitPolicy::DEFAULT_MAX_WAIT),
            };
            policy.extend(quote!(.with_on_limit(#rl::OnLimit::Wait { max_wait: #max_wait })));
        }
        let refuse = &cx.refuse;
        let redis = self.redis;
        let (declare, policy_static) = cx.policy(
            "__ADK_RATE_LIMIT",
            quote!(#rl::RateLimitPolicy),
            |function| {
                let policy = quote!(#rl::RateLimitPolicy::new(#function, #call_site, #quota) #policy);
                match redis {
                    // Through the facade, which names its `redis` feature in the error when it is off.
                    Some((on_error, fleet_size)) => {
                        quote_spanned!(self.span=> #k::__private::rate_limit_redis::<()>(#policy, #on_error, #fleet_size))
                    }
                    None => policy,
                }
            },
            Declare::Shared { named: self.name.is_some(), create: "limiter" },
        );
        let call = if self.key.is_none() && self.cost.is_none() {
            quote!(#policy_static.run(async { #inner }, #refuse))
        } else {
            let key = match &self.key {
                Some(key) => {
                    // Parenthesised: `&` binds tighter than the user's operators (`key = shard % 64`).
                    let key = args::operand(key);
                    quote_spanned!(key.span()=> ::core::option::Option::Some(&(#key)))
                }
                None => quote!(::core::option::Option::None::<&()>),
            };
            // Turned into units here, spanned at the expression, so a cost that is not a number is one error on it
            // rather than one more for each use of the limiter's future.
            let cost = match &self.cost {
                Some(cost) => {
                    let cost = args::operand(cost);
                    quote_spanned!(cost.span()=> #rl::Cost::units(#cost))
                }
                None => quote!(1u64),
            };
            quote!(#policy_static.run_with(#key, #cost, async { #inner }, #refuse))
        };
        quote! {{
            #declare
            #call.await
        }}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_named_and_duration_periods() {
        assert_eq!(parse_rate("90000/min"), Ok((90_000, 60 * NANOS_PER_SEC)));
        assert_eq!(parse_rate("10/s"), Ok((10, NANOS_PER_SEC)));
        assert_eq!(parse_rate("5/30s"), Ok((5, 30 * NANOS_PER_SEC)));
        assert_eq!(parse_rate("1_000/day"), Ok((1000, 86_400 * NANOS_PER_SEC)));
        assert!(parse_rate("100").is_err());
        assert!(parse_rate("ten/s").is_err());
        assert!(parse_rate("10/fortnight").is_err());
    }
}
