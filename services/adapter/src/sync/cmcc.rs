//! China Mobile (`cmcc.md`, "Queries for card sync"): no batch status call,
//! so a sweep reads 25S04 `query/sim-status` per card, and 25S02
//! `query/sim-stop-reason` only for the cards it shows stopped (OneLink-CT
//! `4`, OneLink-PB `01`/`02`). Real-name (23A10) and IMEI (23S04) are one
//! call per card each: not in the sweep (the registry keeps what our
//! orders set). Usage: 25U03 (this month to yesterday 24:00), 100 cards a
//! call, in the usage sweep, and 25U01 (one whole day, the last 7 days up
//! to yesterday) for yesterday with the same 100 cards: the carrier's own
//! daily figure. The changed-on-date hint 23E00 is known from one client
//! only and its answer is undocumented: not used.

use super::{lookup, read, unknown_code};
use crate::cmcc::{Cmcc, envelope};
use crate::common::s;
use gsl_adapter_kit::carrier::{CallClass, CallCtx, CallResult};
use gsl_adapter_kit::reads::SyncCard;
use gsl_proto::v1;
use serde_json::Value;

/// `cardStatus` (OneLink-CT) to domain `sim_status` (`cmcc.md`, "Card
/// status"). `8` pending cancellation and every OneLink-PB code are kept
/// raw.
pub const STATUS: &[(&str, u32)] = &[
    ("6", 10),
    ("7", 11),
    ("1", 13),
    ("2", 20),
    ("4", 14),
    ("9", 30),
];

/// Codes of a stopped card: ask 25S02 why.
pub const STOPPED: &[&str] = &["4", "01", "02"];

/// Positions of a `2` in the 12-digit stop reason with a domain
/// `operator_status` (`cmcc.md`'s table, 0-based from the left): 8 self-
/// requested (5), 1 device-card separation (7), 0 NB-IoT product expired
/// (4, unsure). `GSL_CMCC_STOP_REASONS=8=5,1=7,0=4` overrides.
pub const STOP_POSITIONS: &[(usize, i32)] = &[(8, 5), (1, 7), (0, 4)];

/// The stop-reason table from its setting (`position=code,...`), or the default.
pub fn stop_positions(setting: Option<&str>) -> Vec<(usize, i32)> {
    let parsed = setting.map(|s| {
        s.split(',')
            .filter_map(|p| {
                let (pos, code) = p.trim().split_once('=')?;
                Some((pos.trim().parse().ok()?, code.trim().parse().ok()?))
            })
            .collect::<Vec<_>>()
    });
    match parsed {
        Some(p) if !p.is_empty() => p,
        _ => STOP_POSITIONS.to_vec(),
    }
}

/// The 12-digit stop reason as a domain code: no `2` is "not stopped"
/// (-1); exactly one `2` at a mapped position is that code; anything else
/// (several reasons at once, an unmapped position, a malformed string) has
/// no domain code: `None`, kept raw.
pub fn stop_reason(raw: &str, positions: &[(usize, i32)]) -> Option<i32> {
    if raw.len() != 12 || !raw.bytes().all(|b| b == b'0' || b == b'2') {
        return None;
    }
    let set: Vec<usize> = raw
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'2')
        .map(|(i, _)| i)
        .collect();
    match set.as_slice() {
        [] => Some(-1),
        [one] => positions.iter().find(|(p, _)| p == one).map(|(_, c)| *c),
        _ => None,
    }
}

/// 25S04's path and fields for a card (by ICCID).
pub fn status_request(iccid: &str) -> (&'static str, Vec<(&'static str, String)>) {
    ("query/sim-status", vec![("iccid", iccid.to_owned())])
}

/// 25S02's path and fields for a card (by ICCID).
pub fn stop_reason_request(iccid: &str) -> (&'static str, Vec<(&'static str, String)>) {
    ("query/sim-stop-reason", vec![("iccid", iccid.to_owned())])
}

/// 25U03's path and fields: this CST month's usage of up to 100 cards by ICCID.
pub fn usage_request(iccids: &[&str], month: &str) -> (&'static str, Vec<(&'static str, String)>) {
    (
        "query/sim-data-usage-monthly/batch",
        vec![
            ("queryDate", month.to_owned()),
            ("iccids", iccids.join("_")),
        ],
    )
}

/// 25U01's path and fields: one CST day's usage (`yyyyMMdd`, one of the
/// last 7 up to yesterday) of up to 100 cards by ICCID. The answer is read
/// like 25U03's: `result[0].dataAmountList[{iccid, dataAmount KB}]` (PHP
/// client's doc comment, id 5419956481).
pub fn daily_request(iccids: &[&str], day: &str) -> (&'static str, Vec<(&'static str, String)>) {
    (
        "query/sim-data-usage-daily/batch",
        vec![("queryDate", day.to_owned()), ("iccids", iccids.join("_"))],
    )
}

/// A 25U01 answer: `(ICCID, MB)` per card it names with a readable amount.
pub fn parse_daily(v: &Value) -> CallResult<Vec<(String, f64)>> {
    Ok(amounts(&envelope(v)?))
}

/// `result[0].dataAmountList` of a usage batch: `(ICCID, MB)` per card
/// named with a readable, non-negative amount (KB).
fn amounts(result: &[Value]) -> Vec<(String, f64)> {
    result
        .first()
        .and_then(|r| r.get("dataAmountList"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|x| {
                    let id = s(x, "iccid");
                    let kb: f64 = s(x, "dataAmount")
                        .trim()
                        .parse()
                        .ok()
                        .filter(|k: &f64| *k >= 0.0 && k.is_finite())?;
                    (!id.is_empty()).then(|| (id.to_owned(), kb / 1024.0))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Cards of one 25U03 call.
pub const USAGE_BATCH: usize = 100;

/// A 25U03 answer: one read per card it names (`dataAmount` is KB), as of
/// yesterday 24:00 CST (`cmcc.md`: the current month "up to the previous
/// day"), for the calendar month of `now`. A card left out is "unknown this
/// round": no read.
pub fn parse_usage(v: &Value, now: chrono::DateTime<chrono::Utc>) -> CallResult<Vec<v1::CardRead>> {
    use gsl_domain::calendar::{calendar_month, cst_date, cst_midnight};
    let result = envelope(v)?;
    let today = cst_date(now);
    let (first, last) = calendar_month(today);
    let as_of = gsl_proto::convert::timestamp(cst_midnight(today));
    Ok(amounts(&result)
        .into_iter()
        .map(|(id, mb)| {
            let mut r = read(&id, now);
            r.used_mb = Some(mb);
            r.usage_as_of = Some(as_of);
            r.usage_period = Some(v1::UsagePeriod {
                first_day: first.to_string(),
                last_day: last.to_string(),
            });
            r
        })
        .collect())
}

/// A 25S04 answer into `r`; returns the raw `cardStatus`.
pub fn parse_status(v: &Value, r: &mut v1::CardRead) -> CallResult<String> {
    let result = envelope(v)?;
    let code = result
        .first()
        .map(|x| s(x, "cardStatus").to_owned())
        .unwrap_or_default();
    r.sim_status = lookup(STATUS, &code);
    if r.sim_status.is_none() {
        unknown_code("cmcc", "cardStatus", &code, &r.card);
    }
    if r.sim_status.is_some_and(|st| st != 14) {
        r.stop_reason = Some(-1);
    }
    r.status_raw = code.clone();
    Ok(code)
}

/// A 25S02 answer into `r`.
pub fn parse_stop_reason(
    v: &Value,
    r: &mut v1::CardRead,
    positions: &[(usize, i32)],
) -> CallResult<()> {
    let result = envelope(v)?;
    let raw = result
        .first()
        .map(|x| s(x, "stopReason").to_owned())
        .unwrap_or_default();
    r.stop_reason = stop_reason(&raw, positions);
    if r.stop_reason.is_none() {
        unknown_code("cmcc", "stopReason", &raw, &r.card);
    }
    r.stop_reason_raw = raw;
    Ok(())
}

impl Cmcc {
    /// This month's usage of up to 100 cards: one 25U03 call.
    pub(crate) async fn sync_usage(
        &self,
        ctx: &CallCtx<'_>,
        cards: &[SyncCard],
        now: chrono::DateTime<chrono::Utc>,
    ) -> CallResult<Vec<v1::CardRead>> {
        let ids: Vec<&str> = cards.iter().map(|c| c.id.as_str()).collect();
        let month = gsl_domain::calendar::month_key(now).to_string();
        let (path, fields) = usage_request(&ids, &month);
        let v = self
            .call(ctx, CallClass::Query, path, &self.transid(), &fields)
            .await?;
        let mut reads = parse_usage(&v, now)?;
        if self.set.daily_usage {
            self.add_yesterday(ctx, &ids, now, &mut reads).await;
        }
        Ok(reads)
    }

    /// Yesterday's usage of `ids` by 25U01 into `reads` (a card the month
    /// batch left out gets a read of its own). The month figures stand
    /// without it: a failed call is logged, and that day is derived from
    /// the month snapshots instead.
    async fn add_yesterday(
        &self,
        ctx: &CallCtx<'_>,
        ids: &[&str],
        now: chrono::DateTime<chrono::Utc>,
        reads: &mut Vec<v1::CardRead>,
    ) {
        let Some(day) = gsl_domain::calendar::cst_date(now).pred_opt() else {
            return;
        };
        let (path, fields) = daily_request(ids, &day.format("%Y%m%d").to_string());
        let daily = match self
            .call(ctx, CallClass::Query, path, &self.transid(), &fields)
            .await
            .and_then(|v| parse_daily(&v))
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "25U01 daily usage not read; the day is derived");
                return;
            }
        };
        for (id, mb) in daily {
            let du = Some(v1::DayUsage {
                day: day.to_string(),
                mb,
            });
            match reads.iter_mut().find(|r| r.card == id) {
                Some(r) => r.day_usage = du,
                None => {
                    let mut r = read(&id, now);
                    r.day_usage = du;
                    reads.push(r);
                }
            }
        }
    }

    /// One card: 25S04, then 25S02 if it is stopped.
    pub(crate) async fn sync_read(
        &self,
        ctx: &CallCtx<'_>,
        card: &SyncCard,
        now: chrono::DateTime<chrono::Utc>,
    ) -> CallResult<v1::CardRead> {
        let mut r = read(&card.id, now);
        let (path, fields) = status_request(&card.id);
        let v = self
            .call(ctx, CallClass::Query, path, &self.transid(), &fields)
            .await?;
        let code = parse_status(&v, &mut r)?;
        if STOPPED.contains(&code.as_str()) {
            let (path, fields) = stop_reason_request(&card.id);
            let v = self
                .call(ctx, CallClass::Query, path, &self.transid(), &fields)
                .await?;
            parse_stop_reason(&v, &mut r, &self.set.stop_positions)?;
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_are_sets_of_positions() {
        let p = STOP_POSITIONS;
        assert_eq!(stop_reason("000000000000", p), Some(-1));
        assert_eq!(stop_reason("000000002000", p), Some(5));
        assert_eq!(stop_reason("020000000000", p), Some(7));
        assert_eq!(stop_reason("200000000000", p), Some(4));
        // Credit control, forced, M2M and region stops have no domain code.
        for raw in [
            "000020000000",
            "000000000020",
            "000200000000",
            "000000000200",
        ] {
            assert_eq!(stop_reason(raw, p), None, "{raw}");
        }
        // Two reasons at once: not resumable, no single code.
        assert_eq!(stop_reason("000000002020", p), None);
        // Malformed: kept raw.
        for raw in ["", "0000", "00000000200x", "0000000000000"] {
            assert_eq!(stop_reason(raw, p), None, "{raw}");
        }
        assert_eq!(stop_positions(Some("8=5, 1=6")), vec![(8, 5), (1, 6)]);
        assert_eq!(stop_positions(Some("junk")), STOP_POSITIONS.to_vec());
    }
}
