//! China Unicom (`cu.md`, "Queries for card sync"): a sweep reads
//! `ctdUsages` per card (status and IMEI in one call; no stop reason, no
//! REST real-name); changes come from `GET /devices?modifiedSince=` (50 a
//! page, oldest first, status only), so each changed card costs one
//! `ctdUsages` read. Every call spends the account's one budget.

use super::{lookup, read, unknown_code};
use crate::common::s;
use crate::cu::Cu;
use gsl_adapter_kit::carrier::{CallCtx, CallResult};
use gsl_adapter_kit::reads::{ListPage, SyncCard};
use gsl_proto::v1;
use serde_json::Value;

/// Jasper `status` to domain `sim_status` (`cu.md`, "SIM status values");
/// the spellings other than the first three are unsure, and `REPLACED`,
/// `PURGED` have no domain code: kept raw.
pub const STATUS: &[(&str, u32)] = &[
    ("ACTIVATED", 20),
    ("DEACTIVATED", 14),
    ("RETIRED", 30),
    ("TEST_READY", 10),
    ("INVENTORY", 11),
    ("ACTIVATION_READY", 13),
];

/// Page size of the changed-since list (Cisco: at most 50).
pub const PAGE: u32 = 50;

/// The `ctdUsages` path (under `/rws/api/v1/`) of a card.
pub fn usages_path(iccid: &str) -> String {
    format!("devices/{iccid}/ctdUsages")
}

/// The changed-since list's path (under `/rws/api/v1/`) and query.
pub fn changed_request(
    since: chrono::DateTime<chrono::Utc>,
    page: u32,
) -> (&'static str, Vec<(&'static str, String)>) {
    (
        "devices",
        vec![
            (
                "modifiedSince",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            ("pageSize", PAGE.to_string()),
            ("pageNumber", page.to_string()),
        ],
    )
}

/// A `ctdUsages` answer into a read; `cycle_start`: the day a billing
/// cycle begins (`GSL_CU_CYCLE_START_DAY`, 27). `ctdDataUsage` is bytes
/// since the cycle began; the answer names no period and no time, so the
/// period is the cycle holding the read's CST day and "as of" is the read.
pub fn parse_usages(v: &Value, r: &mut v1::CardRead, cycle_start: u32) {
    let code = s(v, "status").to_owned();
    r.sim_status = lookup(STATUS, &code);
    if r.sim_status.is_none() {
        unknown_code("cu", "status", &code, &r.card);
    }
    r.status_raw = code;
    r.stop_reason_unreported = true;
    r.imei = match v.get("imei") {
        Some(Value::String(i)) => Some(i.chars().take(32).collect()),
        _ => None,
    };
    let bytes = v
        .get("ctdDataUsage")
        .and_then(Value::as_f64)
        .filter(|b| *b >= 0.0);
    if let (Some(b), Some(at)) = (
        bytes,
        r.read_at
            .as_ref()
            .and_then(gsl_proto::convert::from_timestamp),
    ) {
        let (first, last) =
            gsl_domain::calendar::billing_cycle(gsl_domain::calendar::cst_date(at), cycle_start);
        r.used_mb = Some(b / 1_048_576.0);
        r.usage_as_of = r.read_at;
        r.usage_period = Some(v1::UsagePeriod {
            first_day: first.to_string(),
            last_day: last.to_string(),
        });
    }
}

/// A changed-since page: the ICCIDs to read, what the list shows of each
/// (status and plans), and whether more pages follow.
pub fn parse_changed(v: &Value) -> (Vec<String>, Vec<String>, bool) {
    let (ids, listed) = v
        .get("devices")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .filter(|x| !s(x, "iccid").is_empty())
                .map(|x| {
                    (
                        s(x, "iccid").to_owned(),
                        format!(
                            "{}|{}|{}",
                            s(x, "status"),
                            s(x, "ratePlan"),
                            s(x, "communicationPlan")
                        ),
                    )
                })
                .unzip()
        })
        .unwrap_or_default();
    // A missing `lastPage` ends the pass: never loop on a malformed answer.
    let last = v.get("lastPage").and_then(Value::as_bool).unwrap_or(true);
    (ids, listed, !last)
}

impl Cu {
    pub(crate) async fn sync_read(
        &self,
        ctx: &CallCtx<'_>,
        card: &SyncCard,
        now: chrono::DateTime<chrono::Utc>,
    ) -> CallResult<v1::CardRead> {
        let v = self.get_json(ctx, &usages_path(&card.id), &[]).await?;
        let mut r = read(&card.id, now);
        parse_usages(&v, &mut r, self.set.cycle_start_day);
        Ok(r)
    }

    /// One page of devices modified since `since` (`cursor`: the page
    /// number, "" for the first). A full list is not offered: `since` is
    /// required.
    pub(crate) async fn sync_changed(
        &self,
        ctx: &CallCtx<'_>,
        since: chrono::DateTime<chrono::Utc>,
        cursor: &str,
    ) -> CallResult<ListPage> {
        let page: u32 = cursor.parse().unwrap_or(1).max(1);
        let (path, query) = changed_request(since, page);
        let v = self.get_json(ctx, path, &query).await?;
        let (to_read, listed, more) = parse_changed(&v);
        Ok(ListPage {
            reads: Vec::new(),
            to_read,
            listed,
            next: more.then(|| (page + 1).to_string()),
            newest: None,
        })
    }
}
