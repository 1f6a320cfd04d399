//! `#[bulkhead(max_concurrent = 8, max_wait = "1s", name = "db", key = user.id)]`: bound the calls in flight, in all
//! or per key.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};

use crate::args::{self, Arg, BareInteger, Errors, Slot};
use crate::attrs::{Attribute, Kind, Needs, require_async, require_result};
use crate::expand::{Cx, Declare};
use crate::sig::FnInfo;

pub const PARAMS: &[&str] = &["max_concurrent", "max_wait", "name", "key"];

pub struct Bulkhead {
    pub span: Span,
    max_concurrent: u64,
    max_wait: Option<u64>,
    name: Option<String>,
    key: Option<syn::Expr>,
}

impl Bulkhead {
    pub fn parse(args: Vec<Arg>, span: Span, errors: &mut Errors) -> Self {
        let attr = Kind::Bulkhead.name();
        let before = errors.len();
        let mut max_concurrent = Slot::default();
        let mut max_wait = Slot::default();
        let mut name = Slot::default();
        let mut key_expr = Slot::default();
        for item in args::key_values(args, attr, PARAMS) {
            let Some((key, value)) = errors.ok(item) else { continue };
            match key.to_string().as_str() {
                "max_concurrent" => {
                    let n = errors.ok(args::lit_u64(&value, "`max_concurrent`")
                        .and_then(|n| args::rule(&value, adk_settings::max_concurrent(n)).map(u64::from)));
                    max_concurrent.set_once(&key, n, attr, errors);
                }
                "max_wait" => {
                    let d = errors.ok(args::duration(&value, "`max_wait`", BareInteger::Rejected));
                    max_wait.set_once(&key, d, attr, errors);
                }
                "name" => name.set_once(&key, errors.ok(args::instance_name(&value)), attr, errors),
                "key" => key_expr.set_once(&key, Some(value), attr, errors),
                _ => errors.push(args::unknown_key(&key, attr, PARAMS)),
            }
        }
        if max_concurrent.get().is_none() && errors.len() == before {
            errors.at(span, "#[adk::bulkhead] needs `max_concurrent`, the number of calls allowed at once: #[adk::bulkhead(max_concurrent = 8)]");
        }
        Bulkhead {
            span,
            max_concurrent: max_concurrent.take().unwrap_or(1),
            max_wait: max_wait.take(),
            name: name.take(),
            key: key_expr.take(),
        }
    }
}

impl Attribute for Bulkhead {
    fn kind(&self) -> Kind {
        Kind::Bulkhead
    }

    fn span(&self) -> Span {
        self.span
    }

    fn check(&self, info: &FnInfo, errors: &mut Errors) {
        require_async(Kind::Bulkhead, "a call waits for a slot and holds it across awaits", info, errors);
        require_result(Kind::Bulkhead, info, errors);
    }

    fn needs(&self) -> Needs {
        Needs { refuse: true, ..Needs::default() }
    }

    fn expand(&self, cx: &Cx, inner: TokenStream) -> TokenStream {
        let k = &cx.krate;
        let name = |function: &TokenStream| match &self.name {
            Some(name) => name.to_token_stream(),
            None => function.clone(),
        };
        let n = self.max_concurrent as usize;
        let wait = self.max_wait.map(|nanos| quote!(.with_max_wait(#k::__private::Duration::from_nanos(#nanos))));
        let (call_site, refuse) = (&cx.call_site, &cx.refuse);
        // A key makes it a bulkhead per key: the same settings, a slot table per key.
        let ty = match self.key {
            Some(_) => quote!(#k::__private::bulkhead::KeyedBulkheadPolicy),
            None => quote!(#k::__private::bulkhead::BulkheadPolicy),
        };
        let (declare, policy) = cx.policy(
            "__ADK_BULKHEAD",
            ty.clone(),
            |function| {
                let name = name(function);
                quote!(#ty::new(#name, #call_site, #n) #wait)
            },
            Declare::Shared { named: self.name.is_some(), create: "bulkhead" },
        );
        let call = match &self.key {
            Some(key) => {
                // Parenthesised: `&` binds tighter than the user's operators (`key = shard % 64`); spanned at the
                // expression, so a key that is not `Hash` is one error on it.
                let key = args::operand(key);
                let key = quote_spanned!(key.span()=> #policy.hash_key(&(#key)));
                quote!(#policy.run_hashed(#key, async { #inner }, #refuse))
            }
            None => quote!(#policy.run(async { #inner }, #refuse)),
        };
        quote! {{
            #declare
            #call.await
        }}
    }
}
