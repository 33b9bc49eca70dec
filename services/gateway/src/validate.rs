//! Validation before acceptance.
//!
//! Whole-request problems (no idempotency key, unknown operation, over the
//! batch limit, a parameter that is wrong for every card) refuse the request.
//! Item problems (identifier format, unknown card, carrier routing, duplicate
//! in the batch, per-card parameters, the capability and precondition table)
//! refuse that item with a stable code; the order goes ahead for the rest.

use crate::error::ApiError;
use crate::registry::Registry;
use gsl_domain::carrier::Carrier;
use gsl_domain::directional::{self, Change, EntryState, ExistingEntry, PurchaseType};
use gsl_domain::ids::CardId;
use gsl_domain::operation::{BindType, Operation, OperationKind};
use gsl_domain::threshold::Threshold;
use gsl_domain::{ErrorCode, capability, limits};
use gsl_proto::convert;
use gsl_proto::v1;
use std::collections::{HashMap, HashSet};

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// The request-level reading of an order.
pub struct Checked {
    pub kind: OperationKind,
    pub op: v1::Operation,
}

/// Whole-request checks.
pub fn check_request(req: &v1::SubmitRequest) -> Result<Checked, ApiError> {
    let key = &req.idempotency_key;
    if key.trim().is_empty() {
        return Err(ApiError::bad(
            "idempotency_key is required (any unique string up to 128 characters)",
        ));
    }
    if key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::bad(
            "idempotency_key is longer than 128 characters",
        ));
    }
    let op = req
        .operation
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownOperation, "operation is required"))?;
    let kind = convert::operation_kind(&op).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownOperation,
            "operation is empty or unknown to this gateway",
        )
    })?;
    if req.note.len() > 1024 {
        return Err(ApiError::bad("note is longer than 1024 characters"));
    }
    let max = limits::max_items(kind);
    if kind.is_directional() {
        if req.batch_no.is_empty() {
            return Err(ApiError::bad(
                "directional config acts on a purchase batch: batch_no is required",
            ));
        }
        if !req.cards.is_empty() {
            return Err(ApiError::bad(
                "directional config acts on a purchase batch, not on cards: leave cards empty",
            ));
        }
    } else {
        if req.cards.is_empty() {
            return Err(ApiError::bad("cards is empty"));
        }
        if req.cards.len() > max {
            return Err(ApiError::new(
                ErrorCode::BatchTooLarge,
                format!(
                    "{kind} takes at most {max} cards per order, got {}",
                    req.cards.len()
                ),
            ));
        }
    }
    use v1::operation::Kind as O;
    match op.kind.as_ref() {
        Some(O::SetUsageThreshold(t)) => {
            Threshold::from_mb(t.threshold_mb).map_err(|e| ApiError::bad(e.to_string()))?;
        }
        Some(O::SwitchNetwork(s)) => match convert::carrier_from_wire(s.target) {
            Ok(Carrier::Cmcc | Carrier::Ct | Carrier::Cu) => {}
            _ => {
                return Err(ApiError::bad(
                    "switch_network.target must be cmcc, ct or cu",
                ));
            }
        },
        Some(O::SwitchPolicy(p)) if p.policy_id.is_empty() || p.policy_id.len() > 64 => {
            return Err(ApiError::bad(
                "switch_policy.policy_id is required (up to 64 characters)",
            ));
        }
        Some(O::Rebind(r)) => {
            convert::bind_type_from_wire(r.bind_type).map_err(|e| ApiError::bad(e.to_string()))?;
        }
        _ => {}
    }
    Ok(Checked { kind, op })
}

/// One item's problem.
pub struct ItemProblem {
    pub code: ErrorCode,
    pub message: String,
}

impl ItemProblem {
    fn new(code: ErrorCode, message: impl Into<String>) -> ItemProblem {
        ItemProblem {
            code,
            message: message.into(),
        }
    }
}

/// The per-card domain operation and, when it differs from the order's, the
/// per-card wire operation: the card's own values applied
/// (`gsl_proto::ops::with_card`), then every parameter checked
/// (`convert::operation_to_domain`). The per-card operation carries the
/// checked values in their canonical form.
fn resolve(
    op: &v1::Operation,
    card: &v1::CardRef,
) -> Result<(Operation, Option<v1::Operation>), ItemProblem> {
    use v1::operation::Kind as O;
    let bad_param = |m: String| ItemProblem::new(ErrorCode::InvalidItemParameter, m);
    match op.kind.as_ref().expect("checked") {
        O::DirectionalAdd(_) | O::DirectionalModify(_) | O::DirectionalDelete(_) => {
            return Err(bad_param("directional config acts on a batch".into()));
        }
        O::RegionBind(r) if r.region.is_empty() && card.region.is_empty() => {
            return Err(bad_param(
                "region_bind needs a region (per card or for the order)".into(),
            ));
        }
        _ => {}
    }
    let per_card = gsl_proto::ops::with_card(op, card);
    let domain = convert::operation_to_domain(per_card.as_ref().unwrap_or(op)).map_err(|e| {
        let code = match e.field {
            "imei" => ErrorCode::InvalidImei,
            _ => ErrorCode::InvalidItemParameter,
        };
        ItemProblem::new(code, e.to_string())
    })?;
    let canonical = per_card.map(|_| {
        let kind = match &domain {
            Operation::Rebind { bind_type, imei } => O::Rebind(v1::Rebind {
                bind_type: convert::bind_type_to_wire(*bind_type) as i32,
                imei: imei
                    .as_ref()
                    .map(|i| i.as_str().to_owned())
                    .unwrap_or_default(),
            }),
            Operation::RegionBind { region } => O::RegionBind(v1::RegionBind {
                region: region.to_string(),
            }),
            _ => unreachable!("only rebind and region bind take per-card values"),
        };
        v1::Operation { kind: Some(kind) }
    });
    Ok((domain, canonical))
}

/// The result of validating the cards of an order.
pub struct Validated {
    pub items: Vec<v1::ChunkItem>,
    pub carriers: Vec<Carrier>,
    pub refused: u64,
}

/// Validate every card; each refusal is an item with its problem. The
/// cards are read from the card store in a few set-based queries (every
/// key that parses, at once), then checked here without a round trip.
/// Each valid item carries its card as read ([`v1::CardSnapshot`]): the
/// adapter checks its rules on it and reads no card store.
pub async fn validate_cards(
    reg: &Registry,
    tenant: &str,
    checked: &Checked,
    cards: &[v1::CardRef],
) -> Result<Validated, ApiError> {
    let ids: Vec<_> = cards.iter().map(|c| CardId::parse(&c.id)).collect();
    let found = {
        let keys: Vec<&str> = ids
            .iter()
            .filter_map(|id| id.as_ref().ok().map(CardId::key))
            .collect();
        reg.lookup(tenant, &keys).await?
    };
    let mut seen: HashSet<&str> = HashSet::with_capacity(cards.len());
    let mut items = Vec::with_capacity(cards.len());
    let mut carriers: HashSet<Carrier> = HashSet::new();
    let mut refused = 0;
    for (c, id) in cards.iter().zip(&ids) {
        match validate_one(&found, checked, c, id, &mut seen) {
            Ok((key, card, carrier, per_card)) => {
                carriers.insert(carrier);
                items.push(v1::ChunkItem {
                    card: key,
                    carrier: convert::carrier_to_wire(carrier) as i32,
                    operation: per_card,
                    refused: None,
                    card_facts: Some(card.clone()),
                });
            }
            Err((key, p)) => {
                refused += 1;
                items.push(v1::ChunkItem {
                    card: key,
                    carrier: 0,
                    operation: None,
                    refused: Some(convert::problem(p.code, p.message)),
                    card_facts: None,
                });
            }
        }
    }
    let mut carriers: Vec<Carrier> = carriers.into_iter().collect();
    carriers.sort();
    Ok(Validated {
        items,
        carriers,
        refused,
    })
}

/// A valid item: its key, its card as read, its carrier, and its own
/// operation when it differs from the order's.
type Valid<'a> = (String, &'a v1::CardSnapshot, Carrier, Option<v1::Operation>);

fn validate_one<'a>(
    found: &'a HashMap<String, v1::CardSnapshot>,
    checked: &Checked,
    c: &v1::CardRef,
    id: &'a Result<CardId, gsl_domain::ids::IdError>,
    seen: &mut HashSet<&'a str>,
) -> Result<Valid<'a>, (String, ItemProblem)> {
    // Unparseable ids are reported as given (truncated), never used as keys.
    let shown = || c.id.chars().take(64).collect::<String>();
    let id = id
        .as_ref()
        .map_err(|e| (shown(), ItemProblem::new(e.code(), e.to_string())))?;
    let key = id.key();
    if !seen.insert(key) {
        return Err((
            key.to_owned(),
            ItemProblem::new(
                ErrorCode::DuplicateCard,
                "card appears earlier in this order",
            ),
        ));
    }
    let not_found = || {
        (
            key.to_owned(),
            ItemProblem::new(ErrorCode::CardNotFound, "card not in the registry"),
        )
    };
    let card = found.get(key).ok_or_else(not_found)?;
    let facts = convert::snapshot_facts(card).ok_or_else(not_found)?;
    if let Some(prefix_carrier) = id.iccid().and_then(|i| i.carrier())
        && facts.carrier != Carrier::Trinet
        && prefix_carrier != facts.carrier
    {
        return Err((
            key.to_owned(),
            ItemProblem::new(
                ErrorCode::CarrierMismatch,
                format!(
                    "issuer prefix is {prefix_carrier}'s, the registry says {}",
                    facts.carrier
                ),
            ),
        ));
    }
    let (op, per_card) = resolve(&checked.op, c).map_err(|p| (key.to_owned(), p))?;
    capability::check_capability(&op, &facts)
        .map_err(|v| (key.to_owned(), ItemProblem::new(v.code(), v.to_string())))?;
    if let Operation::Rebind {
        bind_type: BindType::FixedImei,
        imei: None,
    } = op
    {
        return Err((
            key.to_owned(),
            ItemProblem::new(
                ErrorCode::InvalidItemParameter,
                "a fixed-IMEI rebind needs the IMEI",
            ),
        ));
    }
    Ok((key.to_owned(), card, facts.carrier, per_card))
}

fn entry_state(v: i32) -> EntryState {
    match v1::EntryState::try_from(v) {
        Ok(v1::EntryState::Configuring) => EntryState::Configuring,
        Ok(v1::EntryState::InReview) => EntryState::InReview,
        Ok(v1::EntryState::NotYetEffective) => EntryState::NotYetEffective,
        Ok(v1::EntryState::ReviewRejected) => EntryState::ReviewRejected,
        Ok(v1::EntryState::Modifying) => EntryState::Modifying,
        Ok(v1::EntryState::Deleting) => EntryState::Deleting,
        _ => EntryState::Effective,
    }
}

fn purchase_type(v: i32) -> PurchaseType {
    match v1::PurchaseType::try_from(v) {
        Ok(v1::PurchaseType::NewPurchase) => PurchaseType::NewPurchase,
        Ok(v1::PurchaseType::CardTransfer) => PurchaseType::CardTransfer,
        Ok(v1::PurchaseType::Renewal) => PurchaseType::Renewal,
        _ => PurchaseType::Other,
    }
}

/// A directional change checked against a batch's entries and the
/// carrier's limits (domain table); `Err` says why it is refused.
pub fn check_directional(
    batch: &v1::PurchaseBatch,
    op: &v1::operation::Kind,
) -> Result<(), gsl_domain::directional::DirectionalError> {
    use v1::operation::Kind as O;
    let carrier = convert::carrier_from_wire(batch.carrier).unwrap_or(Carrier::Cmcc);
    let current: Vec<ExistingEntry> = batch
        .entries
        .iter()
        .map(|e| ExistingEntry {
            id: e.id.clone(),
            entry: e.entry.clone(),
            state: entry_state(e.state),
        })
        .collect();
    let eligible =
        directional::batch_eligible(purchase_type(batch.purchase_type), batch.directional_data);
    let change = match op {
        O::DirectionalAdd(a) => Change::Add(&a.entries),
        O::DirectionalModify(m) => Change::Modify {
            id: &m.entry_id,
            entry: &m.entry,
        },
        O::DirectionalDelete(d) => Change::Delete(&d.entry_ids),
        _ => unreachable!("checked as directional"),
    };
    directional::plan_change(carrier, eligible, &current, &change).map(|_| ())
}

/// Validate a directional-config order against its batch. The one item is the
/// batch; its key is the batch number.
pub fn validate_directional(batch: &v1::PurchaseBatch, checked: &Checked) -> Validated {
    let carrier = convert::carrier_from_wire(batch.carrier).unwrap_or(Carrier::Cmcc);
    let result = check_directional(batch, checked.op.kind.as_ref().expect("checked"));
    let (refused, problem) = match result {
        Ok(_) => (0, None),
        Err(e) => (1, Some(convert::problem(e.code(), e.to_string()))),
    };
    Validated {
        items: vec![v1::ChunkItem {
            card: batch.batch_no.clone(),
            carrier: batch.carrier,
            operation: None,
            refused: problem,
            card_facts: None,
        }],
        carriers: vec![carrier],
        refused,
    }
}
