//! Card sync reads, one file per carrier (`docs/carriers.md`, "Card sync";
//! the contracts' "Queries for card sync"): the plan each carrier's
//! contract allows at the fewest calls, the read calls, and parsers that
//! keep unknown codes raw and never fail a sweep (an answer we cannot map
//! is a read with the field unset and the raw code kept).
//!
//! | carrier | sweep | changed since | calls per card |
//! |---|---|---|---|
//! | CMCC | 25S04 per card (no batch status call), 25S02 for stopped cards | none used (23E00 is unsure, not built) | 1 + the stopped share |
//! | CT | `queryCardMainStatus` per card (status, cut-net, real-name) | none exists | 1 |
//! | CU | `ctdUsages` per card (status, IMEI) | `GET /devices?modifiedSince=` every minute, then `ctdUsages` per changed card | 1; a pass: 1/50 + 1 per changed card |
//! | tri-net | `GET /cards` pages of 100 | `GET /cards?modifiedSince=` | 0.01 |

pub mod cmcc;
pub mod ct;
pub mod cu;
pub mod trinet;

use gsl_proto::v1;

/// A domain code from a carrier code by a table; `None` when the table has
/// no row (the raw code is kept by the caller).
pub fn lookup<T: Copy>(table: &[(&str, T)], code: &str) -> Option<T> {
    table.iter().find(|(c, _)| *c == code).map(|(_, v)| *v)
}

/// Log a code the tables do not know (kept raw, never fatal).
pub fn unknown_code(carrier: &str, field: &str, code: &str, card: &str) {
    tracing::info!(
        carrier,
        field,
        code,
        card,
        "card sync: a code with no domain meaning; kept raw"
    );
}

/// A read of `card` at `now`.
pub fn read(card: &str, now: chrono::DateTime<chrono::Utc>) -> v1::CardRead {
    gsl_adapter_kit::reads::read(card, now)
}
