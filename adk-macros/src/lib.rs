//! Attribute macros of adk. Use them through the `adk` crate (`#[adk::retry]`, ...), which documents each one.
//!
//! Every entry point hands the whole stack to [`expand::expand`]: the first adk attribute on a function expands all
//! of them, in written order.

mod args;
mod attrs;
mod expand;
mod order;
mod sig;
mod stack;

use proc_macro::TokenStream;

use attrs::Kind;

/// Re-runs the function on transient failure. Documented on `adk::retry`.
#[proc_macro_attribute]
pub fn retry(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Retry, args.into(), item.into()).into()
}

/// Bounds the function's duration. Documented on `adk::timeout`.
#[proc_macro_attribute]
pub fn timeout(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Timeout, args.into(), item.into()).into()
}

/// Answers another way when the function fails. Documented on `adk::fallback`.
#[proc_macro_attribute]
pub fn fallback(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Fallback, args.into(), item.into()).into()
}
