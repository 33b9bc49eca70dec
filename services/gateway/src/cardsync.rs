//! Card sync, the gateway's half (`docs/carriers.md`, "Card sync"): adapters
//! read their carriers and hand the reads here (`Results.ReportCards`); the
//! gateway writes them to the card store newest-wins and publishes drift.
//! It also gives sweeps their next cards (`Results.SweepCards`) and serves
//! on-demand reads (`Registry.RefreshCards`).
//!
//! **Drift** is a read that differs from the stored card with no order of
//! ours explaining it. A card with an item of ours still in flight
//! (its newest event is not final) is held: its fields are left to the
//! order's outcome and no event is published. A read older than the card's
//! newest change (an outcome that landed after the read was made) changes
//! nothing. Each drifted card gets one `CardChanged` on
//! `gsl.evt.<tenant>.0.<card>` (so `CardHistory` and `Watch` see it) and
//! counts in `gsl_card_drift_total{carrier,kind}`. The gateway keeps no
//! copy of cards: the next submit validates against the store, which now
//! holds the carrier's state.

use crate::core::Core;
use crate::error::ApiError;
use crate::registry::Refusals;
use gsl_cardstore::sync::{Diff, Read};
use gsl_domain::ErrorCode;
use gsl_domain::ids::CardId;
use gsl_proto::{convert, v1};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Reads in one `ReportCards`.
pub const REPORT_MAX_READS: usize = 1_000;
/// Cards in one `SweepCards` answer.
pub const SWEEP_MAX_CARDS: u32 = 1_000;
/// Cards in one `RefreshCards`.
pub const REFRESH_MAX_CARDS: usize = 500;

fn read(r: &v1::CardRead) -> Result<Read, String> {
    let key = CardId::parse(&r.card).map_err(|e| e.to_string())?;
    let read_at = r
        .read_at
        .as_ref()
        .and_then(convert::from_timestamp)
        .ok_or("read_at is required")?;
    if let Some(s) = r.sim_status
        && gsl_domain::card::SimStatus::from_code(i64::from(s)).is_none()
    {
        return Err(format!("sim_status {s} is not a status code"));
    }
    if let Some(s) = r.stop_reason
        && !(s == -1 || (1..=7).contains(&s))
    {
        return Err(format!("stop_reason {s} is not a stop-reason code"));
    }
    let usage = match r.used_mb {
        None => None,
        Some(mb) if !mb.is_finite() || mb < 0.0 => {
            return Err(format!("used_mb {mb} is not a number of MB"));
        }
        Some(mb) => {
            let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
            let period = r
                .usage_period
                .as_ref()
                .and_then(|p| Some((day(&p.first_day)?, day(&p.last_day)?)));
            Some(gsl_cardstore::usage::UsageRow {
                id: key.key().to_owned(),
                mb,
                as_of: r
                    .usage_as_of
                    .as_ref()
                    .and_then(convert::from_timestamp)
                    .unwrap_or(read_at),
                period,
            })
        }
    };
    let profile = v1::Carrier::try_from(r.active_profile)
        .ok()
        .filter(|c| *c != v1::Carrier::Unspecified)
        .map(|c| c as i32);
    Ok(Read {
        card: key.key().to_owned(),
        read_at,
        sim_status: r.sim_status,
        stop_reason: r.stop_reason,
        stop_reason_raw: r.stop_reason_raw.chars().take(64).collect(),
        stop_reason_unreported: r.stop_reason_unreported,
        real_named: r.real_named,
        imei: r.imei.as_ref().map(|i| i.chars().take(32).collect()),
        cut_net: r.cut_net,
        active_profile: profile,
        usage,
    })
}

/// A read's whole-day figure from the carrier's daily query, if it has one.
fn day_row(r: &v1::CardRead) -> Result<Option<gsl_cardstore::usage::DayRow>, String> {
    let Some(d) = &r.day_usage else {
        return Ok(None);
    };
    let day = chrono::NaiveDate::parse_from_str(&d.day, "%Y-%m-%d")
        .map_err(|_| format!("day_usage.day {:?} is not YYYY-MM-DD", d.day))?;
    if !d.mb.is_finite() || d.mb < 0.0 {
        return Err(format!("day_usage.mb {} is not a number of MB", d.mb));
    }
    Ok(Some(gsl_cardstore::usage::DayRow {
        id: CardId::parse(&r.card)
            .map_err(|e| e.to_string())?
            .key()
            .to_owned(),
        day,
        mb: d.mb,
    }))
}

/// Whether an item of ours on `card` is still in flight (its newest event
/// in some order is not final).
async fn in_flight(core: &Core, tenant: &str, card: &str) -> Result<bool, ApiError> {
    let events = crate::query::card_events(core, tenant, card).await?;
    Ok(events
        .orders
        .values()
        .any(|e| e.work_order_id != 0 && e.status == v1::ItemStatus::Processing as i32))
}

fn event(d: &Diff, carrier: i32, r: &Read) -> v1::CardChanged {
    let real = d.kinds.contains(&"real_name");
    let imei = d.kinds.contains(&"imei");
    v1::CardChanged {
        card: d.card.clone(),
        carrier,
        source: v1::CardSource::Carrier as i32,
        observed_at: Some(convert::timestamp(r.read_at)),
        old_status: d.old.sim_status,
        new_status: d.new.sim_status,
        old_stop_reason: d.old.stop_reason,
        new_stop_reason: d.new.stop_reason,
        stop_reason_raw: r.stop_reason_raw.clone(),
        old_real_named: real.then_some(d.old.real_named),
        new_real_named: real.then_some(d.new.real_named),
        old_imei: imei.then(|| d.old.imei.clone()),
        new_imei: imei.then(|| d.new.imei.clone()),
        kinds: d.kinds.iter().map(|k| (*k).to_owned()).collect(),
    }
}

/// `Results.ReportCards` from the adapter of `carrier`.
pub async fn report_cards(
    core: &Core,
    carrier: gsl_domain::Carrier,
    req: v1::ReportCardsRequest,
) -> Result<v1::ReportCardsResponse, ApiError> {
    if req.reads.len() > REPORT_MAX_READS {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!("at most {REPORT_MAX_READS} reads a call"),
        ));
    }
    let wire = convert::carrier_to_wire(carrier) as i32;
    let mut reads = Vec::with_capacity(req.reads.len());
    let mut days = Vec::new();
    for r in &req.reads {
        match read(r).and_then(|x| Ok((x, day_row(r)?))) {
            Ok((x, d)) => {
                days.extend(d);
                reads.push(x);
            }
            // A bad read is the adapter's bug: dropped, logged, never fatal
            // to the others.
            Err(why) => {
                tracing::warn!(card = %r.card.chars().take(64).collect::<String>(), why, "card sync: a read was refused")
            }
        }
    }
    let reads = gsl_cardstore::sync::newest_reads(reads);
    let store = &core.registry.store;
    let diffs = store.compare_reads(wire, &reads).await?;
    let unknown = reads.len().saturating_sub(diffs.len()) as u32;
    let mut hold = HashSet::new();
    // A tenant with no open order (the order index, when current) has
    // nothing in flight: its cards need no look at their events (a mass
    // stop at the carrier is then one query, not one per card).
    let mut busy: HashMap<String, bool> = HashMap::new();
    for d in diffs.iter().filter(|d| !d.kinds.is_empty() && !d.stale) {
        let tenant_busy = match busy.get(&d.tenant) {
            Some(b) => *b,
            None => {
                let b = !core.index.is_current() || core.index.open_orders(&d.tenant).await? > 0;
                busy.insert(d.tenant.clone(), b);
                b
            }
        };
        if tenant_busy && in_flight(core, &d.tenant, &d.card).await? {
            hold.insert(d.card.clone());
        }
    }
    // Usage first (newest wins on its own time, for the carrier's known
    // cards): a card shows read (`synced_at`) only once all of the read is in.
    let known: HashSet<&str> = diffs.iter().map(|d| d.card.as_str()).collect();
    let usage: Vec<gsl_cardstore::usage::UsageRow> = reads
        .iter()
        .filter(|r| known.contains(r.card.as_str()))
        .filter_map(|r| r.usage.clone())
        .collect();
    store.record_usage_rows(&usage).await?;
    days.retain(|d| known.contains(d.id.as_str()));
    store.record_daily(&days).await?;
    // A usage-only read (a usage sweep's) is not a read of the card's
    // state: it neither changes the card nor marks it read (a status sweep
    // passes over cards read since it started).
    let state: HashSet<&str> = reads
        .iter()
        .filter(|r| r.reads_state())
        .map(|r| r.card.as_str())
        .collect();
    let state_diffs: Vec<Diff> = diffs
        .iter()
        .filter(|d| state.contains(d.card.as_str()))
        .cloned()
        .collect();
    let changed: HashSet<String> = store
        .apply_reads(wire, &reads, &state_diffs, &hold)
        .await?
        .into_iter()
        .collect();
    let by_card: HashMap<&str, &Read> = reads.iter().map(|r| (r.card.as_str(), r)).collect();
    let mut drifted = 0u32;
    for d in diffs.iter().filter(|d| changed.contains(&d.card)) {
        let r = by_card[d.card.as_str()];
        for k in &d.kinds {
            core.metrics
                .card_drift
                .get_or_create(&crate::core::DriftLabels {
                    carrier: carrier.as_str().into(),
                    kind: (*k).into(),
                })
                .inc();
        }
        let ev = event(d, wire, r);
        // One event per change: a repeated report of the same read is
        // dropped by the stream's de-duplication.
        let msg_id = format!("drift:{}:{}", d.card, r.read_at.timestamp_micros());
        core.publish_event(
            &d.tenant,
            0,
            Some(&d.card),
            v1::work_order_event::Event::CardChanged(ev),
            Some(msg_id),
        )
        .await?;
        drifted += 1;
    }
    Ok(v1::ReportCardsResponse {
        applied: reads.len() as u32 - unknown,
        drifted,
        unknown,
    })
}

/// `Results.SweepCards` for the adapter of `carrier`.
pub async fn sweep_cards(
    core: &Core,
    carrier: gsl_domain::Carrier,
    req: v1::SweepCardsRequest,
) -> Result<v1::SweepCardsResponse, ApiError> {
    let limit = req.limit.clamp(1, SWEEP_MAX_CARDS);
    let wire = convert::carrier_to_wire(carrier) as i32;
    let before = match &req.read_before {
        None => None,
        Some(t) => Some(
            convert::from_timestamp(t).ok_or_else(|| ApiError::bad("read_before is not a time"))?,
        ),
    };
    let store = &core.registry.store;
    let page = store.sweep_cards(wire, &req.after, before, limit).await?;
    let total = if req.after.is_empty() {
        store.count_carrier(wire).await?
    } else {
        0
    };
    Ok(v1::SweepCardsResponse {
        cards: page
            .cards
            .into_iter()
            .map(|(id, msisdn, access_number)| v1::SweepCard {
                id,
                msisdn,
                access_number,
            })
            .collect(),
        last: page.last,
        end: page.end,
        total,
    })
}

/// `Registry.RefreshCards`: read the tenant's cards now and answer with
/// them once read (or refused: unknown, or not read in time).
pub async fn refresh_cards(
    core: &Core,
    tenant: &str,
    req: v1::RefreshCardsRequest,
) -> Result<v1::RefreshCardsResponse, ApiError> {
    if req.ids.is_empty() {
        return Err(ApiError::bad("ids: at least one card"));
    }
    if req.ids.len() > REFRESH_MAX_CARDS {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!("at most {REFRESH_MAX_CARDS} cards a call"),
        ));
    }
    let mut refused = Refusals::default();
    let mut keys: Vec<(usize, String)> = Vec::new();
    for (i, id) in req.ids.iter().enumerate() {
        match CardId::parse(id) {
            Ok(k) => keys.push((i, k.key().to_owned())),
            Err(e) => refused.push(refusal(i, id, e.code(), e.to_string())),
        }
    }
    let key_refs: Vec<&str> = keys.iter().map(|(_, k)| k.as_str()).collect();
    let known = core.registry.store.lookup(tenant, &key_refs).await?;
    let started = std::time::Instant::now();
    let mut by_carrier: HashMap<i32, Vec<v1::SweepCard>> = HashMap::new();
    let mut asked: Vec<(usize, String)> = Vec::new();
    // Each card's last read before this request: done when it moves on
    // (the adapters' clock, not ours, stamps reads).
    let before = core.registry.store.synced_at(tenant, &key_refs).await?;
    for (i, k) in keys {
        match known.get(&k) {
            Some(snap) => {
                by_carrier
                    .entry(snap.carrier)
                    .or_default()
                    .push(v1::SweepCard {
                        id: k.clone(),
                        msisdn: snap.msisdn.clone(),
                        access_number: snap.access_number.clone(),
                    });
                asked.push((i, k));
            }
            None => refused.push(refusal(
                i,
                &req.ids[i],
                ErrorCode::CardNotFound,
                "card not found".into(),
            )),
        }
    }
    for (carrier, cards) in by_carrier {
        let Ok(c) = convert::carrier_from_wire(carrier) else {
            continue;
        };
        let msg = v1::SyncRefresh { cards }.encode_to_vec();
        core.client
            .publish(gsl_bus::names::sync_refresh_subject(c.as_str()), msg.into())
            .await
            .map_err(ApiError::busy)?;
    }
    let _ = core.client.flush().await;
    // Wait until the store shows every card read since the request (or the
    // time is up): one query per look for the cards still waiting.
    let deadline = std::time::Instant::now() + core.cfg.refresh_timeout;
    let mut read: HashSet<String> = HashSet::new();
    loop {
        let waiting: Vec<&str> = asked
            .iter()
            .map(|(_, k)| k.as_str())
            .filter(|k| !read.contains(*k))
            .collect();
        for (k, now) in core.registry.store.synced_at(tenant, &waiting).await? {
            let was = before.get(&k).copied().flatten();
            if now.is_some_and(|t| was.is_none_or(|w| t > w)) {
                read.insert(k);
            }
        }
        if read.len() == asked.len() || std::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut out = Vec::new();
    for (i, k) in asked {
        let card = match read.contains(&k) {
            true => core.registry.store.card(tenant, &k).await?,
            false => None,
        };
        match card {
            Some(c) => out.push(c),
            None => refused.push(refusal(
                i,
                &k,
                ErrorCode::CarrierUnavailable,
                format!(
                    "not read within {} s (the carrier's budget serves work orders first); the read is still queued",
                    started.elapsed().as_secs()
                ),
            )),
        }
    }
    Ok(v1::RefreshCardsResponse {
        cards: out,
        refused: refused.listed,
    })
}

pub(crate) fn refusal(i: usize, card: &str, code: ErrorCode, msg: String) -> v1::RefusedItem {
    v1::RefusedItem {
        index: i as u32,
        card: card.chars().take(64).collect(),
        problem: Some(convert::problem(code, msg)),
    }
}
