//! Cards: one row per card in `cards`, keyed by the canonical card key.
//!
//! - **Lookups are set-based**: the cards of an order are read with
//!   `id = ANY($ids)` in slices of [`LOOKUP_SLICE`], a few slices at once on
//!   separate connections: a 100,000-card order is 10 queries.
//! - **Imports are one `COPY`** into a temporary table, then one statement
//!   that claims every card by the primary key: `INSERT .. ON CONFLICT (id)
//!   DO UPDATE .. WHERE cards.tenant = EXCLUDED.tenant` (a tenant) or
//!   without the condition (the operator), or an `UPDATE .. WHERE tenant`
//!   (a tenant's own cards only). The rows the statement returned were
//!   taken; every other card of the import is refused. Two imports of one
//!   card by two tenants meet on its row: the second waits for the first
//!   and then finds it taken.
//! - **Outcomes are newest-wins**: a change is applied only when its time is
//!   not older than the card's `updated_at`, so a late or repeated report
//!   never undoes a newer one.

use crate::{CardStore, Claim, StoreError, retrying};
use chrono::{DateTime, Utc};
use gsl_proto::v1;
use std::collections::HashMap;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// Card keys per lookup query (after sorting).
pub const LOOKUP_SLICE: usize = 10_000;
/// Lookup queries in flight at once (each on its own connection).
pub const LOOKUP_PARALLEL: usize = 4;

/// The snapshot columns (see [`snapshot`]).
macro_rules! snapshot_columns {
    () => {
        "id, carrier, sim_status, stop_reason, pooled, real_named, trinet_version, active_profile, msisdn, access_number"
    };
}

/// A tenant's cards among some keys.
const LOOKUP_SQL: &str = concat!(
    "SELECT ",
    snapshot_columns!(),
    " FROM cards WHERE tenant = $1 AND id = ANY($2)"
);

/// A tenant's cards in a key range, at most `$4` of them.
const RANGE_SQL: &str = concat!(
    "SELECT ",
    snapshot_columns!(),
    " FROM cards WHERE tenant = $1 AND id >= $2 AND id <= $3 LIMIT $4"
);

/// The columns an import writes, in this order (`tenant` and `updated_at`
/// come from the import itself).
const IMPORT_COLUMNS: &str = "id, carrier, sim_status, stop_reason, pooled, real_named, trinet_version, imei, speed_kbps, threshold_mb, batch_no, active_profile, msisdn, imsi, access_number, sim_type, keep_number, act_date, expire_time, plan_id, plan_name, allowance_mb, attr1, attr2, attr3, attr4, attr5, attr6";

/// `col = <from>.col` for every imported column but the key.
fn set_from(from: &str) -> String {
    IMPORT_COLUMNS
        .split(", ")
        .skip(1)
        .map(|c| format!("{c} = {from}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The field groups an import sets (their source is the import, at
/// `imported_at`, unless `sources` names a later one).
pub(crate) const IMPORT_GROUPS: [&str; 9] = [
    "status",
    "imei",
    "speed",
    "threshold",
    "profile",
    "numbers",
    "plan",
    "attributes",
    "real_name",
];

/// [`IMPORT_GROUPS`] as an SQL array.
fn import_groups_sql() -> String {
    let quoted: Vec<String> = IMPORT_GROUPS.iter().map(|g| format!("'{g}'")).collect();
    format!("ARRAY[{}]", quoted.join(", "))
}

const IMPORT_TYPES: &[Type] = &[
    Type::TEXT,
    Type::INT2,
    Type::INT2,
    Type::INT2,
    Type::BOOL,
    Type::BOOL,
    Type::INT2,
    Type::TEXT,
    Type::INT4,
    Type::INT8,
    Type::TEXT,
    Type::INT2,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::BOOL,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::FLOAT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
];

/// The first 15 of [`IMPORT_COLUMNS`] for one card, converted to their
/// column types (what an import and the legacy copy both write).
struct BaseColumns<'a> {
    card: &'a v1::Card,
    carrier: i16,
    sim_status: i16,
    stop_reason: i16,
    trinet_version: i16,
    speed_kbps: i32,
    active_profile: i16,
}

impl<'a> BaseColumns<'a> {
    fn of(card: &'a v1::Card) -> BaseColumns<'a> {
        BaseColumns {
            card,
            carrier: small(i64::from(card.carrier)),
            sim_status: small(i64::from(card.sim_status)),
            stop_reason: small(i64::from(card.stop_reason)),
            trinet_version: small(i64::from(card.trinet_version)),
            speed_kbps: card.speed_kbps.min(i32::MAX as u32) as i32,
            active_profile: small(i64::from(card.active_profile)),
        }
    }

    fn values(&self) -> [&(dyn ToSql + Sync); 15] {
        let c = self.card;
        [
            &c.id,
            &self.carrier,
            &self.sim_status,
            &self.stop_reason,
            &c.pooled,
            &c.real_named,
            &self.trinet_version,
            &c.imei,
            &self.speed_kbps,
            &c.threshold_mb,
            &c.batch_no,
            &self.active_profile,
            &c.msisdn,
            &c.imsi,
            &c.access_number,
        ]
    }
}

/// Customer attributes are six; a card's list may be shorter.
fn attr(c: &v1::Card, i: usize) -> &str {
    c.customer_attributes
        .get(i)
        .map(String::as_str)
        .unwrap_or("")
}

fn opt_time(t: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.as_ref().and_then(gsl_proto::convert::from_timestamp)
}

fn snapshot(r: &tokio_postgres::Row) -> (String, v1::CardSnapshot) {
    (
        r.get(0),
        v1::CardSnapshot {
            carrier: i32::from(r.get::<_, i16>(1)),
            sim_status: r.get::<_, i16>(2).max(0) as u32,
            stop_reason: i32::from(r.get::<_, i16>(3)),
            pooled: r.get(4),
            real_named: r.get(5),
            trinet_version: i32::from(r.get::<_, i16>(6)),
            active_profile: i32::from(r.get::<_, i16>(7)),
            msisdn: r.get(8),
            access_number: r.get(9),
        },
    )
}

/// What a success changes on a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new status (and stop reason: `None` keeps it).
    Status {
        sim_status: u32,
        stop_reason: Option<i32>,
    },
    /// A new IMEI binding; on a card of carrier `resumes_on` (wire code)
    /// the rebind also resumes the card (China Mobile's).
    Imei {
        imei: String,
        resumes_on: Option<i32>,
    },
    SpeedKbps(u32),
    /// -1: no threshold.
    ThresholdMb(i64),
    /// Tri-net: the active profile's carrier.
    ActiveProfile(i32),
    /// Cut off from the network on request (true) or restored (false).
    CutNet(bool),
}

/// A stored card as the API shows it (every column of `cards`, plus
/// `sources` as text).
pub(crate) fn card(r: &tokio_postgres::Row) -> v1::Card {
    let at: DateTime<Utc> = r.get("updated_at");
    let ts = |c: &str| {
        r.get::<_, Option<DateTime<Utc>>>(c)
            .map(gsl_proto::convert::timestamp)
    };
    let mut attrs: Vec<String> = (1..=6)
        .map(|i| r.get(format!("attr{i}").as_str()))
        .collect();
    while attrs.last().is_some_and(String::is_empty) {
        attrs.pop();
    }
    v1::Card {
        id: r.get("id"),
        carrier: i32::from(r.get::<_, i16>("carrier")),
        sim_status: r.get::<_, i16>("sim_status").max(0) as u32,
        stop_reason: i32::from(r.get::<_, i16>("stop_reason")),
        pooled: r.get("pooled"),
        real_named: r.get("real_named"),
        trinet_version: i32::from(r.get::<_, i16>("trinet_version")),
        imei: r.get("imei"),
        speed_kbps: r.get::<_, i32>("speed_kbps").max(0) as u32,
        threshold_mb: r.get("threshold_mb"),
        batch_no: r.get("batch_no"),
        tenant: r.get("tenant"),
        updated_at: Some(gsl_proto::convert::timestamp(at)),
        active_profile: i32::from(r.get::<_, i16>("active_profile")),
        msisdn: r.get("msisdn"),
        imsi: r.get("imsi"),
        access_number: r.get("access_number"),
        sim_type: r.get::<_, i16>("sim_type").max(0) as u32,
        keep_number: r.get("keep_number"),
        act_date: ts("act_date"),
        expire_time: ts("expire_time"),
        plan_id: r.get("plan_id"),
        plan_name: r.get("plan_name"),
        allowance_mb: r.get("allowance_mb"),
        flow_used_mb: r.get("flow_used_mb"),
        flow_used_at: ts("flow_used_at"),
        flow_left_mb: r.get("flow_left_mb"),
        customer_attributes: attrs,
        sources: sources(r.get("sources_text"), r.get("imported_at")),
        imei_bind_remain_times: None,
        cut_net_flag: r.get("cut_net"),
        exceed_cut_net_flag: r.get::<_, i16>("stop_reason") == 2,
        stop_reason_raw: r.get("stop_reason_raw"),
        synced_at: ts("synced_at"),
        flow_period: match (
            r.get::<_, Option<chrono::NaiveDate>>("flow_period_first"),
            r.get::<_, Option<chrono::NaiveDate>>("flow_period_last"),
        ) {
            (Some(a), Some(b)) => Some(v1::UsagePeriod {
                first_day: a.to_string(),
                last_day: b.to_string(),
            }),
            _ => None,
        },
    }
}

/// The `sources` column (`{"status": {"from": "order", "at": "..."}}`)
/// and the import time as the API shows them, in field order: a group an
/// import sets and nothing changed since came from the import.
fn sources(text: &str, imported_at: Option<DateTime<Utc>>) -> Vec<v1::FieldSource> {
    let m = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let imported = imported_at.into_iter().flat_map(|at| {
        IMPORT_GROUPS
            .iter()
            .filter(|g| !m.contains_key(**g))
            .map(move |g| v1::FieldSource {
                field: (*g).to_owned(),
                source: v1::CardSource::Import as i32,
                at: Some(gsl_proto::convert::timestamp(at)),
            })
    });
    let imported: Vec<v1::FieldSource> = imported.collect();
    let mut out: Vec<v1::FieldSource> = m
        .iter()
        .map(|(field, v)| {
            let source = match v.get("from").and_then(|f| f.as_str()) {
                Some("import") => v1::CardSource::Import,
                Some("order") => v1::CardSource::Order,
                Some("carrier") => v1::CardSource::Carrier,
                Some("customer") => v1::CardSource::Customer,
                _ => v1::CardSource::Unspecified,
            };
            let at = v
                .get("at")
                .and_then(|a| a.as_str())
                .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
                .map(|a| gsl_proto::convert::timestamp(a.with_timezone(&Utc)));
            v1::FieldSource {
                field: field.clone(),
                source: source as i32,
                at,
            }
        })
        .collect();
    out.extend(imported);
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

/// Small integers on the wire are stored as `smallint`; a value that does
/// not fit is clamped (the import checked carrier and status already).
fn small(v: i64) -> i16 {
    v.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

impl CardStore {
    /// The cards of `tenant` among `keys` (canonical card keys), as
    /// snapshots by key. A key another tenant holds, or nobody, is absent.
    ///
    /// The keys are sorted and read in slices of [`LOOKUP_SLICE`], a few at
    /// once. A slice is first read as a key range (`id BETWEEN first AND
    /// last`, at most twice the slice's size, filtered here): the cards of
    /// a bulk order are mostly neighbours, and one index range costs about
    /// a quarter of looking each key up. A slice whose range holds more
    /// than that (keys scattered over the fleet) is then looked up key by
    /// key (`id = ANY($keys)`), so the range read costs at most a bounded
    /// detour.
    pub async fn lookup(
        &self,
        tenant: &str,
        keys: &[&str],
    ) -> Result<HashMap<String, v1::CardSnapshot>, StoreError> {
        let mut sorted: Vec<&str> = keys.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut out = HashMap::with_capacity(sorted.len());
        let slices: Vec<&[&str]> = sorted.chunks(LOOKUP_SLICE).collect();
        for group in slices.chunks(LOOKUP_PARALLEL) {
            let answers =
                futures::future::try_join_all(group.iter().map(|s| self.lookup_slice(tenant, s)))
                    .await?;
            for rows in answers {
                for r in &rows {
                    let (k, s) = snapshot(r);
                    out.insert(k, s);
                }
            }
        }
        Ok(out)
    }

    /// One sorted slice of keys: by range when the range is dense enough,
    /// else key by key.
    async fn lookup_slice(
        &self,
        tenant: &str,
        slice: &[&str],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let (Some(first), Some(last)) = (slice.first(), slice.last()) else {
            return Ok(Vec::new());
        };
        let c = self.client().await?;
        let limit = (slice.len() * 2 + 64) as i64;
        let st = c
            .prepare_cached(RANGE_SQL)
            .await
            .map_err(StoreError::query("prepare lookup"))?;
        let rows = c
            .query(&st, &[&tenant, first, last, &limit])
            .await
            .map_err(StoreError::query("lookup"))?;
        if (rows.len() as i64) < limit {
            return Ok(rows
                .into_iter()
                .filter(|r| slice.binary_search(&r.get::<_, &str>(0)).is_ok())
                .collect());
        }
        let st = c
            .prepare_cached(LOOKUP_SQL)
            .await
            .map_err(StoreError::query("prepare lookup"))?;
        c.query(&st, &[&tenant, &slice])
            .await
            .map_err(StoreError::query("lookup"))
    }

    /// One card of `tenant` (`None`: unknown, or another tenant's).
    pub async fn card(&self, tenant: &str, key: &str) -> Result<Option<v1::Card>, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "SELECT *, sources::text AS sources_text FROM cards WHERE id = $1 AND tenant = $2",
            )
            .await
            .map_err(StoreError::query("prepare card"))?;
        let row = c
            .query_opt(&st, &[&key, &tenant])
            .await
            .map_err(StoreError::query("card"))?;
        Ok(row.as_ref().map(card))
    }

    /// Cards stored, in all.
    pub async fn count_cards(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let n: i64 = c
            .query_one("SELECT count(*) FROM cards", &[])
            .await
            .map_err(StoreError::query("count cards"))?
            .get(0);
        Ok(n as u64)
    }

    /// Import `cards` (ids already canonical, carrier and status checked)
    /// for `tenant` with the authority of `claim`. Returns the keys taken;
    /// every other card was not this tenant's to take. A card named twice
    /// is stored as its last mention.
    pub async fn import(
        &self,
        tenant: &str,
        cards: &[v1::Card],
        claim: Claim,
    ) -> Result<Vec<String>, StoreError> {
        if cards.is_empty() {
            return Ok(Vec::new());
        }
        retrying(|| self.import_once(tenant, cards, claim)).await
    }

    async fn import_once(
        &self,
        tenant: &str,
        cards: &[v1::Card],
        claim: Claim,
    ) -> Result<Vec<String>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(StoreError::query("begin"))?;
        tx.batch_execute(
            "CREATE TEMP TABLE incoming (
                id text, carrier smallint, sim_status smallint, stop_reason smallint,
                pooled boolean, real_named boolean, trinet_version smallint, imei text,
                speed_kbps integer, threshold_mb bigint, batch_no text, active_profile smallint,
                msisdn text, imsi text, access_number text, sim_type smallint, keep_number boolean,
                act_date timestamptz, expire_time timestamptz, plan_id text, plan_name text,
                allowance_mb double precision, attr1 text, attr2 text, attr3 text, attr4 text,
                attr5 text, attr6 text, pos integer) ON COMMIT DROP",
        )
        .await
        .map_err(StoreError::query("incoming table"))?;
        let sink = tx
            .copy_in(&format!(
                "COPY incoming ({IMPORT_COLUMNS}, pos) FROM STDIN (FORMAT binary)"
            ))
            .await
            .map_err(StoreError::query("copy"))?;
        let w = BinaryCopyInWriter::new(sink, IMPORT_TYPES);
        futures::pin_mut!(w);
        for (pos, card) in cards.iter().enumerate() {
            let (act, expire) = (opt_time(&card.act_date), opt_time(&card.expire_time));
            let sim_type = small(i64::from(if card.sim_type == 0 {
                3
            } else {
                card.sim_type
            }));
            let attrs: [&str; 6] = std::array::from_fn(|i| attr(card, i));
            let pos = pos as i32;
            let base = BaseColumns::of(card);
            let mut row: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(29);
            row.extend(base.values());
            row.extend::<[&(dyn ToSql + Sync); 14]>([
                &sim_type,
                &card.keep_number,
                &act,
                &expire,
                &card.plan_id,
                &card.plan_name,
                &card.allowance_mb,
                &attrs[0],
                &attrs[1],
                &attrs[2],
                &attrs[3],
                &attrs[4],
                &attrs[5],
                &pos,
            ]);
            w.as_mut()
                .write(&row)
                .await
                .map_err(StoreError::query("copy row"))?;
        }
        w.finish().await.map_err(StoreError::query("copy end"))?;
        // The last mention of each card, in key order (every import locks
        // rows in the same order).
        let latest =
            format!("SELECT DISTINCT ON (id) {IMPORT_COLUMNS} FROM incoming ORDER BY id, pos DESC");
        let groups = import_groups_sql();
        let set = format!(
            "{}, updated_at = EXCLUDED.updated_at, imported_at = EXCLUDED.imported_at, sources = cards.sources - {groups}",
            set_from("EXCLUDED")
        );
        let sql = match claim {
            Claim::Any => format!(
                "INSERT INTO cards ({IMPORT_COLUMNS}, tenant, updated_at, imported_at) SELECT *, $1, now(), now() FROM ({latest}) i
                 ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, {set} RETURNING id, xmax = 0"
            ),
            Claim::NewOrOwn => format!(
                "INSERT INTO cards ({IMPORT_COLUMNS}, tenant, updated_at, imported_at) SELECT *, $1, now(), now() FROM ({latest}) i
                 ON CONFLICT (id) DO UPDATE SET {set} WHERE cards.tenant = EXCLUDED.tenant RETURNING id, xmax = 0"
            ),
            Claim::OwnOnly => format!(
                "UPDATE cards c SET {}, updated_at = now(), imported_at = now(), sources = c.sources - {groups}
                 FROM ({latest}) i WHERE c.id = i.id AND c.tenant = $1 RETURNING c.id, false",
                set_from("i")
            ),
        };
        if claim == Claim::Any {
            // The tenants losing cards to this import.
            let losing: Vec<String> = tx
                .query(
                    "SELECT DISTINCT c.tenant FROM cards c JOIN incoming i USING (id) WHERE c.tenant <> $1",
                    &[&tenant],
                )
                .await
                .map_err(StoreError::query("losing tenants"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let losing: Vec<&str> = losing.iter().map(String::as_str).collect();
            crate::list::membership_changed(&tx, &losing).await?;
        }
        let rows = tx
            .query(&sql, &[&tenant])
            .await
            .map_err(StoreError::query("claim cards"))?;
        // New cards, or the operator moving cards between tenants, change
        // who holds what: the list's anchors are stale from now on.
        if claim == Claim::Any || rows.iter().any(|r| r.get::<_, bool>(1)) {
            crate::list::membership_changed(&tx, &[tenant]).await?;
        }
        tx.commit().await.map_err(StoreError::query("commit"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Copy cards as they are (tenant and time included) unless the store
    /// has a newer record of the card: the upgrade from the NATS KV
    /// registry, idempotent and resumable. Returns the rows written.
    pub async fn copy_legacy(&self, cards: &[v1::Card]) -> Result<u64, StoreError> {
        if cards.is_empty() {
            return Ok(0);
        }
        let mut c = self.client().await?;
        let legacy_columns = IMPORT_COLUMNS
            .split(", ")
            .take(15)
            .collect::<Vec<_>>()
            .join(", ");
        let tx = c.transaction().await.map_err(StoreError::query("begin"))?;
        tx.batch_execute("CREATE TEMP TABLE legacy (LIKE cards INCLUDING DEFAULTS) ON COMMIT DROP")
            .await
            .map_err(StoreError::query("legacy table"))?;
        let sink = tx
            .copy_in(&format!(
                "COPY legacy ({legacy_columns}, tenant, updated_at) FROM STDIN (FORMAT binary)"
            ))
            .await
            .map_err(StoreError::query("copy"))?;
        let mut types = IMPORT_TYPES[..15].to_vec();
        types.extend([Type::TEXT, Type::TIMESTAMPTZ]);
        let w = BinaryCopyInWriter::new(sink, &types);
        futures::pin_mut!(w);
        for card in cards {
            let at = card
                .updated_at
                .as_ref()
                .and_then(gsl_proto::convert::from_timestamp)
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            let base = BaseColumns::of(card);
            let mut row: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(17);
            row.extend(base.values());
            row.extend::<[&(dyn ToSql + Sync); 2]>([&card.tenant, &at]);
            w.as_mut()
                .write(&row)
                .await
                .map_err(StoreError::query("copy row"))?;
        }
        w.finish().await.map_err(StoreError::query("copy end"))?;
        let n = tx
            .execute(
                "INSERT INTO cards (id, tenant, carrier, sim_status, stop_reason, pooled, real_named, trinet_version, imei, speed_kbps, threshold_mb, batch_no, active_profile, msisdn, imsi, access_number, updated_at, imported_at)
                 SELECT DISTINCT ON (id) id, tenant, carrier, sim_status, stop_reason, pooled, real_named, trinet_version, imei, speed_kbps, threshold_mb, batch_no, active_profile, msisdn, imsi, access_number, updated_at, updated_at
                 FROM legacy ORDER BY id, updated_at DESC
                 ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, carrier = EXCLUDED.carrier, sim_status = EXCLUDED.sim_status, stop_reason = EXCLUDED.stop_reason, pooled = EXCLUDED.pooled, real_named = EXCLUDED.real_named, trinet_version = EXCLUDED.trinet_version, imei = EXCLUDED.imei, speed_kbps = EXCLUDED.speed_kbps, threshold_mb = EXCLUDED.threshold_mb, batch_no = EXCLUDED.batch_no, active_profile = EXCLUDED.active_profile, msisdn = EXCLUDED.msisdn, imsi = EXCLUDED.imsi, access_number = EXCLUDED.access_number, updated_at = EXCLUDED.updated_at
                 WHERE cards.updated_at < EXCLUDED.updated_at",
                &[],
            )
            .await
            .map_err(StoreError::query("copy legacy cards"))?;
        if n > 0 {
            let tenants: Vec<String> = tx
                .query("SELECT DISTINCT tenant FROM legacy", &[])
                .await
                .map_err(StoreError::query("legacy tenants"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let tenants: Vec<&str> = tenants.iter().map(String::as_str).collect();
            crate::list::membership_changed(&tx, &tenants).await?;
        }
        tx.commit().await.map_err(StoreError::query("commit"))?;
        Ok(n)
    }

    /// How many of `keys` are stored (the upgrade's count check).
    pub async fn count_present(&self, keys: &[&str]) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let mut n = 0;
        for slice in keys.chunks(LOOKUP_SLICE) {
            let k: i64 = c
                .query_one("SELECT count(*) FROM cards WHERE id = ANY($1)", &[&slice])
                .await
                .map_err(StoreError::query("count present"))?
                .get(0);
            n += k as u64;
        }
        Ok(n)
    }

    /// Apply a change that succeeded at `at`, unless the card has a newer
    /// record. Whether it changed the card. The read that confirmed the
    /// outcome counts as the card's sync read (`synced_at`).
    pub async fn apply(
        &self,
        key: &str,
        change: &Change,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // $1 the card, $2 the time, $3.. the new values.
        let (set, values): (&str, Vec<Box<dyn ToSql + Sync + Send>>) = match change {
            Change::Status {
                sim_status,
                stop_reason: Some(r),
            } => (
                "sim_status = $3, stop_reason = $4",
                vec![
                    Box::new(small(i64::from(*sim_status))),
                    Box::new(small(i64::from(*r))),
                ],
            ),
            Change::Status {
                sim_status,
                stop_reason: None,
            } => (
                "sim_status = $3",
                vec![Box::new(small(i64::from(*sim_status)))],
            ),
            Change::Imei {
                imei,
                resumes_on: Some(carrier),
            } => (
                "imei = $3, sim_status = CASE WHEN carrier = $4 THEN 20 ELSE sim_status END, stop_reason = CASE WHEN carrier = $4 THEN -1 ELSE stop_reason END",
                vec![Box::new(imei.clone()), Box::new(small(i64::from(*carrier)))],
            ),
            Change::Imei {
                imei,
                resumes_on: None,
            } => ("imei = $3", vec![Box::new(imei.clone())]),
            Change::SpeedKbps(k) => (
                "speed_kbps = $3",
                vec![Box::new(i32::try_from(*k).unwrap_or(i32::MAX))],
            ),
            Change::ThresholdMb(t) => ("threshold_mb = $3", vec![Box::new(*t)]),
            Change::ActiveProfile(p) => {
                ("active_profile = $3", vec![Box::new(small(i64::from(*p)))])
            }
            Change::CutNet(cut) => ("cut_net = $3", vec![Box::new(*cut)]),
        };
        let groups = match change {
            Change::Status { .. } => "'status'",
            Change::Imei {
                resumes_on: Some(_),
                ..
            } => "'imei', 'status'",
            Change::Imei { .. } => "'imei'",
            Change::SpeedKbps(_) => "'speed'",
            Change::ThresholdMb(_) => "'threshold'",
            Change::ActiveProfile(_) => "'profile'",
            Change::CutNet(_) => "'network'",
        };
        let sql = format!(
            "UPDATE cards SET {set}, updated_at = $2, synced_at = greatest(synced_at, $2), sources = sources || (SELECT jsonb_object_agg(g, jsonb_build_object('from', 'order', 'at', $2::timestamptz)) FROM unnest(ARRAY[{groups}]) AS g)
             WHERE id = $1 AND updated_at <= $2"
        );
        let c = self.client().await?;
        let st = c
            .prepare_cached(&sql)
            .await
            .map_err(StoreError::query("prepare apply"))?;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&key, &at];
        params.extend(values.iter().map(|v| &**v as &(dyn ToSql + Sync)));
        let n = c
            .execute(&st, &params)
            .await
            .map_err(StoreError::query("apply outcome"))?;
        Ok(n > 0)
    }
}
