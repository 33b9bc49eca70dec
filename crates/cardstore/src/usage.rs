//! Data usage per card (docs/operations.md, "Usage"): the monthly figure
//! on the card row (newest wins by its "as of" time, with the period it
//! covers), and daily figures in `card_usage_days` (one row per card and
//! China-time month, its days in an array: a card's 13 months of days cost
//! 13 rows): the carrier's own daily figure where it has a daily query,
//! else the growth of the monthly figure between snapshots, marked derived.
//!
//! A derived day is written only when the snapshot before it was taken the
//! same day or the day before (after a gap the growth spans days no one can
//! tell apart), and in the same period, or in a new period that began that
//! very day. A carrier figure replaces a derived one; a derived one never
//! replaces a carrier figure.
//!
//! The statement reads the previous snapshot as of its own start (a `FOR
//! UPDATE` there would skip the rows the same statement updates): two
//! reports of the same card committing at the same instant (a refresh and
//! a sweep, say) could both add their growth to the derived day. Rare, and
//! confined to a row marked derived; a carrier figure is never touched.

use crate::{CardStore, StoreError, retrying};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use std::collections::HashMap;

/// Data used by one card as its carrier reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub id: String,
    pub mb: f64,
    /// The carrier's "as of" (or the call's time where it states none).
    pub as_of: DateTime<Utc>,
    /// The CST days the figure covers, both included.
    pub period: Option<(NaiveDate, NaiveDate)>,
}

/// One card's usage on one China-time day, from the carrier's daily query.
#[derive(Debug, Clone, PartialEq)]
pub struct DayRow {
    pub id: String,
    pub day: NaiveDate,
    pub mb: f64,
}

/// A stored daily figure.
#[derive(Debug, Clone, PartialEq)]
pub struct DayFigure {
    pub mb: f64,
    pub derived: bool,
}

/// The first day of `d`'s month.
fn month_of(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("every month has a first day")
}

/// The newest row per key (one statement may not touch a row twice).
fn newest<T>(rows: &[T], key: impl Fn(&T) -> &str, newer: impl Fn(&T, &T) -> bool) -> Vec<&T> {
    let mut by: HashMap<&str, &T> = HashMap::with_capacity(rows.len());
    for r in rows {
        match by.get(key(r)) {
            Some(old) if !newer(r, old) => {}
            _ => {
                by.insert(key(r), r);
            }
        }
    }
    let mut v: Vec<&T> = by.into_values().collect();
    v.sort_by(|a, b| key(a).cmp(key(b)));
    v
}

impl CardStore {
    /// Record usage figures, each with its own time and period; a figure
    /// older than the one stored changes nothing. Each newer figure also
    /// writes the derived daily row it allows (module doc). Returns the
    /// cards changed.
    pub async fn record_usage_rows(&self, rows: &[UsageRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let sorted = newest(rows, |u| u.id.as_str(), |a, b| a.as_of > b.as_of);
        let ids: Vec<&str> = sorted.iter().map(|u| u.id.as_str()).collect();
        let mb: Vec<f64> = sorted.iter().map(|u| u.mb).collect();
        let at: Vec<DateTime<Utc>> = sorted.iter().map(|u| u.as_of).collect();
        let first: Vec<Option<NaiveDate>> = sorted.iter().map(|u| u.period.map(|p| p.0)).collect();
        let last: Vec<Option<NaiveDate>> = sorted.iter().map(|u| u.period.map(|p| p.1)).collect();
        retrying(|| async {
            let c = self.client().await?;
            let row = c
                .query_one(
                    "WITH u AS (
                       SELECT id, mb, at, first, last,
                              ((at - interval '1 microsecond') AT TIME ZONE 'Asia/Shanghai')::date AS day
                       FROM unnest($1::text[], $2::float8[], $3::timestamptz[], $4::date[], $5::date[])
                         AS u(id, mb, at, first, last)),
                     old AS (
                       SELECT c.id, c.flow_used_mb, c.flow_used_at, c.flow_period_first,
                              ((c.flow_used_at - interval '1 microsecond') AT TIME ZONE 'Asia/Shanghai')::date AS day
                       FROM cards c JOIN u ON c.id = u.id),
                     upd AS (
                       UPDATE cards c SET flow_used_mb = u.mb, flow_used_at = u.at,
                         flow_period_first = u.first, flow_period_last = u.last,
                         sources = c.sources || jsonb_build_object('usage', jsonb_build_object('from', 'carrier', 'at', u.at))
                       FROM u
                       WHERE c.id = u.id AND (c.flow_used_at IS NULL OR c.flow_used_at <= u.at)
                       RETURNING c.id),
                     daily AS (
                       INSERT INTO card_usage_days AS d (card, month, mb)
                       SELECT u.id, date_trunc('month', u.day)::date,
                              usage_day(extract(day FROM u.day)::integer,
                                CASE WHEN o.flow_period_first IS NOT DISTINCT FROM u.first
                                     THEN greatest(u.mb - coalesce(o.flow_used_mb, 0), 0)
                                     ELSE u.mb END)
                       FROM u JOIN old o ON o.id = u.id JOIN upd ON upd.id = u.id
                       WHERE o.flow_used_at < u.at AND u.day - o.day <= 1
                         AND (o.flow_period_first IS NOT DISTINCT FROM u.first OR u.first = u.day)
                       ON CONFLICT (card, month) DO UPDATE
                         SET mb = usage_add(d.mb, EXCLUDED.mb, d.carrier_days))
                     SELECT count(*) FROM upd",
                    &[&ids, &mb, &at, &first, &last],
                )
                .await
                .map_err(StoreError::query("record usage"))?;
            Ok(row.get::<_, i64>(0) as u64)
        })
        .await
    }

    /// Record data used this month as the carrier reported it `as_of`
    /// (no period stated): `(card key, MB)`. Returns the cards changed.
    pub async fn record_usage(
        &self,
        usage: &[(String, f64)],
        as_of: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let rows: Vec<UsageRow> = usage
            .iter()
            .map(|(id, mb)| UsageRow {
                id: id.clone(),
                mb: *mb,
                as_of,
                period: None,
            })
            .collect();
        self.record_usage_rows(&rows).await
    }

    /// Record the carriers' own daily figures (replacing derived ones).
    /// Returns the figures written.
    pub async fn record_daily(&self, rows: &[DayRow]) -> Result<u64, StoreError> {
        let mut sorted: Vec<&DayRow> = rows.iter().collect();
        sorted.sort_by(|a, b| (a.id.as_str(), a.day).cmp(&(b.id.as_str(), b.day)));
        sorted.dedup_by(|a, b| a.id == b.id && a.day == b.day);
        // One statement changes a card's month once: a card with several
        // days (a backfill) takes several rounds.
        let mut total = 0;
        while !sorted.is_empty() {
            let mut round: Vec<&DayRow> = Vec::new();
            let mut rest: Vec<&DayRow> = Vec::new();
            for r in sorted {
                let month = month_of(r.day);
                match round.last() {
                    Some(l) if l.id == r.id && month_of(l.day) == month => rest.push(r),
                    _ => round.push(r),
                }
            }
            total += self.record_daily_round(&round).await?;
            sorted = rest;
        }
        Ok(total)
    }

    async fn record_daily_round(&self, rows: &[&DayRow]) -> Result<u64, StoreError> {
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let days: Vec<NaiveDate> = rows.iter().map(|r| r.day).collect();
        let mb: Vec<f64> = rows.iter().map(|r| r.mb).collect();
        retrying(|| async {
            let c = self.client().await?;
            c.execute(
                "INSERT INTO card_usage_days AS d (card, month, mb, carrier_days)
                 SELECT id, date_trunc('month', day)::date,
                        usage_day(extract(day FROM day)::integer, mb),
                        1 << (extract(day FROM day)::integer - 1)
                 FROM unnest($1::text[], $2::date[], $3::float8[]) AS u(id, day, mb)
                 ON CONFLICT (card, month) DO UPDATE
                   SET mb = usage_put(d.mb, EXCLUDED.mb),
                       carrier_days = d.carrier_days | EXCLUDED.carrier_days",
                &[&ids, &days, &mb],
            )
            .await
            .map_err(StoreError::query("record daily usage"))
        })
        .await
    }

    /// The daily figures of `keys` (cards already checked to be the
    /// caller's) on the days `from..=to`: `(key, day) -> figure`.
    pub async fn daily_usage(
        &self,
        keys: &[&str],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<HashMap<(String, NaiveDate), DayFigure>, StoreError> {
        let rows = retrying(|| async {
            let c = self.client().await?;
            c.query(
                "SELECT card, month, mb, carrier_days FROM card_usage_days
                 WHERE card = ANY($1) AND month BETWEEN $2 AND $3",
                &[&keys, &month_of(from), &month_of(to)],
            )
            .await
            .map_err(StoreError::query("daily usage"))
        })
        .await?;
        let mut out = HashMap::new();
        for r in &rows {
            let card: String = r.get(0);
            let month: NaiveDate = r.get(1);
            let mb: Vec<Option<f64>> = r.get(2);
            let carrier: i32 = r.get(3);
            for (i, v) in mb.iter().enumerate() {
                let (Some(v), Some(day)) = (v, month.checked_add_days(chrono::Days::new(i as u64)))
                else {
                    continue;
                };
                if day < from || day > to || month_of(day) != month {
                    continue;
                }
                out.insert(
                    (card.clone(), day),
                    DayFigure {
                        mb: *v,
                        derived: (carrier >> i) & 1 == 0,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Delete the daily figures of months before the one `before` is in
    /// (`before` is a month's first day: retention keeps whole months), at
    /// most `chunk` card-months a statement (short locks, bounded WAL).
    /// Returns the card-months deleted.
    pub async fn prune_daily(&self, before: NaiveDate, chunk: i64) -> Result<u64, StoreError> {
        let before = month_of(before);
        let mut total = 0;
        loop {
            let n = retrying(|| async {
                let c = self.client().await?;
                c.execute(
                    "DELETE FROM card_usage_days WHERE ctid = ANY(ARRAY(
                       SELECT ctid FROM card_usage_days WHERE month < $1 LIMIT $2))",
                    &[&before, &chunk],
                )
                .await
                .map_err(StoreError::query("prune daily usage"))
            })
            .await?;
            total += n;
            if n < chunk as u64 {
                return Ok(total);
            }
        }
    }
}
