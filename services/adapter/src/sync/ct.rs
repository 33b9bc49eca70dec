//! China Telecom (`ct.md`, "Queries for card sync"): no changed-since query
//! and no stop reason exist, so a sweep reads `queryCardMainStatus` per
//! card: status, cut-net and real-name in one call. BQ018 (100 cards a
//! call) is not used: its answer's items are not quoted from the
//! documentation (`ct.md`: use it only once a live answer shows `simStatus`
//! per item).
//!
//! Usage: `batchQryFlowByMonth`, `GSL_CT_USAGE_BATCH` access numbers a call
//! (100: the size is not in the sources), the calendar month the answer
//! names, "as of" the call's time (the lag is not documented). Cards
//! without an access number in the store are looked up once by DCP
//! `getTelephone` (cached).

use super::{lookup, read, unknown_code};
use crate::ct::Ct;
use gsl_adapter_kit::carrier::{CallCtx, CallResult};
use gsl_adapter_kit::reads::SyncCard;
use gsl_proto::v1;
use serde_json::Value;

/// `productMainStatusCd` to domain `sim_status` (`ct.md`, "Card status");
/// `3` test-deactivated and `6` carrier-managed are kept raw.
pub const STATUS: &[(&str, u32)] = &[("1", 13), ("2", 10), ("4", 20), ("5", 14), ("7", 30)];

/// A `queryCardMainStatus` answer (already checked `result` = `"0"`) into a read.
pub fn parse(v: &Value, r: &mut v1::CardRead) {
    let code = v
        .get("productInfo")
        .and_then(|p| p.get(0))
        .and_then(|p| p.get("productMainStatusCd"))
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    r.sim_status = lookup(STATUS, &code);
    if r.sim_status.is_none() {
        unknown_code("ct", "productMainStatusCd", &code, &r.card);
    }
    r.status_raw = code;
    // No stop-reason read exists: "not reported" unless an order explains it.
    r.stop_reason_unreported = true;
    r.cut_net = match v.get("netBlockStatusName").and_then(Value::as_str) {
        Some("已断网") => Some(true),
        Some("未断网") => Some(false),
        _ => None,
    };
    r.real_named = match v.get("authStatus").and_then(Value::as_str) {
        Some("1") => Some(true),
        Some("0") => Some(false),
        _ => None,
    };
}

/// `batchQryFlowByMonth`'s path.
pub const USAGE_PATH: &str = "/api/v1/batchQry/batchQryFlowByMonth";

/// `batchQryFlowByMonth`'s body: the customer number, the access numbers
/// (singular `accessNumber`, as simctl sends it) and, when the month
/// parameter's name is set, this CST month as `yyyyMM`.
pub fn usage_body(cust: &str, numbers: &[&str], month: Option<(&str, &str)>) -> Value {
    let mut b = serde_json::json!({"custNumber": cust, "accessNumber": numbers});
    if let Some((name, m)) = month {
        b[name] = Value::String(m.to_owned());
    }
    b
}

/// A `batchQryFlowByMonth` answer (envelope already checked): a read per
/// item with `status` "0" and a readable `flowAmount`, mapped back from its
/// access number to the card; the period is the month the item names
/// (`yyyyMM`; else the CST month of `now`), "as of" `now`.
pub fn parse_usage(
    v: &Value,
    card_of: &std::collections::HashMap<&str, &str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<v1::CardRead> {
    use gsl_domain::calendar::{calendar_month, cst_date};
    let text = |x: &Value, k: &str| match x.get(k) {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let items = v.get("data").and_then(Value::as_array);
    items
        .into_iter()
        .flatten()
        .filter_map(|x| {
            if text(x, "status") != "0" {
                return None;
            }
            let card = card_of.get(text(x, "accessNumber").as_str())?;
            let mb: f64 = text(x, "flowAmount")
                .parse()
                .ok()
                .filter(|m: &f64| *m >= 0.0 && m.is_finite())?;
            let mb = match text(x, "unit").to_ascii_uppercase().as_str() {
                "" | "MB" => mb,
                "KB" => mb / 1024.0,
                "GB" => mb * 1024.0,
                _ => return None,
            };
            let month =
                chrono::NaiveDate::parse_from_str(&format!("{}01", text(x, "month")), "%Y%m%d")
                    .unwrap_or_else(|_| calendar_month(cst_date(now)).0);
            let (first, last) = calendar_month(month);
            let mut r = read(card, now);
            r.used_mb = Some(mb);
            r.usage_as_of = Some(gsl_proto::convert::timestamp(now));
            r.usage_period = Some(v1::UsagePeriod {
                first_day: first.to_string(),
                last_day: last.to_string(),
            });
            Some(r)
        })
        .collect()
}

impl Ct {
    /// This month's usage of up to `GSL_CT_USAGE_BATCH` cards: one
    /// `batchQryFlowByMonth` (plus a `getTelephone` for each card whose
    /// access number is not known yet).
    pub(crate) async fn sync_usage(
        &self,
        ctx: &CallCtx<'_>,
        cards: &[SyncCard],
        now: &(dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync),
    ) -> CallResult<Vec<v1::CardRead>> {
        let mut numbers = Vec::with_capacity(cards.len());
        for c in cards {
            numbers.push(self.number_of(ctx, &c.id, &c.access_number).await?);
        }
        let card_of: std::collections::HashMap<&str, &str> = numbers
            .iter()
            .map(String::as_str)
            .zip(cards.iter().map(|c| c.id.as_str()))
            .collect();
        let month = gsl_domain::calendar::cst_date(now())
            .format("%Y%m")
            .to_string();
        let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let body = usage_body(
            &self.set.cust_number,
            &refs,
            self.set
                .usage_month_param
                .as_deref()
                .map(|p| (p, month.as_str())),
        );
        let v = self.post_json(ctx, USAGE_PATH, &body).await?;
        Ok(parse_usage(&v, &card_of, now()))
    }

    /// One card: `queryCardMainStatus` by its access number (from the card
    /// store, a cache, or DCP `getTelephone`).
    pub(crate) async fn sync_read(
        &self,
        ctx: &CallCtx<'_>,
        card: &SyncCard,
        now: chrono::DateTime<chrono::Utc>,
    ) -> CallResult<v1::CardRead> {
        let number = self.number_of(ctx, &card.id, &card.access_number).await?;
        let v = self.read_card(ctx, &number).await?;
        let mut r = read(&card.id, now);
        parse(&v, &mut r);
        Ok(r)
    }
}
