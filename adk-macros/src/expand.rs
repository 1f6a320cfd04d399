//! Drives one stack: collect -> parse -> check -> expand into one flat function.
//!
//! Layers nest in written order, the first attribute outermost. Each layer turns an inner expression of the
//! function's output type into another; the innermost is the user's body in an `async` block (so `return` and `?`
//! keep their meaning). The expansion loops inline rather than passing the body to the runtime as an async closure:
//! futures of generic `AsyncFnMut` runners are not provably `Send` today, and annotated functions must stay spawnable.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ItemFn;

use crate::args::Errors;
use crate::attrs::{self, Kind, Layer, Needs};
use crate::sig::{Borrow, FnInfo};
use crate::{order, stack};

/// What every layer's expansion may use.
pub struct Cx<'a> {
    /// The path to the facade (`::adk` unless `crate = "..."`).
    pub krate: syn::Path,
    /// `"module::path::function"`, as a `&'static str` expression.
    pub function: TokenStream,
    /// `"file.rs:line"` of the function, as a `&'static str` expression (reported when named instances conflict).
    pub call_site: TokenStream,
    pub info: &'a FnInfo,
    /// `__adk_refuse`: `fn(adk::Error) -> Output`.
    pub refuse: syn::Ident,
    /// `__adk_classify`: `fn(&E) -> Verdict` by `Classify`.
    pub classify: syn::Ident,
    /// `__adk_record`: `fn(&E) -> Record` by `Classify`.
    pub record: syn::Ident,
}

/// Whether a layer's policy is reported at start-up for name conflicts (see `Cx::policy`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Declare {
    /// The policy has no shared name.
    No,
    /// The policy is shared by name: `named` when the attribute gives `name = ...`, else it defaults to the
    /// function's path. `create` is the policy's method that puts its instance in the registry, so that the registry
    /// can make a declared instance before any call (for operators, tower layers).
    Shared { named: bool, create: &'static str },
}

impl Cx<'_> {
    /// A local of the expansion, invisible to the user's code (mixed-site hygiene).
    pub fn local(&self, name: &str) -> syn::Ident {
        syn::Ident::new(name, Span::mixed_site())
    }

    /// Declares a layer's policy, of type `ty`, built by `build(function)` where `function` is the expression of the
    /// function's path. Returns the statements that declare it and the expression of a `&'static` reference to it.
    ///
    /// A free function's path is a constant, so its policy is a `static` built at compile time. A method's path
    /// includes its `Self` type (`module::OpenAi::complete`), so that methods of different types never share a
    /// breaker, a limiter or a metric series; `Self` cannot be named in a nested `static`, and its name
    /// (`type_name`) is not a constant, so the policy is built on the first call, from inside the method, and kept.
    /// A policy shared by an explicit name is reported at start-up either way; a method's default name is its own.
    pub fn policy(
        &self,
        ident: &str,
        ty: TokenStream,
        build: impl Fn(&TokenStream) -> TokenStream,
        declare: Declare,
    ) -> (TokenStream, TokenStream) {
        let k = &self.krate;
        let policy = self.local(ident);
        if !self.info.is_method() {
            let init = build(&self.function);
            let declared = match declare {
                Declare::No => None,
                Declare::Shared { create, .. } => {
                    let create = syn::Ident::new(create, Span::call_site());
                    Some(quote!(#k::__private::inventory::submit! {
                        #k::__private::Declared(|| #policy.declared(), || { #policy.#create(); })
                    }))
                }
            };
            return (quote!(static #policy: #ty = #init; #declared), policy.to_token_stream());
        }
        let name = self.info.name.to_string();
        let method_path = quote!(#k::__private::method_path(
            ::core::module_path!(), ::core::any::type_name::<Self>(), #name
        ));
        let init = build(&method_path);
        let declared = match declare {
            Declare::Shared { named: true, create } => {
                // A copy with the same settings and name: `Self` cannot be named here, but a named policy's
                // declaration and instance do not depend on it.
                let (declared_init, create) = (build(&self.function), syn::Ident::new(create, Span::call_site()));
                let copy = self.local("__ADK_DECLARED");
                Some(quote! {
                    #k::__private::inventory::submit! {
                        #k::__private::Declared(
                            || { static #copy: #ty = #declared_init; #copy.declared() },
                            || { static #copy: #ty = #declared_init; #copy.#create(); },
                        )
                    }
                })
            }
            _ => None,
        };
        let reference = self.local(&ident.to_lowercase());
        (
            quote! {
                static #policy: ::std::sync::OnceLock<#ty> = ::std::sync::OnceLock::new();
                #declared
                let #reference: &'static #ty = #policy.get_or_init(|| #init);
            },
            reference.to_token_stream(),
        )
    }

    /// Statements that give the next use of the arguments fresh values: owned arguments are cloned (with an error
    /// naming the argument if its type is not `Clone`), `&mut` arguments re-borrowed, `&` arguments left alone.
    pub fn reuse_args(&self, kind: Kind, purpose: &str) -> TokenStream {
        let mut out = TokenStream::new();
        for param in &self.info.params {
            let ident = &param.ident;
            match param.borrow {
                Borrow::Shared => {}
                // The body may not use an argument that only an attribute expression (a key, a field) reads.
                Borrow::Unique => out.extend(quote!(#[allow(unused_variables)] let #ident = &mut *#ident;)),
                Borrow::Owned => {
                    let ty = &param.ty;
                    let shown = escape_braces(&crate::sig::pretty(&param.span_tokens));
                    let ty_shown = escape_braces(&crate::sig::pretty(ty));
                    let message = format!(
                        "argument `{shown}` is moved into the body, so #[adk::{}] must clone it {purpose}, but `{ty_shown}` does not implement `Clone`; derive `Clone` or take `&{ty_shown}`",
                        kind.name()
                    );
                    let label = format!("#[adk::{}] clones this argument {purpose}", kind.name());
                    let span = param.ident.span();
                    out.extend(quote_spanned! {span=>
                        #[allow(unused_variables)]
                        let #ident = {
                            #[diagnostic::on_unimplemented(message = #message, label = #label)]
                            trait __AdkReuse { fn __adk_reuse(&self) -> Self; }
                            impl<T: ::core::clone::Clone> __AdkReuse for T {
                                #[inline]
                                fn __adk_reuse(&self) -> Self { ::core::clone::Clone::clone(self) }
                            }
                            __AdkReuse::__adk_reuse(&#ident)
                        };
                    });
                }
            }
        }
        out
    }
}

pub fn escape_braces(text: &str) -> String {
    text.replace('{', "{{").replace('}', "}}")
}

/// Expands the stack whose first attribute is `first` (with `args`) on `item`.
pub fn expand(first: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    if stack::is_expanded_marker(&args) {
        return item;
    }
    let mut errors = Errors::default();
    let mut func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = not_a_function(first, &item);
            return quote!(#item #error);
        }
    };
    let stack = stack::collect(first, args, &mut func.attrs, &mut errors);
    let original = func.clone();
    if let Some(constness) = &func.sig.constness {
        errors.spanned(
            constness,
            format!(
                "#[adk::{}] cannot be used on a `const fn`: its policies act at run time, on every call; remove `const`",
                first.name()
            ),
        );
    }
    let info = FnInfo::analyse(&mut func);
    let krate = stack.krate;
    let layers: Vec<Layer> = stack.entries.into_iter().filter_map(|entry| attrs::parse(entry, &mut errors)).collect();
    let warnings = order::check(&layers, &mut errors);
    for layer in &layers {
        layer.check(&info, &mut errors);
    }
    if !errors.is_empty() {
        // The function as written (without the adk attributes), so the rest of the crate keeps compiling.
        let errors = errors.to_compile_errors();
        return quote!(#original #errors);
    }

    let cx = Cx {
        function: {
            let name = info.name.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #name))
        },
        call_site: {
            let span = info.name.span();
            quote_spanned!(span=> ::core::concat!(::core::file!(), ":", ::core::line!()))
        },
        krate,
        info: &info,
        refuse: syn::Ident::new("__adk_refuse", Span::mixed_site()),
        classify: syn::Ident::new("__adk_classify", Span::mixed_site()),
        record: syn::Ident::new("__adk_record", Span::mixed_site()),
    };
    let needs = layers.iter().fold(Needs::default(), |acc, layer| acc.union(layer.needs()));

    let block = &func.block;
    let rebind = info.rebind_patterns();
    let mut expr = if info.boxed_future {
        quote!((#block).await)
    } else if info.is_async {
        let stmts = &block.stmts;
        quote!(async { #rebind #(#stmts)* }.await)
    } else {
        let stmts = &block.stmts;
        quote!((|| { #rebind #(#stmts)* })())
    };
    for layer in layers.iter().rev() {
        expr = layer.expand(&cx, expr);
    }

    let k = &cx.krate;
    let mut prelude = warnings;
    if let Some(output) = &info.output {
        let span = info.output_span;
        // Bound as fn pointers: the trait bounds are checked once, here, spanned at the return type, and not again
        // at every use.
        if needs.refuse {
            let refuse = &cx.refuse;
            prelude.extend(quote_spanned!(span=>
                let #refuse: fn(#k::Error) -> _ = #k::__private::refuse::<#output>;
            ));
        }
        if needs.classify {
            let classify = &cx.classify;
            prelude.extend(quote_spanned!(span=>
                let #classify: fn(&_) -> #k::__private::retry::Verdict = #k::__private::classify::<#output>;
            ));
        }
        if needs.record {
            let record = &cx.record;
            prelude.extend(quote_spanned!(span=>
                let #record: fn(&_) -> #k::__private::circuit_breaker::Record = #k::__private::breaker_record::<#output>;
            ));
        }
    }
    let body = if info.boxed_future {
        quote!({ ::std::boxed::Box::pin(async move { #prelude #expr }) })
    } else {
        quote!({ #prelude #expr })
    };
    func.block = Box::new(syn::parse2(body).expect("the expansion is a block"));
    func.into_token_stream()
}

fn not_a_function(kind: Kind, item: &TokenStream) -> TokenStream {
    let name = kind.name();
    let message = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Verbatim(_)) | Err(_) => {
            if syn::parse2::<syn::TraitItemFn>(item.clone()).is_ok_and(|f| f.default.is_none()) {
                format!(
                    "#[adk::{name}] needs a function body to wrap; put it on the implementation of this method, not on its declaration"
                )
            } else {
                format!("#[adk::{name}] can only be applied to functions")
            }
        }
        Ok(other) => {
            let what = item_kind(&other);
            format!(
                "#[adk::{name}] can only be applied to functions, not to {what}: it wraps calls, and {what} has none"
            )
        }
    };
    let span = item.clone().into_iter().next().map_or(Span::call_site(), |t| t.span());
    syn::Error::new(span, message).to_compile_error()
}

fn item_kind(item: &syn::Item) -> &'static str {
    match item {
        syn::Item::Struct(_) => "a struct",
        syn::Item::Enum(_) => "an enum",
        syn::Item::Union(_) => "a union",
        syn::Item::Trait(_) => "a trait",
        syn::Item::Impl(_) => "an impl block (annotate its methods instead)",
        syn::Item::Mod(_) => "a module",
        syn::Item::Const(_) => "a const",
        syn::Item::Static(_) => "a static",
        syn::Item::Type(_) => "a type alias",
        syn::Item::Use(_) => "a use declaration",
        syn::Item::Macro(_) => "a macro invocation",
        _ => "this item",
    }
}
