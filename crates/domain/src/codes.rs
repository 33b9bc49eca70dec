//! Every error code the system emits, in one table.
//!
//! Codes keep the reference service's shape `GSL.000xxxxx` and its own values
//! where one fits (`GSL.00010004` bad parameter, `GSL.00016016` repeat within
//! five minutes, `GSL.00016010` pending stop, `GSL.00010003` busy). Our own
//! codes follow the same families:
//!
//! * `GSL.0001xxxx`: the request as a whole (auth, size, parameters, idempotency);
//! * `GSL.0002xxxx`: one item's identifier or parameters;
//! * `GSL.0001600x`-`GSL.000160xx`: business rules (forbidden, HTTP 403 class);
//! * `GSL.0003xxxx`: what happened at the carrier or on the bus.
//!
//! `docs/errors.md` is generated from [`ErrorCode::ALL`] by a test, so the
//! table in the docs can never drift from the code.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How a caller should treat a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Class {
    /// The input is wrong; fix it (HTTP 400 class, gRPC `INVALID_ARGUMENT`).
    BadInput,
    /// A business rule forbids it now (HTTP 403 class, gRPC `FAILED_PRECONDITION`).
    Forbidden,
    /// Authentication or authorization failed.
    Access,
    /// Not found (or not visible to this tenant).
    NotFound,
    /// Transient: retry later (HTTP 500 class, gRPC `UNAVAILABLE`).
    Busy,
    /// The carrier refused or failed the change.
    Carrier,
    /// Progress information, not a failure.
    Info,
}

macro_rules! codes {
    ($( $(#[$m:meta])* $variant:ident = ($code:literal, $class:ident, $title:literal), )*) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode { $( $(#[$m])* $variant, )* }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The wire form, e.g. `GSL.00016016`.
            pub const fn code(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code, )* }
            }

            /// How callers should treat it.
            pub const fn class(self) -> Class {
                match self { $( ErrorCode::$variant => Class::$class, )* }
            }

            /// One line saying what it means.
            pub const fn title(self) -> &'static str {
                match self { $( ErrorCode::$variant => $title, )* }
            }
        }
    };
}

codes! {
    /// No or malformed bearer token.
    Unauthenticated = ("GSL.00010001", Access, "missing or invalid credentials"),
    /// Authenticated, but the resource belongs to someone else or the caller lacks the role.
    PermissionDenied = ("GSL.00010002", Access, "not allowed for this caller"),
    /// Busy: retry later (reference service code).
    Busy = ("GSL.00010003", Busy, "service busy, retry later"),
    /// A parameter is missing or malformed (reference service code).
    BadParameter = ("GSL.00010004", BadInput, "bad parameter"),
    /// More cards than the operation's batch limit, or a request over the size limit.
    BatchTooLarge = ("GSL.00010005", BadInput, "batch or request too large"),
    /// The idempotency key was used before for a different request.
    IdempotencyConflict = ("GSL.00010006", BadInput, "idempotency key reused with a different request"),
    /// The work order does not exist or is not visible to this tenant.
    WorkOrderNotFound = ("GSL.00010007", NotFound, "work order not found"),
    /// The operation is not known.
    UnknownOperation = ("GSL.00010008", BadInput, "unknown operation"),
    /// The tenant has as many open (not final) work orders as its quota allows.
    TenantQuotaExceeded = ("GSL.00010011", BadInput, "tenant quota of open work orders reached"),
    /// No back-office request with this id.
    BackOfficeNotFound = ("GSL.00010010", NotFound, "back-office request not found"),
    /// Every item was refused: nothing to do.
    NothingToDo = ("GSL.00010009", BadInput, "every item was refused"),
    /// No push address with this id for this tenant.
    PushAddressNotFound = ("GSL.00010012", NotFound, "push address not found"),

    /// The card identifier is not a valid ICCID or container id.
    InvalidCardId = ("GSL.00020001", BadInput, "invalid card identifier"),
    /// The card is not in the registry of this tenant.
    CardNotFound = ("GSL.00020002", NotFound, "card not found"),
    /// The ICCID's issuer prefix belongs to another carrier than the registry says.
    CarrierMismatch = ("GSL.00020003", BadInput, "ICCID issuer prefix does not match the card's carrier"),
    /// The same card appears twice in one batch.
    DuplicateCard = ("GSL.00020004", BadInput, "duplicate card in batch"),
    /// The IMEI is not 15 digits with a valid Luhn check digit.
    InvalidImei = ("GSL.00020005", BadInput, "invalid IMEI"),
    /// An operation parameter (speed, threshold, region, policy, entry) is invalid.
    InvalidItemParameter = ("GSL.00020006", BadInput, "invalid operation parameter"),
    /// The purchase batch is unknown.
    BatchNotFound = ("GSL.00020007", NotFound, "purchase batch not found"),

    /// The carrier does not offer this operation (or the documentation does not state it).
    NotSupported = ("GSL.00016001", Forbidden, "operation not offered by this carrier"),
    /// The card's state does not allow the operation.
    IllegalState = ("GSL.00016002", Forbidden, "card state does not allow this operation"),
    /// China Telecom: at most 2 successful rebinds per card per calendar month (UTC+8).
    RebindQuotaExhausted = ("GSL.00016003", Forbidden, "monthly rebind quota exhausted"),
    /// China Mobile: Xinjiang, Tibet and Inner Mongolia may not be bound.
    RegionNotAllowed = ("GSL.00016004", Forbidden, "region may not be bound"),
    /// Directional config over the carrier's IP / domain / entry limits.
    DirectionalLimit = ("GSL.00016005", Forbidden, "directional config over the carrier's limits"),
    /// A directional entry in this state cannot be modified or deleted.
    DirectionalEntryState = ("GSL.00016006", Forbidden, "directional entry state does not allow this change"),
    /// Deleting would leave the batch without directional entries.
    DirectionalLastEntry = ("GSL.00016007", Forbidden, "directional config must keep at least one entry"),
    /// The purchase batch was not bought with directional data.
    DirectionalNotEligible = ("GSL.00016008", Forbidden, "batch not bought with directional data"),
    /// China Unicom speed limits need personal real-name verification.
    RealNameRequired = ("GSL.00016009", Forbidden, "card needs personal real-name verification"),
    /// A stop order is still pending on this card (reference service code).
    PendingStop = ("GSL.00016010", Forbidden, "a stop order is still pending on this card"),
    /// Tri-net cards without the SDK switch at most once every 5 minutes.
    SwitchTooSoon = ("GSL.00016011", Forbidden, "tri-net switch within 5 minutes of the last one"),
    /// Tri-net policy disabled, unknown, or of the other version (SDK / no-SDK).
    PolicyNotUsable = ("GSL.00016012", Forbidden, "switch policy not enabled or not of the card's version"),
    /// Usage-threshold cutoff on this carrier is for pooled cards only.
    PooledCardsOnly = ("GSL.00016013", Forbidden, "only pooled cards on this carrier"),
    /// Only an order still in review can be cancelled (or approved, or rejected).
    NotInReview = ("GSL.00016014", Forbidden, "work order is no longer in review"),
    /// The speed value is not in the carrier's set.
    SpeedNotOffered = ("GSL.00016015", Forbidden, "speed value not offered by this carrier"),
    /// The same operation on the same card within 5 minutes (reference service code).
    RepeatTooSoon = ("GSL.00016016", Forbidden, "same operation on the same card within 5 minutes"),
    /// China Mobile refuses a second status change on a card within 3 minutes.
    StatusChangeTooSoon = ("GSL.00016017", Forbidden, "status change too soon after the last one"),
    /// A network reset needs at least 15 minutes between the stop and the resume.
    ResumeTooSoon = ("GSL.00016018", Forbidden, "resume too soon after the stop"),
    /// The rebind bind type is not offered by this carrier.
    BindTypeNotOffered = ("GSL.00016019", Forbidden, "bind type not offered by this carrier"),
    /// China Mobile function toggles are spaced 10 minutes apart.
    ToggleTooSoon = ("GSL.00016020", Forbidden, "function toggle too soon after the last one"),
    /// The back-office request's state does not allow this move (e.g. completing a rejected one).
    BackOfficeState = ("GSL.00016021", Forbidden, "back-office request state does not allow this"),

    /// The carrier refused the change; the carrier's own code is in the detail.
    CarrierRejected = ("GSL.00030001", Carrier, "carrier refused the change"),
    /// The carrier kept failing (5xx, busy, timeouts) until the retry budget ran out.
    CarrierUnavailable = ("GSL.00030002", Carrier, "carrier unavailable after retries"),
    /// The carrier did not complete the change within its promised service time (not final).
    SlaBreached = ("GSL.00030003", Info, "carrier past its promised service time"),
    /// The carrier accepted the change and later reported it failed.
    CarrierFailed = ("GSL.00030004", Carrier, "carrier failed the change after accepting it"),
    /// A bus message could not be decoded; it was dead-lettered.
    MalformedMessage = ("GSL.00030005", BadInput, "malformed message, dead-lettered"),
    /// The item was delivered the maximum number of times without an outcome.
    MaxDeliveries = ("GSL.00030006", Carrier, "maximum deliveries reached, dead-lettered"),
    /// The carrier accepted the change (progress, not final).
    CarrierAccepted = ("GSL.00030007", Info, "carrier accepted the change"),
    /// The work order was cancelled before this item was sent.
    Cancelled = ("GSL.00030008", Info, "work order cancelled"),
    /// The gateway refused an item's outcome for good (unknown order or item): dead-lettered.
    ReportRefused = ("GSL.00030009", BadInput, "outcome refused by the gateway, dead-lettered"),
    /// The carrier has no public API for this operation: a back-office request was filed and an operator carries it out.
    BackOfficePending = ("GSL.00030010", Info, "waiting on the carrier's back office"),
    /// An operator rejected the item's back-office request (the carrier refused it, or it was not possible there); the reason is in the detail.
    BackOfficeRejected = ("GSL.00030011", Carrier, "rejected in the carrier's back office"),
}

impl ErrorCode {
    /// Parse the wire form back.
    pub fn from_code(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.code() == s)
    }

    /// Whether retrying the same request later may succeed.
    pub const fn retryable(self) -> bool {
        matches!(self.class(), Class::Busy) || matches!(self, ErrorCode::CarrierUnavailable)
    }

    /// The markdown table for `docs/errors.md`.
    pub fn markdown_table() -> String {
        let mut s = String::from("| code | name | class | meaning |\n|---|---|---|---|\n");
        for c in ErrorCode::ALL {
            s.push_str(&format!(
                "| `{}` | `{:?}` | {:?} | {} |\n",
                c.code(),
                c,
                c.class(),
                c.title()
            ));
        }
        s
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for c in ErrorCode::ALL {
            let s = c.code();
            assert!(seen.insert(s), "duplicate code {s}");
            assert_eq!(s.len(), 12, "{s}");
            assert!(s.starts_with("GSL.000"), "{s}");
            assert!(s[4..].chars().all(|ch| ch.is_ascii_digit()), "{s}");
            assert_eq!(ErrorCode::from_code(s), Some(*c));
        }
    }

    #[test]
    fn reference_codes_are_kept() {
        assert_eq!(ErrorCode::BadParameter.code(), "GSL.00010004");
        assert_eq!(ErrorCode::RepeatTooSoon.code(), "GSL.00016016");
        assert_eq!(ErrorCode::PendingStop.code(), "GSL.00016010");
        assert_eq!(ErrorCode::Busy.code(), "GSL.00010003");
        assert!(ErrorCode::Busy.retryable());
        assert!(!ErrorCode::RepeatTooSoon.retryable());
    }

    #[test]
    fn docs_table_matches_code() {
        let doc = include_str!("../../../docs/errors.md");
        assert!(
            doc.contains(&ErrorCode::markdown_table()),
            "docs/errors.md is stale: paste the output of ErrorCode::markdown_table() (run `cargo run -p gsl-domain --example error_table`)"
        );
    }
}
