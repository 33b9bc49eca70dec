//! What card sync asks a carrier module, and what a module answers
//! (`docs/carriers.md`, "Card sync"). The module decides the calls from its
//! contract; the [`crate::sync`] drivers decide when, and pace them.

use chrono::{DateTime, Utc};
use gsl_proto::v1;

/// A card to read, with the carrier numbers the card store holds for it
/// (empty when it has none: the module looks one up where it needs it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncCard {
    pub id: String,
    pub msisdn: String,
    pub access_number: String,
}

impl From<v1::SweepCard> for SyncCard {
    fn from(c: v1::SweepCard) -> Self {
        SyncCard {
            id: c.id,
            msisdn: c.msisdn,
            access_number: c.access_number,
        }
    }
}

impl From<&SyncCard> for v1::SweepCard {
    fn from(c: &SyncCard) -> Self {
        v1::SweepCard {
            id: c.id.clone(),
            msisdn: c.msisdn.clone(),
            access_number: c.access_number.clone(),
        }
    }
}

/// How a full sweep goes through the carrier's cards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepBy {
    /// No sync for this carrier.
    None,
    /// One read per card of the store (CMCC, CT, CU: no batch status call).
    EachCard,
    /// Pages of the carrier's own card list (tri-net).
    List,
}

/// A carrier's sync plan, from its contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPlan {
    pub sweep: SweepBy,
    /// The carrier lists cards changed since a time (CU, tri-net).
    pub changed_since: bool,
    /// Where the list's answers carry no change time (CU), the next pass
    /// starts this long before the last one started.
    pub overlap: std::time::Duration,
}

impl SyncPlan {
    pub const NONE: SyncPlan = SyncPlan {
        sweep: SweepBy::None,
        changed_since: false,
        overlap: std::time::Duration::ZERO,
    };
}

/// One page of the carrier's card list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListPage {
    /// Cards the page shows in full.
    pub reads: Vec<v1::CardRead>,
    /// Cards the page names without what sync needs (CU: status only): each
    /// costs a read of its own.
    pub to_read: Vec<String>,
    /// What the list showed of each `to_read` card (CU: status and plans),
    /// in the same order; empty where the carrier shows nothing. A card
    /// listed again the same as in the last pass, and read then, is not read
    /// again (CU's passes overlap by minutes: without this each change
    /// would be read once per overlapping pass).
    pub listed: Vec<String>,
    /// The next page (`None`: this was the last).
    pub next: Option<String>,
    /// The newest change time the page shows (tri-net's `updatedAt`), for
    /// the next pass's `since`; `None`: the answers carry no time (CU).
    pub newest: Option<DateTime<Utc>>,
}

/// Why a changed-since list cannot be read from `since`.
pub const SINCE_TOO_OLD: &str = "SINCE_TOO_OLD";

/// A read with nothing in it yet but the card and the time.
pub fn read(card: &str, at: DateTime<Utc>) -> v1::CardRead {
    v1::CardRead {
        card: card.to_owned(),
        read_at: Some(gsl_proto::convert::timestamp(at)),
        ..Default::default()
    }
}
