//! The stack of adk attributes on one function: the first one to expand collects the others from the item, in
//! written order (outermost first), so the whole stack is validated and expanded at once.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{Attribute, Meta};

use crate::args::{self, Arg, Errors};
use crate::attrs::Kind;

/// One attribute of the stack, before its arguments are read.
pub struct Entry {
    pub kind: Kind,
    /// Where to point errors about the attribute as a whole.
    pub span: Span,
    pub args: Vec<Arg>,
}

/// The stack and the path generated code uses to reach the runtime.
pub struct Stack {
    pub entries: Vec<Entry>,
    pub krate: syn::Path,
}

/// Collects the stack: `first` (the attribute being expanded) followed by every adk attribute left on the item,
/// which are removed from it. Other attributes stay where they are.
pub fn collect(first: Kind, first_args: TokenStream, attrs: &mut Vec<Attribute>, errors: &mut Errors) -> Stack {
    let first_args = errors.ok(args::parse_args(first_args)).unwrap_or_default();
    let mut krate_override = crate_override(&first_args, errors);
    let mut entries = vec![Entry { kind: first, span: Span::call_site(), args: first_args }];
    let crate_name = krate_override.as_ref().and_then(|p| p.segments.first()).map(|s| s.ident.to_string());

    let mut kept = Vec::with_capacity(attrs.len());
    for attr in attrs.drain(..) {
        let Some(kind) = adk_kind(&attr, crate_name.as_deref()) else {
            kept.push(attr);
            continue;
        };
        let args = match &attr.meta {
            Meta::Path(_) => Vec::new(),
            Meta::List(list) => errors.ok(args::parse_args(list.tokens.clone())).unwrap_or_default(),
            Meta::NameValue(nv) => {
                errors.spanned(
                    nv.eq_token,
                    format!("#[adk::{}] takes its arguments in parentheses: #[adk::{}(...)]", kind.name(), kind.name()),
                );
                Vec::new()
            }
        };
        if krate_override.is_none() {
            krate_override = crate_override(&args, errors);
        }
        let span = attr.path().segments.last().map_or_else(|| attr.span(), |s| s.ident.span());
        if attr.path().segments.len() == 1 {
            // An imported attribute (`use adk::timeout;`) that the stack absorbs would leave its import unused, a
            // false warning; a marker keeps it applied, and it then returns the function unchanged.
            let path = attr.path();
            kept.push(syn::parse_quote!(#[#path(__adk_expanded)]));
        }
        entries.push(Entry { kind, span, args });
    }
    *attrs = kept;
    Stack { entries, krate: krate_override.unwrap_or_else(|| syn::parse_quote!(::adk)) }
}

/// Recognises `#[adk::retry]`, `#[::adk::retry]`, `#[retry]` (imported) and `#[renamed::retry]` when
/// `crate = "renamed"` is given.
fn adk_kind(attr: &Attribute, crate_name: Option<&str>) -> Option<Kind> {
    let path = attr.path();
    let kind = Kind::from_name(&path.segments.last()?.ident.to_string())?;
    match path.segments.len() {
        1 if path.leading_colon.is_none() => Some(kind),
        2 => {
            let prefix = path.segments[0].ident.to_string();
            (prefix == "adk" || Some(prefix.as_str()) == crate_name).then_some(kind)
        }
        _ => None,
    }
}

/// The `crate = "path"` argument, if given; it is removed from the list.
fn crate_override(args: &[Arg], errors: &mut Errors) -> Option<syn::Path> {
    args.iter().find_map(|arg| match arg {
        Arg::KeyValue { key, value } if key == "crate" => {
            let text = errors.ok(args::lit_str(value, "`crate`"))?;
            errors.ok(syn::parse_str::<syn::Path>(&text).map_err(|_| {
                syn::Error::new_spanned(
                    value,
                    format!("`crate = {text:?}` is not a path; write e.g. `crate = \"my_adk\"`"),
                )
            }))
        }
        _ => None,
    })
}

/// The arguments of an attribute the stack above it already expanded (see `collect`).
pub fn is_expanded_marker(args: &TokenStream) -> bool {
    let mut tokens = args.clone().into_iter();
    matches!((tokens.next(), tokens.next()), (Some(proc_macro2::TokenTree::Ident(ident)), None) if ident == "__adk_expanded")
}

/// Whether `key` is the stack-wide `crate` option, which every attribute accepts.
pub fn is_crate_key(arg: &Arg) -> bool {
    matches!(arg, Arg::KeyValue { key, .. } if key == "crate")
}
