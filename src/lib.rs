//! placeholder
pub use adk_runtime::*;
#[doc(hidden)]
pub mod __private {
    pub use adk_runtime::macro_support::*;
}
