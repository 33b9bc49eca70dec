//! The card list and card detail as the reference service shows them
//! (`GET /v1/sim-cards`, domain.md "The reference card list"): a
//! `ListCardsRequest` checked against the reference's ranges into a store
//! query (`gsl_cardstore::list`), and the detail of one card with what the
//! card store does not hold (China Telecom rebinds left this month, from
//! the quota ledger).
//!
//! Every bad parameter is `GSL.00010004` naming the parameter.

use crate::error::ApiError;
use gsl_cardstore::list::{CardPage, CardQuery, ListRefused, Page, Search, Sort};
use gsl_domain::ids::CardId;
use gsl_proto::v1;

/// The reference's page sizes.
pub const LIMIT_MIN: u32 = 10;
pub const LIMIT_MAX: u32 = 500;
pub const LIMIT_DEFAULT: u32 = 10;
/// The reference's page numbers.
pub const OFFSET_MAX: u32 = 1_000_000;
/// Plans in one filter (the reference's).
pub const PLANS_MAX: usize = 30;
/// Purchase batches in one filter.
pub const BATCHES_MAX: usize = 1_000;
/// A customer attribute's length, in characters.
pub const ATTRIBUTE_MAX_CHARS: usize = 128;
/// The `sim_status` codes.
const STATUSES: [u32; 6] = [10, 11, 13, 14, 20, 30];

/// A parameter's problem, named.
fn bad(param: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad(format!("{param}: {why}"))
}

fn text<'a>(param: &str, v: &'a str, max: usize) -> Result<&'a str, ApiError> {
    if v.chars().count() > max {
        return Err(bad(param, format!("at most {max} characters")));
    }
    Ok(v)
}

fn flow(param: &str, v: Option<f64>) -> Result<Option<f64>, ApiError> {
    match v {
        Some(f) if !f.is_finite() => Err(bad(param, "must be a number of MB")),
        other => Ok(other),
    }
}

/// `r` (for `tenant`) as a store query and a page.
pub fn query(tenant: String, r: &v1::ListCardsRequest) -> Result<(CardQuery, Page), ApiError> {
    let limit = match r.limit {
        0 => LIMIT_DEFAULT,
        l if (LIMIT_MIN..=LIMIT_MAX).contains(&l) => l,
        l => return Err(bad("limit", format!("{l} is not within 10-500"))),
    };
    let offset = match r.offset {
        0 => 1,
        o if o <= OFFSET_MAX => o,
        o => return Err(bad("offset", format!("{o} is not within 1-1000000"))),
    };
    let key = r.main_search_key.trim();
    let search = match (r.main_search_type, key) {
        (0, "") => None,
        (0, _) => return Err(bad("main_search_type", "required with main_search_key")),
        (_, "") => return Err(bad("main_search_key", "required with main_search_type")),
        (1, k) => Some(Search::Cid(
            CardId::parse(k)
                .map_err(|e| bad("main_search_key", e))?
                .key()
                .to_owned(),
        )),
        (2, k) if crate::registry::valid_batch_no(k) => Some(Search::Batch(k.to_owned())),
        (2, _) => return Err(bad("main_search_key", "not a purchase batch number")),
        (3, k) => Some(Search::Imei(text("main_search_key", k, 64)?.to_owned())),
        (t, _) => {
            return Err(bad(
                "main_search_type",
                format!("{t}: 1 container id, 2 purchase batch, 3 IMEI"),
            ));
        }
    };
    let msisdn = match r.msisdn.trim() {
        "" => None,
        m => Some(text("msisdn", m, 32)?.to_owned()),
    };
    let mut sim_status = Vec::with_capacity(r.sim_status.len());
    for s in &r.sim_status {
        if !STATUSES.contains(s) {
            return Err(bad(
                "sim_status",
                format!("{s}: one of 10, 11, 13, 14, 20, 30"),
            ));
        }
        sim_status.push(*s as i16);
    }
    sim_status.sort_unstable();
    sim_status.dedup();
    let (min_used, max_used) = (
        flow("min_used_flow", r.min_used_flow)?,
        flow("max_used_flow", r.max_used_flow)?,
    );
    let (min_left, max_left) = (
        flow("min_left_flow", r.min_left_flow)?,
        flow("max_left_flow", r.max_left_flow)?,
    );
    for (lo, hi, p) in [
        (min_used, max_used, "min_used_flow"),
        (min_left, max_left, "min_left_flow"),
    ] {
        if let (Some(lo), Some(hi)) = (lo, hi)
            && lo > hi
        {
            return Err(bad(p, "is above its maximum"));
        }
    }
    let given = [
        &r.customer_attribute1,
        &r.customer_attribute2,
        &r.customer_attribute3,
        &r.customer_attribute4,
        &r.customer_attribute5,
        &r.customer_attribute6,
    ];
    let mut attrs: [Option<String>; 6] = Default::default();
    for (i, a) in given.iter().enumerate() {
        if let Some(a) = a {
            let name = format!("customer_attribute{}", i + 1);
            attrs[i] = Some(text(&name, a, ATTRIBUTE_MAX_CHARS)?.to_owned());
        }
    }
    if r.order_ids.len() > BATCHES_MAX {
        return Err(bad("order_ids", format!("at most {BATCHES_MAX}")));
    }
    if let Some(b) = r
        .order_ids
        .iter()
        .find(|b| !crate::registry::valid_batch_no(b))
    {
        return Err(bad(
            "order_ids",
            format!("{b:?} is not a purchase batch number"),
        ));
    }
    if r.price_plan_ids.len() > PLANS_MAX {
        return Err(bad("price_plan_ids", format!("at most {PLANS_MAX}")));
    }
    for p in &r.price_plan_ids {
        text("price_plan_ids", p, 64)?;
    }
    let sim_type = match r.sim_type {
        0 => None,
        t @ 1..=3 => Some(t as i16),
        t => return Err(bad("sim_type", format!("{t}: 1 vSIM, 2 eSIM, 3 physical"))),
    };
    let sort = Sort::parse(&r.sort).ok_or_else(|| {
        bad(
            "sort",
            "one of cid, flow_used, flow_left, act_date, expire_time",
        )
    })?;
    let desc = match r.order.as_str() {
        "" | "asc" => false,
        "desc" => true,
        _ => return Err(bad("order", "asc or desc")),
    };
    let q = CardQuery {
        tenant,
        search,
        msisdn,
        sim_status,
        real_named: r.real_named,
        min_used,
        max_used,
        min_left,
        max_left,
        attrs,
        batches: r.order_ids.clone(),
        plans: r.price_plan_ids.clone(),
        sim_type,
        hide_keep_number: r.filter_downtime_period,
        sort,
        desc,
    };
    let limit = i64::from(limit);
    let page = if r.page_token.is_empty() {
        Page::Number {
            limit,
            number: i64::from(offset),
        }
    } else {
        Page::After {
            limit,
            token: text("page_token", &r.page_token, 1024)?.to_owned(),
        }
    };
    Ok((q, page))
}

/// A store page as the answer.
pub fn answer(page: &Page, p: CardPage) -> v1::ListCardsResponse {
    let (limit, offset) = match page {
        Page::Number { limit, number } => (*limit as u32, *number as u32),
        Page::After { limit, .. } => (*limit as u32, 0),
    };
    v1::ListCardsResponse {
        limit,
        offset,
        count: p.count,
        count_estimated: p.count_estimated,
        sim_cards: p.cards,
        next_page_token: p.next_token,
    }
}

impl From<ListRefused> for ApiError {
    fn from(e: ListRefused) -> ApiError {
        match e {
            ListRefused::BadToken => bad("page_token", &e),
            ListRefused::TooDeep => ApiError::bad(e.to_string()),
        }
    }
}

/// China Telecom rebinds left this month for `card`, from the quota ledger
/// (`ct.rebind.<card>.<month>` in `gsl_quota`: the adapters' reservations).
/// `None` for other carriers, or when the ledger cannot be read.
pub async fn rebinds_left(
    quota: &async_nats::jetstream::kv::Store,
    card: &v1::Card,
) -> Option<(u32, chrono::DateTime<chrono::Utc>)> {
    let carrier = gsl_proto::convert::carrier_from_wire(card.carrier).ok()?;
    let q = gsl_domain::cooldown::quota_for(carrier, gsl_domain::operation::OperationKind::Rebind)?;
    let now = chrono::Utc::now();
    let key = q.ledger_key(&card.id, now);
    let used = match quota.get(&key).await {
        Ok(Some(v)) => serde_json::from_slice::<Vec<String>>(&v).ok()?.len() as u32,
        Ok(None) => 0,
        Err(e) => {
            tracing::warn!(error = %e, "quota ledger unreadable; rebinds left not reported");
            return None;
        }
    };
    Some((q.limit.saturating_sub(used), now))
}
