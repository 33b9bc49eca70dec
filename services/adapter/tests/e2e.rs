//! The whole path: gateway -> NATS -> adapter -> carrier-sim -> outcome,
//! against a real nats-server.

mod common;

use common::*;
use gsl_carrier_sim::config::{CompletionMode, Faults};
use gsl_carrier_sim::inventory::CardRecord;
use gsl_domain::capability::{self, Support};
use gsl_domain::card::{SimStatus, StopReason, TriNetVersion};
use gsl_domain::{Carrier, ErrorCode, OperationKind};
use gsl_proto::v1;
use gsl_proto::v1::operation::Kind as O;
use std::time::Duration;

fn in_use(c: &mut CardRecord) {
    c.status = SimStatus::InUse;
    c.stop_reason = StopReason::Normal;
    c.threshold_mb = -1;
    c.pooled = true;
    c.real_named = true;
    c.trinet_version = c.trinet_version.map(|_| TriNetVersion::Sdk);
}

/// A card state and operation that satisfy the row's preconditions.
fn case(op: OperationKind, carrier: Carrier) -> (fn(&mut CardRecord), O) {
    match op {
        OperationKind::Activate => (
            |c| c.status = SimStatus::Activatable,
            O::Activate(v1::Activate {}),
        ),
        OperationKind::Stop => (in_use, O::Stop(v1::Stop {})),
        OperationKind::Resume => (
            |c| {
                c.status = SimStatus::Stopped;
                c.stop_reason = StopReason::OnRequest;
            },
            O::Resume(v1::Resume {}),
        ),
        OperationKind::Rebind if carrier == Carrier::Cmcc => (
            |c| {
                c.status = SimStatus::Stopped;
                c.stop_reason = StopReason::Violation;
            },
            O::Rebind(v1::Rebind::default()),
        ),
        OperationKind::Rebind => (in_use, O::Rebind(v1::Rebind::default())),
        OperationKind::SpeedLimit => (in_use, O::SpeedLimit(v1::SpeedLimit { kbps: 512 })),
        OperationKind::NetworkCutoff => (in_use, O::NetworkCutoff(v1::NetworkCutoff {})),
        OperationKind::NetworkRestore => (in_use, O::NetworkRestore(v1::NetworkRestore {})),
        OperationKind::SetUsageThreshold => (
            in_use,
            O::SetUsageThreshold(v1::SetUsageThreshold { threshold_mb: 100 }),
        ),
        OperationKind::CancelUsageThreshold => (
            |c| {
                in_use(c);
                c.threshold_mb = 100;
            },
            O::CancelUsageThreshold(v1::CancelUsageThreshold {}),
        ),
        OperationKind::RegionBind => (
            in_use,
            O::RegionBind(v1::RegionBind {
                region: "240_辽宁省".into(),
            }),
        ),
        OperationKind::SwitchNetwork => (
            in_use,
            O::SwitchNetwork(v1::SwitchNetwork {
                target: v1::Carrier::Ct as i32,
            }),
        ),
        OperationKind::SwitchPolicy => (
            in_use,
            O::SwitchPolicy(v1::SwitchPolicy {
                policy_id: "p-sdk".into(),
            }),
        ),
        OperationKind::CloseCard => (in_use, O::CloseCard(v1::CloseCard {})),
        OperationKind::DirectionalAdd => (
            in_use,
            O::DirectionalAdd(v1::DirectionalAdd {
                entries: vec!["https://*.example.com".into()],
            }),
        ),
        OperationKind::DirectionalModify => (
            in_use,
            O::DirectionalModify(v1::DirectionalModify {
                entry_id: "E1".into(),
                entry: "10.9.9.9".into(),
            }),
        ),
        OperationKind::DirectionalDelete => (
            in_use,
            O::DirectionalDelete(v1::DirectionalDelete {
                entry_ids: vec!["E2".into()],
            }),
        ),
    }
}

/// A batch with two effective entries, at the carrier and in the registry.
async fn batch(s: &Stack, c: Carrier, no: &str) {
    let entries = vec![
        gsl_domain::directional::ExistingEntry {
            id: "E1".into(),
            entry: "10.0.0.1".into(),
            state: gsl_domain::directional::EntryState::Effective,
        },
        gsl_domain::directional::ExistingEntry {
            id: "E2".into(),
            entry: "10.0.0.2".into(),
            state: gsl_domain::directional::EntryState::Effective,
        },
    ];
    s.sim
        .engine
        .platform(c)
        .world
        .batches
        .lock()
        .unwrap()
        .insert(
            no.into(),
            gsl_carrier_sim::engine::Batch {
                batch_no: no.into(),
                purchase_type: gsl_domain::directional::PurchaseType::NewPurchase,
                directional_data: true,
                entries,
            },
        );
    let mut reg = s.registry().await;
    reg.import_batches(authed(v1::ImportBatchesRequest {
        batches: vec![v1::PurchaseBatch {
            batch_no: no.into(),
            carrier: gsl_proto::convert::carrier_to_wire(c) as i32,
            purchase_type: v1::PurchaseType::NewPurchase as i32,
            directional_data: true,
            entries: vec![
                v1::DirectionalEntry {
                    id: "E1".into(),
                    entry: "10.0.0.1".into(),
                    state: v1::EntryState::Effective as i32,
                },
                v1::DirectionalEntry {
                    id: "E2".into(),
                    entry: "10.0.0.2".into(),
                    state: v1::EntryState::Effective as i32,
                },
            ],
            tenant: String::new(),
        }],
    }))
    .await
    .unwrap();
}

/// Operations with no public API on that carrier (contracts' README §7),
/// given the account data the test stack configures (China Mobile's pool
/// account, China Unicom's plans).
fn back_office(op: OperationKind, c: Carrier) -> bool {
    use OperationKind as K;
    let directional = op.is_directional();
    match c {
        Carrier::Cmcc => directional || matches!(op, K::Rebind | K::RegionBind | K::CloseCard),
        Carrier::Ct => directional || op == K::CloseCard,
        Carrier::Cu => directional,
        Carrier::Trinet => false,
    }
}

#[tokio::test]
async fn every_row_of_the_capability_table_end_to_end() {
    let s = stack(Opts::default()).await;
    s.sim
        .engine
        .platform(Carrier::Trinet)
        .world
        .policies
        .lock()
        .unwrap()
        .insert(
            "p-sdk".into(),
            gsl_carrier_sim::engine::Policy {
                id: "p-sdk".into(),
                version: TriNetVersion::Sdk,
                enabled: true,
                order: vec![Carrier::Cu, Carrier::Cmcc, Carrier::Ct],
                used: false,
            },
        );
    let mut pending = Vec::new();
    let mut serial = 100;
    for op in OperationKind::ALL {
        for c in Carrier::ALL {
            serial += 1;
            let (state, kind) = case(op, c);
            let (key, cards) = if op.is_directional() {
                let no = format!("B{}{}", c.as_str().to_uppercase(), serial);
                batch(&s, c, &no).await;
                let mut cl = s.orders().await;
                let o = cl
                    .submit(authed(v1::SubmitRequest {
                        idempotency_key: format!("cap-{op}-{c}"),
                        operation: Some(v1::Operation { kind: Some(kind) }),
                        batch_no: no.clone(),
                        ..Default::default()
                    }))
                    .await
                    .unwrap()
                    .into_inner()
                    .work_order
                    .unwrap();
                pending.push((op, c, o.id, format!("batch:{no}")));
                continue;
            } else {
                (
                    format!("cap-{op}-{c}"),
                    vec![s.card(c, serial, state).await],
                )
            };
            let o = s.submit(&key, kind, &cards).await;
            pending.push((op, c, o.id, cards[0].clone()));
        }
    }
    // An operator works the back-office queue meanwhile.
    let grpc = s.grpc.clone();
    let worked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let w = worked.clone();
    let operator = tokio::spawn(async move {
        let mut bo = v1::back_office_client::BackOfficeClient::connect(grpc)
            .await
            .unwrap();
        fn op<T>(m: T) -> tonic::Request<T> {
            gsl_testkit::gateway::bearer(OPERATOR_TOKEN, m)
        }
        loop {
            let open = bo
                .list(op(v1::ListBackOfficeRequest::default()))
                .await
                .unwrap()
                .into_inner()
                .requests;
            for r in open {
                // Noted before completing: the order may settle at once.
                w.lock().unwrap().push(r.id.clone());
                bo.claim(op(v1::ClaimBackOfficeRequest {
                    id: r.id.clone(),
                    operator: "ops-1".into(),
                }))
                .await
                .unwrap();
                bo.mark_submitted(op(v1::MarkSubmittedRequest {
                    id: r.id.clone(),
                    carrier_ticket: "T-1".into(),
                }))
                .await
                .unwrap();
                bo.complete(op(v1::BackOfficeRef { id: r.id.clone() }))
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    for (op, c, id, card) in pending {
        let o = s.settled(id, Duration::from_secs(30)).await;
        let items = s.items(id).await;
        let want = capability::rule(op, c).support;
        match want {
            Support::Yes if back_office(op, c) => {
                assert_eq!(
                    o.status,
                    v1::WorkOrderStatus::Completed as i32,
                    "{op} on {c}: {items:?}"
                );
                assert!(
                    worked
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|r| r.starts_with(&format!("{c}.{id}."))),
                    "{op} on {c} went through the back office"
                );
                assert!(
                    s.sim.engine.truth(c, &card).txns.is_empty(),
                    "{op} on {c}: no carrier call (there is no API)"
                );
            }
            Support::Yes => {
                assert_eq!(
                    o.status,
                    v1::WorkOrderStatus::Completed as i32,
                    "{op} on {c}: {:?}",
                    items
                );
                assert_eq!(
                    s.sim.engine.truth(c, &card).applied.get(op.as_str()),
                    Some(&1),
                    "{op} on {c} applied once at the carrier"
                );
            }
            Support::No | Support::NotStated => {
                assert_eq!(
                    o.status,
                    v1::WorkOrderStatus::Rejected as i32,
                    "{op} on {c}"
                );
                assert_eq!(
                    code(&items[0]),
                    ErrorCode::NotSupported.code(),
                    "{op} on {c}"
                );
                assert!(
                    s.sim.engine.truth(c, &card).txns.is_empty(),
                    "{op} on {c} never reached the carrier"
                );
            }
        }
    }
    operator.abort();
    s.shutdown().await;
}

/// A carrier, the card's state, the operation, the expected refusal.
type Case = (Carrier, fn(&mut CardRecord), O, ErrorCode);

#[tokio::test]
async fn precondition_refusals_carry_their_codes() {
    let s = stack(Opts::default()).await;
    let cases: Vec<Case> = vec![
        (
            Carrier::Ct,
            |c| {
                c.status = SimStatus::Stopped;
                c.stop_reason = StopReason::OnRequest;
            },
            O::Stop(v1::Stop {}),
            ErrorCode::IllegalState,
        ),
        (
            Carrier::Cmcc,
            |c| {
                c.status = SimStatus::Stopped;
                c.stop_reason = StopReason::Violation;
            },
            O::Resume(v1::Resume {}),
            ErrorCode::IllegalState,
        ),
        (
            Carrier::Cu,
            |c| {
                in_use(c);
                c.real_named = false;
            },
            O::SpeedLimit(v1::SpeedLimit { kbps: 512 }),
            ErrorCode::RealNameRequired,
        ),
        (
            Carrier::Cmcc,
            |c| {
                in_use(c);
                c.pooled = false;
            },
            O::SetUsageThreshold(v1::SetUsageThreshold { threshold_mb: 5 }),
            ErrorCode::PooledCardsOnly,
        ),
        (
            Carrier::Cmcc,
            in_use,
            O::RegionBind(v1::RegionBind {
                region: "991".into(),
            }),
            ErrorCode::RegionNotAllowed,
        ),
        (
            Carrier::Ct,
            in_use,
            O::SpeedLimit(v1::SpeedLimit { kbps: 2048 }),
            ErrorCode::SpeedNotOffered,
        ),
        (
            Carrier::Ct,
            |c| c.status = SimStatus::Closed,
            O::CloseCard(v1::CloseCard {}),
            ErrorCode::IllegalState,
        ),
        (
            Carrier::Cmcc,
            |c| {
                c.status = SimStatus::Stopped;
                c.stop_reason = StopReason::Violation;
            },
            O::Rebind(v1::Rebind {
                bind_type: v1::BindType::FixedImei as i32,
                imei: "490154203237518".into(),
            }),
            ErrorCode::BindTypeNotOffered,
        ),
    ];
    for (i, (c, state, kind, want)) in cases.into_iter().enumerate() {
        let id = s.card(c, 500 + i as u64, state).await;
        let o = s.submit(&format!("pre-{i}"), kind, &[id]).await;
        let items = s.items(o.id).await;
        assert_eq!(code(&items[0]), want.code(), "case {i}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn ct_rebinds_two_per_card_per_cst_month() {
    // Start 8 s before midnight of 2026-12-01 in China (16:00 UTC).
    let s = stack(Opts {
        clock_start: Some("2026-11-30T15:59:52Z".into()),
        cooldowns_disabled: vec!["same"],
        carriers: vec![Carrier::Ct],
        ..Default::default()
    })
    .await;
    let card = s.card(Carrier::Ct, 7, in_use).await;
    let rebind = || O::Rebind(v1::Rebind::default());
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            s.submit(&format!("nov-{i}"), rebind(), std::slice::from_ref(&card))
                .await
                .id,
        );
    }
    let mut succeeded = 0;
    let mut quota_refused = 0;
    for id in ids {
        let o = s.settled(id, Duration::from_secs(20)).await;
        succeeded += o.succeeded;
        if code(&s.items(id).await[0]) == ErrorCode::RebindQuotaExhausted.code() {
            quota_refused += 1;
        }
    }
    assert_eq!((succeeded, quota_refused), (2, 8), "November (UTC+8)");
    // Wait for December in China time.
    let clock = s.clock();
    let dec = chrono::DateTime::parse_from_rfc3339("2026-11-30T16:00:01Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    tokio::time::sleep(clock.real_until(dec)).await;
    assert_eq!(gsl_domain::calendar::month_key(clock.now()), 202612);
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            s.submit(&format!("dec-{i}"), rebind(), std::slice::from_ref(&card))
                .await
                .id,
        );
    }
    let mut succeeded = 0;
    for id in ids {
        succeeded += s.settled(id, Duration::from_secs(20)).await.succeeded;
    }
    assert_eq!(succeeded, 2, "December starts a new count");
    assert_eq!(
        s.sim.engine.truth(Carrier::Ct, &card).applied.get("rebind"),
        Some(&4)
    );
    s.shutdown().await;
}

#[tokio::test]
async fn cooldown_refusals() {
    let s = stack(Opts {
        carriers: vec![Carrier::Ct, Carrier::Cmcc],
        ..Default::default()
    })
    .await;
    // The same operation on the same card within 5 minutes.
    let ct = s.card(Carrier::Ct, 11, in_use).await;
    let a = s
        .submit(
            "speed-1",
            O::SpeedLimit(v1::SpeedLimit { kbps: 512 }),
            std::slice::from_ref(&ct),
        )
        .await;
    assert_eq!(s.settled(a.id, Duration::from_secs(20)).await.succeeded, 1);
    let b = s
        .submit(
            "speed-2",
            O::SpeedLimit(v1::SpeedLimit { kbps: 1024 }),
            std::slice::from_ref(&ct),
        )
        .await;
    s.settled(b.id, Duration::from_secs(20)).await;
    assert_eq!(
        code(&s.items(b.id).await[0]),
        ErrorCode::RepeatTooSoon.code()
    );
    // China Mobile: a second status change within 3 minutes.
    let cm = s
        .card(Carrier::Cmcc, 12, |c| c.status = SimStatus::Activatable)
        .await;
    let a = s
        .submit(
            "act",
            O::Activate(v1::Activate {}),
            std::slice::from_ref(&cm),
        )
        .await;
    assert_eq!(s.settled(a.id, Duration::from_secs(20)).await.succeeded, 1);
    let b = s
        .submit("stop", O::Stop(v1::Stop {}), std::slice::from_ref(&cm))
        .await;
    s.settled(b.id, Duration::from_secs(20)).await;
    assert_eq!(
        code(&s.items(b.id).await[0]),
        ErrorCode::StatusChangeTooSoon.code()
    );
    assert_eq!(
        s.sim.engine.truth(Carrier::Cmcc, &cm).applied.get("stop"),
        None,
        "never sent to the carrier"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn carrier_failures_then_success_and_nothing_applied_twice() {
    let s = stack(Opts {
        carriers: vec![Carrier::Cu],
        call_timeout: Duration::from_millis(400),
        ..Default::default()
    })
    .await;
    let mut cards = Vec::new();
    for i in 0..40 {
        cards.push(s.card(Carrier::Cu, 1000 + i, in_use).await);
    }
    // 5xx, busy, lost answers and latency spikes past the adapter's timeout.
    s.sim.engine.set_faults(
        Carrier::Cu,
        Faults {
            error_rate: 0.2,
            busy_rate: 0.1,
            drop_after_rate: 0.1,
            spike_rate: 0.1,
            spike_ms: 800,
            ..Default::default()
        },
    );
    let o = s.submit("faulty", O::Stop(v1::Stop {}), &cards).await;
    let done = s.settled(o.id, Duration::from_secs(120)).await;
    assert_eq!(
        done.succeeded,
        40,
        "{:?}",
        s.items(o.id).await.iter().map(code).collect::<Vec<_>>()
    );
    // Without faults: one synchronous change per item (Jasper has nothing
    // to poll), so 40 requests.
    let requests = s
        .sim
        .engine
        .platform(Carrier::Cu)
        .probes
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        requests > 50,
        "faults forced retries and lookups: {requests} requests for 40 items"
    );
    for c in &cards {
        let t = s.sim.engine.truth(Carrier::Cu, c);
        // Jasper does not de-duplicate: a lost answer followed by a blind
        // second PUT would show here as a second change.
        assert_eq!(t.applied.get("stop"), Some(&1), "{c}: {t:?}");
        assert_eq!(t.txns.len(), 1, "one accepted change per item: {t:?}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn cmcc_token_expiry_is_handled() {
    let s = stack(Opts {
        carriers: vec![Carrier::Cmcc],
        ..Default::default()
    })
    .await;
    let a = s.card(Carrier::Cmcc, 21, in_use).await;
    let o = s
        .submit("t1", O::Stop(v1::Stop {}), std::slice::from_ref(&a))
        .await;
    assert_eq!(s.settled(o.id, Duration::from_secs(20)).await.succeeded, 1);
    s.sim
        .engine
        .platform(Carrier::Cmcc)
        .access
        .tokens
        .lock()
        .unwrap()
        .clear();
    let b = s.card(Carrier::Cmcc, 22, in_use).await;
    let o = s
        .submit("t2", O::Stop(v1::Stop {}), std::slice::from_ref(&b))
        .await;
    assert_eq!(
        s.settled(o.id, Duration::from_secs(20)).await.succeeded,
        1,
        "{:?}",
        s.items(o.id).await
    );
    s.shutdown().await;
}

#[tokio::test]
async fn sla_breach_reported_then_completion() {
    // One working day = 0.5 s; every change completes late.
    let s = stack(Opts {
        completion: CompletionMode::Sla,
        late_share: 1.0,
        time_scale: Some(172_800.0),
        clock_start: Some("2026-11-22T16:00:00Z".into()),
        carriers: vec![Carrier::Ct],
        poll_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let card = s.card(Carrier::Ct, 31, in_use).await;
    let o = s
        .submit("late", O::Stop(v1::Stop {}), std::slice::from_ref(&card))
        .await;
    let mut c = s.orders().await;
    let mut events = c
        .watch(authed(v1::WatchRequest {
            work_order_id: o.id,
            after_sequence: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    let mut kinds = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(30), events.message())
            .await
            .expect("event")
            .unwrap()
            .unwrap();
        if let Some(v1::work_order_event::Event::Item(i)) = e.event.unwrap().event {
            kinds.push(i.kind);
            if i.kind == v1::OutcomeKind::Succeeded as i32
                || i.kind == v1::OutcomeKind::Failed as i32
            {
                break;
            }
        }
    }
    assert_eq!(
        kinds,
        vec![
            v1::OutcomeKind::CarrierAccepted as i32,
            v1::OutcomeKind::SlaBreached as i32,
            v1::OutcomeKind::Succeeded as i32
        ]
    );
    let item = &s.items(o.id).await[0];
    assert!(item.sla_breached);
    assert_eq!(item.status, v1::ItemStatus::Succeeded as i32);
    s.shutdown().await;
}

#[tokio::test]
async fn malformed_work_message_is_dead_lettered_not_retried() {
    let s = stack(Opts {
        carriers: vec![Carrier::Ct],
        ..Default::default()
    })
    .await;
    let client = async_nats::connect(s.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.publish("gsl.work.ct.stop", "definitely not protobuf".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let dlq = js.get_stream(gsl_bus::names::STREAM_DLQ).await.unwrap();
    let mut found = false;
    for _ in 0..100 {
        if dlq.get_info().await.unwrap().state.messages > 0 {
            let m = dlq.get_raw_message(1).await.unwrap();
            assert_eq!(m.subject.as_str(), "gsl.dlq.ct");
            assert_eq!(
                m.headers
                    .get(gsl_bus::names::headers::DLQ_CODE)
                    .unwrap()
                    .as_str(),
                ErrorCode::MalformedMessage.code()
            );
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "dead-lettered");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let work = js.get_stream(gsl_bus::names::STREAM_WORK).await.unwrap();
    assert_eq!(
        work.get_info().await.unwrap().state.messages,
        0,
        "terminated, not redelivered"
    );
    s.shutdown().await;
}

fn operator<T>(m: T) -> tonic::Request<T> {
    gsl_testkit::gateway::bearer(OPERATOR_TOKEN, m)
}

/// The request the adapter filed for an order's only item.
async fn filed(s: &Stack, id: u64) -> v1::BackOfficeRequest {
    gsl_testkit::eventually(Duration::from_secs(20), || async {
        let mut bo = s.backoffice().await;
        bo.list(operator(v1::ListBackOfficeRequest {
            carrier: v1::Carrier::Cmcc as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .requests
        .into_iter()
        .find(|r| r.work_order_id == id)
    })
    .await
    .unwrap_or_else(|| panic!("no back-office request for order {id}"))
}

#[tokio::test]
async fn back_office_requests_are_worked_through_grpc_and_late_ones_reported() {
    // One working day = 0.5 s: China Mobile's 3-working-day rebind SLA
    // passes in about 1.5 s.
    let s = stack(Opts {
        carriers: vec![Carrier::Cmcc],
        time_scale: Some(172_800.0),
        clock_start: Some("2026-11-22T16:00:00Z".into()),
        ..Default::default()
    })
    .await;
    let separated = |c: &mut CardRecord| {
        c.status = SimStatus::Stopped;
        c.stop_reason = StopReason::DeviceSeparation;
    };
    let a = s.card(Carrier::Cmcc, 41, separated).await;
    let b = s.card(Carrier::Cmcc, 42, in_use).await;
    let rebind = s
        .submit(
            "bo-rebind",
            O::Rebind(v1::Rebind::default()),
            std::slice::from_ref(&a),
        )
        .await;
    let region = s
        .submit(
            "bo-region",
            O::RegionBind(v1::RegionBind {
                region: "240_辽宁省".into(),
            }),
            std::slice::from_ref(&b),
        )
        .await;
    let r1 = filed(&s, rebind.id).await;
    let r2 = filed(&s, region.id).await;
    assert_eq!(r1.state, v1::BackOfficeState::Open as i32);
    assert!(
        r1.instructions.contains("China Mobile"),
        "{}",
        r1.instructions
    );
    assert!(
        r2.instructions.contains("240_辽宁省"),
        "{}",
        r2.instructions
    );
    assert!(r1.sla_deadline.is_some());
    // The item says it waits on the back office (reported just after filing).
    gsl_testkit::eventually(Duration::from_secs(10), || async {
        let items = s.items(rebind.id).await;
        assert_eq!(items[0].status, v1::ItemStatus::Processing as i32);
        (code(&items[0]) == ErrorCode::BackOfficePending.code()).then_some(())
    })
    .await
    .expect("the item waits on the back office");

    // Only the operator credential works the queue.
    let mut bo = s.backoffice().await;
    for token in [TENANT_TOKEN, ADAPTER_TOKEN] {
        let e = bo
            .list(gsl_testkit::gateway::bearer(
                token,
                v1::ListBackOfficeRequest::default(),
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{token}");
    }
    assert_eq!(
        bo.list(v1::ListBackOfficeRequest::default())
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );

    // Late: the SLA breach is reported while it waits.
    gsl_testkit::eventually(Duration::from_secs(20), || async {
        s.items(rebind.id).await[0].sla_breached.then_some(())
    })
    .await
    .expect("SLA breach not reported");

    // Rebind: claimed, sent, completed -> the item succeeds.
    bo.claim(operator(v1::ClaimBackOfficeRequest {
        id: r1.id.clone(),
        operator: "ops-1".into(),
    }))
    .await
    .unwrap();
    bo.mark_submitted(operator(v1::MarkSubmittedRequest {
        id: r1.id.clone(),
        carrier_ticket: "CM-9".into(),
    }))
    .await
    .unwrap();
    let done = bo
        .complete(operator(v1::BackOfficeRef { id: r1.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state, v1::BackOfficeState::Completed as i32);
    assert_eq!(done.carrier_ticket, "CM-9");
    let o = s.settled(rebind.id, Duration::from_secs(20)).await;
    assert_eq!(o.status, v1::WorkOrderStatus::Completed as i32);
    // A closed request moves no more.
    let e = bo
        .reject(operator(v1::RejectBackOfficeRequest {
            id: r1.id.clone(),
            reason: "late".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);

    // Region bind: rejected with a reason -> the item fails with it.
    let e = bo
        .reject(operator(v1::RejectBackOfficeRequest {
            id: r2.id.clone(),
            reason: " ".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        tonic::Code::InvalidArgument,
        "a reason is required"
    );
    bo.reject(operator(v1::RejectBackOfficeRequest {
        id: r2.id.clone(),
        reason: "province quota full".into(),
    }))
    .await
    .unwrap();
    let o = s.settled(region.id, Duration::from_secs(20)).await;
    assert_eq!(o.status, v1::WorkOrderStatus::Failed as i32);
    let item = &s.items(region.id).await[0];
    assert!(
        item.problem
            .as_ref()
            .unwrap()
            .message
            .contains("province quota full"),
        "{item:?}"
    );
    // An operator's rejection has its own code, not "the carrier failed the
    // change after accepting it".
    assert_eq!(
        code(item),
        gsl_domain::ErrorCode::BackOfficeRejected.code(),
        "{item:?}"
    );
    // Neither ever reached the carrier (there is no API).
    for c in [&a, &b] {
        assert!(s.sim.engine.truth(Carrier::Cmcc, c).txns.is_empty());
    }
    // Closed requests are listed only on request.
    let open = bo
        .list(operator(v1::ListBackOfficeRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert!(open.is_empty(), "{open:?}");
    let all = bo
        .list(operator(v1::ListBackOfficeRequest {
            include_closed: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert_eq!(all.len(), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn directional_entries_follow_their_back_office_request() {
    let s = stack(Opts {
        carriers: vec![Carrier::Cu],
        ..Default::default()
    })
    .await;
    batch(&s, Carrier::Cu, "BDIR1").await;
    let mut orders = s.orders().await;
    let submit = |key: &str, kind: O| v1::SubmitRequest {
        idempotency_key: key.into(),
        operation: Some(v1::Operation { kind: Some(kind) }),
        batch_no: "BDIR1".into(),
        ..Default::default()
    };
    let add = orders
        .submit(authed(submit(
            "dir-add",
            O::DirectionalAdd(v1::DirectionalAdd {
                entries: vec!["https://*.example.com".into()],
            }),
        )))
        .await
        .unwrap()
        .into_inner()
        .work_order
        .unwrap();
    let mut bo = s.backoffice().await;
    let req = gsl_testkit::eventually(Duration::from_secs(20), || async {
        let mut bo = s.backoffice().await;
        bo.list(operator(v1::ListBackOfficeRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .requests
            .into_iter()
            .find(|r| r.work_order_id == add.id)
    })
    .await
    .expect("not filed");
    let mut reg = s.registry().await;
    let entry_state = |b: v1::PurchaseBatch| {
        b.entries
            .iter()
            .find(|e| e.entry == "https://*.example.com")
            .map(|e| e.state)
    };
    let get = v1::GetBatchRequest {
        batch_no: "BDIR1".into(),
    };
    let steps: [(v1::EntryState, &str); 4] = [
        (v1::EntryState::Configuring, "claim"),
        (v1::EntryState::InReview, "submitted"),
        (v1::EntryState::NotYetEffective, "accepted"),
        (v1::EntryState::Effective, "complete"),
    ];
    for (want, step) in steps {
        match step {
            "claim" => drop(
                bo.claim(operator(v1::ClaimBackOfficeRequest {
                    id: req.id.clone(),
                    operator: "ops".into(),
                }))
                .await
                .unwrap(),
            ),
            "submitted" => drop(
                bo.mark_submitted(operator(v1::MarkSubmittedRequest {
                    id: req.id.clone(),
                    carrier_ticket: "CU-1".into(),
                }))
                .await
                .unwrap(),
            ),
            "accepted" => drop(
                bo.mark_accepted(operator(v1::MarkAcceptedRequest {
                    id: req.id.clone(),
                    effective_at: None,
                }))
                .await
                .unwrap(),
            ),
            _ => drop(
                bo.complete(operator(v1::BackOfficeRef { id: req.id.clone() }))
                    .await
                    .unwrap(),
            ),
        }
        let b = reg
            .get_batch(authed(get.clone()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(entry_state(b), Some(want as i32), "after {step}");
    }
    let o = s.settled(add.id, Duration::from_secs(20)).await;
    assert_eq!(o.status, v1::WorkOrderStatus::Completed as i32);
    // The registry's entries are what later limit checks see: a delete of
    // every entry (E1, E2 and the new one) is refused at the gateway.
    let b = reg
        .get_batch(authed(get.clone()))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<String> = b.entries.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let r = orders
        .submit(authed(submit(
            "dir-del-all",
            O::DirectionalDelete(v1::DirectionalDelete { entry_ids: ids }),
        )))
        .await;
    let refused = match r {
        Err(_) => true,
        Ok(resp) => {
            resp.into_inner().work_order.unwrap().status == v1::WorkOrderStatus::Rejected as i32
        }
    };
    assert!(refused, "a directional config must keep at least one entry");
    s.shutdown().await;
}

/// A hostile `ttl` (2^64-1 seconds) must not overflow the adapter's clock.
#[tokio::test]
async fn a_hostile_token_ttl_does_not_panic_the_adapter() {
    let s = stack(Opts {
        carriers: vec![Carrier::Cmcc],
        cmcc_token_ttl_s: Some(u64::MAX),
        ..Default::default()
    })
    .await;
    let a = s.card(Carrier::Cmcc, 51, in_use).await;
    let o = s
        .submit("ttl", O::Stop(v1::Stop {}), std::slice::from_ref(&a))
        .await;
    assert_eq!(s.settled(o.id, Duration::from_secs(20)).await.succeeded, 1);
    s.shutdown().await;
}

/// Everything a failing China Mobile call leaves behind (item details, dead
/// letters, `/readyz`) is free of the carrier password and token.
#[tokio::test]
async fn no_carrier_credential_in_any_output_of_a_failing_call() {
    let s = stack(Opts {
        carriers: vec![Carrier::Cmcc],
        max_deliver: 2,
        ..Default::default()
    })
    .await;
    let (_, password) = s.sim.engine.config.credentials.account(Carrier::Cmcc);
    let password = password.to_owned();
    // Every call dropped before an answer: transport errors all the way.
    s.sim.engine.set_faults(
        Carrier::Cmcc,
        Faults {
            drop_before_rate: 1.0,
            ..Default::default()
        },
    );
    let a = s.card(Carrier::Cmcc, 52, in_use).await;
    let o = s
        .submit("leak", O::Stop(v1::Stop {}), std::slice::from_ref(&a))
        .await;
    let done = s.settled(o.id, Duration::from_secs(60)).await;
    assert_eq!(done.failed, 1);
    let mut seen = format!("{:?}", s.items(o.id).await);
    let client = async_nats::connect(s.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let dlq = js.get_stream(gsl_bus::names::STREAM_DLQ).await.unwrap();
    let n = dlq.get_info().await.unwrap().state.messages;
    assert!(n > 0, "dead-lettered");
    for seq in 1..=n {
        if let Ok(m) = dlq.get_raw_message(seq).await {
            seen.push_str(&format!(
                "{:?} {}",
                m.headers,
                String::from_utf8_lossy(&m.payload)
            ));
        }
    }
    let ready = reqwest::get(format!("http://{}/readyz", s.adapters[0].admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    seen.push_str(&ready);
    assert!(
        seen.contains("connection") || seen.contains("answer") || seen.contains("unavailable"),
        "{seen}"
    );
    assert!(!seen.contains(&password), "the password leaked: {seen}");
    for t in s
        .sim
        .engine
        .platform(Carrier::Cmcc)
        .access
        .tokens
        .lock()
        .unwrap()
        .keys()
    {
        assert!(!seen.contains(t.as_str()), "a token leaked");
    }
    s.shutdown().await;
}

/// A directional change made through a carrier API updates the registry's
/// copy of the batch, so later limit checks see the entries as they are.
#[tokio::test]
async fn registry_follows_directional_changes_made_by_api() {
    let s = stack(Opts {
        carriers: vec![Carrier::Trinet],
        ..Default::default()
    })
    .await;
    batch(&s, Carrier::Trinet, "BTRI9").await;
    let orders = s.orders().await;
    let run = |key: &'static str, kind: O| {
        let req = v1::SubmitRequest {
            idempotency_key: key.into(),
            operation: Some(v1::Operation { kind: Some(kind) }),
            batch_no: "BTRI9".into(),
            ..Default::default()
        };
        let mut c = orders.clone();
        async move {
            c.submit(authed(req))
                .await
                .unwrap()
                .into_inner()
                .work_order
                .unwrap()
                .id
        }
    };
    let add = run(
        "tri-add",
        O::DirectionalAdd(v1::DirectionalAdd {
            entries: vec!["https://*.example.org".into()],
        }),
    )
    .await;
    assert_eq!(
        s.settled(add, Duration::from_secs(20)).await.status,
        v1::WorkOrderStatus::Completed as i32
    );
    let del = run(
        "tri-del",
        O::DirectionalDelete(v1::DirectionalDelete {
            entry_ids: vec!["E1".into()],
        }),
    )
    .await;
    assert_eq!(
        s.settled(del, Duration::from_secs(20)).await.status,
        v1::WorkOrderStatus::Completed as i32
    );
    let b = s
        .registry()
        .await
        .get_batch(authed(v1::GetBatchRequest {
            batch_no: "BTRI9".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let entries: Vec<(&str, i32)> = b
        .entries
        .iter()
        .map(|e| (e.entry.as_str(), e.state))
        .collect();
    assert!(
        entries.contains(&("https://*.example.org", v1::EntryState::Effective as i32)),
        "{entries:?}"
    );
    assert!(!b.entries.iter().any(|e| e.id == "E1"), "{entries:?}");
    s.shutdown().await;
}

/// A final outcome the gateway can never be told of is not stranded at the
/// consumer's delivery limit: it is dead-lettered with its reason.
#[tokio::test]
async fn an_outcome_that_cannot_be_reported_is_dead_lettered_not_stranded() {
    let opts = Opts {
        carriers: vec![],
        max_deliver: 2,
        ..Default::default()
    };
    let mut s = stack(opts.clone()).await;
    let card = s.card(Carrier::Cu, 61, in_use).await;
    // An adapter whose reports go nowhere.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = s.adapter_config(Carrier::Cu, &opts);
    cfg.gateway_url = format!("http://127.0.0.1:{port}");
    cfg.ack_wait = Duration::from_secs(3);
    cfg.report_give_up = Duration::from_millis(300);
    let module = gsl_adapter::module_for(&cfg);
    s.adapters
        .push(gsl_adapter_kit::Adapter::start(cfg, module).await.unwrap());
    s.submit(
        "unreported",
        O::Stop(v1::Stop {}),
        std::slice::from_ref(&card),
    )
    .await;
    let client = async_nats::connect(s.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let dlq = js.get_stream(gsl_bus::names::STREAM_DLQ).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let code = loop {
        if dlq.get_info().await.unwrap().state.messages > 0 {
            let m = dlq.get_raw_message(1).await.unwrap();
            break m
                .headers
                .get(gsl_bus::names::headers::DLQ_CODE)
                .unwrap()
                .as_str()
                .to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(code, ErrorCode::MaxDeliveries.code());
    // The change itself was made once, and the work stream holds nothing.
    assert_eq!(
        s.sim.engine.truth(Carrier::Cu, &card).applied.get("stop"),
        Some(&1)
    );
    s.shutdown().await;
}
