//! `#[derive(Classify)]`: parse the `#[adk(...)]` attributes into a model (`ast`), checking them against the fields
//! they name as it goes, then generate the impl (`expand`). On a mistake, the errors come with an impl of every
//! default, so the rest of the crate sees the type as `Classify` and reports nothing more.

mod ast;
mod expand;

use proc_macro2::TokenStream;

use crate::args::Errors;

pub fn derive(input: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = Errors::default();
    let model = ast::parse(&input, &mut errors);
    if errors.is_empty() {
        expand::impl_classify(&model)
    } else {
        let mut out = expand::fallback(&model);
        out.extend(errors.to_compile_errors());
        out
    }
}
