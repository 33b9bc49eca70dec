//! Pushes of a real order: the gateway, a China Telecom adapter against the
//! simulator, gsl-push and an HTTPS receiver. A stop of two cards, one of
//! them already stopped (refused), reaches the receiver as `item.failed`
//! and `order.finished` with the order's counts, each signed and verified.

mod common;

use common::*;
use gsl_carrier_sim::inventory::CardRecord;
use gsl_domain::Carrier;
use gsl_domain::card::{SimStatus, StopReason};
use gsl_proto::v1;
use gsl_testkit::receiver::{Receiver, ca_pem};
use std::time::Duration;

#[tokio::test]
async fn a_real_order_reaches_a_verifying_receiver() {
    let s = stack(Opts {
        carriers: vec![Carrier::Ct],
        ..Opts::default()
    })
    .await;
    let push = gsl_push::Push::start(gsl_push::config::PushConfig::local(&s.nats.url()))
        .await
        .unwrap();
    let r = Receiver::start(true).await;
    let a = v1::push_addresses_client::PushAddressesClient::connect(s.grpc.clone())
        .await
        .unwrap()
        .create(authed(v1::CreatePushAddressRequest {
            url: r.url(),
            server_ca_pem: ca_pem(),
            events: vec!["order.finished".into(), "item.failed".into()],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let key = gsl_push::sign::key_of(&a.secret).unwrap();
    let in_use = s
        .card(Carrier::Ct, 700, |c: &mut CardRecord| {
            c.status = SimStatus::InUse;
            c.stop_reason = StopReason::Normal;
        })
        .await;
    let stopped = s
        .card(Carrier::Ct, 701, |c: &mut CardRecord| {
            c.status = SimStatus::Stopped;
            c.stop_reason = StopReason::OnRequest;
        })
        .await;
    let o = s
        .submit(
            "push-e2e",
            v1::operation::Kind::Stop(v1::Stop {}),
            &[in_use.clone(), stopped.clone()],
        )
        .await;
    let w = s.settled(o.id, Duration::from_secs(60)).await;
    assert_eq!((w.succeeded, w.failed), (1, 1), "{w:?}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (failed, finished) = loop {
        let got = r.received();
        let parsed: Vec<serde_json::Value> = got
            .iter()
            .map(|p| {
                let ts: i64 = p.timestamp.parse().unwrap();
                assert!(
                    gsl_push::sign::verifies(&key, &p.signature, &p.id, ts, &p.body),
                    "{} verifies",
                    p.id
                );
                serde_json::from_slice(&p.body).unwrap()
            })
            .collect();
        let of = |t: &str| parsed.iter().find(|v| v["type"] == t).cloned();
        if let (Some(f), Some(d)) = (of("item.failed"), of("order.finished")) {
            assert_eq!(parsed.len(), 2, "nothing else: {parsed:?}");
            break (f, d);
        }
        assert!(tokio::time::Instant::now() < deadline, "pushes: {parsed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failed["data"]["card"], stopped.as_str());
    assert_eq!(failed["data"]["work_order_id"], o.id);
    assert!(
        failed["data"]["code"].as_str().unwrap().starts_with("GSL."),
        "{failed}"
    );
    assert_eq!(finished["data"]["work_order_id"], o.id);
    // One of two failed: the order completed (domain.md: failed only when
    // every item failed).
    assert_eq!(w.status, v1::WorkOrderStatus::Completed as i32);
    assert_eq!(finished["data"]["status"], "completed");
    assert_eq!(
        finished["data"]["counts"],
        serde_json::json!({"total": 2, "succeeded": 1, "failed": 1})
    );
    assert!(
        failed["sequence"].as_u64().unwrap() < finished["sequence"].as_u64().unwrap(),
        "the order's end comes after its item"
    );
    push.shutdown().await;
    s.shutdown().await;
}
