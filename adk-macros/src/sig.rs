//! What the expansion needs to know about the annotated function: async or not, its receiver, which arguments are
//! borrowed and which owned, and its return type (seen through `#[async_trait]`'s boxed future).

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, Pat, PathArguments, ReturnType, Type, TypeParamBound};

/// One argument of the function, by the name the body knows it by.
pub struct Param {
    /// The binding the expansion uses (the user's identifier, or a generated one for a pattern).
    pub ident: syn::Ident,
    /// The declared type.
    pub ty: Type,
    /// `mut` on the binding.
    pub mutable: bool,
    /// `&T` or `&mut T`: re-borrowed per attempt, never cloned.
    pub borrow: Borrow,
    /// A destructuring pattern replaced by `ident`; the body rebinds it.
    pub pattern: Option<Pat>,
    /// The whole `name: Type` argument, for messages.
    pub span_tokens: TokenStream,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Borrow {
    Owned,
    Shared,
    Unique,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    None,
    Ref,
    RefMut,
    Value,
}

pub struct FnInfo {
    pub name: syn::Ident,
    pub is_async: bool,
    /// `#[async_trait]` already rewrote this `async fn` into a `fn` returning a boxed future of `output`.
    pub boxed_future: bool,
    pub receiver: Receiver,
    pub receiver_span: Span,
    /// The whole receiver (`&self`, `&mut self`, `self: Arc<Self>`), for errors about it; empty without one.
    pub receiver_tokens: TokenStream,
    pub params: Vec<Param>,
    /// The type of the value the body produces (`Result<T, E>` for most policies); `None` for `()`.
    pub output: Option<Type>,
    /// Where to point errors about the output.
    pub output_span: Span,
}

impl FnInfo {
    /// Reads the function, renaming destructuring arguments in `item` so every argument has a name.
    pub fn analyse(item: &mut ItemFn) -> Self {
        let sig = &mut item.sig;
        let mut receiver = Receiver::None;
        let mut receiver_span = sig.ident.span();
        let mut receiver_tokens = TokenStream::new();
        let mut params = Vec::new();
        for (index, input) in sig.inputs.iter_mut().enumerate() {
            match input {
                FnArg::Receiver(r) => {
                    receiver_span = r.span();
                    receiver_tokens = r.to_token_stream();
                    receiver = match (&r.reference, &r.mutability) {
                        (Some(_), Some(_)) => Receiver::RefMut,
                        (Some(_), None) => Receiver::Ref,
                        (None, _) => match &*r.ty {
                            Type::Reference(reference) if reference.mutability.is_some() => Receiver::RefMut,
                            Type::Reference(_) => Receiver::Ref,
                            _ => Receiver::Value,
                        },
                    };
                }
                FnArg::Typed(typed) => {
                    let span_tokens = typed.to_token_stream();
                    let borrow = match &*typed.ty {
                        Type::Reference(r) if r.mutability.is_some() => Borrow::Unique,
                        Type::Reference(_) => Borrow::Shared,
                        _ => Borrow::Owned,
                    };
                    let (ident, mutable, pattern) = match &mut *typed.pat {
                        // `mut` moves from the signature to a rebinding at the top of the body, so it applies to the
                        // value each attempt gets.
                        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                            (p.ident.clone(), p.mutability.take().is_some(), None)
                        }
                        other => {
                            let ident = format_ident!("__adk_arg{}", index, span = other.span());
                            let pattern = other.clone();
                            *typed.pat = syn::parse_quote!(#ident);
                            (ident, false, Some(pattern))
                        }
                    };
                    params.push(Param { ident, ty: (*typed.ty).clone(), mutable, borrow, pattern, span_tokens });
                }
            }
        }
        let (output, output_span) = match &sig.output {
            ReturnType::Default => (None, sig.paren_token.span.close()),
            ReturnType::Type(_, ty) => (Some((**ty).clone()), ty.span()),
        };
        let mut info = FnInfo {
            name: sig.ident.clone(),
            is_async: sig.asyncness.is_some(),
            boxed_future: false,
            receiver,
            receiver_span,
            receiver_tokens,
            params,
            output,
            output_span,
        };
        if !info.is_async
            && let Some(inner) = info.output.as_ref().and_then(boxed_future_output)
        {
            info.output_span = inner.span();
            info.output = Some(inner);
            info.is_async = true;
            info.boxed_future = true;
        }
        info
    }

    /// Whether the function has a `self` receiver (by value, reference or a typed `self: Arc<Self>`).
    pub fn is_method(&self) -> bool {
        self.receiver != Receiver::None
    }

    /// The statements that restore destructured and `mut` arguments, at the top of the body.
    pub fn rebind_patterns(&self) -> TokenStream {
        self.params
            .iter()
            .map(|p| {
                let ident = &p.ident;
                match &p.pattern {
                    Some(pat) => quote!(let #pat = #ident;),
                    None if p.mutable => quote!(let mut #ident = #ident;),
                    None => TokenStream::new(),
                }
            })
            .collect()
    }

    /// Whether the output is named `Result` (or `...Result`, as aliases like `io::Result` are).
    pub fn output_is_named_result(&self) -> bool {
        match &self.output {
            Some(Type::Path(p)) => p.path.segments.last().is_some_and(|s| s.ident.to_string().ends_with("Result")),
            _ => false,
        }
    }

    /// Whether the output is syntactically something other than a `Result` (a tuple, a reference, `()`...).
    /// Paths (including aliases such as `io::Result<T>`) are left to the type checker.
    pub fn output_cannot_be_result(&self) -> Option<String> {
        /// Types that are certainly not a `Result` (an alias of one has another name).
        const NOT_RESULTS: &[&str] = &[
            "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128",
            "isize", "f32", "f64", "String", "Vec", "Option", "Box", "Arc", "Rc", "HashMap", "BTreeMap", "HashSet",
            "BTreeSet", "VecDeque", "Cow", "Duration", "Self",
        ];
        match &self.output {
            None => Some("`()`".into()),
            Some(Type::Path(p)) => p
                .path
                .segments
                .last()
                .filter(|s| NOT_RESULTS.contains(&s.ident.to_string().as_str()))
                .map(|_| format!("`{}`", pretty(&p))),
            Some(Type::Group(_)) | Some(Type::Paren(_)) | Some(Type::Macro(_)) => None,
            Some(other) => Some(format!("`{}`", pretty(other))),
        }
    }
}

/// `Pin<Box<dyn Future<Output = R> + ...>>` -> `R`: the shape `#[async_trait]` gives an `async fn`.
fn boxed_future_output(ty: &Type) -> Option<Type> {
    let pin = last_segment(ty, "Pin")?;
    let boxed = first_type_argument(&pin.arguments)?;
    let boxed = last_segment(boxed, "Box")?;
    let Type::TraitObject(object) = first_type_argument(&boxed.arguments)? else { return None };
    object.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(t) = bound else { return None };
        let future = t.path.segments.last().filter(|s| s.ident == "Future")?;
        let PathArguments::AngleBracketed(args) = &future.arguments else { return None };
        args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(assoc.ty.clone()),
            _ => None,
        })
    })
}

fn last_segment<'a>(ty: &'a Type, name: &str) -> Option<&'a syn::PathSegment> {
    match ty {
        Type::Path(p) => p.path.segments.last().filter(|s| s.ident == name),
        _ => None,
    }
}

fn first_type_argument(args: &PathArguments) -> Option<&Type> {
    let PathArguments::AngleBracketed(args) = args else { return None };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// Tokens as a user would write them: `Vec<String>`, not `Vec < String >`.
pub fn pretty(tokens: &impl ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let (before, after) = (i.checked_sub(1).map(|j| chars[j]), chars.get(i + 1).copied());
            let tight_before = matches!(before, Some('<' | '&' | '(' | '[' | ':' | '\''));
            let tight_after = matches!(after, Some('<' | '>' | ',' | ')' | ']' | ':'));
            let keep_for_colon = before == Some(':') && chars.get(i.wrapping_sub(2)) != Some(&':');
            if (tight_before && !keep_for_colon) || tight_after {
                continue;
            }
        }
        out.push(c);
    }
    out.replace(" ::", "::").replace(":: ", "::")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_print_as_written() {
        let ty: Type = syn::parse_quote!(Vec<Option<&'static str>>);
        assert_eq!(pretty(&ty), "Vec<Option<&'static str>>");
        let arg: syn::FnArg = syn::parse_quote!(payload: std::collections::HashMap<String, u32>);
        assert_eq!(pretty(&arg), "payload: std::collections::HashMap<String, u32>");
        let arg: syn::FnArg = syn::parse_quote!(mut n: (u32, &mut [u8]));
        assert_eq!(pretty(&arg), "mut n: (u32, &mut [u8])");
    }
}
