//! `#[observed]`: a `tracing` span per call and the call's metrics, with `#[instrument]`'s parameters.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use crate::args::{self, Arg, Errors, Slot};
use crate::attrs::{Attribute, Kind};
use crate::expand::{Cx, Declare};
use crate::sig::FnInfo;

pub const PARAMS: &[&str] = &["name", "skip", "skip_all", "fields", "level", "ret", "err", "labels"];
const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];
/// Label names the metric families use themselves, or Prometheus reserves.
const RESERVED_LABELS: &[&str] = &["function", "outcome", "le", "quantile"];

pub struct Observed {
    pub span: Span,
    name: Option<String>,
    skip: Vec<syn::Ident>,
    skip_all: bool,
    fields: Vec<(syn::Ident, syn::Expr)>,
    level: Option<String>,
    ret: Option<Format>,
    err_format: Format,
    err_level: Option<String>,
    labels: Vec<(String, String)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Display,
    Debug,
}

impl Observed {
    pub fn parse(args: Vec<Arg>, span: Span, errors: &mut Errors) -> Self {
        let attr = Kind::Observed.name();
        let mut name = Slot::default();
        let mut level = Slot::default();
        let mut skip_all = Slot::default();
        let mut ret = Slot::default();
        let mut err = Slot::default();
        let mut skip = Vec::new();
        let mut fields = Vec::new();
        let mut labels: Vec<(String, String)> = Vec::new();
        let mut err_level = None;
        for arg in args {
            match arg {
                Arg::KeyValue { key, value } => match key.to_string().as_str() {
                    "name" => name.set_once(&key, errors.ok(args::instance_name(&value)), attr, errors),
                    "level" => {
                        let l = errors
                            .ok(args::lit_str(&value, "`level`")
                                .and_then(|l| args::one_of(&l, LEVELS, "level", &value)));
                        level.set_once(&key, l, attr, errors);
                    }
                    _ => errors.push(args::unknown_key(&key, attr, PARAMS)),
                },
                Arg::Bare(syn::Expr::Path(p)) if p.path.get_ident().is_some() => {
                    let key = p.path.get_ident().expect("checked").clone();
                    match key.to_string().as_str() {
                        "skip_all" => skip_all.set_once(&key, Some(()), attr, errors),
                        "ret" => ret.set_once(&key, Some(Format::Debug), attr, errors),
                        "err" => err.set_once(&key, Some(Format::Display), attr, errors),
                        _ => errors.push(args::unknown_key(&key, attr, PARAMS)),
                    }
                }
                Arg::Bare(other) => {
                    errors.spanned(other, format!("unexpected argument; valid parameters: {}", PARAMS.join(", ")))
                }
                Arg::List { key, items } => match key.to_string().as_str() {
                    "skip" => {
                        for item in items {
                            match item {
                                Arg::Bare(syn::Expr::Path(p)) if p.path.get_ident().is_some() => {
                                    skip.push(p.path.get_ident().expect("checked").clone())
                                }
                                Arg::Bare(syn::Expr::Path(p)) if p.path.is_ident("self") => {
                                    skip.push(format_ident!("self"))
                                }
                                _ => errors
                                    .at(key.span(), "`skip(...)` lists argument names, like `skip(client, payload)`"),
                            }
                        }
                    }
                    "fields" => {
                        for item in items {
                            match item {
                                Arg::KeyValue { key, value } => fields.push((key, value)),
                                _ => errors.at(
                                    key.span(),
                                    "`fields(...)` holds `name = value` pairs, like `fields(user = %user.id)`",
                                ),
                            }
                        }
                    }
                    "labels" => {
                        for item in items {
                            let Arg::KeyValue { key: label, value } = item else {
                                errors.at(key.span(), "`labels(...)` holds constant `name = \"value\"` pairs, like `labels(team = \"search\")`");
                                continue;
                            };
                            let text = label.to_string();
                            if RESERVED_LABELS.contains(&text.as_str()) || text.starts_with("__") {
                                errors.at(
                                    label.span(),
                                    format!("`{text}` is a label adk or Prometheus uses itself; pick another name"),
                                );
                            } else if labels.iter().any(|(l, _)| *l == text) {
                                errors.at(label.span(), format!("duplicate label `{text}`"));
                            } else if let Some(value) =
                                errors.ok(args::lit_str(&value, "a label value (labels are constant strings)"))
                            {
                                labels.push((text, value));
                            }
                        }
                    }
                    "ret" | "err" => {
                        let mut format = Format::Display;
                        for item in items {
                            match item {
                                Arg::Bare(syn::Expr::Path(p)) if p.path.is_ident("Debug") => format = Format::Debug,
                                Arg::Bare(syn::Expr::Path(p)) if p.path.is_ident("Display") => format = Format::Display,
                                Arg::KeyValue { key: l, value } if l == "level" && key == "err" => {
                                    err_level = errors.ok(args::lit_str(&value, "`level`")
                                        .and_then(|v| args::one_of(&v, LEVELS, "level", &value)));
                                }
                                _ => errors.at(
                                    key.span(),
                                    format!(
                                        "`{key}(...)` takes `Debug` or `Display`{}",
                                        if key == "err" { ", and `level = \"warn\"`" } else { "" }
                                    ),
                                ),
                            }
                        }
                        if key == "ret" {
                            ret.set_once(&key, Some(format), attr, errors)
                        } else {
                            err.set_once(&key, Some(format), attr, errors)
                        }
                    }
                    _ => errors.push(args::unknown_key(&key, attr, PARAMS)),
                },
            }
        }
        Observed {
            span,
            name: name.take(),
            skip,
            skip_all: skip_all.take().is_some(),
            fields,
            level: level.take(),
            ret: ret.take(),
            err_format: err.take().unwrap_or(Format::Display),
            err_level,
            labels,
        }
    }
}

fn level_tokens(k: &syn::Path, level: &str) -> TokenStream {
    let level = syn::Ident::new(&level.to_uppercase(), Span::call_site());
    quote!(#k::__private::tracing::Level::#level)
}

impl Attribute for Observed {
    fn kind(&self) -> Kind {
        Kind::Observed
    }

    fn span(&self) -> Span {
        self.span
    }

    fn check(&self, info: &FnInfo, errors: &mut Errors) {
        for skipped in &self.skip {
            if skipped != "self" && !info.params.iter().any(|p| p.ident == *skipped) {
                let names: Vec<String> = info.params.iter().map(|p| p.ident.to_string()).collect();
                errors.at(
                    skipped.span(),
                    format!(
                        "`{skipped}` is not an argument of `{}`; its arguments are: {}",
                        info.name,
                        names.join(", ")
                    ),
                );
            }
        }
    }

    fn expand(&self, cx: &Cx, inner: TokenStream) -> TokenStream {
        let k = &cx.krate;
        let tracing = quote!(#k::__private::tracing);
        let name = self.name.clone().unwrap_or_else(|| cx.info.name.to_string());
        let level = level_tokens(k, self.level.as_deref().unwrap_or("info"));
        let arg_fields = cx
            .info
            .params
            .iter()
            .filter(|p| !self.skip_all && !self.skip.contains(&p.ident) && p.pattern.is_none())
            .map(|p| {
                let ident = &p.ident;
                quote_spanned!(ident.span()=> #ident = #tracing::field::debug(&#ident),)
            });
        let user_fields = self.fields.iter().map(|(key, value)| quote!(#key = #value,));
        let call_site = &cx.call_site;
        let mut observed = TokenStream::new();
        if !self.labels.is_empty() {
            let pairs = self.labels.iter().map(|(l, v)| quote!((#l, #v)));
            observed.extend(quote!(.with_labels(&[#(#pairs),*])));
        }
        if let Some(level) = &self.err_level {
            let level = level_tokens(k, level);
            observed.extend(quote!(.with_error_level(#level)));
        }
        let (declare, policy) = cx.policy(
            "__ADK_OBSERVED",
            quote!(#k::__private::observed::ObservedFn),
            |function| quote!(#k::__private::observed::ObservedFn::new(#function, #call_site) #observed),
            Declare::No,
        );
        let (span, call, result) = (cx.local("__adk_span"), cx.local("__adk_call"), cx.local("__adk_result"));
        let is_result = cx.info.output_is_named_result();
        // Bound as a fn pointer at the return type, so an error type that cannot be logged is one error there.
        let finish = match (is_result, self.err_format) {
            (true, format) => {
                let (output, span) = (cx.info.output.as_ref().expect("a Result output"), cx.info.output_span);
                let helper = match format {
                    Format::Display => quote_spanned!(span=> #k::__private::observed_finish::<#output>),
                    Format::Debug => quote_spanned!(span=> #k::__private::observed_finish_debug::<#output>),
                };
                let (finish, error) = (cx.local("__adk_finish"), cx.local("__adk_error"));
                // The probe runs here, where the error type is concrete: a generic helper could only see its bounds.
                quote! {
                    let #finish: fn(#k::__private::observed::ObservedCall<'_>, &_, _) = #helper;
                    #finish(#call, &#result, |#error| {
                        use #k::__private::{ProbeClassify as _, ProbeUnclassified as _};
                        (&#k::__private::ClassProbe(#error)).adk_error_class()
                    })
                }
            }
            (false, _) => quote!(#call.ok()),
        };
        let ret_event = self.ret.map(|format| {
            let value = match (is_result, format) {
                (true, Format::Debug) => {
                    quote!(if let ::core::result::Result::Ok(v) = &#result { #tracing::event!(#level, return = ?v) })
                }
                (true, Format::Display) => {
                    quote!(if let ::core::result::Result::Ok(v) = &#result { #tracing::event!(#level, return = %v) })
                }
                (false, Format::Debug) => quote!(#tracing::event!(#level, return = ?&#result)),
                (false, Format::Display) => quote!(#tracing::event!(#level, return = %&#result)),
            };
            quote!(#value;)
        });
        let run = if cx.info.is_async {
            quote!(#tracing::Instrument::instrument(async { #inner }, ::core::clone::Clone::clone(&#span)).await)
        } else {
            quote!(#span.in_scope(|| #inner))
        };
        quote! {{
            #declare
            let #span = #tracing::span!(
                target: ::core::module_path!(),
                #level,
                #name,
                #(#arg_fields)*
                #(#user_fields)*
                otel.status_code = #tracing::field::Empty,
                otel.status_description = #tracing::field::Empty,
            );
            let #call = #policy.start();
            let #result = #run;
            #span.in_scope(|| {
                #ret_event
                #finish
            });
            #result
        }}
    }
}
