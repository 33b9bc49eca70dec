//! API errors: a stable code from the domain table plus a message, turned
//! into a gRPC status whose message starts with the code and whose metadata
//! carries it in `gsl-error-code`.

use gsl_domain::codes::{Class, ErrorCode};
use tonic::{Code, Status};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadParameter, message)
    }

    /// A bus or storage failure: the caller should retry.
    pub fn busy(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(ErrorCode::Busy, format!("retry later: {e}"))
    }

    pub fn not_found() -> ApiError {
        ApiError::new(ErrorCode::WorkOrderNotFound, "no such work order")
    }

    pub fn grpc_code(&self) -> Code {
        match (self.code, self.code.class()) {
            (ErrorCode::Unauthenticated, _) => Code::Unauthenticated,
            (ErrorCode::PermissionDenied, _) => Code::PermissionDenied,
            (ErrorCode::BatchTooLarge, _) => Code::ResourceExhausted,
            (ErrorCode::TenantQuotaExceeded, _) => Code::ResourceExhausted,
            (ErrorCode::IdempotencyConflict, _) => Code::AlreadyExists,
            (_, Class::BadInput) => Code::InvalidArgument,
            (_, Class::Forbidden) => Code::FailedPrecondition,
            (_, Class::Access) => Code::PermissionDenied,
            (_, Class::NotFound) => Code::NotFound,
            (_, Class::Busy) => Code::Unavailable,
            (_, Class::Carrier | Class::Info) => Code::FailedPrecondition,
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let mut s = Status::new(e.grpc_code(), e.to_string());
        if let Ok(v) = e.code.code().parse() {
            s.metadata_mut().insert("gsl-error-code", v);
        }
        s
    }
}

impl From<gsl_bus::BusError> for ApiError {
    fn from(e: gsl_bus::BusError) -> ApiError {
        ApiError::busy(e)
    }
}

impl From<gsl_cardstore::StoreError> for ApiError {
    /// Every card-store failure is the caller's to retry: the store is
    /// unavailable, busy or being migrated. The text names no URL.
    fn from(e: gsl_cardstore::StoreError) -> ApiError {
        ApiError::busy(e)
    }
}

/// The code a gRPC status carries (for clients and tests).
pub fn code_of(s: &Status) -> Option<ErrorCode> {
    s.metadata()
        .get("gsl-error-code")
        .and_then(|v| v.to_str().ok())
        .and_then(ErrorCode::from_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_codes() {
        let s: Status = ApiError::new(ErrorCode::NotInReview, "x").into();
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(code_of(&s), Some(ErrorCode::NotInReview));
        assert!(s.message().starts_with("GSL.00016014"));
        let s: Status = ApiError::new(ErrorCode::Unauthenticated, "x").into();
        assert_eq!(s.code(), Code::Unauthenticated);
        let s: Status = ApiError::busy("nats down").into();
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(code_of(&s), Some(ErrorCode::Busy));
    }
}
