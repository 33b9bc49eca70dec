//! The guarantees under faults, with the real binaries: adapters killed and
//! paused, nats-server restarted, a carrier failing, poison messages, and
//! three replicas racing for one quota.

use gsl_bus::codec::{decode, encode};
use gsl_bus::names;
use gsl_carrier_sim::config::Faults;
use gsl_carrier_sim::inventory::CardRecord;
use gsl_domain::card::{SimStatus, StopReason};
use gsl_domain::{Carrier, ErrorCode};
use gsl_e2e::rig::{self, Rig};
use gsl_proto::v1;
use gsl_proto::v1::operation::Kind as O;
use std::time::{Duration, Instant};

fn in_use(c: &mut CardRecord) {
    c.status = SimStatus::InUse;
    c.stop_reason = StopReason::Normal;
}

fn stop() -> O {
    O::Stop(v1::Stop {})
}

fn rebind() -> O {
    O::Rebind(v1::Rebind::default())
}

async fn quiet_rig() -> Rig {
    rig::start(|_| {}, vec![("RUST_LOG", "warn".into())], &[]).await
}

/// Wait until the order has at least `n` final items.
async fn progress(r: &Rig, id: u64, n: u64, within: Duration) -> u64 {
    let t = Instant::now();
    loop {
        let o = r.get(id).await;
        if o.succeeded + o.failed >= n || gsl_proto::convert::status_is_terminal(o.status) {
            return o.succeeded + o.failed;
        }
        assert!(
            t.elapsed() < within,
            "order {id}: {} of {n} final after {within:?}",
            o.succeeded + o.failed
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_applied_once(r: &Rig, c: Carrier, op: &str, cards: &[String]) {
    for card in cards {
        let t = r.sim.engine.truth(c, card);
        assert_eq!(
            t.applied.get(op),
            Some(&1),
            "{card}: {op} applied once: {t:?}"
        );
        assert_eq!(t.txns.len(), 1, "{card}: one transaction id: {t:?}");
    }
}

/// Dead letters: (subject, code, card of the original item).
async fn dead_letters(r: &Rig) -> Vec<(String, String, String)> {
    let js = async_nats::jetstream::new(async_nats::connect(r.nats.url()).await.unwrap());
    let mut s = js.get_stream(names::STREAM_DLQ).await.unwrap();
    let st = s.info().await.unwrap().state.clone();
    let mut out = Vec::new();
    if st.messages == 0 {
        return out;
    }
    for seq in st.first_sequence..=st.last_sequence {
        if let Ok(m) = s.get_raw_message(seq).await {
            let code = m
                .headers
                .get(names::headers::DLQ_CODE)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let dl: v1::DeadLetter = decode("DeadLetter", &m.payload).expect("a DeadLetter");
            let item: v1::WorkItem = decode("WorkItem", &dl.payload).expect("the original item");
            out.push((m.subject.to_string(), code, item.card));
        }
    }
    out
}

#[tokio::test]
async fn batch_survives_three_adapter_kills_and_a_nats_restart() {
    let mut r = quiet_rig().await;
    let stops = r.cards(Carrier::Ct, 0, 5000, in_use).await;
    let rebinds = r.cards(Carrier::Ct, 6000, 50, in_use).await;
    let env = [
        ("GSL_COOLDOWNS_DISABLED", "same".to_string()),
        ("GSL_ACK_WAIT_SECS", "4".to_string()),
        ("GSL_CONCURRENCY", "64".to_string()),
    ];
    let mut adapter = r.adapter(Carrier::Ct, &env).await;
    let order = r.submit("faults-stop-5000", stop(), &stops).await;
    // Six rebinds per card over 50 cards: exactly two per card may succeed.
    let mut rebind_orders = Vec::new();
    for i in 0..6 {
        rebind_orders.push(
            r.submit(&format!("faults-rebind-{i}"), rebind(), &rebinds)
                .await
                .id,
        );
    }
    for (round, at) in [600u64, 1800, 3200].into_iter().enumerate() {
        let done = progress(&r, order.id, at, Duration::from_secs(240)).await;
        adapter.child.start_kill().unwrap();
        adapter.child.wait().await.unwrap();
        eprintln!("killed the adapter with {done} of 5000 final");
        assert!(done < 5000, "the kill must land mid-batch");
        if round == 1 {
            r.nats
                .restart()
                .await
                .expect("nats-server restarts on its store");
            eprintln!("restarted nats-server");
        }
        adapter = r.adapter(Carrier::Ct, &env).await;
    }
    let o = r.settled(order.id, Duration::from_secs(300)).await;
    assert_eq!((o.succeeded, o.failed), (5000, 0));
    assert_applied_once(&r, Carrier::Ct, "stop", &stops);
    let mut rebinds_ok = 0;
    for id in rebind_orders {
        rebinds_ok += r.settled(id, Duration::from_secs(120)).await.succeeded;
    }
    assert_eq!(rebinds_ok, 100, "2 per card");
    for card in &rebinds {
        assert_eq!(
            r.sim.engine.truth(Carrier::Ct, card).applied.get("rebind"),
            Some(&2),
            "{card}: quota never exceeded"
        );
    }
    // Exactly one final outcome per item: the gateway's counts are exact.
    let items = r.items(o.id).await;
    assert_eq!(
        items
            .iter()
            .filter(|i| i.status == v1::ItemStatus::Succeeded as i32)
            .count(),
        5000
    );
}

#[tokio::test]
async fn paused_adapter_does_not_call_again_for_an_item_taken_over() {
    let r = quiet_rig().await;
    let cards = r.cards(Carrier::Ct, 100, 30, in_use).await;
    // 5 calls per second shared: each replica holds items while it waits for the budget.
    let env = [
        ("GSL_RATE_CHANGE", "5".to_string()),
        ("GSL_ACK_WAIT_SECS", "3".to_string()),
        ("GSL_CONCURRENCY", "16".to_string()),
    ];
    let a = r.adapter(Carrier::Ct, &env).await;
    let _b = r.adapter(Carrier::Ct, &env).await;
    let o = r.submit("paused", stop(), &cards).await;
    progress(&r, o.id, 3, Duration::from_secs(60)).await;
    gsl_testkit::signal(a.pid(), "STOP").unwrap();
    // Past the ack wait: the paused replica's items are redelivered to the other.
    tokio::time::sleep(Duration::from_secs(7)).await;
    gsl_testkit::signal(a.pid(), "CONT").unwrap();
    let done = r.settled(o.id, Duration::from_secs(120)).await;
    assert_eq!(done.succeeded, 30);
    assert_applied_once(&r, Carrier::Ct, "stop", &cards);
    let replays: u32 = cards
        .iter()
        .map(|c| r.sim.engine.truth(Carrier::Ct, c).replays)
        .sum();
    assert_eq!(
        replays, 0,
        "no item was sent to the carrier twice, not even as a replay"
    );
}

#[tokio::test]
async fn consumed_item_republished_after_restart_is_absorbed() {
    let mut r = quiet_rig().await;
    let card = r.cards(Carrier::Ct, 200, 1, in_use).await;
    let _a = r.adapter(Carrier::Ct, &[]).await;
    let o = r.submit("republish", stop(), &card).await;
    assert_eq!(r.settled(o.id, Duration::from_secs(60)).await.succeeded, 1);
    r.nats.restart().await.unwrap();
    // The same work item, with the same de-duplication id, after the restart.
    let js = async_nats::jetstream::new(async_nats::connect(r.nats.url()).await.unwrap());
    let item = v1::WorkItem {
        work_order_id: o.id,
        card: card[0].clone(),
        index: 0,
        tenant: "acme".into(),
        carrier: v1::Carrier::Ct as i32,
        operation: Some(v1::Operation { kind: Some(stop()) }),
        ..Default::default()
    };
    let mut h = async_nats::HeaderMap::new();
    h.insert(
        names::headers::MSG_ID,
        names::work_msg_id(o.id, &card[0]).as_str(),
    );
    let ack = js
        .publish_with_headers(
            names::work_subject(Carrier::Ct, gsl_domain::OperationKind::Stop),
            h,
            encode(&item),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        !ack.duplicate,
        "the bus no longer remembers it: only the execution record can absorb it"
    );
    let t = Instant::now();
    loop {
        let n = js
            .get_stream(names::STREAM_WORK)
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap()
            .state
            .messages;
        if n == 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the adapter consumed it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let truth = r.sim.engine.truth(Carrier::Ct, &card[0]);
    assert_eq!(
        (truth.applied.get("stop"), truth.txns.len(), truth.replays),
        (Some(&1), 1, 0),
        "no second call: {truth:?}"
    );
    assert_eq!(r.get(o.id).await.succeeded, 1, "counted once");
}

#[tokio::test]
async fn poison_items_are_dead_lettered_and_the_consumer_keeps_going() {
    let r = quiet_rig().await;
    let cards = r.cards(Carrier::Cu, 300, 5, in_use).await;
    let _a = r
        .adapter(
            Carrier::Cu,
            &[
                ("GSL_MAX_DELIVER", "3".to_string()),
                ("GSL_CALL_ATTEMPTS", "2".to_string()),
            ],
        )
        .await;
    // A carrier that never answers well.
    r.sim.engine.set_faults(
        Carrier::Cu,
        Faults {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    let bad = r.submit("poison-carrier", stop(), &cards[..3]).await;
    let o = r.settled(bad.id, Duration::from_secs(90)).await;
    assert_eq!(o.failed, 3);
    for i in r.items(bad.id).await {
        assert_eq!(
            i.problem.map(|p| p.code).as_deref(),
            Some(ErrorCode::CarrierUnavailable.code())
        );
    }
    let dl = dead_letters(&r).await;
    let mut dead: Vec<&str> = dl
        .iter()
        .filter(|(s, c, _)| s == "gsl.dlq.cu" && c == ErrorCode::MaxDeliveries.code())
        .map(|(_, _, card)| card.as_str())
        .collect();
    dead.sort_unstable();
    let mut want: Vec<&str> = cards[..3].iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(
        dead, want,
        "each poison item dead-lettered once, with its reason and payload: {dl:?}"
    );
    // An item the gateway will never accept an outcome for (no such order).
    let js = async_nats::jetstream::new(async_nats::connect(r.nats.url()).await.unwrap());
    let ghost = v1::WorkItem {
        work_order_id: 987_654,
        card: cards[4].clone(),
        tenant: "acme".into(),
        carrier: v1::Carrier::Cu as i32,
        operation: Some(v1::Operation {
            kind: Some(O::CloseCard(v1::CloseCard {})),
        }),
        ..Default::default()
    };
    js.publish(
        names::work_subject(Carrier::Cu, gsl_domain::OperationKind::CloseCard),
        encode(&ghost),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // The carrier recovers; the consumer is not stuck behind the poison.
    r.sim.engine.set_faults(Carrier::Cu, Faults::default());
    let good = r.submit("after-poison", stop(), &cards[3..4]).await;
    assert_eq!(
        r.settled(good.id, Duration::from_secs(60)).await.succeeded,
        1
    );
    let t = Instant::now();
    while !dead_letters(&r)
        .await
        .iter()
        .any(|(_, c, card)| c == ErrorCode::ReportRefused.code() && *card == cards[4])
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "ghost item dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        js.get_stream(names::STREAM_WORK)
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap()
            .state
            .messages,
        0,
        "nothing left redelivering"
    );
}

#[tokio::test]
async fn thirty_percent_5xx_and_latency_spikes_every_item_ends() {
    let r = quiet_rig().await;
    let cards = r.cards(Carrier::Cu, 500, 300, in_use).await;
    let _a = r
        .adapter(
            Carrier::Cu,
            &[
                ("GSL_CALL_TIMEOUT_MS", "800".to_string()),
                ("GSL_ACK_WAIT_SECS", "10".to_string()),
            ],
        )
        .await;
    r.sim.engine.set_faults(
        Carrier::Cu,
        Faults {
            error_rate: 0.3,
            spike_rate: 0.05,
            spike_ms: 1500,
            jitter_ms: 20,
            ..Default::default()
        },
    );
    let o = r.submit("flaky", stop(), &cards).await;
    let done = r.settled(o.id, Duration::from_secs(240)).await;
    assert_eq!(done.succeeded + done.failed, 300, "none stuck");
    for i in r.items(o.id).await {
        if i.status == v1::ItemStatus::Failed as i32 {
            let code = i.problem.map(|p| p.code).unwrap_or_default();
            assert!(
                code.starts_with("GSL.000"),
                "failed with a clear code, not {code:?}"
            );
        }
    }
    for c in &cards {
        assert!(
            r.sim
                .engine
                .truth(Carrier::Cu, c)
                .applied
                .get("stop")
                .copied()
                .unwrap_or(0)
                <= 1,
            "{c} never applied twice"
        );
    }
    eprintln!(
        "30% 5xx: {} succeeded, {} failed after the retry budget",
        done.succeeded, done.failed
    );
}

#[tokio::test]
async fn three_replicas_1000_rebinds_over_100_cards_exactly_200_per_month() {
    // Virtual time runs 60x: the China-time month ends 60 s after the start.
    let anchor = format!(
        "{:.3}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    );
    let start = "2026-11-30T15:00:00Z";
    let clock_env = vec![
        ("GSL_CLOCK_START", start.to_string()),
        ("GSL_CLOCK_ANCHOR", anchor.clone()),
        ("GSL_TIME_SCALE", "60".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ];
    let anchor2 = anchor.clone();
    let r = rig::start(
        move |sc| {
            sc.clock_start = Some(start.into());
            sc.clock_anchor = Some(anchor2);
            sc.time_scale = Some(60.0);
        },
        clock_env,
        &[],
    )
    .await;
    let cards = r.cards(Carrier::Ct, 700, 100, in_use).await;
    let env = [("GSL_COOLDOWNS_DISABLED", "same".to_string())];
    let _replicas = [
        r.adapter(Carrier::Ct, &env).await,
        r.adapter(Carrier::Ct, &env).await,
        r.adapter(Carrier::Ct, &env).await,
    ];
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(r.submit(&format!("nov-{i}"), rebind(), &cards).await.id);
    }
    let mut ok = 0;
    let mut quota = 0;
    for id in &ids {
        let o = r.settled(*id, Duration::from_secs(50)).await;
        ok += o.succeeded;
        quota += r
            .items(*id)
            .await
            .iter()
            .filter(|i| {
                i.problem
                    .as_ref()
                    .is_some_and(|p| p.code == ErrorCode::RebindQuotaExhausted.code())
            })
            .count();
    }
    assert_eq!(
        (ok, quota),
        (200, 800),
        "exactly 2 of 10 per card in November (UTC+8)"
    );
    // December in China time.
    let clock =
        gsl_domain::clock::Clock::from_settings(Some(start), Some(&anchor), Some("60")).unwrap();
    let dec = chrono::DateTime::parse_from_rfc3339("2026-11-30T16:00:30Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    tokio::time::sleep(clock.real_until(dec)).await;
    let mut ok = 0;
    for i in 0..3 {
        let id = r.submit(&format!("dec-{i}"), rebind(), &cards).await.id;
        ok += r.settled(id, Duration::from_secs(60)).await.succeeded;
    }
    assert_eq!(ok, 200, "2 more per card in December");
    for c in &cards {
        assert_eq!(
            r.sim.engine.truth(Carrier::Ct, c).applied.get("rebind"),
            Some(&4),
            "{c}"
        );
    }
}
