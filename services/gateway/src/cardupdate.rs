//! `Registry.UpdateCards`: a tenant sets its cards' customer attributes and
//! plan data, up to 100,000 cards a call. Each bad card is refused with a
//! reason and the rest are written in one statement; a card that is not
//! the tenant's is refused with the same text as an unknown one. The change
//! is audited on GSL_EVENTS (`updateSimCards` on `sim-card`).

use crate::cardlist::ATTRIBUTE_MAX_CHARS;
use crate::core::Core;
use crate::error::ApiError;
use crate::registry::Refusals;
use gsl_cardstore::update::CardValues;
use gsl_domain::ErrorCode;
use gsl_domain::ids::CardId;
use gsl_proto::{convert, v1};
use std::collections::{BTreeSet, HashSet};

/// Cards named in the audit event (the rest are counted).
const AUDIT_SAMPLE: usize = 100;

fn refuse(i: usize, card: &str, code: ErrorCode, msg: impl Into<String>) -> v1::RefusedItem {
    v1::RefusedItem {
        index: i as u32,
        card: card.chars().take(64).collect(),
        problem: Some(convert::problem(code, msg)),
    }
}

/// One update checked (`Err`: why it is refused).
fn values(u: &v1::CardUpdate, fields: &mut BTreeSet<String>) -> Result<CardValues, String> {
    let id = CardId::parse(&u.id).map_err(|e| e.to_string())?;
    if u.customer_attributes.len() > 6 {
        return Err("at most 6 customer attributes".into());
    }
    let mut attrs: [Option<String>; 6] = Default::default();
    for (i, a) in u.customer_attributes.iter().enumerate() {
        if a.chars().count() > ATTRIBUTE_MAX_CHARS {
            return Err(format!(
                "customer_attribute{} is over {ATTRIBUTE_MAX_CHARS} characters",
                i + 1
            ));
        }
        attrs[i] = Some(a.clone());
        fields.insert(format!("customer_attribute{}", i + 1));
    }
    for (given, name, max) in [
        (&u.plan_id, "plan_id", 64),
        (&u.plan_name, "plan_name", 128),
    ] {
        if let Some(v) = given {
            if v.chars().count() > max {
                return Err(format!("{name} is over {max} characters"));
            }
            fields.insert(name.into());
        }
    }
    if let Some(a) = u.allowance_mb {
        if !a.is_finite() || a < 0.0 {
            return Err("allowance_mb must be a number of MB, at least 0".into());
        }
        fields.insert("allowance_mb".into());
    }
    let time = |t: &Option<prost_types::Timestamp>, name: &str| match t {
        None => Ok(None),
        Some(ts) => convert::from_timestamp(ts)
            .map(Some)
            .ok_or_else(|| format!("{name} is not a valid time")),
    };
    let expire_time = time(&u.expire_time, "expire_time")?;
    let act_date = time(&u.act_date, "act_date")?;
    if expire_time.is_some() {
        fields.insert("expire_time".into());
    }
    if act_date.is_some() {
        fields.insert("act_date".into());
    }
    Ok(CardValues {
        id: id.key().to_owned(),
        attrs,
        plan_id: u.plan_id.clone(),
        plan_name: u.plan_name.clone(),
        allowance_mb: u.allowance_mb,
        expire_time,
        act_date,
    })
}

/// Apply `req` for `tenant`.
pub async fn update(
    core: &Core,
    tenant: &str,
    req: v1::UpdateCardsRequest,
) -> Result<v1::UpdateCardsResponse, ApiError> {
    let mut refused = Refusals::default();
    let mut ok: Vec<CardValues> = Vec::with_capacity(req.cards.len());
    let mut positions = Vec::with_capacity(req.cards.len());
    let mut fields = BTreeSet::new();
    for (i, u) in req.cards.iter().enumerate() {
        match values(u, &mut fields) {
            Ok(v) => {
                positions.push(i);
                ok.push(v);
            }
            Err(why) => refused.push(refuse(i, &u.id, ErrorCode::BadParameter, why)),
        }
    }
    let changed: HashSet<String> = core
        .registry
        .store
        .update_cards(tenant, &ok)
        .await?
        .into_iter()
        .collect();
    let mut updated = 0u64;
    let mut sample = Vec::new();
    for (i, v) in positions.into_iter().zip(&ok) {
        if changed.contains(&v.id) {
            updated += 1;
            if sample.len() < AUDIT_SAMPLE {
                sample.push(v.id.clone());
            }
        } else {
            refused.push(refuse(i, &v.id, ErrorCode::CardNotFound, "card not found"));
        }
    }
    if updated > 0 {
        let event = v1::work_order_event::Event::CardsUpdated(v1::CardsUpdated {
            event: "updateSimCards".into(),
            resource: "sim-card".into(),
            cards: updated,
            fields: fields.into_iter().collect(),
            sample,
        });
        // Audited after the write: a failed publish is reported (the
        // caller retries; the update is idempotent).
        core.publish_event(tenant, 0, None, event, None).await?;
    }
    let Refusals { listed, total } = refused;
    Ok(v1::UpdateCardsResponse {
        updated,
        refused: listed,
        refused_total: total,
    })
}
