//! The typed model of a `#[derive(Classify)]` input, read from its `#[adk(...)]` attributes and checked against the
//! fields they name. Every mistake is collected; the model is complete (with defaults) even when there are some.

use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Expr, ExprLit, Fields, Ident, Lit, Member, Meta, Type};

use crate::args::{self, Arg, Errors};

/// How a variant (or a struct) is classified when nothing more specific says otherwise.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Transient,
    Permanent,
    Critical,
}

impl Class {
    fn from_key(key: &str) -> Option<Class> {
        Some(match key {
            "transient" => Class::Transient,
            "permanent" => Class::Permanent,
            "critical" => Class::Critical,
            _ => return None,
        })
    }

    pub fn variant_name(self) -> &'static str {
        match self {
            Class::Transient => "Transient",
            Class::Permanent => "Permanent",
            Class::Critical => "Critical",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Class::Transient => "transient",
            Class::Permanent => "permanent",
            Class::Critical => "critical",
        }
    }
}

pub struct Input<'a> {
    pub ident: &'a Ident,
    pub generics: &'a syn::Generics,
    /// The path to the facade (`::adk` unless `#[adk(crate = "...")]`).
    pub krate: syn::Path,
    pub shape: Shape<'a>,
}

pub enum Shape<'a> {
    Struct(Variant<'a>),
    /// The variants, and the class of those that neither say nor wrap one.
    Enum {
        variants: Vec<Variant<'a>>,
        default: Class,
    },
    /// A union: an error was reported; only the fallback impl is emitted.
    Union,
}

/// One variant, or the struct itself.
pub struct Variant<'a> {
    /// `None` for a struct.
    pub ident: Option<&'a Ident>,
    /// The class written on it (for a struct, on the struct).
    pub class: Option<Class>,
    /// The field holding the wait: its member, where `retry_after = ...` named it, and its type.
    pub retry_after: Option<(Member, Span, &'a Type)>,
    /// The wrapped error it is classified by: the `#[adk(source)]` field, else its `adk::Error` field.
    pub source: Option<(Member, &'a Type)>,
}

/// Where an `#[adk(...)]` attribute sits: each place takes its own keys.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Struct,
    Enum,
    Variant,
    Field,
}

impl Place {
    fn valid(self) -> &'static [&'static str] {
        match self {
            Place::Struct => &["transient", "permanent", "critical", "retry_after", "crate"],
            Place::Enum => &["transient", "permanent", "critical", "crate"],
            Place::Variant => &["transient", "permanent", "critical", "retry_after"],
            Place::Field => &["source"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Place::Struct => "a struct",
            Place::Enum => "an enum",
            Place::Variant => "a variant",
            Place::Field => "a field",
        }
    }
}

/// What the `#[adk(...)]` attributes of one item say, before fields are resolved.
#[derive(Default)]
struct Said {
    class: Option<(Class, Ident)>,
    retry_after: Option<(Expr, Ident)>,
    krate: Option<syn::Path>,
    source: Option<Ident>,
}

pub fn parse<'a>(input: &'a DeriveInput, errors: &mut Errors) -> Input<'a> {
    let place = match input.data {
        Data::Struct(_) => Place::Struct,
        Data::Enum(_) => Place::Enum,
        Data::Union(_) => Place::Field, // never read: a union is refused below
    };
    let said = if place == Place::Field { Said::default() } else { read(&input.attrs, place, errors) };
    let krate = said.krate.clone().unwrap_or_else(|| syn::parse_quote!(::adk));
    let shape = match &input.data {
        Data::Struct(data) => Shape::Struct(variant(None, said, &data.fields, &krate, errors)),
        Data::Enum(data) => {
            let default = said.class.as_ref().map_or(Class::Transient, |(class, _)| *class);
            let variants = data
                .variants
                .iter()
                .map(|v| {
                    let said = read(&v.attrs, Place::Variant, errors);
                    variant(Some(&v.ident), said, &v.fields, &krate, errors)
                })
                .collect();
            Shape::Enum { variants, default }
        }
        Data::Union(data) => {
            errors.spanned(
                data.union_token,
                "#[derive(adk::Classify)] works on enums and structs, not on unions: a union does not know which of its fields it holds; implement `adk::Classify` by hand",
            );
            Shape::Union
        }
    };
    Input { ident: &input.ident, generics: &input.generics, krate, shape }
}

/// A variant (or struct) from what its attributes said and its fields.
fn variant<'a>(
    ident: Option<&'a Ident>,
    said: Said,
    fields: &'a Fields,
    krate: &syn::Path,
    errors: &mut Errors,
) -> Variant<'a> {
    let what = ident.map_or_else(|| "this struct".to_owned(), |v| format!("variant `{v}`"));
    let mut source: Option<(Member, &Type, Ident)> = None;
    for (index, field) in fields.iter().enumerate() {
        let member = field.ident.clone().map_or_else(|| Member::Unnamed(index.into()), Member::Named);
        let said = read(&field.attrs, Place::Field, errors);
        let Some(key) = said.source else { continue };
        match &source {
            Some((first, _, _)) => errors.at(
                key.span(),
                format!(
                    "`#[adk(source)]` is already on field `{}` of {what}: it is classified by one wrapped error; remove one of them",
                    member_name(first)
                ),
            ),
            None => source = Some((member, &field.ty, key)),
        }
    }
    let source = source.map(|(member, ty, _)| (member, ty)).or_else(|| adk_error_field(fields, krate, &what, errors));
    let retry_after = said.retry_after.and_then(|(value, _)| {
        let (member, ty) = errors.ok(resolve(&value, fields, &what))?;
        if source.as_ref().is_some_and(|(s, _)| *s == member) {
            errors.spanned(
                &value,
                format!(
                    "`retry_after` names the wrapped error of {what}; name a `Duration` field instead, or leave it out: the wrapped error's own `retry_after` is used"
                ),
            );
            return None;
        }
        Some((member, value.span(), ty))
    });
    Variant { ident, class: said.class.map(|(class, _)| class), retry_after, source }
}

/// The field of type `adk::Error`, classified by without being marked; two of them are ambiguous.
fn adk_error_field<'a>(
    fields: &'a Fields,
    krate: &syn::Path,
    what: &str,
    errors: &mut Errors,
) -> Option<(Member, &'a Type)> {
    let mut found: Option<(Member, &Type)> = None;
    for (index, field) in fields.iter().enumerate() {
        if !is_adk_error(&field.ty, krate) {
            continue;
        }
        let member = field.ident.clone().map_or_else(|| Member::Unnamed(index.into()), Member::Named);
        match &found {
            Some((first, _)) => errors.spanned(
                &field.ty,
                format!(
                    "{what} has two `adk::Error` fields (`{}` and `{}`): mark the one it is classified by with `#[adk(source)]`",
                    member_name(first),
                    member_name(&member)
                ),
            ),
            None => found = Some((member, &field.ty)),
        }
    }
    found
}

/// `adk::Error`, `adk::runtime::Error`, `adk_runtime::Error` or `<crate>::Error`, with or without a leading `::`.
fn is_adk_error(ty: &Type, krate: &syn::Path) -> bool {
    let Type::Path(path) = ty else { return false };
    if path.qself.is_some() {
        return false;
    }
    let segments: Vec<String> = path.path.segments.iter().map(|s| s.ident.to_string()).collect();
    let krate: Vec<String> = krate.segments.iter().map(|s| s.ident.to_string()).collect();
    let Some((last, prefix)) = segments.split_last() else { return false };
    last == "Error"
        && (prefix == ["adk"] || prefix == ["adk", "runtime"] || prefix == ["adk_runtime"] || prefix == krate)
}

/// The field `retry_after = value` names.
fn resolve<'a>(value: &Expr, fields: &'a Fields, what: &str) -> syn::Result<(Member, &'a Type)> {
    let named: Vec<String> = fields.iter().filter_map(|f| f.ident.as_ref().map(ToString::to_string)).collect();
    match (value, fields) {
        (_, Fields::Unit) => Err(syn::Error::new_spanned(
            value,
            format!(
                "{what} has no fields: `retry_after` names the field that holds the wait; remove it or add a `Duration` field"
            ),
        )),
        (Expr::Path(p), Fields::Named(_)) if p.path.get_ident().is_some() => {
            let name = p.path.get_ident().expect("checked").to_string();
            if let Some(field) = fields.iter().find(|f| f.ident.as_ref().is_some_and(|i| *i == name)) {
                return Ok((Member::Named(p.path.get_ident().expect("checked").clone()), &field.ty));
            }
            let candidates: Vec<&str> = named.iter().map(String::as_str).collect();
            let hint = args::closest(&name, &candidates).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
            Err(syn::Error::new_spanned(
                value,
                format!("{what} has no field `{name}`{hint}\nits fields: {}", candidates.join(", ")),
            ))
        }
        (Expr::Lit(ExprLit { lit: Lit::Int(int), .. }), Fields::Unnamed(unnamed)) => {
            let index: usize = int.base10_parse()?;
            if let Some(field) = unnamed.unnamed.iter().nth(index) {
                let index = syn::Index { index: u32::try_from(index).unwrap_or(u32::MAX), span: int.span() };
                Ok((Member::Unnamed(index), &field.ty))
            } else {
                Err(syn::Error::new_spanned(
                    value,
                    format!("{what} has {} fields, numbered from 0: there is no field {index}", unnamed.unnamed.len()),
                ))
            }
        }
        (_, Fields::Unnamed(_)) => Err(syn::Error::new_spanned(
            value,
            format!("{what} has unnamed fields: name the one holding the wait by its index, like `retry_after = 0`"),
        )),
        (_, Fields::Named(_)) => Err(syn::Error::new_spanned(
            value,
            format!("expected the name of a field of {what}, like `retry_after = wait`"),
        )),
    }
}

fn member_name(member: &Member) -> String {
    match member {
        Member::Named(ident) => ident.to_string(),
        Member::Unnamed(index) => index.index.to_string(),
    }
}

/// What the `#[adk(...)]` attributes among `attrs` say at `place`.
fn read(attrs: &[Attribute], place: Place, errors: &mut Errors) -> Said {
    let mut said = Said::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("adk")) {
        let tokens = match &attr.meta {
            Meta::List(list) => list.tokens.clone(),
            Meta::Path(_) | Meta::NameValue(_) => {
                errors.spanned(attr, format!("write the parameters in parentheses: `#[adk({})]`", place.valid()[0]));
                continue;
            }
        };
        let Some(items) = errors.ok(args::parse_args(tokens)) else { continue };
        for item in items {
            read_one(item, place, &mut said, errors);
        }
    }
    said
}

fn read_one(item: Arg, place: Place, said: &mut Said, errors: &mut Errors) {
    let (key, value) = match item {
        Arg::Bare(Expr::Path(p)) if p.path.get_ident().is_some() => {
            (p.path.get_ident().expect("checked").clone(), None)
        }
        Arg::KeyValue { key, value } => (key, Some(value)),
        Arg::List { key, .. } => (key, None),
        Arg::Bare(other) => {
            errors.spanned(
                &other,
                format!("expected a parameter of #[adk(...)] on {}: {}", place.name(), place.valid().join(", ")),
            );
            return;
        }
    };
    let name = key.to_string();
    if !place.valid().contains(&name.as_str()) {
        errors.push(misplaced(&key, place).unwrap_or_else(|| unknown(&key, place)));
        return;
    }
    match (name.as_str(), value) {
        ("retry_after", Some(value)) => {
            if said.retry_after.is_some() {
                errors.at(key.span(), "duplicate parameter `retry_after` in #[adk(...)]; give it once");
            } else {
                said.retry_after = Some((value, key));
            }
        }
        ("retry_after", None) => errors
            .at(key.span(), "`retry_after` names the field that holds the wait: write `#[adk(retry_after = field)]`"),
        ("crate", Some(value)) => {
            let path = args::lit_str(&value, "`crate`").and_then(|text| {
                syn::parse_str::<syn::Path>(&text).map_err(|_| {
                    syn::Error::new_spanned(
                        &value,
                        format!("`crate = {text:?}` is not a path; write e.g. `crate = \"my_adk\"`"),
                    )
                })
            });
            if let Some(path) = errors.ok(path) {
                said.krate = Some(path);
            }
        }
        ("crate", None) => {
            errors.at(key.span(), "`crate` names a renamed `adk` dependency: `#[adk(crate = \"my_adk\")]`")
        }
        (_, Some(value)) => {
            errors.spanned(quote::quote!(#key = #value), format!("`{name}` takes no value: write `#[adk({name})]`"))
        }
        ("source", None) => {
            if said.source.is_some() {
                errors.at(key.span(), "duplicate parameter `source` in #[adk(...)]; give it once");
            } else {
                said.source = Some(key);
            }
        }
        (_, None) => {
            let class = Class::from_key(&name).expect("the only other valid keys are classes");
            match &said.class {
                Some((first, _)) if *first == class => {
                    errors.at(key.span(), format!("duplicate parameter `{name}` in #[adk(...)]; give it once"));
                }
                Some((first, _)) => errors.at(
                    key.span(),
                    format!(
                        "`{name}` contradicts `{}` given before it: {} has one class; keep one of them",
                        first.key(),
                        place.name()
                    ),
                ),
                None => said.class = Some((class, key)),
            }
        }
    }
}

/// The error for a key adk knows, written where it does not belong, saying where it goes.
fn misplaced(key: &Ident, place: Place) -> Option<syn::Error> {
    let name = key.to_string();
    let message = match (name.as_str(), place) {
        ("source", _) => {
            "`source` marks a field: write `#[adk(source)]` on the field that holds the wrapped error".to_owned()
        }
        ("transient" | "permanent" | "critical", Place::Field) => {
            format!(
                "`{name}` goes on the variant (or the struct), not on a field: write `#[adk({name})]` above the variant"
            )
        }
        ("retry_after", Place::Field) => {
            "`retry_after` goes on the variant (or the struct) and names this field: `#[adk(retry_after = field)]`"
                .to_owned()
        }
        ("retry_after", Place::Enum) => {
            "`retry_after` goes on a variant, naming one of its fields: `#[adk(retry_after = field)]` above the variant"
                .to_owned()
        }
        ("crate", _) => "`crate` goes on the type: `#[adk(crate = \"my_adk\")]` above the enum or struct".to_owned(),
        _ => return None,
    };
    Some(syn::Error::new(key.span(), message))
}

fn unknown(key: &Ident, place: Place) -> syn::Error {
    let name = key.to_string();
    let valid = place.valid();
    let hint = args::closest(&name, valid).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
    syn::Error::new(
        key.span(),
        format!(
            "unknown parameter `{name}` for #[adk(...)] on {}{hint}\nvalid parameters: {}",
            place.name(),
            valid.join(", ")
        ),
    )
}

impl ToTokens for Class {
    fn to_tokens(&self, tokens: &mut proc_macro2::TokenStream) {
        Ident::new(self.variant_name(), Span::call_site()).to_tokens(tokens);
    }
}
