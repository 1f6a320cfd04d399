//! tonic (0.14): `Classify` for `tonic::Status` by its code and `google.rpc.RetryInfo` detail, and
//! `From<Error> for tonic::Status`, so a gRPC client or service returning `Result<T, tonic::Status>` carries every
//! policy and a refusal reaches its caller as the gRPC code that means it.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{Classify, Error, ErrorClass, chain};

/// The metadata key of gRPC's own retry pushback (the gRPC retry design, A6), read when no `RetryInfo` is given.
const RETRY_PUSHBACK: &str = "grpc-retry-pushback-ms";

/// By code: `Unavailable`, `ResourceExhausted`, `DeadlineExceeded`, `Aborted`, `Cancelled`, `Internal` (HTTP's
/// 500) and `Unknown` are transient; `InvalidArgument`, `NotFound`, `AlreadyExists`, `PermissionDenied`,
/// `Unauthenticated`, `FailedPrecondition`, `OutOfRange` and `Unimplemented` permanent; `DataLoss` critical.
/// `retry_after` is the delay of the status's `google.rpc.RetryInfo` detail, else its `grpc-retry-pushback-ms`.
/// A status made from an adk refusal (by `From<adk::Error>`, in this process) is classified as that refusal, and
/// one with code `Unknown` (what `Status::from_error` gives an error it cannot map) by the error it wraps.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::{Classify, ErrorClass};
/// use tonic_types::{ErrorDetails, StatusExt};
///
/// let overloaded = tonic::Status::with_error_details(
///     tonic::Code::Unavailable,
///     "try later",
///     ErrorDetails::with_retry_info(Some(Duration::from_secs(2))),
/// );
/// assert_eq!(overloaded.class(), ErrorClass::Transient);
/// assert_eq!(overloaded.retry_after(), Some(Duration::from_secs(2)));
/// assert_eq!(tonic::Status::not_found("no such user").class(), ErrorClass::Permanent);
/// ```
#[diagnostic::do_not_recommend]
impl Classify for Status {
    fn class(&self) -> ErrorClass {
        if let Some(refusal) = self.adk_error() {
            return refusal.class();
        }
        match self.code() {
            Code::Unavailable
            | Code::ResourceExhausted
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Cancelled
            | Code::Internal => ErrorClass::Transient,
            Code::Unknown => std::error::Error::source(self).map_or(ErrorClass::Transient, chain::class),
            Code::DataLoss => ErrorClass::Critical,
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Ok => ErrorClass::Permanent,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        if let Some(refusal) = self.adk_error() {
            return refusal.retry_after();
        }
        if let Some(delay) = self.get_details_retry_info().and_then(|info| info.retry_delay) {
            return Some(delay);
        }
        let pushback = self.metadata().get(RETRY_PUSHBACK)?.to_str().ok()?;
        pushback.trim().parse().ok().map(Duration::from_millis)
    }

    fn adk_error(&self) -> Option<&Error> {
        std::error::Error::source(self)?.downcast_ref::<Error>()
    }
}

/// A refusal as the gRPC code that means it, with a `google.rpc.RetryInfo` detail carrying its `retry_after`:
/// `RateLimited` is `ResourceExhausted`, `CircuitOpen` and `BulkheadFull` `Unavailable`, `Timeout`
/// `DeadlineExceeded`, and `CostAboveLimit` (no wait helps) `FailedPrecondition`. The status keeps the refusal as
/// its source, so policies further out in the same process still see it through `Classify::adk_error`.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::Classify;
///
/// let status = tonic::Status::from(adk_runtime::Error::rate_limited("users", Duration::from_secs(3), 10, 0));
/// assert_eq!(status.code(), tonic::Code::ResourceExhausted);
/// assert_eq!(status.retry_after(), Some(Duration::from_secs(3)));
/// ```
impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::RateLimited { .. } => Code::ResourceExhausted,
            Error::CostAboveLimit { .. } => Code::FailedPrecondition,
            Error::CircuitOpen { .. } | Error::BulkheadFull { .. } | Error::BackendUnavailable { .. } => {
                Code::Unavailable
            }
            Error::Timeout { .. } => Code::DeadlineExceeded,
        };
        let mut status = match error.retry_after() {
            Some(delay) => {
                Status::with_error_details(code, error.to_string(), ErrorDetails::with_retry_info(Some(delay)))
            }
            None => Status::new(code, error.to_string()),
        };
        status.set_source(Arc::new(error));
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_rules() {
        for (code, class) in [
            (Code::Unavailable, ErrorClass::Transient),
            (Code::ResourceExhausted, ErrorClass::Transient),
            (Code::DeadlineExceeded, ErrorClass::Transient),
            (Code::Aborted, ErrorClass::Transient),
            (Code::InvalidArgument, ErrorClass::Permanent),
            (Code::NotFound, ErrorClass::Permanent),
            (Code::PermissionDenied, ErrorClass::Permanent),
            (Code::Unauthenticated, ErrorClass::Permanent),
            (Code::DataLoss, ErrorClass::Critical),
        ] {
            assert_eq!(Status::new(code, "x").class(), class, "{code:?}");
        }
    }

    #[test]
    fn an_unknown_status_is_classified_by_the_error_it_wraps() {
        let status = Status::from_error(Box::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)));
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.class(), ErrorClass::Permanent);
        assert_eq!(Status::unknown("?").class(), ErrorClass::Transient);
    }

    #[test]
    fn retry_pushback_is_read_without_retry_info() {
        let mut status = Status::unavailable("draining");
        status.metadata_mut().insert(RETRY_PUSHBACK, "1500".parse().unwrap());
        assert_eq!(status.retry_after(), Some(Duration::from_millis(1500)));
        assert_eq!(Status::unavailable("draining").retry_after(), None);
    }

    #[test]
    fn a_refusal_becomes_its_code_and_stays_visible() {
        let open = Status::from(Error::circuit_open("db", Duration::from_secs(5)));
        assert_eq!(open.code(), Code::Unavailable);
        assert!(matches!(open.adk_error(), Some(Error::CircuitOpen { .. })));
        assert_eq!(open.get_details_retry_info().and_then(|i| i.retry_delay), Some(Duration::from_secs(5)));
        let too_big = Status::from(Error::cost_above_limit("tokens", 10, 5));
        assert_eq!((too_big.code(), too_big.class()), (Code::FailedPrecondition, ErrorClass::Permanent));
        assert_eq!(Status::from(Error::timeout(Duration::from_secs(1))).code(), Code::DeadlineExceeded);
        assert_eq!(Status::from(Error::bulkhead_full("db", 4)).code(), Code::Unavailable);
    }
}
