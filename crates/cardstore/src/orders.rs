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

/// One entry of the order bucket, at its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexEntry {
    /// The order as this revision writes it.
    Put(OrderRow, u64),
    /// The order's record removed (deleted or purged) at this revision.
    Remove(u64, u64),
}

impl IndexEntry {
    /// The order's id.
    pub fn id(&self) -> u64 {
        match self {
            IndexEntry::Put(r, _) => r.id,
            IndexEntry::Remove(id, _) => *id,
        }
    }
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

/// Orders as the upsert takes them: one array per column.
struct PutColumns {
    ids: Vec<i64>,
    tenants: Vec<String>,
    kinds: Vec<i32>,
    /// Each as an array literal (`{1,2}`): arrays of ragged arrays do not
    /// bind.
    carriers: Vec<String>,
    statuses: Vec<i32>,
    created: Vec<DateTime<Utc>>,
    fanout: Vec<bool>,
    revisions: Vec<i64>,
}

impl PutColumns {
    fn of<'a>(rows: impl IntoIterator<Item = (&'a OrderRow, u64)>) -> PutColumns {
        let mut p = PutColumns {
            ids: vec![],
            tenants: vec![],
            kinds: vec![],
            carriers: vec![],
            statuses: vec![],
            created: vec![],
            fanout: vec![],
            revisions: vec![],
        };
        for (r, revision) in rows {
            p.ids.push(as_i64(r.id));
            p.tenants.push(r.tenant.clone());
            p.kinds.push(r.kind);
            let list: Vec<String> = r.carriers.iter().map(|c| c.to_string()).collect();
            p.carriers.push(format!("{{{}}}", list.join(",")));
            p.statuses.push(r.status);
            p.created.push(r.created_at);
            p.fanout.push(r.fanout_done);
            p.revisions.push(as_i64(revision));
        }
        p
    }
}

/// Upsert `p`, an older revision never overwriting a newer one.
async fn put_orders<C: deadpool_postgres::GenericClient>(
    c: &C,
    p: &PutColumns,
) -> Result<(), StoreError> {
    let st = c
        .prepare_cached(
            "INSERT INTO orders (id, tenant, kind, carriers, status, created_at, fanout_done, revision)
             SELECT id, tenant, kind, carriers::integer[], status, created_at, fanout_done, revision
             FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::text[], $5::integer[],
                         $6::timestamptz[], $7::boolean[], $8::bigint[])
                  AS e(id, tenant, kind, carriers, status, created_at, fanout_done, revision)
             ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, kind = EXCLUDED.kind,
               carriers = EXCLUDED.carriers, status = EXCLUDED.status, created_at = EXCLUDED.created_at,
               fanout_done = EXCLUDED.fanout_done, revision = EXCLUDED.revision
             WHERE orders.revision < EXCLUDED.revision",
        )
        .await
        .map_err(StoreError::query("prepare index orders"))?;
    c.execute(
        &st,
        &[
            &p.ids,
            &p.tenants,
            &p.kinds,
            &p.carriers,
            &p.statuses,
            &p.created,
            &p.fanout,
            &p.revisions,
        ],
    )
    .await
    .map_err(StoreError::query("index orders"))?;
    Ok(())
}

impl CardStore {
    /// Record what revision `revision` of order `row.id` says, unless a
    /// newer revision is recorded. Revision 0: a note made before the
    /// bucket's own entry arrives (never overwrites anything).
    pub async fn index_order(&self, row: &OrderRow, revision: u64) -> Result<(), StoreError> {
        let c = self.client().await?;
        put_orders(&c, &PutColumns::of([(row, revision)])).await
    }

    /// Apply a run of the bucket's entries in one transaction (upserts,
    /// removals, then the position `through`), each id at most once (the
    /// caller keeps an id's newest entry). One round trip per run instead
    /// of one per entry: a busy bucket changes thousands of orders a second,
    /// and a follower that wrote them one by one fell behind (and the open
    /// order quota, which counts in this table, with it).
    pub async fn index_orders(
        &self,
        entries: &[IndexEntry],
        through: u64,
    ) -> Result<(), StoreError> {
        let mut put: Vec<(&OrderRow, u64)> = entries
            .iter()
            .filter_map(|e| match e {
                IndexEntry::Put(r, rev) => Some((r, *rev)),
                IndexEntry::Remove(..) => None,
            })
            .collect();
        // One lock order for every replica (no deadlock between two
        // followers applying the same run).
        put.sort_by_key(|(r, _)| r.id);
        let put = PutColumns::of(put);
        let (mut del_ids, mut del_revs) = (vec![], vec![]);
        for e in entries {
            if let IndexEntry::Remove(id, rev) = e {
                del_ids.push(as_i64(*id));
                del_revs.push(as_i64(*rev));
            }
        }
        crate::retrying(|| async {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(StoreError::query("begin"))?;
            if !put.ids.is_empty() {
                put_orders(&tx, &put).await?;
            }
            if !del_ids.is_empty() {
                tx.execute(
                    "DELETE FROM orders o USING unnest($1::bigint[], $2::bigint[]) AS d(id, revision)
                     WHERE o.id = d.id AND o.revision < d.revision",
                    &[&del_ids, &del_revs],
                )
                .await
                .map_err(StoreError::query("unindex orders"))?;
            }
            tx.execute(
                "UPDATE order_index_position SET revision = GREATEST(revision, $1)",
                &[&as_i64(through)],
            )
            .await
            .map_err(StoreError::query("set index position"))?;
            tx.commit().await.map_err(StoreError::query("commit"))
        })
        .await
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
