//! The order index: one row per work order with what `List`, the per-tenant
//! quota and the fan-out sweep filter on. The order records themselves stay
//! in NATS KV (`gsl_workorders`); every gateway replica follows that bucket
//! and writes what it sees here, the KV revision deciding (an older
//! revision never overwrites a newer one), so replicas and replays agree.
//! [`CardStore::index_position`] says how far the index has followed: a
//! restarted replica resumes there instead of reading every order again.

use crate::{CardStore, StoreError};
use chrono::{DateTime, Utc};

/// One order as the index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub id: u64,
    pub tenant: String,
    pub kind: i32,
    pub carriers: Vec<i32>,
    pub status: i32,
    pub created_at: DateTime<Utc>,
    pub fanout_done: bool,
}

/// What `List` asks for; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub tenant: String,
    pub status: Option<i32>,
    pub kind: Option<i32>,
    pub carrier: Option<i32>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Only these orders (a card's orders).
    pub ids: Option<Vec<u64>>,
    /// Ids below this one (the page token).
    pub below: Option<u64>,
    pub limit: usize,
}

fn as_i64(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

impl CardStore {
    /// Record what revision `revision` of order `row.id` says, unless a
    /// newer revision is recorded. Revision 0: a note made before the
    /// bucket's own entry arrives (never overwrites anything).
    pub async fn index_order(&self, row: &OrderRow, revision: u64) -> Result<(), StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "INSERT INTO orders (id, tenant, kind, carriers, status, created_at, fanout_done, revision)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, kind = EXCLUDED.kind,
                   carriers = EXCLUDED.carriers, status = EXCLUDED.status, created_at = EXCLUDED.created_at,
                   fanout_done = EXCLUDED.fanout_done, revision = EXCLUDED.revision
                 WHERE orders.revision < EXCLUDED.revision",
            )
            .await
            .map_err(StoreError::query("prepare index order"))?;
        c.execute(
            &st,
            &[
                &as_i64(row.id),
                &row.tenant,
                &row.kind,
                &row.carriers,
                &row.status,
                &row.created_at,
                &row.fanout_done,
                &as_i64(revision),
            ],
        )
        .await
        .map_err(StoreError::query("index order"))?;
        Ok(())
    }

    /// An order's record was removed at `revision`.
    pub async fn unindex_order(&self, id: u64, revision: u64) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "DELETE FROM orders WHERE id = $1 AND revision < $2",
            &[&as_i64(id), &as_i64(revision)],
        )
        .await
        .map_err(StoreError::query("unindex order"))?;
        Ok(())
    }

    /// Every bucket revision up to the returned one is in the index.
    pub async fn index_position(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let r: i64 = c
            .query_one("SELECT revision FROM order_index_position", &[])
            .await
            .map_err(StoreError::query("index position"))?
            .get(0);
        Ok(r.max(0) as u64)
    }

    /// Every revision up to `revision` is in the index (a position never
    /// moves back: another replica may be further on).
    pub async fn set_index_position(&self, revision: u64) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE order_index_position SET revision = GREATEST(revision, $1)",
            &[&as_i64(revision)],
        )
        .await
        .map_err(StoreError::query("set index position"))?;
        Ok(())
    }

    /// Ids of the newest orders `f` selects, newest first.
    pub async fn newest_orders(&self, f: &OrderFilter) -> Result<Vec<u64>, StoreError> {
        let c = self.client().await?;
        let ids: Option<Vec<i64>> = f
            .ids
            .as_ref()
            .map(|v| v.iter().map(|i| as_i64(*i)).collect());
        let st = c
            .prepare_cached(
                "SELECT id FROM orders WHERE tenant = $1
                   AND ($2::integer IS NULL OR status = $2)
                   AND ($3::integer IS NULL OR kind = $3)
                   AND ($4::integer IS NULL OR $4 = ANY(carriers))
                   AND ($5::timestamptz IS NULL OR created_at >= $5)
                   AND ($6::timestamptz IS NULL OR created_at < $6)
                   AND ($7::bigint[] IS NULL OR id = ANY($7))
                   AND ($8::bigint IS NULL OR id < $8)
                 ORDER BY id DESC LIMIT $9",
            )
            .await
            .map_err(StoreError::query("prepare list orders"))?;
        let rows = c
            .query(
                &st,
                &[
                    &f.tenant,
                    &f.status,
                    &f.kind,
                    &f.carrier,
                    &f.created_after,
                    &f.created_before,
                    &ids,
                    &f.below.map(as_i64),
                    &(f.limit.min(10_000) as i64),
                ],
            )
            .await
            .map_err(StoreError::query("list orders"))?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
    }

    /// How many of a tenant's orders have one of the `open` statuses.
    pub async fn count_orders(&self, tenant: &str, open: &[i32]) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached("SELECT count(*) FROM orders WHERE tenant = $1 AND status = ANY($2)")
            .await
            .map_err(StoreError::query("prepare count orders"))?;
        let n: i64 = c
            .query_one(&st, &[&tenant, &open])
            .await
            .map_err(StoreError::query("count orders"))?
            .get(0);
        Ok(n as u64)
    }

    /// Orders with status `status` whose fan-out is not recorded done,
    /// created before `before`.
    pub async fn unfinished_fanouts(
        &self,
        status: i32,
        before: DateTime<Utc>,
    ) -> Result<Vec<u64>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id FROM orders WHERE NOT fanout_done AND created_at < $1 AND status = $2 ORDER BY id",
                &[&before, &status],
            )
            .await
            .map_err(StoreError::query("unfinished fan-outs"))?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
    }
}
