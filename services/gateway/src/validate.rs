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
use gsl_domain::ids::{CardId, Imei};
use gsl_domain::operation::{BindType, Operation, OperationKind};
use gsl_domain::region::Region;
use gsl_domain::threshold::Threshold;
use gsl_domain::{ErrorCode, capability, limits};
use gsl_proto::convert;
use gsl_proto::v1;
use std::collections::HashSet;

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
/// per-card wire operation.
fn resolve(
    op: &v1::Operation,
    card: &v1::CardRef,
) -> Result<(Operation, Option<v1::Operation>), ItemProblem> {
    use v1::operation::Kind as O;
    let bad_param = |m: String| ItemProblem::new(ErrorCode::InvalidItemParameter, m);
    Ok(match op.kind.as_ref().expect("checked") {
        O::Activate(_) => (Operation::Activate, None),
        O::Stop(_) => (Operation::Stop, None),
        O::Resume(_) => (Operation::Resume, None),
        O::Rebind(r) => {
            let bind = match card.bind_type {
                Some(b) => convert::bind_type_from_wire(b).map_err(|e| bad_param(e.to_string()))?,
                None => convert::bind_type_from_wire(r.bind_type)
                    .map_err(|e| bad_param(e.to_string()))?,
            };
            let imei_s = if card.imei.is_empty() {
                &r.imei
            } else {
                &card.imei
            };
            let imei = if imei_s.is_empty() {
                None
            } else {
                Some(Imei::parse(imei_s).map_err(|e| ItemProblem::new(e.code(), e.to_string()))?)
            };
            let per_card =
                (!card.imei.is_empty() || card.bind_type.is_some()).then(|| v1::Operation {
                    kind: Some(O::Rebind(v1::Rebind {
                        bind_type: convert::bind_type_to_wire(bind) as i32,
                        imei: imei
                            .as_ref()
                            .map(|i| i.as_str().to_owned())
                            .unwrap_or_default(),
                    })),
                });
            (
                Operation::Rebind {
                    bind_type: bind,
                    imei,
                },
                per_card,
            )
        }
        O::SpeedLimit(s) => (Operation::SpeedLimit { kbps: s.kbps }, None),
        O::NetworkCutoff(_) => (Operation::NetworkCutoff, None),
        O::NetworkRestore(_) => (Operation::NetworkRestore, None),
        O::SetUsageThreshold(t) => (
            Operation::SetUsageThreshold {
                threshold: Threshold::from_mb(t.threshold_mb)
                    .map_err(|e| bad_param(e.to_string()))?,
            },
            None,
        ),
        O::CancelUsageThreshold(_) => (Operation::CancelUsageThreshold, None),
        O::RegionBind(r) => {
            let raw = if card.region.is_empty() {
                &r.region
            } else {
                &card.region
            };
            if raw.is_empty() {
                return Err(bad_param(
                    "region_bind needs a region (per card or for the order)".into(),
                ));
            }
            let region = Region::parse(raw).map_err(|e| bad_param(e.to_string()))?;
            let per_card = (!card.region.is_empty()).then(|| v1::Operation {
                kind: Some(O::RegionBind(v1::RegionBind {
                    region: region.to_string(),
                })),
            });
            (Operation::RegionBind { region }, per_card)
        }
        O::SwitchNetwork(s) => (
            Operation::SwitchNetwork {
                target: convert::carrier_from_wire(s.target)
                    .map_err(|e| bad_param(e.to_string()))?,
            },
            None,
        ),
        O::SwitchPolicy(p) => (
            Operation::SwitchPolicy {
                policy_id: p.policy_id.clone(),
            },
            None,
        ),
        O::CloseCard(_) => (Operation::CloseCard, None),
        O::DirectionalAdd(_) | O::DirectionalModify(_) | O::DirectionalDelete(_) => {
            return Err(bad_param("directional config acts on a batch".into()));
        }
    })
}

/// The result of validating the cards of an order.
pub struct Validated {
    pub items: Vec<v1::ChunkItem>,
    pub carriers: Vec<Carrier>,
    pub refused: u64,
}

/// Validate every card; each refusal is an item with its problem.
pub fn validate_cards(
    reg: &Registry,
    tenant: &str,
    checked: &Checked,
    cards: &[v1::CardRef],
) -> Validated {
    let mut seen: HashSet<String> = HashSet::with_capacity(cards.len());
    let mut items = Vec::with_capacity(cards.len());
    let mut carriers: HashSet<Carrier> = HashSet::new();
    let mut refused = 0;
    reg.with(|lookup| {
        for c in cards {
            match validate_one(lookup, tenant, checked, c, &mut seen) {
                Ok((key, carrier, per_card)) => {
                    carriers.insert(carrier);
                    items.push(v1::ChunkItem {
                        card: key,
                        carrier: convert::carrier_to_wire(carrier) as i32,
                        operation: per_card,
                        refused: None,
                    });
                }
                Err((key, p)) => {
                    refused += 1;
                    items.push(v1::ChunkItem {
                        card: key,
                        carrier: 0,
                        operation: None,
                        refused: Some(convert::problem(p.code, p.message)),
                    });
                }
            }
        }
    });
    let mut carriers: Vec<Carrier> = carriers.into_iter().collect();
    carriers.sort();
    Validated {
        items,
        carriers,
        refused,
    }
}

type Lookup<'a> = &'a dyn Fn(&str, &str) -> Option<gsl_domain::CardFacts>;

fn validate_one(
    lookup: Lookup<'_>,
    tenant: &str,
    checked: &Checked,
    c: &v1::CardRef,
    seen: &mut HashSet<String>,
) -> Result<(String, Carrier, Option<v1::Operation>), (String, ItemProblem)> {
    // Unparseable ids are reported as given (truncated), never used as keys.
    let shown = || c.id.chars().take(64).collect::<String>();
    let id =
        CardId::parse(&c.id).map_err(|e| (shown(), ItemProblem::new(e.code(), e.to_string())))?;
    let key = id.key().to_owned();
    if !seen.insert(key.clone()) {
        return Err((
            key,
            ItemProblem::new(
                ErrorCode::DuplicateCard,
                "card appears earlier in this order",
            ),
        ));
    }
    let facts = lookup(tenant, &key).ok_or_else(|| {
        (
            key.clone(),
            ItemProblem::new(ErrorCode::CardNotFound, "card not in the registry"),
        )
    })?;
    if let Some(prefix_carrier) = id.iccid().and_then(|i| i.carrier())
        && facts.carrier != Carrier::Trinet
        && prefix_carrier != facts.carrier
    {
        return Err((
            key,
            ItemProblem::new(
                ErrorCode::CarrierMismatch,
                format!(
                    "issuer prefix is {prefix_carrier}'s, the registry says {}",
                    facts.carrier
                ),
            ),
        ));
    }
    let (op, per_card) = resolve(&checked.op, c).map_err(|p| (key.clone(), p))?;
    capability::check_capability(&op, &facts)
        .map_err(|v| (key.clone(), ItemProblem::new(v.code(), v.to_string())))?;
    if let Operation::Rebind {
        bind_type: BindType::FixedImei,
        imei: None,
    } = op
    {
        return Err((
            key,
            ItemProblem::new(
                ErrorCode::InvalidItemParameter,
                "a fixed-IMEI rebind needs the IMEI",
            ),
        ));
    }
    Ok((key, facts.carrier, per_card))
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
        }],
        carriers: vec![carrier],
        refused,
    }
}
