//! Tri-net (`trinet.md`, "Queries for card sync", project-defined): the
//! list shows cards in full, 100 a page, so a sweep is 1 call per 100
//! cards and a changed-since pass 1 per 100 changed cards; `GET
//! /cards/{cid}` reads one card (refreshes).

use super::{read, unknown_code};
use crate::common::s;
use crate::trinet::Trinet;
use gsl_adapter_kit::carrier::{CallCtx, CallResult};
use gsl_adapter_kit::reads::{ListPage, SyncCard};
use gsl_proto::v1;
use serde_json::Value;

/// The list's page size (its largest `limit`).
pub const PAGE: u32 = 100;

/// The list's query: every card, or those changed since `since`, from `cursor`.
pub fn list_query(
    since: Option<chrono::DateTime<chrono::Utc>>,
    cursor: &str,
) -> Vec<(&'static str, String)> {
    let mut q = vec![("limit", PAGE.to_string())];
    if let Some(t) = since {
        q.push((
            "modifiedSince",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ));
    }
    if !cursor.is_empty() {
        q.push(("cursor", cursor.to_owned()));
    }
    q
}

/// Cards of one `POST /usage/query`.
pub const USAGE_BATCH: usize = 100;

/// The usage query's body: this CST month (`YYYY-MM`) for up to 100 cards.
pub fn usage_body(cids: &[&str], now: chrono::DateTime<chrono::Utc>) -> Value {
    let d = gsl_domain::calendar::cst_date(now);
    serde_json::json!({"cids": cids, "month": d.format("%Y-%m").to_string()})
}

/// A usage answer: a read per card in `usage` (`usedBytes`), for the
/// month it names, as of its `asOf`; `unknown` cards get none.
pub fn parse_usage(v: &Value, now: chrono::DateTime<chrono::Utc>) -> Vec<v1::CardRead> {
    let Some(first) =
        chrono::NaiveDate::parse_from_str(&format!("{}-01", s(v, "month")), "%Y-%m-%d").ok()
    else {
        return Vec::new();
    };
    let (first, last) = gsl_domain::calendar::calendar_month(first);
    let as_of = chrono::DateTime::parse_from_rfc3339(s(v, "asOf"))
        .map(|t| gsl_proto::convert::timestamp(t.with_timezone(&chrono::Utc)))
        .ok();
    v.get("usage")
        .and_then(Value::as_array)
        .map(|u| {
            u.iter()
                .filter_map(|x| {
                    let bytes = x
                        .get("usedBytes")
                        .and_then(Value::as_f64)
                        .filter(|b| *b >= 0.0)?;
                    let cid = s(x, "cid");
                    if cid.is_empty() {
                        return None;
                    }
                    let mut r = read(cid, now);
                    r.used_mb = Some(bytes / 1_048_576.0);
                    r.usage_as_of = as_of.or(r.read_at);
                    r.usage_period = Some(v1::UsagePeriod {
                        first_day: first.to_string(),
                        last_day: last.to_string(),
                    });
                    Some(r)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A card object into a read (`trinet.md`'s table): the codes are the
/// domain's; one outside the domain is kept raw.
pub fn parse_card(v: &Value, now: chrono::DateTime<chrono::Utc>) -> v1::CardRead {
    let cid = s(v, "cid");
    let mut r = read(cid, now);
    let status = v.get("status").and_then(Value::as_i64).unwrap_or(-1);
    r.status_raw = status.to_string();
    r.sim_status = gsl_domain::card::SimStatus::from_code(status).map(|x| x.code() as u32);
    if r.sim_status.is_none() {
        unknown_code("trinet", "status", &r.status_raw, cid);
    }
    let reason = v.get("stopReason").and_then(Value::as_i64).unwrap_or(0);
    r.stop_reason = gsl_domain::card::StopReason::from_code(reason).map(|x| i32::from(x.code()));
    if r.stop_reason.is_none() {
        // Outside the domain's codes: kept raw.
        r.stop_reason_raw = reason.to_string();
        unknown_code("trinet", "stopReason", &r.stop_reason_raw, cid);
    }
    r.real_named = v.get("realNamed").and_then(Value::as_bool);
    r.imei = match v.get("imei") {
        Some(Value::String(i)) => Some(i.chars().take(32).collect()),
        Some(Value::Null) => Some(String::new()),
        _ => None,
    };
    r.active_profile = match s(v, "activeCarrier") {
        "cmcc" => v1::Carrier::Cmcc as i32,
        "ct" => v1::Carrier::Ct as i32,
        "cu" => v1::Carrier::Cu as i32,
        _ => v1::Carrier::Unspecified as i32,
    };
    r
}

/// A list page: reads, the next cursor, the newest `updatedAt`.
pub fn parse_list(v: &Value, now: chrono::DateTime<chrono::Utc>) -> ListPage {
    let cards = v
        .get("cards")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let newest = cards
        .iter()
        .filter_map(|c| chrono::DateTime::parse_from_rfc3339(s(c, "updatedAt")).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .max();
    ListPage {
        reads: cards
            .iter()
            .filter(|c| !s(c, "cid").is_empty())
            .map(|c| parse_card(c, now))
            .collect(),
        to_read: Vec::new(),
        listed: Vec::new(),
        next: v
            .get("nextCursor")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
        newest,
    }
}

impl Trinet {
    pub(crate) async fn sync_read(
        &self,
        ctx: &CallCtx<'_>,
        card: &SyncCard,
        now: chrono::DateTime<chrono::Utc>,
    ) -> CallResult<v1::CardRead> {
        let v = self
            .read(
                ctx,
                self.http
                    .client
                    .get(format!("{}/cards/{}", self.base, card.id)),
            )
            .await?;
        Ok(parse_card(&v, now))
    }

    pub(crate) async fn sync_usage(
        &self,
        ctx: &CallCtx<'_>,
        cards: &[SyncCard],
        now: chrono::DateTime<chrono::Utc>,
    ) -> CallResult<Vec<v1::CardRead>> {
        let ids: Vec<&str> = cards.iter().map(|c| c.id.as_str()).collect();
        let v = self
            .read(
                ctx,
                self.http
                    .client
                    .post(format!("{}/usage/query", self.base))
                    .json(&usage_body(&ids, now)),
            )
            .await?;
        Ok(parse_usage(&v, now))
    }

    pub(crate) async fn sync_list(
        &self,
        ctx: &CallCtx<'_>,
        since: Option<chrono::DateTime<chrono::Utc>>,
        cursor: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> CallResult<ListPage> {
        let q = list_query(since, cursor);
        let v = self
            .read(
                ctx,
                self.http
                    .client
                    .get(format!("{}/cards", self.base))
                    .query(&q),
            )
            .await?;
        Ok(parse_list(&v, now))
    }
}
