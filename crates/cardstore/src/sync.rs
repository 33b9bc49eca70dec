//! Card sync: what the carriers say about cards (docs/carriers.md, "Card
//! sync").
//!
//! Adapters read; the gateway writes here in two steps so it can tell drift
//! from our own changes: [`CardStore::compare_reads`] says, for each read,
//! what differs from the stored card (nothing is written), the gateway
//! drops the cards an order of ours is changing, and
//! [`CardStore::apply_reads`] writes the rest, newest wins: a read older
//! than the card's last change (an order's outcome that landed meanwhile)
//! changes nothing but the card's `synced_at`. The cards that changed are
//! the drift the gateway publishes.

use crate::{CardStore, StoreError, retrying};
use chrono::{DateTime, Utc};

/// One card as its carrier showed it. `None`: the carrier has no call for
/// the field, or this read did not include it: the stored value stays.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Read {
    pub card: String,
    pub read_at: DateTime<Utc>,
    pub sim_status: Option<u32>,
    /// A domain `operator_status` code.
    pub stop_reason: Option<i32>,
    /// The carrier's own stop-reason code (kept raw; may have no domain code).
    pub stop_reason_raw: String,
    /// The carrier has no stop-reason read (CT, CU).
    pub stop_reason_unreported: bool,
    pub real_named: Option<bool>,
    pub imei: Option<String>,
    pub cut_net: Option<bool>,
    /// Tri-net: the active profile (wire code); `None`: not read.
    pub active_profile: Option<i32>,
    /// Data used, with its time and period, where the read had it.
    pub usage: Option<crate::usage::UsageRow>,
}

impl Read {
    /// Whether the read says anything about the card's state (a usage-only
    /// read does not: it must not count as the card read).
    pub fn reads_state(&self) -> bool {
        self.sim_status.is_some()
            || self.stop_reason.is_some()
            || !self.stop_reason_raw.is_empty()
            || self.real_named.is_some()
            || self.imei.is_some()
            || self.cut_net.is_some()
            || self.active_profile.is_some()
    }
}

/// Stop reason stored when a carrier stopped a card and reports no reason.
pub const STOP_REASON_NOT_REPORTED: i32 = 0;
/// `sim_status` of a stopped card.
const STOPPED: u32 = 14;

/// The fields card sync compares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seen {
    pub sim_status: u32,
    pub stop_reason: i32,
    pub real_named: bool,
    pub imei: String,
    pub cut_net: Option<bool>,
    pub active_profile: i32,
}

/// How one read compares with the stored card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub tenant: String,
    pub card: String,
    pub old: Seen,
    /// The stored card with the read applied.
    pub new: Seen,
    /// What differs: `status`, `stop_reason`, `real_name`, `imei`,
    /// `network`, `profile` (empty: the carrier agrees with the store).
    pub kinds: Vec<&'static str>,
    /// The read is older than the card's last change: it changes nothing.
    pub stale: bool,
}

/// The next cards of a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SweepPage {
    /// `(key, msisdn, access number)` of the cards to read.
    pub cards: Vec<(String, String, String)>,
    /// The last key looked at (cards skipped as recently read included).
    pub last: String,
    /// No card after `last`.
    pub end: bool,
}

/// The newest read of each card, in key order (one lock order for writes).
pub fn newest_reads(reads: Vec<Read>) -> Vec<Read> {
    let mut by: std::collections::BTreeMap<String, Read> = Default::default();
    for r in reads {
        match by.get(&r.card) {
            Some(e) if e.read_at >= r.read_at => {}
            _ => {
                by.insert(r.card.clone(), r);
            }
        }
    }
    by.into_values().collect()
}

/// The stored card with `r` applied.
fn merged(old: &Seen, r: &Read) -> Seen {
    let mut new = old.clone();
    if let Some(s) = r.sim_status {
        new.sim_status = s;
    }
    match r.stop_reason {
        Some(code) => new.stop_reason = code,
        None if !r.stop_reason_raw.is_empty() => new.stop_reason = STOP_REASON_NOT_REPORTED,
        None if r.stop_reason_unreported && new.sim_status != old.sim_status => {
            // A status we did not set, from a carrier with no stop-reason
            // read: stopped for a reason nobody reports, or running again.
            new.stop_reason = if new.sim_status == STOPPED {
                STOP_REASON_NOT_REPORTED
            } else {
                -1
            };
        }
        None => {}
    }
    if let Some(n) = r.real_named {
        new.real_named = n;
    }
    if let Some(i) = &r.imei {
        new.imei = i.clone();
    }
    if r.cut_net.is_some() {
        new.cut_net = r.cut_net;
    }
    if let Some(p) = r.active_profile {
        new.active_profile = p;
    }
    new
}

fn kinds(old: &Seen, new: &Seen) -> Vec<&'static str> {
    let mut k = Vec::new();
    if old.sim_status != new.sim_status {
        k.push("status");
    }
    if old.stop_reason != new.stop_reason {
        k.push("stop_reason");
    }
    if old.real_named != new.real_named {
        k.push("real_name");
    }
    if old.imei != new.imei {
        k.push("imei");
    }
    // A value the store never had (`None`) is learned, not drift.
    if old.cut_net.is_some() && new.cut_net.is_some() && old.cut_net != new.cut_net {
        k.push("network");
    }
    if old.active_profile != 0 && old.active_profile != new.active_profile {
        k.push("profile");
    }
    k
}

/// The source groups (`cards.sources` keys) a kind of change belongs to.
fn group(kind: &str) -> &'static str {
    match kind {
        "status" | "stop_reason" => "status",
        "real_name" => "real_name",
        "imei" => "imei",
        "network" => "network",
        _ => "profile",
    }
}

impl CardStore {
    /// The cards of `carrier` (wire code) after `after` in key order, at
    /// most `limit` looked at; a card read at or after `read_before` is
    /// passed over (it counts as read in this sweep).
    pub async fn sweep_cards(
        &self,
        carrier: i32,
        after: &str,
        read_before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<SweepPage, StoreError> {
        let limit = i64::from(limit.max(1));
        let carrier = carrier as i16;
        let rows = retrying(|| async {
            let c = self.client().await?;
            c.query(
                "SELECT id, msisdn, access_number, synced_at FROM cards
                 WHERE carrier = $1 AND id > $2 ORDER BY carrier, id LIMIT $3",
                &[&carrier, &after, &limit],
            )
            .await
            .map_err(StoreError::query("sweep cards"))
        })
        .await?;
        let mut page = SweepPage {
            end: (rows.len() as i64) < limit,
            last: after.to_owned(),
            ..SweepPage::default()
        };
        for r in &rows {
            let id: String = r.get(0);
            let synced: Option<DateTime<Utc>> = r.get(3);
            let fresh = matches!((synced, read_before), (Some(s), Some(b)) if s >= b);
            if !fresh {
                page.cards.push((id.clone(), r.get(1), r.get(2)));
            }
            page.last = id;
        }
        Ok(page)
    }

    /// When each of `keys` (cards of `tenant`) was last read from its
    /// carrier, in one query; cards the tenant does not hold are left out.
    pub async fn synced_at(
        &self,
        tenant: &str,
        keys: &[&str],
    ) -> Result<std::collections::HashMap<String, Option<DateTime<Utc>>>, StoreError> {
        let rows = retrying(|| async {
            let c = self.client().await?;
            c.query(
                "SELECT id, synced_at FROM cards WHERE tenant = $1 AND id = ANY($2)",
                &[&tenant, &keys],
            )
            .await
            .map_err(StoreError::query("synced at"))
        })
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// How many cards of `carrier` the store holds.
    pub async fn count_carrier(&self, carrier: i32) -> Result<u64, StoreError> {
        let carrier = carrier as i16;
        let c = self.client().await?;
        let n: i64 = c
            .query_one("SELECT count(*) FROM cards WHERE carrier = $1", &[&carrier])
            .await
            .map_err(StoreError::query("count carrier"))?
            .get(0);
        Ok(n as u64)
    }

    /// How each read compares with the stored card of `carrier` (reads of
    /// cards the store does not hold for that carrier are left out).
    pub async fn compare_reads(
        &self,
        carrier: i32,
        reads: &[Read],
    ) -> Result<Vec<Diff>, StoreError> {
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = reads.iter().map(|r| r.card.as_str()).collect();
        let carrier = carrier as i16;
        let rows = retrying(|| async {
            let c = self.client().await?;
            c.query(
                "SELECT id, tenant, sim_status, stop_reason, real_named, imei, cut_net,
                        active_profile, updated_at
                 FROM cards WHERE id = ANY($1) AND carrier = $2",
                &[&ids, &carrier],
            )
            .await
            .map_err(StoreError::query("compare reads"))
        })
        .await?;
        let stored: std::collections::HashMap<String, (String, Seen, DateTime<Utc>)> = rows
            .iter()
            .map(|r| {
                let seen = Seen {
                    sim_status: r.get::<_, i16>(2).max(0) as u32,
                    stop_reason: i32::from(r.get::<_, i16>(3)),
                    real_named: r.get(4),
                    imei: r.get(5),
                    cut_net: r.get(6),
                    active_profile: i32::from(r.get::<_, i16>(7)),
                };
                (r.get(0), (r.get(1), seen, r.get(8)))
            })
            .collect();
        Ok(reads
            .iter()
            .filter_map(|r| {
                let (tenant, old, updated_at) = stored.get(&r.card)?;
                let new = merged(old, r);
                Some(Diff {
                    tenant: tenant.clone(),
                    card: r.card.clone(),
                    kinds: kinds(old, &new),
                    stale: r.read_at < *updated_at,
                    old: old.clone(),
                    new,
                })
            })
            .collect())
    }

    /// Write reads newest-wins, with `diffs` from [`CardStore::compare_reads`]
    /// of the same reads: each changes its card only if the card has no
    /// newer change (`updated_at <= read_at`), and marks the fields that
    /// drifted as the carrier's; every read card's `synced_at` moves on.
    /// `hold`: cards whose fields must not change now (an order of ours is
    /// changing them): only `synced_at` moves. Returns the keys whose
    /// fields drifted.
    pub async fn apply_reads(
        &self,
        carrier: i32,
        reads: &[Read],
        diffs: &[Diff],
        hold: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, StoreError> {
        if diffs.is_empty() {
            return Ok(Vec::new());
        }
        let newest: std::collections::HashMap<&str, &Read> =
            reads.iter().map(|r| (r.card.as_str(), r)).collect();
        let mut ids = Vec::new();
        let mut at = Vec::new();
        let mut status = Vec::new();
        let mut reason = Vec::new();
        let mut raw = Vec::new();
        let mut named = Vec::new();
        let mut imei = Vec::new();
        let mut cut: Vec<Option<bool>> = Vec::new();
        let mut profile = Vec::new();
        let mut groups = Vec::new();
        let mut write = Vec::new();
        for d in diffs {
            let Some(r) = newest.get(d.card.as_str()) else {
                continue;
            };
            // The card's fields take the read unless it is stale or an order
            // of ours is changing the card; only what differed (drift) moves
            // `updated_at` and becomes the carrier's in `sources`.
            let w = !hold.contains(&d.card) && !d.stale;
            write.push(w);
            ids.push(d.card.as_str());
            at.push(r.read_at);
            status.push(d.new.sim_status as i16);
            reason.push(d.new.stop_reason as i16);
            raw.push(r.stop_reason_raw.as_str());
            named.push(d.new.real_named);
            imei.push(d.new.imei.as_str());
            cut.push(d.new.cut_net);
            profile.push(d.new.active_profile as i16);
            let mut g: Vec<&str> = if w {
                d.kinds.iter().map(|k| group(k)).collect()
            } else {
                Vec::new()
            };
            g.dedup();
            groups.push(serde_json::to_string(&g).unwrap_or_else(|_| "[]".into()));
        }
        let carrier = carrier as i16;
        let rows = retrying(|| async {
            let c = self.client().await?;
            c.query(
                "WITH u AS (
                   SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int2[], $4::int2[], $5::text[],
                                        $6::bool[], $7::text[], $8::bool[], $9::int2[], $10::text[], $12::bool[])
                     AS u(id, at, status, reason, raw, named, imei, cut, profile, groups, w)
                 )
                 UPDATE cards c SET
                   synced_at = greatest(c.synced_at, u.at),
                   sim_status = CASE WHEN u.w THEN u.status ELSE c.sim_status END,
                   stop_reason = CASE WHEN u.w THEN u.reason ELSE c.stop_reason END,
                   stop_reason_raw = CASE WHEN u.w AND u.raw <> '' THEN u.raw ELSE c.stop_reason_raw END,
                   real_named = CASE WHEN u.w THEN u.named ELSE c.real_named END,
                   imei = CASE WHEN u.w THEN u.imei ELSE c.imei END,
                   cut_net = CASE WHEN u.w THEN u.cut ELSE c.cut_net END,
                   active_profile = CASE WHEN u.w THEN u.profile ELSE c.active_profile END,
                   updated_at = CASE WHEN u.groups <> '[]' THEN u.at ELSE c.updated_at END,
                   sources = CASE WHEN u.groups <> '[]' THEN c.sources || (
                       SELECT jsonb_object_agg(g, jsonb_build_object('from', 'carrier', 'at', u.at))
                       FROM jsonb_array_elements_text(u.groups::jsonb) AS g)
                     ELSE c.sources END
                 FROM u
                 WHERE c.id = u.id AND c.carrier = $11
                   AND (NOT u.w OR c.updated_at <= u.at)
                 RETURNING c.id, u.groups <> '[]'",
                &[
                    &ids, &at, &status, &reason, &raw, &named, &imei, &cut, &profile, &groups,
                    &carrier, &write,
                ],
            )
            .await
            .map_err(StoreError::query("apply reads"))
        })
        .await?;
        Ok(rows
            .iter()
            .filter(|r| r.get::<_, bool>(1))
            .map(|r| r.get(0))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(f: impl FnOnce(&mut Read)) -> Read {
        let mut r = Read::default();
        f(&mut r);
        r
    }

    fn in_use() -> Seen {
        Seen {
            sim_status: 20,
            stop_reason: -1,
            ..Seen::default()
        }
    }

    #[test]
    fn a_carrier_without_stop_reasons_leaves_the_reason_not_reported() {
        let r = read(|r| {
            r.sim_status = Some(STOPPED);
            r.stop_reason_unreported = true;
        });
        let new = merged(&in_use(), &r);
        assert_eq!(new.stop_reason, STOP_REASON_NOT_REPORTED);
        assert_eq!(kinds(&in_use(), &new), ["status", "stop_reason"]);
        // Running again: not stopped.
        let back = merged(
            &new,
            &read(|r| {
                r.sim_status = Some(20);
                r.stop_reason_unreported = true;
            }),
        );
        assert_eq!(back.stop_reason, -1);
    }

    #[test]
    fn a_raw_code_with_no_domain_meaning_is_other_and_kept() {
        let r = read(|r| {
            r.sim_status = Some(STOPPED);
            r.stop_reason_raw = "000020000000".into();
        });
        assert_eq!(merged(&in_use(), &r).stop_reason, STOP_REASON_NOT_REPORTED);
        let r = read(|r| {
            r.sim_status = Some(STOPPED);
            r.stop_reason = Some(7);
            r.stop_reason_raw = "020000000000".into();
        });
        assert_eq!(merged(&in_use(), &r).stop_reason, 7);
    }

    #[test]
    fn unread_fields_keep_the_stored_values() {
        let mut old = in_use();
        old.imei = "861234050000017".into();
        old.real_named = true;
        let new = merged(&old, &read(|r| r.sim_status = Some(20)));
        assert_eq!(new, old);
        assert!(kinds(&old, &new).is_empty());
    }
}
