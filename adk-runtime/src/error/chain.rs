//! Error chains: an `anyhow::Error`, an `eyre::Report` or a boxed error is classified by the first error of its
//! `source()` chain whose type adk knows, so `.context("...")` layers and wrappers of unknown types are looked through.

use std::error::Error as StdError;

use super::{Classify, Error, ErrorClass, HttpError};

/// `error` as a [`Classify`], if its type is one adk knows.
fn known<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a dyn Classify> {
    if let Some(e) = error.downcast_ref::<Error>() {
        return Some(e);
    }
    if let Some(e) = error.downcast_ref::<HttpError>() {
        return Some(e);
    }
    if let Some(e) = error.downcast_ref::<std::io::Error>() {
        return Some(e);
    }
    if let Some(e) = error.downcast_ref::<tokio::time::error::Elapsed>() {
        return Some(e);
    }
    #[cfg(feature = "reqwest")]
    if let Some(e) = error.downcast_ref::<reqwest::Error>() {
        return Some(e);
    }
    #[cfg(feature = "tonic")]
    if let Some(e) = error.downcast_ref::<tonic::Status>() {
        return Some(e);
    }
    #[cfg(any(feature = "http", feature = "reqwest", feature = "tonic"))]
    if let Some(e) = error.downcast_ref::<hyper::Error>() {
        return Some(e);
    }
    #[cfg(any(feature = "http", feature = "reqwest", feature = "tonic"))]
    if let Some(e) = error.downcast_ref::<hyper::http::Error>() {
        return Some(e);
    }
    None
}

/// `Classify` for an error report type with a `chain()` of its causes: by the first cause adk knows, else transient.
#[cfg(any(feature = "anyhow", feature = "eyre"))]
macro_rules! classified_by_chain {
    ($(#[$attribute:meta])* $report:ty) => {
        $(#[$attribute])*
        impl Classify for $report {
        fn class(&self) -> ErrorClass {
            self.chain().find_map(known).map_or(ErrorClass::Transient, Classify::class)
        }

        fn retry_after(&self) -> Option<std::time::Duration> {
            self.chain().find_map(known).and_then(Classify::retry_after)
        }

        fn adk_error(&self) -> Option<&Error> {
            self.chain().find_map(known).and_then(Classify::adk_error)
        }
        }
    };
}

/// The first error of the chain that starts at `error` (itself included) whose type adk knows.
pub(super) fn first_known<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a dyn Classify> {
    std::iter::successors(Some(error), |e| StdError::source(*e)).find_map(known)
}

/// The first known error inside an `io::Error`, which its `source()` skips.
pub(super) fn inside_io(error: &std::io::Error) -> Option<&dyn Classify> {
    error.get_ref().and_then(|inner| first_known(inner))
}

/// The class of the chain that starts at `error`: its first known error's, else transient (an error nobody
/// described may well pass on the next try, and `retry` bounds how often it is tried).
pub(super) fn class(error: &(dyn StdError + 'static)) -> ErrorClass {
    first_known(error).map_or(ErrorClass::Transient, Classify::class)
}

#[cfg(feature = "anyhow")]
classified_by_chain! {
    /// Classified by the first error of [`anyhow::Error::chain`] adk knows (an [`Error`], an [`HttpError`], an
    /// `io::Error`, a `reqwest::Error`, a `tonic::Status`, ...), with its `retry_after` and `adk_error`; a chain of
    /// errors adk does not know is transient.
    ///
    /// ```
    /// use adk_runtime::{Classify, ErrorClass, HttpError};
    /// use anyhow::Context;
    ///
    /// let not_found: anyhow::Result<()> = Err(HttpError::from_status(404)).context("fetching the weather");
    /// assert_eq!(not_found.unwrap_err().class(), ErrorClass::Permanent);
    /// ```
    #[diagnostic::do_not_recommend]
    anyhow::Error
}

#[cfg(feature = "eyre")]
classified_by_chain! {
    /// Classified by the first error of [`eyre::Report::chain`] adk knows, as `anyhow::Error` is.
    ///
    /// ```
    /// use adk_runtime::{Classify, ErrorClass};
    ///
    /// let refused = eyre::Report::new(adk_runtime::Error::timeout(std::time::Duration::from_secs(2)));
    /// assert_eq!(refused.class(), ErrorClass::Transient);
    /// assert!(refused.adk_error().is_some());
    /// ```
    #[diagnostic::do_not_recommend]
    eyre::Report
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;
    use std::io;
    use std::time::Duration;

    /// A wrapper of a type adk does not know, as libraries write them.
    #[derive(Debug)]
    struct Wrapped(Box<dyn StdError + Send + Sync>);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn an_unknown_wrapper_is_looked_through() {
        let boxed: Box<dyn StdError + Send + Sync> =
            Box::new(Wrapped(Box::new(io::Error::from(io::ErrorKind::InvalidInput))));
        assert_eq!(boxed.class(), ErrorClass::Permanent);
        let refused: Box<dyn StdError + Send + Sync> =
            Box::new(Wrapped(Box::new(Error::rate_limited("p", Duration::from_secs(3), 0, 0))));
        assert_eq!(refused.retry_after(), Some(Duration::from_secs(3)));
        assert!(matches!(refused.adk_error(), Some(Error::RateLimited { .. })));
    }

    #[test]
    fn the_first_known_error_decides_not_a_deeper_one() {
        // An invalid-data io error (permanent) caused by a timeout (transient): the outer one, nearer the caller, says
        // what happened; the refusal inside is still visible to breakers.
        let io = io::Error::new(io::ErrorKind::InvalidData, Error::timeout(Duration::from_secs(1)));
        let boxed: Box<dyn StdError + Send + Sync> = Box::new(Wrapped(Box::new(io)));
        assert_eq!(boxed.class(), ErrorClass::Permanent);
        assert!(matches!(boxed.adk_error(), Some(Error::Timeout { .. })));
    }

    #[test]
    fn an_io_error_of_kind_other_is_classified_by_what_it_wraps() {
        let limited = io::Error::other(Error::rate_limited("p", Duration::from_secs(1), 0, 0));
        assert_eq!(limited.class(), ErrorClass::Transient);
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(1)));
        assert_eq!(io::Error::other(HttpError::from_status(401)).class(), ErrorClass::Permanent);
        assert_eq!(io::Error::other("plain message").class(), ErrorClass::Permanent);
        let timed_out = io::Error::from(Error::timeout(Duration::from_secs(2)));
        assert_eq!(timed_out.kind(), io::ErrorKind::TimedOut);
        assert!(matches!(timed_out.adk_error(), Some(Error::Timeout { .. })));
    }

    #[test]
    fn a_chain_of_unknown_errors_is_transient() {
        let boxed: Box<dyn StdError + Send + Sync> = Box::new(Wrapped("no idea".into()));
        assert_eq!(boxed.class(), ErrorClass::Transient);
        assert_eq!(boxed.retry_after(), None);
        assert!(boxed.adk_error().is_none());
    }

    #[cfg(feature = "anyhow")]
    #[test]
    fn anyhow_context_is_looked_through() {
        use anyhow::Context;
        let limited: anyhow::Result<()> =
            Err(Error::rate_limited("openai", Duration::from_millis(1500), 0, 0)).context("asking the model");
        let limited = limited.unwrap_err();
        assert_eq!(limited.class(), ErrorClass::Transient);
        assert_eq!(limited.retry_after(), Some(Duration::from_millis(1500)));
        assert!(matches!(limited.adk_error(), Some(Error::RateLimited { .. })));
        let unknown = anyhow::anyhow!("something odd");
        assert_eq!(unknown.class(), ErrorClass::Transient);
        let denied = anyhow::Error::new(io::Error::from(io::ErrorKind::PermissionDenied)).context("opening the cache");
        assert_eq!(denied.class(), ErrorClass::Permanent);
    }

    #[cfg(feature = "eyre")]
    #[test]
    fn eyre_context_is_looked_through() {
        use eyre::WrapErr;
        let corrupt: eyre::Result<()> = Err(io::Error::from(io::ErrorKind::OutOfMemory)).wrap_err("loading the index");
        assert_eq!(corrupt.unwrap_err().class(), ErrorClass::Critical);
        let busy: eyre::Result<()> =
            Err(HttpError::from_status(503).with_retry_after(Duration::from_secs(4))).wrap_err("calling the provider");
        assert_eq!(busy.unwrap_err().retry_after(), Some(Duration::from_secs(4)));
    }
}
