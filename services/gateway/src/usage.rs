//! `Registry.BatchUsage`: the reference service's batch daily usage
//! (`batch-daily-flow`, `../shared/domain.md`) in its two forms, every day
//! of a month or one day, for up to [`USAGE_MAX_CARDS`] of the caller's
//! cards. Figures come from the card store's daily rows (the carrier's own
//! daily figure, or one derived from monthly snapshots, flagged); a day with
//! no row answers no figure rather than a made-up zero.

use crate::cardsync::refusal;
use crate::core::Core;
use crate::error::ApiError;
use chrono::NaiveDate;
use gsl_domain::ErrorCode;
use gsl_domain::ids::CardId;
use gsl_proto::v1;
use std::sync::Arc;

/// Cards in one `BatchUsage` (the reference states no limit: its card
/// list's page maximum).
pub const USAGE_MAX_CARDS: usize = 500;

/// The days asked for: a month (`yyyyMM`) up to today, or one day
/// (`yyyyMMdd`), China time.
pub fn days_asked(month: &str, date: &str, today: NaiveDate) -> Result<Vec<NaiveDate>, ApiError> {
    let parse = |s: &str| NaiveDate::parse_from_str(s, "%Y%m%d").ok();
    let (first, last) = match (month.is_empty(), date.is_empty()) {
        (false, true) if month.len() == 6 => {
            let first = parse(&format!("{month}01"))
                .ok_or_else(|| ApiError::bad("month: yyyyMM, e.g. 202612"))?;
            let (first, last) = gsl_domain::calendar::calendar_month(first);
            (first, last.min(today))
        }
        (true, false) if date.len() == 8 => {
            let d = parse(date).ok_or_else(|| ApiError::bad("date: yyyyMMdd, e.g. 20261203"))?;
            (d, d)
        }
        (false, true) => return Err(ApiError::bad("month: yyyyMM, e.g. 202612")),
        (true, false) => return Err(ApiError::bad("date: yyyyMMdd, e.g. 20261203")),
        _ => {
            return Err(ApiError::bad(
                "exactly one of month (yyyyMM) and date (yyyyMMdd)",
            ));
        }
    };
    if first > today {
        return Err(ApiError::bad("a day after today has no usage yet"));
    }
    Ok(first.iter_days().take_while(|d| *d <= last).collect())
}

/// `Registry.BatchUsage` for `tenant`.
pub async fn batch_usage(
    core: &Core,
    tenant: &str,
    req: v1::BatchUsageRequest,
) -> Result<v1::BatchUsageResponse, ApiError> {
    if req.cards.is_empty() {
        return Err(ApiError::bad("cards: at least one card"));
    }
    if req.cards.len() > USAGE_MAX_CARDS {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!("at most {USAGE_MAX_CARDS} cards a call"),
        ));
    }
    let today = gsl_domain::calendar::cst_date(chrono::Utc::now());
    let days = days_asked(&req.month, &req.date, today)?;
    let mut refused = Vec::new();
    let mut keys: Vec<(usize, String)> = Vec::new();
    for (i, id) in req.cards.iter().enumerate() {
        match CardId::parse(id) {
            Ok(k) => keys.push((i, k.key().to_owned())),
            Err(e) => refused.push(refusal(i, id, e.code(), e.to_string())),
        }
    }
    let key_refs: Vec<&str> = keys.iter().map(|(_, k)| k.as_str()).collect();
    let store = &core.registry.store;
    let known = store.lookup(tenant, &key_refs).await?;
    let mut found: Vec<&str> = Vec::with_capacity(keys.len());
    for (i, k) in &keys {
        if known.contains_key(k) {
            found.push(k);
        } else {
            refused.push(refusal(
                *i,
                &req.cards[*i],
                ErrorCode::CardNotFound,
                "card not found".into(),
            ));
        }
    }
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return Err(ApiError::bad("no day asked for"));
    };
    let figures = store.daily_usage(&found, *first, *last).await?;
    let out = days
        .iter()
        .map(|d| v1::DayFlow {
            date: d.format("%Y%m%d").to_string(),
            sim_flow: found
                .iter()
                .map(|k| {
                    let f = figures.get(&((*k).to_owned(), *d));
                    v1::CardFlow {
                        iccid: (*k).to_owned(),
                        sim_card_id: (*k).to_owned(),
                        flow: f.map(|f| f.mb),
                        derived: f.is_some_and(|f| f.derived),
                    }
                })
                .collect(),
        })
        .collect();
    Ok(v1::BatchUsageResponse { days: out, refused })
}

/// The first day kept: the first of the month `months` before today's
/// (13: all of last year's same month onwards).
pub fn retention_start(today: NaiveDate, months: u32) -> NaiveDate {
    let first = gsl_domain::calendar::calendar_month(today).0;
    first
        .checked_sub_months(chrono::Months::new(months))
        .unwrap_or(first)
}

/// Delete daily usage rows past the retention window at start and once a
/// day until the gateway stops (every replica may: the delete is
/// idempotent and works in chunks).
pub fn spawn_retention(core: Arc<Core>, stop: gsl_telemetry::shutdown::Listener) {
    tokio::spawn(
        stop.every(std::time::Duration::from_secs(86_400), true, move || {
            let core = core.clone();
            async move {
                let today = gsl_domain::calendar::cst_date(chrono::Utc::now());
                let before = retention_start(today, core.cfg.usage_daily_retention_months);
                match core.registry.store.prune_daily(before, 10_000).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(rows = n, %before, "daily usage past retention deleted")
                    }
                    Err(e) => tracing::warn!(error = %e, "daily usage retention failed; next time"),
                }
            }
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_forms_name_their_days() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        let today = d(2026, 12, 3);
        assert_eq!(
            days_asked("202612", "", today).unwrap(),
            vec![d(2026, 12, 1), d(2026, 12, 2), d(2026, 12, 3)],
            "this month: up to today"
        );
        assert_eq!(days_asked("202611", "", today).unwrap().len(), 30);
        assert_eq!(
            days_asked("", "20261202", today).unwrap(),
            vec![d(2026, 12, 2)]
        );
        for (m, dt) in [
            ("", ""),
            ("202612", "20261202"),
            ("2026-12", ""),
            ("202613", ""),
            ("", "2026120"),
            ("", "20261232"),
            ("202701", ""),
            ("", "20261204"),
        ] {
            let e = days_asked(m, dt, today).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadParameter, "{m:?} {dt:?}");
        }
    }

    #[test]
    fn retention_keeps_whole_months() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(retention_start(d(2026, 12, 3), 13), d(2025, 11, 1));
        assert_eq!(retention_start(d(2026, 3, 31), 1), d(2026, 2, 1));
    }
}
