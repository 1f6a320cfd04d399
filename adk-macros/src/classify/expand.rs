//! Generates the `Classify` impl from the model: three `match`es, one arm per variant. Cannot fail.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::visit::Visit;
use syn::{Ident, Type};

use super::ast::{Class, Input, Shape, Variant};

pub fn impl_classify(input: &Input) -> TokenStream {
    let k = &input.krate;
    let (variants, default) = match &input.shape {
        Shape::Struct(variant) => (std::slice::from_ref(variant), Class::Transient),
        Shape::Enum { variants, default } => (variants.as_slice(), *default),
        Shape::Union => return fallback(input),
    };
    let source = Ident::new("__adk_source", Span::mixed_site());
    let wait = Ident::new("__adk_wait", Span::mixed_site());

    let arms = |body: &dyn Fn(&Variant) -> TokenStream| -> TokenStream {
        variants
            .iter()
            .map(|variant| {
                let mut bindings = TokenStream::new();
                if let Some((member, _)) = &variant.source {
                    bindings.extend(quote!(#member: #source,));
                }
                if let Some((member, _, _)) = &variant.retry_after {
                    bindings.extend(quote!(#member: #wait,));
                }
                let path = match variant.ident {
                    Some(ident) => quote!(Self::#ident),
                    None => quote!(Self),
                };
                let body = body(variant);
                quote!(#path { #bindings .. } => #body,)
            })
            .collect()
    };
    // Calls name the field's type (`<Type as Classify>::class`), so a type that does not implement the trait is
    // reported on the field, where the user wrote it.
    let on_source = |variant: &Variant, method: &str| {
        variant.source.as_ref().map(|(_, ty)| {
            let method = Ident::new(method, Span::call_site());
            quote!(<#ty as #k::__private::Classify>::#method(#source))
        })
    };
    let class = arms(&|variant| match (variant.class, on_source(variant, "class")) {
        (Some(class), _) => quote!(#k::__private::ErrorClass::#class),
        (None, Some(delegated)) => delegated,
        (None, None) => quote!(#k::__private::ErrorClass::#default),
    });
    let retry_after = arms(&|variant| {
        let from_source = on_source(variant, "retry_after");
        match (&variant.retry_after, from_source) {
            (Some((_, named_at, ty)), from_source) => {
                let field =
                    quote_spanned!(*named_at=> <#ty as #k::__private::RetryAfterField>::retry_after_field(#wait));
                match from_source {
                    Some(from_source) => quote!(#field.or_else(|| #from_source)),
                    None => field,
                }
            }
            (None, Some(from_source)) => from_source,
            (None, None) => quote!(::core::option::Option::None),
        }
    });
    let adk_error =
        arms(&|variant| on_source(variant, "adk_error").unwrap_or_else(|| quote!(::core::option::Option::None)));
    let (class, retry_after, adk_error) = if variants.is_empty() {
        (quote!(match *self {}), quote!(match *self {}), quote!(match *self {}))
    } else {
        (quote!(match self { #class }), quote!(match self { #retry_after }), quote!(match self { #adk_error }))
    };

    let name = input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut where_clause = where_clause.cloned().unwrap_or_else(|| syn::parse_quote!(where));
    for variant in variants {
        if let Some((_, ty)) = &variant.source
            && mentions_type_param(ty, input.generics)
        {
            where_clause.predicates.push(syn::parse_quote!(#ty: #k::__private::Classify));
        }
    }
    quote! {
        #[automatically_derived]
        impl #impl_generics #k::__private::Classify for #name #ty_generics #where_clause {
            fn class(&self) -> #k::__private::ErrorClass {
                #class
            }
            fn retry_after(&self) -> ::core::option::Option<#k::__private::Duration> {
                #retry_after
            }
            fn adk_error(&self) -> ::core::option::Option<&#k::__private::Error> {
                #adk_error
            }
        }
    }
}

/// The impl with every default (transient, no hint), emitted beside errors so that uses of the type do not add
/// "`Classify` is not implemented" to the real mistake.
pub fn fallback(input: &Input) -> TokenStream {
    let k = &input.krate;
    let name = input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #k::__private::Classify for #name #ty_generics #where_clause {}
    }
}

/// Whether `ty` names one of the type's generic type parameters, so its `Classify` bound must be stated.
fn mentions_type_param(ty: &Type, generics: &syn::Generics) -> bool {
    struct Finder<'a> {
        params: Vec<&'a Ident>,
        found: bool,
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_path(&mut self, path: &'ast syn::Path) {
            if path.leading_colon.is_none()
                && let Some(first) = path.segments.first()
                && self.params.contains(&&first.ident)
            {
                self.found = true;
            }
            syn::visit::visit_path(self, path);
        }
    }
    let mut finder = Finder { params: generics.type_params().map(|p| &p.ident).collect(), found: false };
    finder.visit_type(ty);
    finder.found
}
