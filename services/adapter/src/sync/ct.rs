//! China Telecom (`ct.md`, "Queries for card sync"): no changed-since query
//! and no stop reason exist, so a sweep reads `queryCardMainStatus` per
//! card: status, cut-net and real-name in one call. BQ018 (100 cards a
//! call) is not used: its answer's items are not quoted from the
//! documentation (`ct.md`: use it only once a live answer shows `simStatus`
//! per item).

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

impl Ct {
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
