//! The reference card list (`GET /v1/sim-cards`): search, filters, sorts,
//! page-number paging with a total, and a cursor.
//!
//! - **One statement per page**, built from the query: every filter is a
//!   bound parameter, the sort is one of five index orders (each ending in
//!   the card key, so a page boundary is exact; a missing figure sorts
//!   below every figure).
//! - **The cursor** (`page_token`) carries the last row's sort value and
//!   key and a fingerprint of the search, filters and sort: the next page
//!   is a keyset read (`(sort, id) > (last)`), one page's cost at any depth.
//! - **Page numbers** (the reference `offset`) skip rows. The unfiltered
//!   list in key order (the default, and a fleet walk) skips through
//!   anchors: every [`ANCHOR_EVERY`]-th key of the tenant, kept per
//!   membership generation (an import that adds or moves cards moves it),
//!   so page 100,000 reads at most [`ANCHOR_EVERY`] index entries, not the
//!   rows before it. Any other list skips with `OFFSET` up to
//!   [`MAX_SKIP`] rows; deeper pages of those are refused with a pointer
//!   to the cursor.
//! - **The count** of the unfiltered list is the anchors' total (exact, no
//!   scan once built). A filtered count is exact up to [`EXACT_COUNT_MAX`]
//!   matches when it can be counted within [`COUNT_BUDGET_MS`]; beyond
//!   either, it is the planner's estimate, flagged.

use crate::{CardStore, StoreError, retrying};
use base64::Engine;
use chrono::{DateTime, Utc};
use gsl_proto::v1;
use tokio_postgres::types::ToSql;

/// Every this-many-th key of a tenant is an anchor.
pub const ANCHOR_EVERY: i64 = 10_000;
/// Deepest row a filtered (or not key-ordered) list skips to by page
/// number.
pub const MAX_SKIP: i64 = 100_000;
/// A filtered count above this is an estimate.
pub const EXACT_COUNT_MAX: i64 = 100_000;
/// A filtered count that takes longer than this is an estimate.
pub const COUNT_BUDGET_MS: u32 = 100;

/// What a list sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Cid,
    FlowUsed,
    FlowLeft,
    ActDate,
    ExpireTime,
}

impl Sort {
    /// The reference's names.
    pub fn parse(s: &str) -> Option<Sort> {
        Some(match s {
            "" | "cid" => Sort::Cid,
            "flow_used" => Sort::FlowUsed,
            "flow_left" => Sort::FlowLeft,
            "act_date" => Sort::ActDate,
            "expire_time" => Sort::ExpireTime,
            _ => return None,
        })
    }

    /// The sorted column (see migrations/0002: for each value a partial
    /// index of the cards that have it, in value order, and one of those
    /// that do not, in key order).
    fn column(self) -> &'static str {
        match self {
            Sort::Cid => "id",
            Sort::FlowUsed => "flow_used_mb",
            Sort::FlowLeft => "flow_left_mb",
            Sort::ActDate => "act_date",
            Sort::ExpireTime => "expire_time",
        }
    }

    fn code(self) -> &'static str {
        match self {
            Sort::Cid => "c",
            Sort::FlowUsed => "u",
            Sort::FlowLeft => "l",
            Sort::ActDate => "a",
            Sort::ExpireTime => "e",
        }
    }
}

/// The reference `main_search_type` with its key (exact match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// 1: container id (a canonical card key).
    Cid(String),
    /// 2: purchase batch number.
    Batch(String),
    /// 3: device IMEI.
    Imei(String),
}

/// One list request, checked (see the gateway for the reference's ranges).
#[derive(Debug, Clone, Default)]
pub struct CardQuery {
    pub tenant: String,
    pub search: Option<Search>,
    pub msisdn: Option<String>,
    pub sim_status: Vec<i16>,
    pub real_named: Option<bool>,
    pub min_used: Option<f64>,
    pub max_used: Option<f64>,
    pub min_left: Option<f64>,
    pub max_left: Option<f64>,
    pub attrs: [Option<String>; 6],
    pub batches: Vec<String>,
    pub plans: Vec<String>,
    pub sim_type: Option<i16>,
    pub hide_keep_number: bool,
    pub sort: Sort,
    pub desc: bool,
}

impl CardQuery {
    /// Whether anything but the tenant selects cards.
    pub fn is_filtered(&self) -> bool {
        self.search.is_some()
            || self.msisdn.is_some()
            || !self.sim_status.is_empty()
            || self.real_named.is_some()
            || self.min_used.is_some()
            || self.max_used.is_some()
            || self.min_left.is_some()
            || self.max_left.is_some()
            || self.attrs.iter().any(Option::is_some)
            || !self.batches.is_empty()
            || !self.plans.is_empty()
            || self.sim_type.is_some()
            || self.hide_keep_number
    }

    /// Stable across replicas of one build: FNV-1a over the query's text.
    fn fingerprint(&self) -> u64 {
        let text = format!("{self:?}");
        text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }
}

/// Which page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// The reference paging: page `number` (from 1) of `limit` rows.
    Number { limit: i64, number: i64 },
    /// The page after a cursor.
    After { limit: i64, token: String },
}

/// One page of a list.
#[derive(Debug, Clone, Default)]
pub struct CardPage {
    pub cards: Vec<v1::Card>,
    pub count: u64,
    pub count_estimated: bool,
    /// Empty on the last page.
    pub next_token: String,
}

/// Why a list cannot be served as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListRefused {
    #[error("page_token is not a cursor of this search, filters and sort")]
    BadToken,
    #[error(
        "offset: a filtered or non-cid-sorted list is paged by number down to row {MAX_SKIP}; walk deeper with page_token"
    )]
    TooDeep,
}

/// A statement's WHERE clause and its parameters.
struct Sql {
    conds: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    fn bind<T: ToSql + Sync + Send + 'static>(&mut self, v: T) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    fn cond(&mut self, c: String) {
        self.conds.push(c);
    }

    fn where_(&self) -> String {
        self.conds.join(" AND ")
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect()
    }

    fn of(q: &CardQuery) -> Sql {
        let mut s = Sql {
            conds: Vec::new(),
            params: Vec::new(),
        };
        let t = s.bind(q.tenant.clone());
        s.cond(format!("tenant = {t}"));
        match &q.search {
            Some(Search::Cid(k)) => {
                let p = s.bind(k.clone());
                s.cond(format!("id = {p}"));
            }
            Some(Search::Batch(b)) => {
                let p = s.bind(b.clone());
                s.cond(format!("batch_no = {p}"));
            }
            Some(Search::Imei(i)) => {
                let p = s.bind(i.clone());
                s.cond(format!("imei = {p} AND imei <> ''"));
            }
            None => {}
        }
        if let Some(m) = &q.msisdn {
            let p = s.bind(m.clone());
            s.cond(format!("msisdn = {p} AND msisdn <> ''"));
        }
        if !q.sim_status.is_empty() {
            let p = s.bind(q.sim_status.clone());
            s.cond(format!("sim_status = ANY({p})"));
        }
        if let Some(r) = q.real_named {
            let p = s.bind(r);
            s.cond(format!("real_named = {p}"));
        }
        // A card with no figure never matches a range; a range is a range
        // of the partial index of the cards with a figure.
        for (v, sort, op) in [
            (q.min_used, Sort::FlowUsed, ">="),
            (q.max_used, Sort::FlowUsed, "<="),
            (q.min_left, Sort::FlowLeft, ">="),
            (q.max_left, Sort::FlowLeft, "<="),
        ] {
            if let Some(v) = v {
                let p = s.bind(v);
                s.cond(format!("{} {op} {p}::float8", sort.column()));
            }
        }
        for (i, a) in q.attrs.iter().enumerate() {
            if let Some(a) = a {
                let p = s.bind(a.clone());
                s.cond(format!("attr{} = {p}", i + 1));
            }
        }
        if !q.batches.is_empty() {
            let p = s.bind(q.batches.clone());
            s.cond(format!("batch_no = ANY({p})"));
        }
        if !q.plans.is_empty() {
            let p = s.bind(q.plans.clone());
            s.cond(format!("plan_id = ANY({p})"));
        }
        if let Some(t) = q.sim_type {
            let p = s.bind(t);
            s.cond(format!("sim_type = {p}"));
        }
        if q.hide_keep_number {
            s.cond("NOT keep_number".into());
        }
        s
    }
}

/// A row's sort value as a cursor holds it.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    /// Sorted by key: the key is all there is.
    None,
    /// A card with no figure for the sorted value.
    Missing,
    Float(f64),
    Time(DateTime<Utc>),
}

/// The cursor: `<fingerprint>.<sort code><a|d>.<value>.<card key>`,
/// base64url.
fn encode_token(q: &CardQuery, key: &Key, id: &str) -> String {
    let value = match key {
        Key::None => String::new(),
        Key::Float(f) => format!("{:016x}", f.to_bits()),
        Key::Time(t) => t.timestamp_micros().to_string(),
        Key::Missing => "-".into(),
    };
    let dir = if q.desc { "d" } else { "a" };
    let raw = format!(
        "{:016x}.{}{dir}.{value}.{id}",
        q.fingerprint(),
        q.sort.code()
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_token(q: &CardQuery, token: &str) -> Result<(Key, String), ListRefused> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(ListRefused::BadToken)?;
    let mut parts = raw.splitn(4, '.');
    let (Some(fp), Some(sort), Some(value), Some(id)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ListRefused::BadToken);
    };
    let dir = if q.desc { "d" } else { "a" };
    if fp != format!("{:016x}", q.fingerprint())
        || sort != format!("{}{dir}", q.sort.code())
        || id.is_empty()
    {
        return Err(ListRefused::BadToken);
    }
    let key = match q.sort {
        Sort::Cid => Key::None,
        _ if value == "-" => Key::Missing,
        Sort::FlowUsed | Sort::FlowLeft => Key::Float(f64::from_bits(
            u64::from_str_radix(value, 16).map_err(|_| ListRefused::BadToken)?,
        )),
        Sort::ActDate | Sort::ExpireTime => Key::Time(
            value
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_micros)
                .ok_or(ListRefused::BadToken)?,
        ),
    };
    Ok((key, id.to_owned()))
}

/// The sort value of a listed card.
fn key_of(sort: Sort, c: &v1::Card) -> Key {
    let time = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .and_then(gsl_proto::convert::from_timestamp)
            .map(Key::Time)
            .unwrap_or(Key::Missing)
    };
    match sort {
        Sort::Cid => Key::None,
        Sort::FlowUsed => c.flow_used_mb.map(Key::Float).unwrap_or(Key::Missing),
        Sort::FlowLeft => c.flow_left_mb.map(Key::Float).unwrap_or(Key::Missing),
        Sort::ActDate => time(&c.act_date),
        Sort::ExpireTime => time(&c.expire_time),
    }
}

/// A tenant's cards changed hands (in `tx`): its anchors are stale.
pub(crate) async fn membership_changed(
    tx: &tokio_postgres::Transaction<'_>,
    tenants: &[&str],
) -> Result<(), StoreError> {
    if tenants.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<&str> = tenants.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    tx.execute(
        "INSERT INTO card_membership (tenant, generation) SELECT t, 1 FROM unnest($1::text[]) AS t
         ON CONFLICT (tenant) DO UPDATE SET generation = card_membership.generation + 1",
        &[&sorted],
    )
    .await
    .map_err(StoreError::query("membership generation"))?;
    Ok(())
}

/// A `json` value as its text (EXPLAIN's output; the binary form of
/// `json` is its text).
struct JsonText(String);

impl<'a> tokio_postgres::types::FromSql<'a> for JsonText {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(JsonText(std::str::from_utf8(raw)?.to_owned()))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::JSON || *ty == tokio_postgres::types::Type::TEXT
    }
}

/// A tenant's card count, when its anchors are of its current membership
/// generation (no row: stale or never built).
const CURRENT_ANCHORS_SQL: &str = "SELECT s.total FROM card_anchor_sets s
     LEFT JOIN card_membership m ON m.tenant = s.tenant
     WHERE s.tenant = $1 AND s.generation = coalesce(m.generation, 0)";

/// How a page is read.
enum Plan {
    /// From row `skip` of the unfiltered key-ordered list, by its anchors
    /// (which give the count too).
    Anchored(i64),
    /// By one statement, next to the count.
    Read(Read),
}

enum Read {
    /// After a cursor's row.
    After(Key, String),
    /// From row `skip`, by `OFFSET`.
    Offset(i64),
}

/// The columns a listed card is read with.
const LIST_COLUMNS: &str = "*, sources::text AS sources_text";

impl CardStore {
    /// One page of `q` (see the module doc for costs and limits).
    pub async fn list_cards(
        &self,
        q: &CardQuery,
        page: &Page,
    ) -> Result<Result<CardPage, ListRefused>, StoreError> {
        // What to read, or why not, before any query.
        let (limit, plan) = match page {
            Page::After { limit, token } => match decode_token(q, token) {
                Ok((key, id)) => (*limit, Plan::Read(Read::After(key, id))),
                Err(e) => return Ok(Err(e)),
            },
            Page::Number { limit, number } => {
                let skip = (number - 1).max(0).saturating_mul(*limit);
                if !q.is_filtered() && q.sort == Sort::Cid && skip > 0 {
                    (*limit, Plan::Anchored(skip))
                } else if skip > MAX_SKIP {
                    return Ok(Err(ListRefused::TooDeep));
                } else {
                    (*limit, Plan::Read(Read::Offset(skip)))
                }
            }
        };
        // The unfiltered count is the anchors' total, which an anchored
        // page needs first; otherwise the page and the count go on two
        // connections at once (a page costs the slower, not their sum).
        let (rows, (count, count_estimated)) = match plan {
            Plan::Anchored(skip) => {
                let total = self.anchors(&q.tenant).await?;
                let rows = self.by_anchor(q, total, skip, limit).await?;
                (rows, (total.max(0) as u64, false))
            }
            Plan::Read(read) => {
                let rows = async {
                    match read {
                        Read::After(key, id) => self.after(q, &key, &id, limit).await,
                        Read::Offset(skip) => self.by_offset(q, skip, limit).await,
                    }
                };
                let count = async {
                    if q.is_filtered() {
                        self.count_filtered(q).await
                    } else {
                        Ok((self.anchors(&q.tenant).await?.max(0) as u64, false))
                    }
                };
                let (rows, count) = tokio::join!(rows, count);
                (rows?, count?)
            }
        };
        let next_token = match rows.last() {
            Some(last) if rows.len() as i64 == limit => {
                encode_token(q, &key_of(q.sort, last), &last.id)
            }
            _ => String::new(),
        };
        Ok(Ok(CardPage {
            cards: rows,
            count,
            count_estimated,
            next_token,
        }))
    }

    /// A page of a list sorted by a value: the cards without the value
    /// and those with it as two segments, each read on its own partial
    /// index and in its own order (ascending: those without first;
    /// descending: last), merged. One index with the missing values folded
    /// in (as `-Infinity`) let the planner walk millions of cards without
    /// a figure in front of the few a filter wanted (3.1 s at 10M cards).
    /// `missing` / `present` narrow a segment (`None`: all of it).
    fn by_value_sql(
        q: &CardQuery,
        s: &mut Sql,
        missing: Option<String>,
        present: Option<String>,
        skip: i64,
        limit: i64,
    ) -> String {
        let col = q.sort.column();
        let dir = if q.desc { "DESC" } else { "ASC" };
        // A range on the sorted value leaves no card without it: say so
        // (the planner does not see `x >= $1 AND x IS NULL` is empty, and
        // walks every card without the value to find none).
        // Left data is allowance - used: a range on left data also leaves
        // no card without used data, and among cards with used data those
        // without left data are those without an allowance (a small
        // partial index of its own).
        let used_range = q.min_used.is_some() || q.max_used.is_some();
        let left_range = q.min_left.is_some() || q.max_left.is_some();
        let missing = match q.sort {
            Sort::FlowUsed if used_range || left_range => Some("false".to_string()),
            Sort::FlowLeft if left_range => Some("false".to_string()),
            Sort::FlowLeft if used_range => Some(match missing {
                Some(m) => format!("allowance_mb IS NULL AND flow_used_mb IS NOT NULL AND {m}"),
                None => "allowance_mb IS NULL AND flow_used_mb IS NOT NULL".to_string(),
            }),
            _ => missing,
        };
        let w = s.where_();
        let (k, o, l) = (s.bind(skip + limit), s.bind(skip), s.bind(limit));
        let and = |c: &Option<String>| c.as_ref().map(|c| format!(" AND {c}")).unwrap_or_default();
        let (seg_missing, seg_present) = if q.desc { (1, 0) } else { (0, 1) };
        format!(
            "SELECT * FROM (
               (SELECT {seg_missing} AS seg, {LIST_COLUMNS} FROM cards WHERE {w} AND {col} IS NULL{}
                ORDER BY id {dir} LIMIT {k})
               UNION ALL
               (SELECT {seg_present} AS seg, {LIST_COLUMNS} FROM cards WHERE {w} AND {col} IS NOT NULL{}
                ORDER BY {col} {dir}, id {dir} LIMIT {k})
             ) u ORDER BY seg, {col} {dir}, id {dir} OFFSET {o} LIMIT {l}",
            and(&missing),
            and(&present)
        )
    }

    async fn by_offset(
        &self,
        q: &CardQuery,
        skip: i64,
        limit: i64,
    ) -> Result<Vec<v1::Card>, StoreError> {
        let mut s = Sql::of(q);
        let sql = if q.sort == Sort::Cid {
            let dir = if q.desc { "DESC" } else { "ASC" };
            let (o, l) = (s.bind(skip), s.bind(limit));
            format!(
                "SELECT {LIST_COLUMNS} FROM cards WHERE {} ORDER BY id {dir} OFFSET {o} LIMIT {l}",
                s.where_()
            )
        } else {
            Self::by_value_sql(q, &mut s, None, None, skip, limit)
        };
        self.read_cards(&sql, &s).await
    }

    async fn after(
        &self,
        q: &CardQuery,
        key: &Key,
        id: &str,
        limit: i64,
    ) -> Result<Vec<v1::Card>, StoreError> {
        let mut s = Sql::of(q);
        let op = if q.desc { "<" } else { ">" };
        let i = s.bind(id.to_owned());
        let col = q.sort.column();
        // The segment after the cursor's is whole; the one before it empty.
        let (missing, present) = match key {
            Key::None => {
                let dir = if q.desc { "DESC" } else { "ASC" };
                s.cond(format!("id {op} {i}"));
                let l = s.bind(limit);
                let sql = format!(
                    "SELECT {LIST_COLUMNS} FROM cards WHERE {} ORDER BY id {dir} LIMIT {l}",
                    s.where_()
                );
                return self.read_cards(&sql, &s).await;
            }
            Key::Missing => (
                Some(format!("id {op} {i}")),
                q.desc.then(|| "false".to_string()),
            ),
            Key::Float(f) => {
                let k = s.bind(*f);
                (
                    (!q.desc).then(|| "false".to_string()),
                    Some(format!("({col}, id) {op} ({k}::float8, {i})")),
                )
            }
            Key::Time(t) => {
                let k = s.bind(*t);
                (
                    (!q.desc).then(|| "false".to_string()),
                    Some(format!("({col}, id) {op} ({k}::timestamptz, {i})")),
                )
            }
        };
        let sql = Self::by_value_sql(q, &mut s, missing, present, 0, limit);
        self.read_cards(&sql, &s).await
    }

    /// The unfiltered key-ordered list from row `skip` (in the asked
    /// direction), through the anchors (`total`: their count).
    async fn by_anchor(
        &self,
        q: &CardQuery,
        total: i64,
        skip: i64,
        limit: i64,
    ) -> Result<Vec<v1::Card>, StoreError> {
        // Rows [lo, hi] in ascending key order.
        let (lo, hi) = if q.desc {
            (total - skip - limit, total - 1 - skip)
        } else {
            (skip, skip + limit - 1)
        };
        let lo = lo.max(0);
        if hi < lo || lo >= total {
            return Ok(Vec::new());
        }
        let anchor = lo / ANCHOR_EVERY * ANCHOR_EVERY;
        let c = self.client().await?;
        let from: Option<String> = c
            .query_opt(
                "SELECT id FROM card_anchors WHERE tenant = $1 AND ordinal = $2",
                &[&q.tenant, &anchor],
            )
            .await
            .map_err(StoreError::query("anchor"))?
            .map(|r| r.get(0));
        drop(c);
        let Some(from) = from else {
            return Ok(Vec::new());
        };
        let mut s = Sql::of(q);
        let (f, o, l) = (s.bind(from), s.bind(lo - anchor), s.bind(hi - lo + 1));
        let sql = format!(
            "SELECT {LIST_COLUMNS} FROM cards WHERE {} AND id >= {f} ORDER BY id ASC OFFSET {o} LIMIT {l}",
            s.where_()
        );
        let mut cards = self.read_cards(&sql, &s).await?;
        if q.desc {
            cards.reverse();
        }
        Ok(cards)
    }

    /// Not a cached statement: a cached one is soon planned generically
    /// (without its parameters' values), and a generic plan for
    /// `WHERE tenant = $1 .. ORDER BY .. LIMIT $n` guesses 10 % of the rows
    /// and sorts the tenant's whole fleet (44 ms instead of 2 at 1M cards).
    /// An unnamed statement is planned for its values, every time.
    async fn read_cards(&self, sql: &str, s: &Sql) -> Result<Vec<v1::Card>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(sql, &s.refs())
            .await
            .map_err(StoreError::query("list"))?;
        Ok(rows.iter().map(crate::cards::card).collect())
    }

    /// How many cards a filtered `q` matches, and whether that is an
    /// estimate (an unfiltered list's count is its anchors' total).
    async fn count_filtered(&self, q: &CardQuery) -> Result<(u64, bool), StoreError> {
        let mut s = Sql::of(q);
        let cap = s.bind(EXACT_COUNT_MAX + 1);
        let mut c = self.client().await?;
        // Counted within a time budget: a count that would take longer
        // (an unindexed filter over a large fleet) becomes an estimate.
        let counted: Option<i64> = {
            let tx = c.transaction().await.map_err(StoreError::query("begin"))?;
            tx.batch_execute(&format!("SET LOCAL statement_timeout = {COUNT_BUDGET_MS}"))
                .await
                .map_err(StoreError::query("count budget"))?;
            match tx
                .query_one(
                    &format!(
                        "SELECT count(*) FROM (SELECT 1 FROM cards WHERE {} LIMIT {cap}) m",
                        s.where_()
                    ),
                    &s.refs(),
                )
                .await
            {
                Ok(r) => {
                    let _ = tx.commit().await;
                    Some(r.get(0))
                }
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) => {
                    None
                }
                Err(e) => return Err(StoreError::query("count")(e)),
            }
        };
        if let Some(n) = counted
            && n <= EXACT_COUNT_MAX
        {
            return Ok((n as u64, false));
        }
        // The planner's estimate of the whole match (never below what was
        // counted).
        let s = Sql::of(q);
        let plan: Option<String> = c
            .query_one(
                &format!(
                    "EXPLAIN (FORMAT JSON) SELECT 1 FROM cards WHERE {}",
                    s.where_()
                ),
                &s.refs(),
            )
            .await
            .ok()
            .and_then(|r| r.try_get::<_, JsonText>(0).ok())
            .map(|j| j.0);
        let estimate = plan
            .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
            .and_then(|v| v.pointer("/0/Plan/Plan Rows").and_then(|r| r.as_f64()))
            .unwrap_or(0.0) as u64;
        // Never below what was counted before the cap.
        let floor = counted.map(|n| n as u64).unwrap_or(0);
        Ok((estimate.max(floor), true))
    }

    /// The tenant's anchors, rebuilt when its membership moved since: its
    /// card count.
    pub async fn anchors(&self, tenant: &str) -> Result<i64, StoreError> {
        let c = self.client().await?;
        let valid: Option<i64> = c
            .query_opt(CURRENT_ANCHORS_SQL, &[&tenant])
            .await
            .map_err(StoreError::query("anchor set"))?
            .map(|r| r.get(0));
        drop(c);
        match valid {
            Some(total) => Ok(total),
            None => self.rebuild_anchors(tenant).await,
        }
    }

    /// Rebuild a tenant's anchors (one read of its key index); the card
    /// count. Rebuilds of one tenant take turns (an advisory lock), and a
    /// rebuild that waited finds the anchors current and stops: two lists
    /// after an import do not both rebuild, nor trip over each other's rows.
    /// Read committed is enough: the generation is read first, so anything
    /// a later statement sees beyond it moved the generation past the one
    /// recorded here, and the anchors are simply stale again.
    pub async fn rebuild_anchors(&self, tenant: &str) -> Result<i64, StoreError> {
        retrying(|| async {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(StoreError::query("begin"))?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('gsl-card-anchors'), hashtext($1))",
                &[&tenant],
            )
            .await
            .map_err(StoreError::query("anchor lock"))?;
            let current: Option<i64> = tx
                .query_opt(
                    CURRENT_ANCHORS_SQL,
                    &[&tenant],
                )
                .await
                .map_err(StoreError::query("anchor set"))?
                .map(|r| r.get(0));
            if let Some(total) = current {
                tx.commit().await.map_err(StoreError::query("commit"))?;
                return Ok(total);
            }
            let generation: i64 = tx
                .query_opt(
                    "SELECT generation FROM card_membership WHERE tenant = $1",
                    &[&tenant],
                )
                .await
                .map_err(StoreError::query("generation"))?
                .map(|r| r.get(0))
                .unwrap_or(0);
            let rows = tx
                .query(
                    "SELECT n, id FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n
                       FROM cards WHERE tenant = $1) k WHERE n % $2 = 0",
                    &[&tenant, &ANCHOR_EVERY],
                )
                .await
                .map_err(StoreError::query("anchors"))?;
            let total: i64 = tx
                .query_one(
                    "SELECT count(*) FROM cards WHERE tenant = $1 AND id >= coalesce($2, '')",
                    &[&tenant, &rows.last().map(|r| r.get::<_, String>(1))],
                )
                .await
                .map_err(StoreError::query("anchor tail"))?
                .get::<_, i64>(0)
                + rows.last().map(|r| r.get::<_, i64>(0)).unwrap_or(0);
            let (ords, ids): (Vec<i64>, Vec<String>) =
                rows.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1))).unzip();
            tx.execute("DELETE FROM card_anchors WHERE tenant = $1", &[&tenant])
                .await
                .map_err(StoreError::query("anchors"))?;
            tx.execute(
                "INSERT INTO card_anchors (tenant, ordinal, id) SELECT $1, o, i FROM unnest($2::bigint[], $3::text[]) AS a(o, i)",
                &[&tenant, &ords, &ids],
            )
            .await
            .map_err(StoreError::query("anchors"))?;
            tx.execute(
                "INSERT INTO card_anchor_sets (tenant, generation, total) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant) DO UPDATE SET generation = EXCLUDED.generation, total = EXCLUDED.total",
                &[&tenant, &generation, &total],
            )
            .await
            .map_err(StoreError::query("anchor set"))?;
            tx.commit().await.map_err(StoreError::query("commit"))?;
            Ok(total)
        })
        .await
    }
}
