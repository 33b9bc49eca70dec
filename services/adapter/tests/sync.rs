//! Card sync end to end: carrier-sim changes cards behind our back, the
//! adapters' sweeps and changed-since passes read them, the gateway writes
//! the card store and publishes drift.

mod common;

use chrono::Datelike;
use common::*;
use gsl_adapter_kit::config::SyncSettings;
use gsl_carrier_sim::engine::drift::Drift;
use gsl_carrier_sim::inventory::CardRecord;
use gsl_domain::card::{SimStatus, StopReason};
use gsl_domain::{Carrier, ErrorCode};
use gsl_proto::v1;
use gsl_proto::v1::operation::Kind as O;
use std::time::Duration;

fn in_use(c: &mut CardRecord) {
    c.status = SimStatus::InUse;
    c.stop_reason = StopReason::Normal;
    c.real_named = true;
}

fn fast_sync() -> SyncSettings {
    SyncSettings {
        interval: Duration::from_secs(3),
        changed_every: Duration::from_secs(1),
        ..SyncSettings::default()
    }
}

async fn get(s: &Stack, id: &str) -> v1::Card {
    s.registry()
        .await
        .get_card(authed(v1::GetCardRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
}

async fn changes(s: &Stack, id: &str) -> Vec<v1::CardChanged> {
    let mut c = s.orders().await;
    c.card_history(authed(v1::CardHistoryRequest {
        card: id.into(),
        ..Default::default()
    }))
    .await
    .unwrap()
    .into_inner()
    .entries
    .into_iter()
    .filter_map(|e| e.changed)
    .collect()
}

/// Wait until `f` holds for the card (or fail with the last state).
async fn until(s: &Stack, id: &str, within: Duration, f: impl Fn(&v1::Card) -> bool) -> v1::Card {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let c = get(s, id).await;
        if f(&c) {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "card {id} did not get there in {within:?}: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A card stopped at the carrier behind our back shows the new status in
/// `GetCard` and `ListCards` within a sync interval, with the stop reason
/// where the carrier reports one (CMCC, tri-net) and "not reported" (0)
/// where it has none (CT, CU); one `CardChanged` is published per card; and
/// the next submit is validated against the new state.
#[tokio::test]
async fn a_card_stopped_behind_our_back_is_found_and_published() {
    let s = stack(Opts {
        sync: Some(fast_sync()),
        ..Opts::default()
    })
    .await;
    let mut cards = Vec::new();
    for (i, c) in Carrier::ALL.into_iter().enumerate() {
        cards.push((c, s.card(c, 100 + i as u64, in_use).await));
    }
    // The first sweep reads every card and finds nothing to publish.
    for (_, id) in &cards {
        until(&s, id, Duration::from_secs(30), |c| c.synced_at.is_some()).await;
        let ch = changes(&s, id).await;
        assert!(ch.is_empty(), "{id}: no drift before any: {ch:?}");
    }
    for (c, id) in &cards {
        s.sim
            .engine
            .drift(*c, id, &Drift::SeparationStop)
            .expect("a card of the simulator");
    }
    for (c, id) in &cards {
        let card = until(&s, id, Duration::from_secs(30), |c| c.sim_status == 14).await;
        let want = match c {
            Carrier::Cmcc | Carrier::Trinet => 7,
            Carrier::Ct | Carrier::Cu => 0,
        };
        assert_eq!(card.stop_reason, want, "{c}: stop reason");
        if *c == Carrier::Cmcc {
            assert_eq!(card.stop_reason_raw, "020000000000");
        }
        let status_source = card.sources.iter().find(|f| f.field == "status").unwrap();
        assert_eq!(status_source.source, v1::CardSource::Carrier as i32, "{c}");
        // Published once, with what the carrier changed.
        let ch = changes(&s, id).await;
        assert_eq!(ch.len(), 1, "{c}: {ch:?}");
        assert_eq!((ch[0].old_status, ch[0].new_status), (20, 14));
        assert_eq!(ch[0].source, v1::CardSource::Carrier as i32);
        assert!(ch[0].kinds.iter().any(|k| k == "status"));
    }
    // The card list shows it too.
    let list = s
        .registry()
        .await
        .list_cards(authed(v1::ListCardsRequest {
            sim_status: vec![14],
            limit: 500,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    for (_, id) in &cards {
        assert!(
            list.sim_cards.iter().any(|c| &c.id == id),
            "{id} listed as stopped"
        );
    }
    // The next submit sees the stop: a China Mobile card stopped for a
    // device separation is not resumable (only reason 5 is).
    let (_, cmcc) = &cards[0];
    let r = s
        .orders()
        .await
        .submit(authed(gsl_testkit::gateway::submit_request(
            "resume-after-drift",
            O::Resume(v1::Resume {}),
            std::slice::from_ref(cmcc),
        )))
        .await;
    let refused = match r {
        Ok(r) => r.into_inner().refusals,
        Err(st) => panic!("whole submit refused: {st:?}"),
    };
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        refused[0].problem.as_ref().unwrap().code,
        ErrorCode::IllegalState.code()
    );
    s.shutdown().await;
}

/// A card our own order changed is not drift: after the stop completes and
/// later sweeps read the card, no `CardChanged` is published for it.
#[tokio::test]
async fn our_own_order_is_not_drift() {
    let s = stack(Opts {
        sync: Some(fast_sync()),
        carriers: vec![Carrier::Ct, Carrier::Cu],
        ..Opts::default()
    })
    .await;
    let ct = s.card(Carrier::Ct, 7, in_use).await;
    let cu = s.card(Carrier::Cu, 7, in_use).await;
    let o = s
        .submit("stop-own", O::Stop(v1::Stop {}), &[ct.clone(), cu.clone()])
        .await;
    let o = s.settled(o.id, Duration::from_secs(30)).await;
    assert_eq!(o.status, v1::WorkOrderStatus::Completed as i32, "{o:?}");
    for id in [&ct, &cu] {
        let done = get(&s, id).await;
        assert_eq!(done.sim_status, 14);
        let read_after = done.synced_at;
        // Two more sweeps read it.
        until(&s, id, Duration::from_secs(30), |c| {
            c.synced_at.as_ref().map(|t| (t.seconds, t.nanos))
                > read_after.as_ref().map(|t| (t.seconds, t.nanos))
        })
        .await;
        let c = get(&s, id).await;
        assert_eq!(c.sim_status, 14);
        assert_eq!(c.stop_reason, 5, "our stop's reason stays");
        assert!(
            changes(&s, id).await.is_empty(),
            "{id}: our own stop is no drift"
        );
    }
    s.shutdown().await;
}

/// `Registry.RefreshCards` reads cards at once (the sweeps here run once an
/// hour) and answers with them as read; an unknown card is refused.
#[tokio::test]
async fn refresh_reads_cards_now() {
    let s = stack(Opts {
        sync: Some(SyncSettings {
            interval: Duration::from_secs(3600),
            changed_every: Duration::from_secs(3600),
            ..SyncSettings::default()
        }),
        ..Opts::default()
    })
    .await;
    let mut ids = Vec::new();
    for (i, c) in Carrier::ALL.into_iter().enumerate() {
        ids.push((c, s.card(c, 300 + i as u64, in_use).await));
    }
    // The sweep ran at start, over an empty store: the next is an hour
    // away. The carrier changes the cards meanwhile.
    for (c, id) in &ids {
        s.sim.engine.drift(*c, id, &Drift::PlanExpiry).unwrap();
    }
    let mut asked: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    asked.push("89860000000000000000".into());
    let r = s
        .registry()
        .await
        .refresh_cards(authed(v1::RefreshCardsRequest { ids: asked }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.cards.len(), 4, "{r:?}");
    for c in &r.cards {
        assert_eq!(c.sim_status, 14, "{}: read now", c.id);
    }
    // China Unicom's read carries usage: bytes since its billing cycle
    // began on the 27th, as of the read, against the simulator's truth.
    let (_, cu) = &ids[2];
    let c = r.cards.iter().find(|c| &c.id == cu).unwrap();
    let as_of = c
        .flow_used_at
        .as_ref()
        .and_then(gsl_proto::convert::from_timestamp)
        .expect("usage as of the read");
    let (first, last) =
        gsl_domain::calendar::billing_cycle(gsl_domain::calendar::cst_date(as_of), 27);
    let p = c.flow_period.as_ref().expect("a period");
    assert_eq!(
        (p.first_day.clone(), p.last_day.clone()),
        (first.to_string(), last.to_string())
    );
    assert!(first.day() == 27 && last.day() == 26, "{p:?}");
    let truth = s.sim.engine.used_mb(cu, first, as_of);
    let used = c.flow_used_mb.expect("used");
    assert!(
        (used - truth).abs() < 0.01,
        "{used} MB read, {truth} MB at the carrier"
    );
    assert_eq!(r.refused.len(), 1, "{:?}", r.refused);
    // Over 500 cards: refused whole, before the request is decoded.
    let many: Vec<String> = (0..501).map(|i| format!("8986{i:016}")).collect();
    let e = s
        .registry()
        .await
        .refresh_cards(authed(v1::RefreshCardsRequest { ids: many }))
        .await
        .unwrap_err();
    assert_eq!(
        e.metadata().get("gsl-error-code").unwrap(),
        ErrorCode::BatchTooLarge.code(),
        "{e:?}"
    );
    s.shutdown().await;
}

/// China Mobile's, China Telecom's and tri-net's usage batches, each
/// stored with its period and "as of" and matching the simulator's ground
/// truth: CMCC and tri-net this month to yesterday 24:00 CST (CMCC's lag
/// has this test), CT this month to the call (its lag is not documented).
/// CMCC's daily query (25U01) puts yesterday's own figure in
/// `BatchUsage`, in both of its forms.
#[tokio::test]
async fn usage_batches_store_the_month_with_its_as_of() {
    let carriers = [Carrier::Cmcc, Carrier::Ct, Carrier::Trinet];
    let s = stack(Opts {
        sync: Some(SyncSettings {
            interval: Duration::from_secs(3600),
            changed_every: Duration::from_secs(3600),
            usage_interval: Duration::from_secs(2),
            ..SyncSettings::default()
        }),
        carriers: carriers.to_vec(),
        ..Opts::default()
    })
    .await;
    let started = chrono::Utc::now();
    let today = gsl_domain::calendar::cst_date(started);
    let (first, last) = gsl_domain::calendar::calendar_month(today);
    let midnight = gsl_domain::calendar::cst_midnight(today);
    let mut ids = Vec::new();
    for (i, c) in carriers.into_iter().enumerate() {
        ids.push(s.card(c, 500 + i as u64, in_use).await);
    }
    let mut used_by = Vec::new();
    for (c, id) in carriers.into_iter().zip(&ids) {
        let card = until(&s, id, Duration::from_secs(30), |c| {
            c.flow_used_at.is_some()
        })
        .await;
        used_by.push((card.flow_used_mb.unwrap(), id.clone()));
        let at = card
            .flow_used_at
            .as_ref()
            .and_then(gsl_proto::convert::from_timestamp)
            .unwrap();
        if c == Carrier::Ct {
            assert!(
                at >= started && at <= chrono::Utc::now(),
                "{c}: as of the call ({at})"
            );
        } else {
            assert_eq!(at, midnight, "{c}: as of yesterday 24:00 CST");
        }
        let p = card.flow_period.as_ref().unwrap();
        assert_eq!(
            (p.first_day.clone(), p.last_day.clone()),
            (first.to_string(), last.to_string()),
            "{c}: the calendar month"
        );
        let truth = s.sim.engine.used_mb(id, first, at);
        let used = card.flow_used_mb.unwrap();
        // CMCC answers whole KB, CT MB to three decimals (and the
        // simulator's clock moved on a little after the call).
        assert!(
            (used - truth).abs() <= 0.01,
            "{c}: {used} MB, truth {truth}"
        );
        let src = card.sources.iter().find(|f| f.field == "usage").unwrap();
        assert_eq!(src.source, v1::CardSource::Carrier as i32);
    }
    // The card list sorts and filters by these figures. (CT's figure moves
    // on with every usage sweep: the figures are taken as the list shows
    // them, then compared with the order and the range.)
    let list = |sort: &str, min: Option<f64>, max: Option<f64>| v1::ListCardsRequest {
        sort: sort.into(),
        order: "desc".into(),
        min_used_flow: min,
        max_used_flow: max,
        limit: 100,
        ..Default::default()
    };
    let got = s
        .registry()
        .await
        .list_cards(authed(list("flow_used", None, None)))
        .await
        .unwrap()
        .into_inner()
        .sim_cards;
    let shown: Vec<(f64, String)> = got
        .iter()
        .map(|c| (c.flow_used_mb.unwrap(), c.id.clone()))
        .collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(
        shown.windows(2).all(|w| w[0].0 >= w[1].0),
        "most used first: {shown:?}"
    );
    for (mb, id) in &shown {
        let (want, _) = used_by.iter().find(|(_, i)| i == id).unwrap();
        assert!((mb - want).abs() <= 0.05, "{id}: listed {mb}, read {want}");
    }
    // A range around the tri-net card's figure (as of midnight: it holds
    // still, unlike CT's) finds it alone.
    let (mb, id) = shown.iter().find(|(_, i)| *i == ids[2]).unwrap().clone();
    let got = s
        .registry()
        .await
        .list_cards(authed(list("cid", Some(mb - 1e-6), Some(mb + 1e-6))))
        .await
        .unwrap()
        .into_inner()
        .sim_cards;
    let ids_in: Vec<&str> = got.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids_in, vec![id.as_str()], "the used-data range");
    // CMCC's own daily figure for yesterday, in both forms.
    let yesterday = today.pred_opt().unwrap();
    let cmcc = ids[0].clone();
    let want = s.sim.engine.daily_mb(&cmcc, yesterday);
    // A well-formed ICCID of no card of ours, and a malformed one.
    let body: Vec<u8> = b"898600001999999999".iter().map(|b| b - b'0').collect();
    let stranger = format!(
        "898600001999999999{}",
        gsl_domain::ids::luhn_check_digit(&body)
    );
    let ask = |month: &str, date: &str| v1::BatchUsageRequest {
        month: month.into(),
        date: date.into(),
        cards: vec![
            cmcc.clone(),
            ids[1].clone(),
            stranger.clone(),
            "8986000000000000000".into(),
        ],
    };
    let day = yesterday.format("%Y%m%d").to_string();
    let mut found = None;
    for _ in 0..100 {
        let r = s
            .registry()
            .await
            .batch_usage(authed(ask("", &day)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.days.len(), 1);
        assert_eq!(r.days[0].date, day);
        let flows = &r.days[0].sim_flow;
        assert_eq!(flows.len(), 2, "{flows:?}");
        let codes: Vec<(u32, String)> = r
            .refused
            .iter()
            .map(|f| (f.index, f.problem.as_ref().unwrap().code.clone()))
            .collect();
        assert_eq!(
            codes,
            vec![
                (3, ErrorCode::InvalidCardId.code().to_owned()),
                (2, ErrorCode::CardNotFound.code().to_owned()),
            ],
            "each card left out with its reason"
        );
        if flows[0].flow.is_some() {
            found = Some(flows[0].clone());
            assert_eq!(flows[0].iccid, cmcc);
            assert_eq!(flows[1].flow, None, "CT has no daily query: no figure yet");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let f = found.expect("yesterday's CMCC figure in BatchUsage");
    assert!(
        (f.flow.unwrap() - want).abs() <= 0.5 / 1024.0,
        "{f:?} vs {want}"
    );
    assert!(!f.derived, "the carrier's own daily figure");
    // The month form: every day of this month up to today, yesterday's
    // figure among them (when yesterday is in this month).
    let month = today.format("%Y%m").to_string();
    let r = s
        .registry()
        .await
        .batch_usage(authed(ask(&month, "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.days.len(), today.day() as usize);
    if yesterday.month() == today.month() {
        let d = r.days.iter().find(|d| d.date == day).unwrap();
        assert_eq!(d.sim_flow[0].flow, f.flow);
    }
    // Both forms at once, or neither: a bad parameter.
    let e = s
        .registry()
        .await
        .batch_usage(authed(ask(&month, &day)))
        .await
        .unwrap_err();
    assert_eq!(
        e.metadata().get("gsl-error-code").unwrap(),
        ErrorCode::BadParameter.code()
    );
    s.shutdown().await;
}

/// China Unicom's changed-since passes: every card changed at the carrier
/// is read and published, each read once although the passes overlap.
#[tokio::test]
async fn cu_changes_are_read_once_by_overlapping_passes() {
    let s = stack(Opts {
        sync: Some(SyncSettings {
            interval: Duration::from_secs(3600),
            changed_every: Duration::from_secs(1),
            ..SyncSettings::default()
        }),
        carriers: vec![Carrier::Cu],
        ..Opts::default()
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(s.card(Carrier::Cu, 600 + i, in_use).await);
    }
    // Let a pass or two go by (the cards were just written at the carrier:
    // they are read once now), then change them there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = || {
        s.sim
            .engine
            .platform(Carrier::Cu)
            .probes
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = requests();
    for id in &ids {
        s.sim
            .engine
            .drift(Carrier::Cu, id, &Drift::OverUseStop)
            .unwrap();
    }
    for id in &ids {
        until(&s, id, Duration::from_secs(30), |c| c.sim_status == 14).await;
    }
    // Three more passes: each lists the 20 again (the 5-minute overlap) and
    // reads none of them.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls = requests() - before;
    for id in &ids {
        assert_eq!(changes(&s, id).await.len(), 1, "{id}: one CardChanged");
    }
    // 20 reads, and one list call per pass (about 8 passes in 8 s).
    assert!(
        (20..=35).contains(&calls),
        "{calls} calls for 20 changed cards"
    );
    s.shutdown().await;
}
