//! `#[timeout("2s")]`: bound the layers inside it on tokio's clock.

use proc_macro2::{Span, TokenStream};
use quote::quote;

use crate::args::{self, Arg, BareInteger, Errors, Slot};
use crate::attrs::{Attribute, Kind, Needs, require_async, require_result};
use crate::expand::{Cx, Declare};
use crate::sig::FnInfo;

pub const PARAMS: &[&str] = &["after"];

pub struct Timeout {
    pub span: Span,
    after: u64,
}

impl Timeout {
    pub fn parse(args: Vec<Arg>, span: Span, errors: &mut Errors) -> Self {
        let attr = Kind::Timeout.name();
        let before = errors.len();
        let mut after = Slot::default();
        let after_key = syn::Ident::new("after", span);
        for arg in args {
            let (key, value) = match arg {
                Arg::Bare(value) => (after_key.clone(), value),
                Arg::KeyValue { key, value } if key == "after" => (key, value),
                Arg::KeyValue { key, .. } | Arg::List { key, .. } => {
                    errors.push(args::unknown_key(&key, attr, PARAMS));
                    continue;
                }
            };
            let nanos = errors.ok(args::duration(&value, "#[adk::timeout]", BareInteger::Rejected)
                .and_then(|n| args::rule(&value, adk_settings::timeout(n))));
            after.set_once(&key, nanos, attr, errors);
        }
        if after.get().is_none() && errors.len() == before {
            errors.at(span, "#[adk::timeout] needs a duration, like #[adk::timeout(\"2s\")]");
        }
        Timeout { span, after: after.get().copied().unwrap_or(1) }
    }
}

impl Attribute for Timeout {
    fn kind(&self) -> Kind {
        Kind::Timeout
    }

    fn span(&self) -> Span {
        self.span
    }

    fn check(&self, info: &FnInfo, errors: &mut Errors) {
        require_async(
            Kind::Timeout,
            "a timeout can only stop a call that yields to tokio's timer, and a blocking fn never does",
            info,
            errors,
        );
        require_result(Kind::Timeout, info, errors);
    }

    fn needs(&self) -> Needs {
        Needs { refuse: true, ..Needs::default() }
    }

    fn expand(&self, cx: &Cx, inner: TokenStream) -> TokenStream {
        let k = &cx.krate;
        let after = self.after;
        let (declare, policy) = cx.policy(
            "__ADK_TIMEOUT",
            quote!(#k::__private::timeout::TimeoutPolicy),
            |function| {
                quote!(#k::__private::timeout::TimeoutPolicy::new(#function, #k::__private::Duration::from_nanos(#after)))
            },
            Declare::No,
        );
        let refuse = &cx.refuse;
        quote! {{
            #declare
            #policy.run(async { #inner }, #refuse).await
        }}
    }
}
