//! The card registry as the API sees it: imports checked card by card,
//! outcomes turned into card changes, purchase batches. The cards live in
//! the card store ([`gsl_cardstore`], PostgreSQL); nothing is mirrored in
//! memory, so a gateway's memory does not grow with the fleet. Validation
//! reads the cards an order names in a few set-based queries
//! ([`Registry::lookup`]).

use crate::error::ApiError;
use gsl_cardstore::cards::Change;
use gsl_cardstore::{CardStore, Claim};
use gsl_domain::ErrorCode;
use gsl_domain::carrier::Carrier;
use gsl_domain::ids::CardId;
use gsl_domain::operation::OperationKind;
use gsl_proto::convert;
use gsl_proto::v1;
use std::collections::{HashMap, HashSet};

/// Card facts from a registry record.
pub use gsl_proto::convert::card_facts as facts_of;

/// The cards, batches and order index of every tenant.
#[derive(Clone, Debug)]
pub struct Registry {
    pub store: CardStore,
}

impl Registry {
    pub fn new(store: CardStore) -> Registry {
        Registry { store }
    }

    /// The cards of `tenant` among `keys`, as snapshots by key.
    pub async fn lookup(
        &self,
        tenant: &str,
        keys: &[&str],
    ) -> Result<HashMap<String, v1::CardSnapshot>, ApiError> {
        Ok(self.store.lookup(tenant, keys).await?)
    }

    pub async fn card(&self, tenant: &str, id: &str) -> Result<v1::Card, ApiError> {
        let key = CardId::parse(id).map_err(|e| ApiError::new(e.code(), e.to_string()))?;
        self.store
            .card(tenant, key.key())
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::CardNotFound, "card not found"))
    }

    /// Import cards for a tenant. Each bad card is refused with a reason;
    /// the rest are claimed in one statement (see `gsl_cardstore::cards`):
    /// a card this tenant may not take is refused, never taken over.
    pub async fn import(
        &self,
        tenant: &str,
        cards: Vec<v1::Card>,
        who: Assigner,
    ) -> Result<(u64, Refusals), ApiError> {
        let mut refused = Refusals::default();
        let mut ok: Vec<v1::Card> = Vec::with_capacity(cards.len());
        let mut positions: Vec<usize> = Vec::with_capacity(cards.len());
        let now = Some(convert::timestamp(chrono::Utc::now()));
        for (i, mut c) in cards.into_iter().enumerate() {
            let refuse = |code: ErrorCode, msg: String, card: String| v1::RefusedItem {
                index: i as u32,
                card,
                problem: Some(convert::problem(code, msg)),
            };
            let id = match CardId::parse(&c.id) {
                Ok(id) => id,
                Err(e) => {
                    refused.push(refuse(
                        e.code(),
                        e.to_string(),
                        c.id.chars().take(64).collect(),
                    ));
                    continue;
                }
            };
            c.id = id.key().to_owned();
            let Some(facts) = facts_of(&c) else {
                refused.push(refuse(
                    ErrorCode::BadParameter,
                    "carrier and sim_status (10, 11, 13, 14, 20, 30) are required".into(),
                    c.id,
                ));
                continue;
            };
            if let (CardId::Iccid(iccid), Some(prefix_carrier)) =
                (&id, id.iccid().and_then(|i| i.carrier()))
                && facts.carrier != Carrier::Trinet
                && prefix_carrier != facts.carrier
            {
                refused.push(refuse(
                    ErrorCode::CarrierMismatch,
                    format!("{iccid} has a {prefix_carrier} issuer prefix"),
                    c.id,
                ));
                continue;
            }
            c.tenant = tenant.to_owned();
            c.updated_at = now;
            positions.push(i);
            ok.push(c);
        }
        let taken: HashSet<String> = self
            .store
            .import(tenant, &ok, who.claim())
            .await?
            .into_iter()
            .collect();
        let mut n = 0;
        for (i, c) in positions.into_iter().zip(&ok) {
            if taken.contains(&c.id) {
                n += 1;
            } else {
                refused.push(not_yours(i, &c.id));
            }
        }
        Ok((n, refused))
    }

    /// Bring a card's record up to date after a change succeeded.
    /// Idempotent, and a stale outcome (older than the record) changes
    /// nothing.
    pub async fn apply_outcome(
        &self,
        op: &v1::Operation,
        card: &str,
        at: Option<prost_types::Timestamp>,
    ) -> Result<(), ApiError> {
        let Some(kind) = convert::operation_kind(op) else {
            return Ok(());
        };
        if kind.is_directional() {
            return self.apply_directional(op, card).await;
        }
        // An outcome without a time is older than every record.
        let Some(at) = at.as_ref().and_then(convert::from_timestamp) else {
            return Ok(());
        };
        let Some(change) = change_of(kind, op) else {
            return Ok(());
        };
        self.store.apply(card, &change, at).await?;
        Ok(())
    }

    pub async fn batch(&self, tenant: &str, batch_no: &str) -> Result<v1::PurchaseBatch, ApiError> {
        let not_found = || {
            ApiError::new(
                ErrorCode::BatchNotFound,
                format!("purchase batch {batch_no:?} not found"),
            )
        };
        if !valid_batch_no(batch_no) {
            return Err(not_found());
        }
        self.store
            .batch(batch_no)
            .await?
            .filter(|b| b.tenant == tenant)
            .ok_or_else(not_found)
    }

    /// A directional change succeeded at the carrier: the batch's entries
    /// here follow, so later limit checks see them. Idempotent (a repeated
    /// report, or a back-office completion that already moved them, changes
    /// nothing): an added entry is matched by its text.
    async fn apply_directional(&self, op: &v1::Operation, batch_no: &str) -> Result<(), ApiError> {
        use v1::operation::Kind as O;
        let effective = v1::EntryState::Effective as i32;
        self.store
            .update_batch(batch_no, |b| {
                let before = b.clone();
                match op.kind.as_ref() {
                    Some(O::DirectionalAdd(a)) => {
                        for e in &a.entries {
                            match b.entries.iter_mut().find(|x| &x.entry == e) {
                                Some(x) => x.state = effective,
                                None => {
                                    let id = format!("E{}", b.entries.len() + 1);
                                    let id = if b.entries.iter().any(|x| x.id == id) {
                                        format!("{id}-{}", e.len())
                                    } else {
                                        id
                                    };
                                    b.entries.push(v1::DirectionalEntry {
                                        id,
                                        entry: e.clone(),
                                        state: effective,
                                    });
                                }
                            }
                        }
                    }
                    Some(O::DirectionalModify(m)) => {
                        if let Some(x) = b.entries.iter_mut().find(|x| x.id == m.entry_id) {
                            x.entry = m.entry.clone();
                            x.state = effective;
                        }
                    }
                    Some(O::DirectionalDelete(d)) => {
                        b.entries.retain(|x| !d.entry_ids.contains(&x.id))
                    }
                    _ => {}
                }
                *b != before
            })
            .await?;
        Ok(())
    }

    /// Register or update purchase batches for `tenant`, with the authority
    /// of `who`: the operator assigns any batch (whoever held it); a tenant
    /// updates only batches it holds, and registers a batch nobody holds
    /// only with `GSL_TENANT_SELF_REGISTRATION=on` (development). A batch
    /// this tenant may not register is refused with one text whether it is
    /// unknown or another tenant's, so a refusal says nothing about which
    /// batch numbers exist. Each batch is one conditional statement: two
    /// claims never both win.
    pub async fn import_batches(
        &self,
        tenant: &str,
        batches: Vec<v1::PurchaseBatch>,
        who: Assigner,
    ) -> Result<u64, ApiError> {
        let mut n = 0;
        for mut b in batches {
            if !valid_batch_no(&b.batch_no) {
                return Err(ApiError::bad(format!(
                    "batch number {:?} must be 1-64 of A-Z a-z 0-9 - _",
                    b.batch_no
                )));
            }
            convert::carrier_from_wire(b.carrier).map_err(|e| ApiError::bad(e.to_string()))?;
            b.tenant = tenant.to_owned();
            if !self.store.claim_batch(&b, who.claim()).await? {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    format!("batch {:?} cannot be registered to your tenant", b.batch_no),
                ));
            }
            n += 1;
        }
        Ok(n)
    }
}

/// What a success of `kind` changes on a card (`None`: nothing the
/// registry records).
fn change_of(kind: OperationKind, op: &v1::Operation) -> Option<Change> {
    use v1::operation::Kind as O;
    Some(match (kind, op.kind.as_ref()) {
        (OperationKind::Activate | OperationKind::Resume, _) => Change::Status {
            sim_status: 20,
            stop_reason: Some(-1),
        },
        (OperationKind::Stop, _) => Change::Status {
            sim_status: 14,
            stop_reason: Some(5),
        },
        (OperationKind::CloseCard, _) => Change::Status {
            sim_status: 30,
            stop_reason: None,
        },
        // China Mobile's rebind also resumes the card (cmcc.md).
        (OperationKind::Rebind, Some(O::Rebind(r))) => Change::Imei {
            imei: r.imei.clone(),
            resumes_on: Some(v1::Carrier::Cmcc as i32),
        },
        (OperationKind::SpeedLimit, Some(O::SpeedLimit(s))) => Change::SpeedKbps(s.kbps),
        (OperationKind::SetUsageThreshold, Some(O::SetUsageThreshold(t))) => {
            Change::ThresholdMb(t.threshold_mb)
        }
        (OperationKind::CancelUsageThreshold, _) => Change::ThresholdMb(-1),
        (OperationKind::SwitchNetwork, Some(O::SwitchNetwork(s))) => {
            Change::ActiveProfile(s.target)
        }
        (OperationKind::NetworkCutoff, _) => Change::CutNet(true),
        (OperationKind::NetworkRestore, _) => Change::CutNet(false),
        _ => return None,
    })
}

/// Refusals listed in an import's answer (all are counted): an answer stays
/// small however many cards were refused.
pub const IMPORT_REFUSALS_LISTED: usize = 1000;

/// The refusals of an import: the first [`IMPORT_REFUSALS_LISTED`] kept,
/// every one counted.
#[derive(Debug, Default)]
pub struct Refusals {
    pub listed: Vec<v1::RefusedItem>,
    pub total: u64,
}

impl Refusals {
    pub fn push(&mut self, r: v1::RefusedItem) {
        self.total += 1;
        if self.listed.len() < IMPORT_REFUSALS_LISTED {
            self.listed.push(r);
        }
    }

    pub fn extend(&mut self, other: Refusals) {
        self.total += other.total;
        for r in other.listed {
            if self.listed.len() < IMPORT_REFUSALS_LISTED {
                self.listed.push(r);
            }
        }
    }
}

/// Who assigns cards (and purchase batches) to tenants in an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigner {
    /// The operator credential: assigns any card to the tenant named on it.
    Operator,
    /// A tenant importing for itself, allowed to register new cards
    /// (`GSL_TENANT_SELF_REGISTRATION=on`: development and tests).
    TenantSelfRegistration,
    /// A tenant importing for itself: only cards it already holds.
    TenantOwnCardsOnly,
}

impl Assigner {
    /// The store's claim for this authority.
    pub fn claim(self) -> Claim {
        match self {
            Assigner::Operator => Claim::Any,
            Assigner::TenantSelfRegistration => Claim::NewOrOwn,
            Assigner::TenantOwnCardsOnly => Claim::OwnOnly,
        }
    }
}

/// A card this tenant may not register. The text does not say whether
/// another tenant holds it.
fn not_yours(index: usize, card: &str) -> v1::RefusedItem {
    v1::RefusedItem {
        index: index as u32,
        card: card.to_owned(),
        problem: Some(convert::problem(
            ErrorCode::PermissionDenied,
            "this card cannot be registered to your tenant",
        )),
    }
}

/// Batch numbers go into subjects and keys.
pub fn valid_batch_no(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 64
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}
