//! The gateway against a real nats-server, over real gRPC.

mod common;

use common::*;
use futures::{StreamExt, TryStreamExt};
use gsl_bus::codec::decode;
use gsl_bus::names;
use gsl_domain::ErrorCode;
use gsl_gateway::error::code_of;
use gsl_proto::v1;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tonic::Code;

/// Every item in GSL_WORK: (subject, Nats-Msg-Id of its message, item), read
/// by sequence (a work-queue stream takes no second consumer); a bundle's
/// items each come with the bundle's message id.
pub async fn work_messages(nats_url: &str) -> Vec<(String, String, v1::WorkItem)> {
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(names::STREAM_WORK).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return out;
    }
    for seq in state.first_sequence..=state.last_sequence {
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue;
        };
        let id = m
            .headers
            .get(names::headers::MSG_ID)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        for wi in names::work_items(Some(&m.headers), &m.payload).unwrap() {
            out.push((m.subject.to_string(), id.clone(), wi));
        }
    }
    out
}

/// The dead-letter codes in GSL_DLQ, once it holds at least `at_least`
/// messages (polled up to 5 s; empty if it never does).
async fn dlq_codes(js: &async_nats::jetstream::Context, at_least: u64) -> Vec<String> {
    let dlq = js.get_stream(names::STREAM_DLQ).await.unwrap();
    let mut codes = Vec::new();
    for _ in 0..100 {
        let n = dlq.get_info().await.unwrap().state.messages;
        if n >= at_least {
            for seq in 1..=n {
                let m = dlq.get_raw_message(seq).await.unwrap();
                codes.push(
                    m.headers
                        .get(names::headers::DLQ_CODE)
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default(),
                );
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    codes
}

#[tokio::test]
async fn items_land_on_their_subjects_with_dedup_ids_and_refusals_have_codes() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let ct_in_use = ct_iccid(1, 1);
    let ct_stopped = ct_iccid(1, 2);
    let cm_in_use = cmcc_iccid(1, 3);
    let r = import(
        &addr,
        ACME,
        vec![
            card(&ct_in_use, v1::Carrier::Ct, 20),
            card(&ct_stopped, v1::Carrier::Ct, 14),
            card(&cm_in_use, v1::Carrier::Cmcc, 20),
        ],
    )
    .await;
    assert_eq!(r.imported, 3);
    let mut c = orders(&addr).await;
    let ids = vec![
        ct_in_use.clone(),
        cm_in_use.clone(),
        ct_stopped.clone(),                // illegal state for stop
        "8986031234567890123".to_string(), // bad check digit
        ct_in_use.clone(),                 // duplicate
        ct_iccid(9, 9),                    // not registered
    ];
    let resp = c
        .submit(with_token(submit_req("k1", stop_op(), &ids), ACME))
        .await
        .unwrap()
        .into_inner();
    let o = resp.work_order.clone().unwrap();
    assert_eq!(o.total, 6);
    assert_eq!(resp.refused, 4);
    assert_eq!(o.status, v1::WorkOrderStatus::Processing as i32);
    let codes: HashMap<u32, String> = resp
        .refusals
        .iter()
        .map(|r| (r.index, r.problem.clone().unwrap().code))
        .collect();
    assert_eq!(codes[&2], ErrorCode::IllegalState.code());
    assert_eq!(codes[&3], ErrorCode::InvalidCardId.code());
    assert_eq!(codes[&4], ErrorCode::DuplicateCard.code());
    assert_eq!(codes[&5], ErrorCode::CardNotFound.code());
    assert_eq!(resp.refused_by_code.values().sum::<u64>(), 4);

    let msgs = work_messages(&env.nats.url()).await;
    assert_eq!(msgs.len(), 2);
    let by_card: HashMap<String, (String, String, v1::WorkItem)> =
        msgs.into_iter().map(|m| (m.2.card.clone(), m)).collect();
    let (subj, msg_id, item) = &by_card[&ct_in_use];
    assert_eq!(subj, "gsl.work.ct.stop");
    assert_eq!(msg_id, &format!("{}:{ct_in_use}", o.id));
    assert_eq!(item.index, 0);
    assert_eq!(item.tenant, "acme");
    let (subj, _, item) = &by_card[&cm_in_use];
    assert_eq!(subj, "gsl.work.cmcc.stop");
    assert_eq!(item.index, 1);

    // The refused items are failed items of the order.
    let items = c
        .list_items(with_token(
            v1::ListItemsRequest {
                work_order_id: o.id,
                status: v1::ItemStatus::Failed as i32,
                ..Default::default()
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|i| i.problem.is_some()));
    let got = c
        .get(with_token(v1::GetRequest { id: o.id }, ACME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.failed, got.processing, got.succeeded), (4, 2, 0));
}

#[tokio::test]
async fn whole_request_refusals_and_all_refused_is_rejected() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let mut c = orders(&addr).await;
    let no_key = c
        .submit(with_token(
            submit_req("", stop_op(), &[ct_iccid(1, 1)]),
            ACME,
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&no_key), Some(ErrorCode::BadParameter));
    let no_op = c
        .submit(with_token(
            v1::SubmitRequest {
                idempotency_key: "x".into(),
                cards: refs(&[ct_iccid(1, 1)]),
                ..Default::default()
            },
            ACME,
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&no_op), Some(ErrorCode::UnknownOperation));
    let too_many: Vec<String> = (0..10_001).map(|i| ct_iccid(2, i)).collect();
    let big = c
        .submit(with_token(submit_req("big", stop_op(), &too_many), ACME))
        .await
        .unwrap_err();
    assert_eq!(big.code(), Code::ResourceExhausted);
    assert_eq!(code_of(&big), Some(ErrorCode::BatchTooLarge));
    let bad_threshold = v1::Operation {
        kind: Some(v1::operation::Kind::SetUsageThreshold(
            v1::SetUsageThreshold { threshold_mb: -5 },
        )),
    };
    let e = c
        .submit(with_token(
            submit_req("t", bad_threshold, &[ct_iccid(1, 1)]),
            ACME,
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(ErrorCode::BadParameter));
    // every item refused: the order exists, rejected
    let r = c
        .submit(with_token(
            submit_req("none", stop_op(), &[ct_iccid(3, 1)]),
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.work_order.unwrap().status,
        v1::WorkOrderStatus::Rejected as i32
    );
    assert!(work_messages(&env.nats.url()).await.is_empty());
}

#[tokio::test]
async fn idempotent_resubmission() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let ids: Vec<String> = (0..50).map(|i| ct_iccid(4, i)).collect();
    import(
        &addr,
        ACME,
        ids.iter().map(|i| card(i, v1::Carrier::Ct, 20)).collect(),
    )
    .await;
    let mut c = orders(&addr).await;
    let a = c
        .submit(with_token(submit_req("same", stop_op(), &ids), ACME))
        .await
        .unwrap()
        .into_inner();
    let b = c
        .submit(with_token(submit_req("same", stop_op(), &ids), ACME))
        .await
        .unwrap()
        .into_inner();
    assert!(!a.replayed);
    assert!(b.replayed);
    assert_eq!(a.work_order.unwrap().id, b.work_order.unwrap().id);
    assert_eq!(work_messages(&env.nats.url()).await.len(), 50);
    let other = c
        .submit(with_token(submit_req("same", stop_op(), &ids[..10]), ACME))
        .await
        .unwrap_err();
    assert_eq!(code_of(&other), Some(ErrorCode::IdempotencyConflict));
    // another tenant may use the same key
    let beta = c
        .submit(with_token(submit_req("same", stop_op(), &ids), BETA))
        .await
        .unwrap()
        .into_inner();
    assert!(!beta.replayed);
    assert_eq!(beta.refused, 50, "acme's cards are unknown to beta");
}

#[tokio::test]
async fn review_cancel_only_in_review() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let ids: Vec<String> = (0..3).map(|i| ct_iccid(5, i)).collect();
    import(
        &addr,
        ACME,
        ids.iter().map(|i| card(i, v1::Carrier::Ct, 20)).collect(),
    )
    .await;
    let mut c = orders(&addr).await;
    let mut held = submit_req("held", stop_op(), &ids);
    held.hold_for_review = true;
    let o = c
        .submit(with_token(held, ACME))
        .await
        .unwrap()
        .into_inner()
        .work_order
        .unwrap();
    assert_eq!(o.status, v1::WorkOrderStatus::InReview as i32);
    assert!(
        work_messages(&env.nats.url()).await.is_empty(),
        "nothing sent while in review"
    );
    let cancelled = c
        .cancel(with_token(v1::OrderRef { id: o.id }, ACME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, v1::WorkOrderStatus::Cancelled as i32);
    // Its items are not processing: they will never be sent.
    assert_eq!((cancelled.processing, cancelled.failed), (0, 3));
    let items = c
        .list_items(with_token(
            v1::ListItemsRequest {
                work_order_id: o.id,
                ..Default::default()
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(items.len(), 3);
    for it in &items {
        assert_eq!(it.status, v1::ItemStatus::Failed as i32);
        assert_eq!(
            it.problem.as_ref().unwrap().code,
            ErrorCode::Cancelled.code()
        );
    }
    let again = c
        .cancel(with_token(v1::OrderRef { id: o.id }, ACME))
        .await
        .unwrap_err();
    assert_eq!(code_of(&again), Some(ErrorCode::NotInReview));
    // approve: items go out
    let mut held2 = submit_req("held2", stop_op(), &ids);
    held2.hold_for_review = true;
    let o2 = c
        .submit(with_token(held2, ACME))
        .await
        .unwrap()
        .into_inner()
        .work_order
        .unwrap();
    let approved = c
        .approve(with_token(v1::OrderRef { id: o2.id }, ACME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.status, v1::WorkOrderStatus::Processing as i32);
    assert_eq!(work_messages(&env.nats.url()).await.len(), 3);
    let late = c
        .cancel(with_token(v1::OrderRef { id: o2.id }, ACME))
        .await
        .unwrap_err();
    assert_eq!(code_of(&late), Some(ErrorCode::NotInReview));
    let history: Vec<i32> = approved.history.iter().map(|h| h.status).collect();
    assert_eq!(
        history,
        vec![
            v1::WorkOrderStatus::InReview as i32,
            v1::WorkOrderStatus::Approved as i32,
            v1::WorkOrderStatus::Processing as i32
        ]
    );
}

fn outcome(o: &v1::WorkOrder, card: &str, index: u32, kind: v1::OutcomeKind) -> v1::ReportRequest {
    v1::ReportRequest {
        outcome: Some(v1::ItemOutcome {
            work_order_id: o.id,
            card: card.to_owned(),
            index,
            tenant: o.tenant.clone(),
            kind: kind as i32,
            carrier_ticket: "T1".into(),
            at: Some(gsl_proto::convert::timestamp(chrono::Utc::now())),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn results_are_idempotent_counts_exact_and_order_settles() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let ids: Vec<String> = (0..20).map(|i| ct_iccid(6, i)).collect();
    import(
        &addr,
        ACME,
        ids.iter().map(|i| card(i, v1::Carrier::Ct, 20)).collect(),
    )
    .await;
    let mut c = orders(&addr).await;
    let o = c
        .submit(with_token(submit_req("r", stop_op(), &ids), ACME))
        .await
        .unwrap()
        .into_inner()
        .work_order
        .unwrap();
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        // every outcome reported 3 times, concurrently
        for _ in 0..3 {
            let addr = addr.clone();
            let o = o.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let mut r = results(&addr).await;
                let kind = if i % 4 == 0 {
                    v1::OutcomeKind::Failed
                } else {
                    v1::OutcomeKind::Succeeded
                };
                r.report(with_token(outcome(&o, &id, i as u32, kind), ADAPTER))
                    .await
                    .unwrap()
                    .into_inner()
                    .duplicate
            }));
        }
    }
    let mut firsts = 0;
    for t in tasks {
        if !t.await.unwrap() {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 20, "exactly one report per item counted");
    let got = c
        .get(with_token(v1::GetRequest { id: o.id }, ACME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.succeeded, got.failed, got.processing), (15, 5, 0));
    assert_eq!(got.status, v1::WorkOrderStatus::Completed as i32);
    // a report that does not match the item is refused
    let mut r = results(&addr).await;
    let wrong = r
        .report(with_token(
            outcome(&o, &ids[1], 0, v1::OutcomeKind::Succeeded),
            ADAPTER,
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&wrong), Some(ErrorCode::BadParameter));
    // tenants cannot report
    let denied = r
        .report(with_token(
            outcome(&o, &ids[0], 0, v1::OutcomeKind::Succeeded),
            ACME,
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&denied), Some(ErrorCode::PermissionDenied));
    // the registry followed the outcome: stopped now
    let mut reg = registry(&addr).await;
    let card = reg
        .get_card(with_token(v1::GetCardRequest { id: ids[1].clone() }, ACME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(card.sim_status, 14);
    // the card's history shows the order
    let h = c
        .card_history(with_token(
            v1::CardHistoryRequest {
                card: ids[1].clone(),
                ..Default::default()
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.entries.len(), 1);
    assert_eq!(h.entries[0].work_order_id, o.id);
    assert_eq!(h.entries[0].status, v1::ItemStatus::Succeeded as i32);
}

async fn next_event(s: &mut tonic::Streaming<v1::WatchEvent>) -> v1::WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("event within 10 s")
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn watch_resumes_without_gap() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let ids: Vec<String> = (0..6).map(|i| ct_iccid(7, i)).collect();
    import(
        &addr,
        ACME,
        ids.iter().map(|i| card(i, v1::Carrier::Ct, 20)).collect(),
    )
    .await;
    let mut c = orders(&addr).await;
    let o = c
        .submit(with_token(submit_req("w", stop_op(), &ids), ACME))
        .await
        .unwrap()
        .into_inner()
        .work_order
        .unwrap();
    let mut r = results(&addr).await;
    for (i, id) in ids.iter().enumerate().take(3) {
        r.report(with_token(
            outcome(&o, id, i as u32, v1::OutcomeKind::Succeeded),
            ADAPTER,
        ))
        .await
        .unwrap();
    }
    // first connection: read 4 events, then drop
    let mut s = c
        .watch(with_token(
            v1::WatchRequest {
                work_order_id: o.id,
                after_sequence: 0,
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next_event(&mut s).await);
    }
    drop(s);
    let last = seen.last().unwrap().sequence;
    for (i, id) in ids.iter().enumerate().skip(3) {
        r.report(with_token(
            outcome(&o, id, i as u32, v1::OutcomeKind::Succeeded),
            ADAPTER,
        ))
        .await
        .unwrap();
    }
    // resume after the last sequence seen
    let mut s = c
        .watch(with_token(
            v1::WatchRequest {
                work_order_id: o.id,
                after_sequence: last,
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    // reference: everything from the start
    let mut all = c
        .watch(with_token(
            v1::WatchRequest {
                work_order_id: o.id,
                after_sequence: 0,
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut reference = Vec::new();
    loop {
        let e = next_event(&mut all).await;
        let settled = matches!(&e.event.as_ref().unwrap().event, Some(v1::work_order_event::Event::StatusChanged(sc)) if sc.status == v1::WorkOrderStatus::Completed as i32);
        reference.push(e);
        if settled {
            break;
        }
    }
    let mut resumed = seen.clone();
    while resumed.len() < reference.len() {
        resumed.push(next_event(&mut s).await);
    }
    let seqs = |v: &[v1::WatchEvent]| v.iter().map(|e| e.sequence).collect::<Vec<_>>();
    assert_eq!(
        seqs(&resumed),
        seqs(&reference),
        "no event lost or repeated across the reconnect"
    );
    let item_events = reference
        .iter()
        .filter(|e| {
            matches!(
                e.event.as_ref().unwrap().event,
                Some(v1::work_order_event::Event::Item(_))
            )
        })
        .count();
    assert_eq!(item_events, 6);
}

#[tokio::test]
async fn tenant_isolation_on_every_rpc() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let ids: Vec<String> = (0..2).map(|i| ct_iccid(8, i)).collect();
    import(
        &addr,
        ACME,
        ids.iter().map(|i| card(i, v1::Carrier::Ct, 20)).collect(),
    )
    .await;
    let mut reg = registry(&addr).await;
    reg.import_batches(with_token(
        v1::ImportBatchesRequest {
            batches: vec![v1::PurchaseBatch {
                batch_no: "B-ACME".into(),
                carrier: v1::Carrier::Ct as i32,
                ..Default::default()
            }],
        },
        ACME,
    ))
    .await
    .unwrap();
    let mut c = orders(&addr).await;
    let mut held = submit_req("iso", stop_op(), &ids);
    held.hold_for_review = true;
    let o = c
        .submit(with_token(held, ACME))
        .await
        .unwrap()
        .into_inner()
        .work_order
        .unwrap();
    let id = o.id;
    for token in [BETA, "", "Bearer-nonsense"] {
        let want = if token == BETA {
            ErrorCode::WorkOrderNotFound
        } else {
            ErrorCode::Unauthenticated
        };
        let check = |r: Result<(), tonic::Status>, what: &str| {
            let e = r.expect_err(what);
            assert_eq!(code_of(&e), Some(want), "{what} with {token:?}: {e:?}");
        };
        check(
            c.get(with_token(v1::GetRequest { id }, token))
                .await
                .map(|_| ()),
            "get",
        );
        check(
            c.list_items(with_token(
                v1::ListItemsRequest {
                    work_order_id: id,
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(|_| ()),
            "items",
        );
        check(
            c.watch(with_token(
                v1::WatchRequest {
                    work_order_id: id,
                    after_sequence: 0,
                },
                token,
            ))
            .await
            .map(|_| ()),
            "watch",
        );
        check(
            c.cancel(with_token(v1::OrderRef { id }, token))
                .await
                .map(|_| ()),
            "cancel",
        );
        check(
            c.approve(with_token(v1::OrderRef { id }, token))
                .await
                .map(|_| ()),
            "approve",
        );
        check(
            c.reject(with_token(
                v1::RejectRequest {
                    id,
                    reason: String::new(),
                },
                token,
            ))
            .await
            .map(|_| ()),
            "reject",
        );
        if token != BETA {
            check(
                c.list(with_token(v1::ListRequest::default(), token))
                    .await
                    .map(|_| ()),
                "list",
            );
            check(
                c.card_history(with_token(
                    v1::CardHistoryRequest {
                        card: ids[0].clone(),
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
                "history",
            );
            check(
                c.submit(with_token(submit_req("x", stop_op(), &ids), token))
                    .await
                    .map(|_| ()),
                "submit",
            );
            check(
                reg.get_card(with_token(v1::GetCardRequest { id: ids[0].clone() }, token))
                    .await
                    .map(|_| ()),
                "get card",
            );
            check(
                reg.import_cards(with_token(v1::ImportCardsRequest { cards: vec![] }, token))
                    .await
                    .map(|_| ()),
                "import",
            );
            check(
                reg.get_batch(with_token(
                    v1::GetBatchRequest {
                        batch_no: "B-ACME".into(),
                    },
                    token,
                ))
                .await
                .map(|_| ()),
                "batch",
            );
            check(
                reg.import_batches(with_token(
                    v1::ImportBatchesRequest { batches: vec![] },
                    token,
                ))
                .await
                .map(|_| ()),
                "import batches",
            );
        }
    }
    // beta sees nothing of acme's
    let list = c
        .list(with_token(v1::ListRequest::default(), BETA))
        .await
        .unwrap()
        .into_inner();
    assert!(list.work_orders.is_empty());
    let acme_list = c
        .list(with_token(v1::ListRequest::default(), ACME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acme_list.work_orders.len(), 1);
    let h = c
        .card_history(with_token(
            v1::CardHistoryRequest {
                card: ids[0].clone(),
                ..Default::default()
            },
            BETA,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(h.entries.is_empty());
    let e = reg
        .get_card(with_token(v1::GetCardRequest { id: ids[0].clone() }, BETA))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(ErrorCode::CardNotFound));
    let e = reg
        .get_batch(with_token(
            v1::GetBatchRequest {
                batch_no: "B-ACME".into(),
            },
            BETA,
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(ErrorCode::BatchNotFound));
    let steal_batch = reg
        .import_batches(with_token(
            v1::ImportBatchesRequest {
                batches: vec![v1::PurchaseBatch {
                    batch_no: "B-ACME".into(),
                    carrier: v1::Carrier::Ct as i32,
                    ..Default::default()
                }],
            },
            BETA,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        code_of(&steal_batch),
        Some(ErrorCode::PermissionDenied),
        "another tenant's batch cannot be overwritten"
    );
    let steal = reg
        .import_cards(with_token(
            v1::ImportCardsRequest {
                cards: vec![card(&ids[0], v1::Carrier::Ct, 20)],
            },
            BETA,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(steal.imported, 0);
    assert_eq!(
        steal.refused[0].problem.as_ref().unwrap().code,
        ErrorCode::PermissionDenied.code()
    );
    let beta_order = c
        .submit(with_token(submit_req("b", stop_op(), &ids), BETA))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(beta_order.refused, 2);
    assert_eq!(
        beta_order.refusals[0].problem.as_ref().unwrap().code,
        ErrorCode::CardNotFound.code()
    );
    // adapters cannot use the tenant API
    let e = c
        .get(with_token(v1::GetRequest { id }, ADAPTER))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(ErrorCode::PermissionDenied));
}

#[tokio::test]
async fn nats_intake_with_json() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let ids: Vec<String> = (0..3).map(|i| ct_iccid(10, i)).collect();
    import(
        &addr,
        ACME,
        ids.iter().map(|i| card(i, v1::Carrier::Ct, 20)).collect(),
    )
    .await;
    // An intake client's replies live under its tenant's intake inbox.
    let client = async_nats::ConnectOptions::new()
        .custom_inbox_prefix(gsl_bus::permissions::intake_inbox("acme"))
        .connect(env.nats.url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    // A reply subject elsewhere (here: another service's data) is never
    // published to by the gateway.
    let mut hijack = client.subscribe("gsl.hijack.>").await.unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.insert(names::INTAKE_REPLY_HEADER, "gsl.hijack.x");
    js.publish_with_headers("gsl.intake.acme", h, "{ not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(700), hijack.next())
            .await
            .is_err(),
        "the gateway published to a subject the publisher named"
    );
    let body = serde_json::json!({
        "idempotency_key": "intake-1",
        "operation": {"stop": {}},
        "cards": ids.iter().map(|i| serde_json::json!({"id": i})).collect::<Vec<_>>(),
    });
    let mut h = async_nats::HeaderMap::new();
    h.insert("Content-Type", "application/json");
    h.insert(names::INTAKE_REPLY_HEADER, inbox.as_str());
    js.publish_with_headers(
        "gsl.intake.acme",
        h,
        serde_json::to_vec(&body).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), replies.next())
        .await
        .unwrap()
        .unwrap();
    let reply: v1::IntakeReply = decode("IntakeReply", &m.payload).unwrap();
    let Some(v1::intake_reply::Result::Accepted(resp)) = reply.result else {
        panic!("refused: {reply:?}")
    };
    let o = resp.work_order.unwrap();
    assert_eq!(o.source, 100);
    assert_eq!(o.total, 3);
    let mut c = orders(&addr).await;
    assert_eq!(
        c.get(with_token(v1::GetRequest { id: o.id }, ACME))
            .await
            .unwrap()
            .into_inner()
            .id,
        o.id
    );
    assert_eq!(work_messages(&env.nats.url()).await.len(), 3);
    // an unknown operation is refused (answered), malformed JSON is dead-lettered
    let refused =
        serde_json::json!({"idempotency_key": "intake-2", "operation": {"stop": {}}, "cards": []});
    let mut h = async_nats::HeaderMap::new();
    h.insert("Content-Type", "application/json");
    h.insert(names::INTAKE_REPLY_HEADER, inbox.as_str());
    js.publish_with_headers(
        "gsl.intake.acme",
        h,
        serde_json::to_vec(&refused).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), replies.next())
        .await
        .unwrap()
        .unwrap();
    let reply: v1::IntakeReply = decode("IntakeReply", &m.payload).unwrap();
    assert!(
        matches!(reply.result, Some(v1::intake_reply::Result::Refused(p)) if p.code == ErrorCode::BadParameter.code())
    );
    // Undecodable messages are dead-lettered, and their publisher is told why.
    for (payload, want) in [
        (&b"{ not json"[..], ErrorCode::MalformedMessage),
        (
            &br#"{"idempotency_key":"intake-3","operation":{"teleport":{}},"cards":[]}"#[..],
            ErrorCode::UnknownOperation,
        ),
    ] {
        let mut h = async_nats::HeaderMap::new();
        h.insert(names::INTAKE_REPLY_HEADER, inbox.as_str());
        js.publish_with_headers("gsl.intake.acme", h, payload.to_vec().into())
            .await
            .unwrap()
            .await
            .unwrap();
        let m = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .unwrap()
            .unwrap();
        let reply: v1::IntakeReply = decode("IntakeReply", &m.payload).unwrap();
        assert!(
            matches!(&reply.result, Some(v1::intake_reply::Result::Refused(p)) if p.code == want.code()),
            "{reply:?}"
        );
    }
    js.publish("gsl.intake.nobody", "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let found: HashSet<String> = dlq_codes(&js, 4).await.into_iter().collect();
    assert!(
        found.contains(ErrorCode::MalformedMessage.code()),
        "{found:?}"
    );
    assert!(
        found.contains(ErrorCode::UnknownOperation.code()),
        "{found:?}"
    );
    assert!(
        found.contains(ErrorCode::PermissionDenied.code()),
        "{found:?}"
    );
    // the intake stream is drained: nothing retried forever
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        js.get_stream(names::STREAM_INTAKE)
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap()
            .state
            .messages,
        0
    );
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let mut cfg =
        gsl_gateway::config::GatewayConfig::local(&nats.url(), &nats.database_url(), tokens());
    cfg.bounds.submit = 64 * 1024;
    let gw = gsl_gateway::Gateway::start(cfg).await.unwrap();
    let mut c = orders(&url(gw.grpc_addr)).await;
    let ids: Vec<String> = (0..5000).map(|i| ct_iccid(11, i)).collect();
    let e = c
        .submit(with_token(submit_req("huge", stop_op(), &ids), ACME))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.code(),
            Code::OutOfRange | Code::ResourceExhausted | Code::Internal
        ),
        "{e:?}"
    );
    // the gateway is still serving
    let small = c
        .submit(with_token(submit_req("small", stop_op(), &ids[..1]), ACME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        small.refused, 1,
        "card not registered, but the request was taken"
    );
}

/// The token is checked from the headers, before the body is decoded: an
/// oversized request without a valid token is refused as unauthenticated
/// (it used to be decoded first), and the small APIs take small requests.
#[tokio::test]
async fn tokens_are_checked_before_bodies_are_decoded() {
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let mut cfg =
        gsl_gateway::config::GatewayConfig::local(&nats.url(), &nats.database_url(), tokens());
    cfg.bounds.submit = 64 * 1024;
    let gw = gsl_gateway::Gateway::start(cfg).await.unwrap();
    let mut c = orders(&url(gw.grpc_addr)).await;
    let ids: Vec<String> = (0..5000).map(|i| ct_iccid(11, i)).collect();
    let e = c
        .submit(tonic::Request::new(submit_req("huge", stop_op(), &ids)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = c
        .submit(with_token(
            submit_req("huge", stop_op(), &ids),
            "not-a-token",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // A valid token: then the size limit answers.
    let e = c
        .submit(with_token(submit_req("huge", stop_op(), &ids), ACME))
        .await
        .unwrap_err();
    assert_ne!(e.code(), Code::Unauthenticated, "{e:?}");
    // Results takes at most 1 MiB, even from the adapters.
    let mut results = v1::results_client::ResultsClient::connect(url(gw.grpc_addr))
        .await
        .unwrap();
    let big = v1::ReportRequest {
        outcome: Some(v1::ItemOutcome {
            card: "x".repeat(2 * 1024 * 1024),
            ..Default::default()
        }),
    };
    let e = results.report(with_token(big, ADAPTER)).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{e:?}"
    );
}

/// Server reflection answers v1 and v1alpha clients and lists health too.
#[tokio::test]
async fn reflection_answers_both_versions_and_lists_health() {
    use tonic_reflection::pb::v1alpha as alpha;
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let gw = gsl_gateway::Gateway::start(gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens(),
    ))
    .await
    .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(url(gw.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let req = alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = c
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let a = answers.message().await.unwrap().unwrap();
    let Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(l)) =
        a.message_response
    else {
        panic!("{a:?}");
    };
    let names: Vec<String> = l.service.into_iter().map(|s| s.name).collect();
    for want in [
        "gsl.v1.WorkOrders",
        "gsl.v1.BackOffice",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let mut v1c =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    assert!(
        v1c.server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner()
            .message()
            .await
            .unwrap()
            .is_some()
    );
}

/// A client that goes away takes its Watch consumer (and task) with it, even
/// when no event arrives to notice it by.
#[tokio::test]
async fn cancelled_watches_leave_no_consumer_behind() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let client = async_nats::connect(env.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let consumers = || async {
        js.get_stream(names::STREAM_EVENTS)
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap()
            .state
            .consumer_count
    };
    let before = consumers().await;
    let mut streams = Vec::new();
    for _ in 0..20 {
        let mut c = orders(&addr).await;
        streams.push(
            c.watch(with_token(v1::WatchRequest::default(), ACME))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    assert_eq!(consumers().await, before + 20);
    drop(streams);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let now = consumers().await;
        if now == before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} consumers left, {before} before"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An adapter's credential reports only its carrier's items, and only of
/// orders whose items were sent: a forged success on an order held for
/// review, or from another carrier's adapter, is refused.
#[tokio::test]
async fn reports_only_from_the_items_carrier_and_only_for_sent_items() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let ids: Vec<String> = (0..2).map(|i| ct_iccid(15, i)).collect();
    import(
        &addr,
        ACME,
        ids.iter().map(|i| card(i, v1::Carrier::Ct, 20)).collect(),
    )
    .await;
    let mut c = orders(&addr).await;
    let mut held = submit_req("held-forge", stop_op(), &ids);
    held.hold_for_review = true;
    let o = c
        .submit(with_token(held, ACME))
        .await
        .unwrap()
        .into_inner()
        .work_order
        .unwrap();
    let mut r = results(&addr).await;
    let ct = gsl_testkit::gateway::adapter_token(ADAPTER, "ct");
    let cmcc = gsl_testkit::gateway::adapter_token(ADAPTER, "cmcc");
    let forged = r
        .report(with_token(
            outcome(&o, &ids[0], 0, v1::OutcomeKind::Succeeded),
            &ct,
        ))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::PermissionDenied, "{forged:?}");
    let got = c
        .get(with_token(v1::GetRequest { id: o.id }, ACME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.succeeded, 0, "nothing counted");
    // Approved: the items are sent; now only the CT adapter may report them.
    c.approve(with_token(v1::OrderRef { id: o.id }, ACME))
        .await
        .unwrap();
    let wrong = r
        .report(with_token(
            outcome(&o, &ids[0], 0, v1::OutcomeKind::Succeeded),
            &cmcc,
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied, "{wrong:?}");
    r.report(with_token(
        outcome(&o, &ids[0], 0, v1::OutcomeKind::Succeeded),
        &ct,
    ))
    .await
    .unwrap();
    let got = c
        .get(with_token(v1::GetRequest { id: o.id }, ACME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.succeeded, 1);
}

/// Two replicas, two tenants importing the same new cards at once: each card
/// ends up owned by exactly one tenant, the other's import is refused for it
/// (without saying who holds it), and nothing is overwritten, however far a
/// replica's mirror lags.
#[tokio::test]
async fn card_ownership_is_claimed_atomically_across_replicas() {
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let gw1 = gsl_gateway::Gateway::start(gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens(),
    ))
    .await
    .unwrap();
    let gw2 = gsl_gateway::Gateway::start(gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens(),
    ))
    .await
    .unwrap();
    let (a1, a2) = (url(gw1.grpc_addr), url(gw2.grpc_addr));
    let ids: Vec<String> = (0..2000).map(|i| ct_iccid(16, i)).collect();
    let cards: Vec<v1::Card> = ids.iter().map(|i| card(i, v1::Carrier::Ct, 20)).collect();
    let (ra, rb) = tokio::join!(
        import(&a1, ACME, cards.clone()),
        import(&a2, BETA, cards.clone())
    );
    assert_eq!(
        ra.imported + rb.imported,
        ids.len() as u64,
        "every card claimed exactly once: {} + {}",
        ra.imported,
        rb.imported
    );
    for r in ra.refused.iter().chain(&rb.refused) {
        let p = r.problem.as_ref().unwrap();
        assert_eq!(p.code, ErrorCode::PermissionDenied.code());
        assert!(!p.message.contains("another tenant"), "{}", p.message);
    }
    // The stored owner is the one that was told "imported": a second import
    // by the loser (through the other replica too) changes nothing.
    let again = import(&a1, BETA, cards.clone()).await;
    assert_eq!(
        again.imported, rb.imported,
        "only BETA's own cards are re-imported"
    );
    let mut reg = registry(&a2).await;
    let mut acme = 0;
    for id in &ids {
        if reg
            .get_card(with_token(v1::GetCardRequest { id: id.clone() }, ACME))
            .await
            .is_ok()
        {
            acme += 1;
        }
    }
    assert_eq!(acme, ra.imported);
}

/// The registry mirror survives a NATS restart: its watch starts again and
/// catches up, so a card another replica registers afterwards is known here
/// (it used to stop at its first error and go stale silently).
#[tokio::test]
async fn the_registry_mirror_follows_again_after_a_nats_restart() {
    let mut nats = gsl_testkit::NatsServer::start().await.unwrap();
    let gw1 = gsl_gateway::Gateway::start(gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens(),
    ))
    .await
    .unwrap();
    nats.restart().await.unwrap();
    let gw2 = gsl_gateway::Gateway::start(gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens(),
    ))
    .await
    .unwrap();
    let ids: Vec<String> = (0..3).map(|i| ct_iccid(17, i)).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // gw2 registers the cards (retrying while either replica reconnects).
    loop {
        let mut reg = registry(&url(gw2.grpc_addr)).await;
        if let Ok(r) = reg
            .import_cards(with_token(
                v1::ImportCardsRequest {
                    cards: ids.iter().map(|i| card(i, v1::Carrier::Ct, 20)).collect(),
                },
                ACME,
            ))
            .await
            && r.into_inner().imported == 3
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "import after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // gw1's mirror sees them: a submit through gw1 accepts every card.
    let mut c = orders(&url(gw1.grpc_addr)).await;
    let mut n = 0;
    loop {
        n += 1;
        let o = c
            .submit(with_token(
                submit_req(&format!("after-restart-{n}"), stop_op(), &ids),
                ACME,
            ))
            .await;
        if let Ok(o) = o
            && o.into_inner().refused == 0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gw1's registry mirror never caught up after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A retry with the same idempotency key that finds the order unrecorded
/// (its first submit still running, or dead before its commit point) never
/// redoes the order: what the first wrote stays, outcomes already counted
/// included (they used to be reset).
#[tokio::test]
async fn a_retry_never_redoes_an_order_half_recorded() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let ids: Vec<String> = (0..3).map(|i| ct_iccid(18, i)).collect();
    import(
        &addr,
        ACME,
        ids.iter().map(|i| card(i, v1::Carrier::Ct, 20)).collect(),
    )
    .await;
    let mut c = orders(&addr).await;
    let o = c
        .submit(with_token(submit_req("half", stop_op(), &ids), ACME))
        .await
        .unwrap()
        .into_inner()
        .work_order
        .unwrap();
    let mut r = results(&addr).await;
    r.report(with_token(
        outcome(&o, &ids[0], 0, v1::OutcomeKind::Succeeded),
        ADAPTER,
    ))
    .await
    .unwrap();
    // The order record gone, as if its first submit had not reached its
    // commit point: chunks and progress (one outcome counted) remain.
    let client = async_nats::connect(env.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let wo = js.get_key_value(names::KV_WORKORDERS).await.unwrap();
    wo.delete(format!("wo.{}", o.id)).await.unwrap();
    let again = c
        .submit(with_token(submit_req("half", stop_op(), &ids), ACME))
        .await
        .unwrap()
        .into_inner()
        .work_order
        .unwrap();
    assert_eq!(again.id, o.id, "the same order");
    let items = c
        .list_items(with_token(
            v1::ListItemsRequest {
                work_order_id: o.id,
                ..Default::default()
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(
        items[0].status,
        v1::ItemStatus::Succeeded as i32,
        "the outcome counted before the retry is kept: {items:?}"
    );
    let got = c
        .get(with_token(v1::GetRequest { id: o.id }, ACME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.succeeded, got.processing), (1, 2));
}

/// A tenant's open orders are bounded (counted per order), refused with a
/// clear code past the quota, replays still answered, other tenants
/// unaffected; refused items publish a bounded number of events per order.
#[tokio::test]
async fn tenant_quota_and_bounded_refusal_events() {
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let mut cfg =
        gsl_gateway::config::GatewayConfig::local(&nats.url(), &nats.database_url(), tokens());
    cfg.tenant_max_open_orders = 2;
    let gw = gsl_gateway::Gateway::start(cfg).await.unwrap();
    let addr = url(gw.grpc_addr);
    let ids: Vec<String> = (0..2).map(|i| ct_iccid(19, i)).collect();
    import(
        &addr,
        ACME,
        ids.iter().map(|i| card(i, v1::Carrier::Ct, 20)).collect(),
    )
    .await;
    let mut c = orders(&addr).await;
    for k in ["q1", "q2"] {
        c.submit(with_token(submit_req(k, stop_op(), &ids[..1]), ACME))
            .await
            .unwrap();
    }
    let e = c
        .submit(with_token(submit_req("q3", stop_op(), &ids[1..]), ACME))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert_eq!(code_of(&e), Some(ErrorCode::TenantQuotaExceeded));
    // A replay of an open order is still answered.
    c.submit(with_token(submit_req("q1", stop_op(), &ids[..1]), ACME))
        .await
        .unwrap();
    // Another tenant is not affected; its junk order of 3,000 unknown cards
    // stores at most 100 refusal events (the items keep every refusal).
    let junk: Vec<String> = (0..3000).map(|i| ct_iccid(20, i)).collect();
    let r = c
        .submit(with_token(submit_req("junk", stop_op(), &junk), BETA))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.refused, 3000);
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let id = r.work_order.unwrap().id;
    let mut events = js.get_stream(names::STREAM_EVENTS).await.unwrap();
    let info = events.info().await.unwrap().clone();
    let per_subject = events
        .info_with_subjects(format!("gsl.evt.beta.{id}.*"))
        .await
        .unwrap()
        .try_collect::<std::collections::HashMap<String, usize>>()
        .await
        .unwrap();
    let item_events = per_subject.keys().filter(|s| !s.ends_with("._")).count();
    assert!(
        item_events <= gsl_gateway::submit::MAX_REFUSAL_EVENTS,
        "{item_events} item events"
    );
    assert!(info.state.messages < 1000);
    // Streams and buckets have byte limits.
    assert!(info.config.max_bytes > 0);
    let kv = js
        .get_stream("KV_gsl_workorders")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .max_bytes;
    assert!(kv > 0);
}

/// Storage use and limits are exported for alerting.
#[tokio::test]
async fn storage_use_and_limits_are_metrics() {
    let env = start().await;
    let get = || async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(env.gw.admin_addr)
            .await
            .unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = get().await;
        let limit = body
            .lines()
            .find(|l| l.starts_with("gsl_store_max_bytes{stream=\"GSL_EVENTS\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<i64>().ok());
        if let Some(limit) = limit {
            assert!(limit > 0, "{body}");
            assert!(
                body.contains("gsl_store_bytes{stream=\"KV_gsl_results\"}"),
                "{body}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// In production (`GSL_TENANT_SELF_REGISTRATION` off) only the operator
/// credential assigns cards to tenants; a tenant's import updates only the
/// cards it already holds, and cannot take another's.
#[tokio::test]
async fn only_the_operator_assigns_cards_to_tenants() {
    const OPERATOR: &str = "operator-token-0001";
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let mut cfg = gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens().with_operator(Some(OPERATOR.into())),
    );
    cfg.tenant_self_registration = false;
    let gw = gsl_gateway::Gateway::start(cfg).await.unwrap();
    let addr = url(gw.grpc_addr);
    let ids: Vec<String> = (0..2).map(|i| ct_iccid(21, i)).collect();
    let mine = |tenant: &str| -> Vec<v1::Card> {
        ids.iter()
            .map(|i| v1::Card {
                tenant: tenant.into(),
                ..card(i, v1::Carrier::Ct, 20)
            })
            .collect()
    };
    // A tenant cannot register cards nobody holds.
    let r = import(&addr, ACME, mine("")).await;
    assert_eq!((r.imported, r.refused.len()), (0, 2));
    // The operator assigns them to acme.
    let r = import(&addr, OPERATOR, mine("acme")).await;
    assert_eq!((r.imported, r.refused.len()), (2, 0));
    let mut reg = registry(&addr).await;
    reg.get_card(with_token(v1::GetCardRequest { id: ids[0].clone() }, ACME))
        .await
        .expect("acme holds it");
    // acme updates its own cards; beta can take none of them.
    assert_eq!(import(&addr, ACME, mine("")).await.imported, 2);
    let r = import(&addr, BETA, mine("")).await;
    assert_eq!((r.imported, r.refused.len()), (0, 2));
    // An operator import must name a known tenant.
    let e = registry(&addr)
        .await
        .import_cards(with_token(
            v1::ImportCardsRequest {
                cards: mine("nobody"),
            },
            OPERATOR,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // The operator may move a card to another tenant.
    assert_eq!(import(&addr, OPERATOR, mine("beta")).await.imported, 2);
    reg.get_card(with_token(v1::GetCardRequest { id: ids[0].clone() }, BETA))
        .await
        .expect("moved to beta");
}

/// An intake order the gateway cannot store (here: its idempotency bucket is
/// gone) is redelivered, and on its last delivery it is dead-lettered with
/// the reason and its publisher is told: never dropped.
#[tokio::test]
async fn intake_order_unstorable_to_the_last_delivery_is_dead_lettered_and_answered() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let id = ct_iccid(11, 0);
    import(&addr, ACME, vec![card(&id, v1::Carrier::Ct, 20)]).await;
    let client = async_nats::ConnectOptions::new()
        .custom_inbox_prefix(gsl_bus::permissions::intake_inbox("acme"))
        .connect(env.nats.url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client.clone());
    js.delete_stream(format!("KV_{}", names::KV_IDEMPOTENCY))
        .await
        .unwrap();
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    let body = serde_json::json!({
        "idempotency_key": "intake-unstorable",
        "operation": {"stop": {}},
        "cards": [{"id": id}],
    });
    let mut h = async_nats::HeaderMap::new();
    h.insert("Content-Type", "application/json");
    h.insert(names::INTAKE_REPLY_HEADER, inbox.as_str());
    js.publish_with_headers(
        "gsl.intake.acme",
        h,
        serde_json::to_vec(&body).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // Ten deliveries, two seconds apart.
    let m = tokio::time::timeout(Duration::from_secs(60), replies.next())
        .await
        .expect("the publisher is answered")
        .unwrap();
    let reply: v1::IntakeReply = decode("IntakeReply", &m.payload).unwrap();
    assert!(
        matches!(&reply.result, Some(v1::intake_reply::Result::Refused(p)) if p.code == ErrorCode::MaxDeliveries.code()),
        "{reply:?}"
    );
    let codes = dlq_codes(&js, 1).await;
    assert!(
        codes.iter().any(|c| c == ErrorCode::MaxDeliveries.code()),
        "{codes:?}"
    );
}

/// A multi-card order goes out in bundles of up to 100 items per carrier
/// (fixed index ranges, one message id per range and carrier); an item alone
/// in its range, like a single-card order, goes out as a plain item with its
/// own message id. Every item is in exactly one message.
#[tokio::test]
async fn multi_card_orders_go_out_as_bundles() {
    let env = start().await;
    let addr = url(env.gw.grpc_addr);
    let ids: Vec<String> = (0..201).map(|i| ct_iccid(7, i)).collect();
    import(
        &addr,
        ACME,
        ids.iter().map(|i| card(i, v1::Carrier::Ct, 20)).collect(),
    )
    .await;
    let mut c = orders(&addr).await;
    let o = c
        .submit(with_token(submit_req("bundles", stop_op(), &ids), ACME))
        .await
        .unwrap()
        .into_inner()
        .work_order
        .unwrap();
    let msgs = work_messages(&env.nats.url()).await;
    assert_eq!(msgs.len(), 201, "every item once");
    let cards: HashSet<&str> = msgs.iter().map(|m| m.2.card.as_str()).collect();
    assert_eq!(cards.len(), 201);
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for m in &msgs {
        *per_id.entry(m.1.as_str()).or_default() += 1;
        assert_eq!(m.0, "gsl.work.ct.stop");
        assert_eq!(m.2.work_order_id, o.id);
    }
    assert_eq!(per_id[format!("{}:b0.ct", o.id).as_str()], 100);
    assert_eq!(per_id[format!("{}:b1.ct", o.id).as_str()], 100);
    // The 201st item is alone in its range: a plain item.
    assert_eq!(per_id[format!("{}:{}", o.id, ids[200]).as_str()], 1);
    assert_eq!(per_id.len(), 3, "{per_id:?}");
    // A single-card order: one plain item, no bundle header.
    let one = ct_iccid(8, 1);
    import(&addr, ACME, vec![card(&one, v1::Carrier::Ct, 20)]).await;
    let o1 = c
        .submit(with_token(
            submit_req("one", stop_op(), std::slice::from_ref(&one)),
            ACME,
        ))
        .await
        .unwrap()
        .into_inner()
        .work_order
        .unwrap();
    let msgs = work_messages(&env.nats.url()).await;
    let mine: Vec<_> = msgs.iter().filter(|m| m.2.work_order_id == o1.id).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].1, format!("{}:{one}", o1.id));
}
