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
