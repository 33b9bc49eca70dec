//! A tenant's own data on its cards (`Registry.UpdateCards`): the six
//! customer attributes and the plan (plan id and name, allowance,
//! activation and expiry), for up to 100,000 cards in one statement. Unset
//! values stay as they are; only the tenant's own cards change.

use crate::{CardStore, StoreError, retrying};
use chrono::{DateTime, Utc};

/// One card's new values (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CardValues {
    pub id: String,
    pub attrs: [Option<String>; 6],
    pub plan_id: Option<String>,
    pub plan_name: Option<String>,
    pub allowance_mb: Option<f64>,
    pub expire_time: Option<DateTime<Utc>>,
    pub act_date: Option<DateTime<Utc>>,
}

impl CardValues {
    fn sets_attributes(&self) -> bool {
        self.attrs.iter().any(Option::is_some)
    }

    fn sets_plan(&self) -> bool {
        self.plan_id.is_some()
            || self.plan_name.is_some()
            || self.allowance_mb.is_some()
            || self.expire_time.is_some()
            || self.act_date.is_some()
    }
}

impl CardStore {
    /// Set `values` on the cards of `tenant`; returns the keys changed (a
    /// key not returned is unknown or another tenant's). A card named
    /// twice takes its last values.
    pub async fn update_cards(
        &self,
        tenant: &str,
        values: &[CardValues],
    ) -> Result<Vec<String>, StoreError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        // The last mention of each card, in key order (one lock order).
        let mut last: std::collections::BTreeMap<&str, &CardValues> = Default::default();
        for v in values {
            last.insert(v.id.as_str(), v);
        }
        let ids: Vec<&str> = last.keys().copied().collect();
        let col = |f: &dyn Fn(&CardValues) -> Option<String>| -> Vec<Option<String>> {
            last.values().map(|v| f(v)).collect()
        };
        let attrs: Vec<Vec<Option<String>>> = (0..6)
            .map(|i| col(&|v: &CardValues| v.attrs[i].clone()))
            .collect();
        let plan_id = col(&|v: &CardValues| v.plan_id.clone());
        let plan_name = col(&|v: &CardValues| v.plan_name.clone());
        let allowance: Vec<Option<f64>> = last.values().map(|v| v.allowance_mb).collect();
        let expire: Vec<Option<DateTime<Utc>>> = last.values().map(|v| v.expire_time).collect();
        let act: Vec<Option<DateTime<Utc>>> = last.values().map(|v| v.act_date).collect();
        let sets_attrs: Vec<bool> = last.values().map(|v| v.sets_attributes()).collect();
        let sets_plan: Vec<bool> = last.values().map(|v| v.sets_plan()).collect();
        retrying(|| async {
            let c = self.client().await?;
            let rows = c
                .query(
                    "UPDATE cards c SET
                       attr1 = coalesce(u.a1, c.attr1), attr2 = coalesce(u.a2, c.attr2),
                       attr3 = coalesce(u.a3, c.attr3), attr4 = coalesce(u.a4, c.attr4),
                       attr5 = coalesce(u.a5, c.attr5), attr6 = coalesce(u.a6, c.attr6),
                       plan_id = coalesce(u.plan_id, c.plan_id), plan_name = coalesce(u.plan_name, c.plan_name),
                       allowance_mb = coalesce(u.allowance, c.allowance_mb),
                       expire_time = coalesce(u.expire, c.expire_time), act_date = coalesce(u.act, c.act_date),
                       sources = c.sources
                         || CASE WHEN u.sets_attrs THEN jsonb_build_object('attributes', jsonb_build_object('from', 'customer', 'at', now())) ELSE '{}' END
                         || CASE WHEN u.sets_plan THEN jsonb_build_object('plan', jsonb_build_object('from', 'customer', 'at', now())) ELSE '{}' END
                     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                                 $9::text[], $10::text[], $11::float8[], $12::timestamptz[], $13::timestamptz[],
                                 $14::boolean[], $15::boolean[])
                          AS u(id, a1, a2, a3, a4, a5, a6, plan_id, plan_name, allowance, expire, act, sets_attrs, sets_plan)
                     WHERE c.id = u.id AND c.tenant = $1
                     RETURNING c.id",
                    &[
                        &tenant, &ids, &attrs[0], &attrs[1], &attrs[2], &attrs[3], &attrs[4],
                        &attrs[5], &plan_id, &plan_name, &allowance, &expire, &act, &sets_attrs,
                        &sets_plan,
                    ],
                )
                .await
                .map_err(StoreError::query("update cards"))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }
}

/// Data used by one card as its carrier reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub id: String,
    pub mb: f64,
    /// The carrier's "as of" (or the call's time where it states none).
    pub as_of: DateTime<Utc>,
    /// The CST days the figure covers, both included.
    pub period: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
}

impl CardStore {
    /// Record usage figures, each with its own time and period; a figure
    /// older than the one stored changes nothing. Returns the cards changed.
    pub async fn record_usage_rows(&self, rows: &[UsageRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut sorted: Vec<&UsageRow> = rows.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<&str> = sorted.iter().map(|u| u.id.as_str()).collect();
        let mb: Vec<f64> = sorted.iter().map(|u| u.mb).collect();
        let at: Vec<DateTime<Utc>> = sorted.iter().map(|u| u.as_of).collect();
        let first: Vec<Option<chrono::NaiveDate>> =
            sorted.iter().map(|u| u.period.map(|p| p.0)).collect();
        let last: Vec<Option<chrono::NaiveDate>> =
            sorted.iter().map(|u| u.period.map(|p| p.1)).collect();
        retrying(|| async {
            let c = self.client().await?;
            c.execute(
                "UPDATE cards c SET flow_used_mb = u.mb, flow_used_at = u.at,
                   flow_period_first = u.first, flow_period_last = u.last,
                   sources = c.sources || jsonb_build_object('usage', jsonb_build_object('from', 'carrier', 'at', u.at))
                 FROM unnest($1::text[], $2::float8[], $3::timestamptz[], $4::date[], $5::date[]) AS u(id, mb, at, first, last)
                 WHERE c.id = u.id AND (c.flow_used_at IS NULL OR c.flow_used_at <= u.at)",
                &[&ids, &mb, &at, &first, &last],
            )
            .await
            .map_err(StoreError::query("record usage"))
        })
        .await
    }

    /// Record data used this month as the carrier reported it `as_of`
    /// (card sync): `(card key, MB)`. An older report than the one stored
    /// changes nothing. Returns the cards changed.
    pub async fn record_usage(
        &self,
        usage: &[(String, f64)],
        as_of: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if usage.is_empty() {
            return Ok(0);
        }
        let mut sorted: Vec<&(String, f64)> = usage.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let ids: Vec<&str> = sorted.iter().map(|u| u.0.as_str()).collect();
        let mb: Vec<f64> = sorted.iter().map(|u| u.1).collect();
        retrying(|| async {
            let c = self.client().await?;
            c.execute(
                "UPDATE cards c SET flow_used_mb = u.mb, flow_used_at = $3,
                   sources = c.sources || jsonb_build_object('usage', jsonb_build_object('from', 'carrier', 'at', $3::timestamptz))
                 FROM unnest($1::text[], $2::float8[]) AS u(id, mb)
                 WHERE c.id = u.id AND (c.flow_used_at IS NULL OR c.flow_used_at <= $3)",
                &[&ids, &mb, &as_of],
            )
            .await
            .map_err(StoreError::query("record usage"))
        })
        .await
    }
}
