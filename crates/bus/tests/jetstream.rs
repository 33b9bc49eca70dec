//! The bus against a real nats-server: publish, consume, ack, de-duplicate,
//! and survive a server restart.

use async_nats::jetstream::consumer::{AckPolicy, pull};
use futures::StreamExt;
use gsl_bus::codec::{decode, encode};
use gsl_bus::names::{self, STREAM_WORK};
use gsl_bus::publish::{Outgoing, Pipeline, publish_one};
use gsl_bus::topology::{Topology, check, ensure};
use gsl_bus::{BusConfig, connect};
use gsl_domain::{Carrier, OperationKind};
use gsl_proto::v1;
use gsl_testkit::NatsServer;
use std::time::Duration;

fn item(wo: u64, card: &str) -> Outgoing {
    let msg = v1::WorkItem {
        work_order_id: wo,
        card: card.into(),
        carrier: v1::Carrier::Ct as i32,
        ..Default::default()
    };
    Outgoing {
        subject: names::work_subject(Carrier::Ct, OperationKind::Stop),
        msg_id: Some(names::work_msg_id(wo, card)),
        headers: None,
        payload: encode(&msg),
    }
}

async fn consumer(
    js: &async_nats::jetstream::Context,
) -> async_nats::jetstream::consumer::Consumer<pull::Config> {
    let stream = js.get_stream(STREAM_WORK).await.unwrap();
    stream
        .get_or_create_consumer(
            "adapter-ct",
            pull::Config {
                durable_name: Some("adapter-ct".into()),
                filter_subject: names::work_filter(Carrier::Ct),
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn publish_consume_ack_and_deduplicate() {
    let nats = NatsServer::start().await.unwrap();
    let (_c, js) = connect(&BusConfig::new(nats.url(), "test")).await.unwrap();
    ensure(&js, &Topology::default()).await.unwrap();
    check(&js).await.unwrap();
    // Creating the topology twice is harmless.
    ensure(&js, &Topology::default()).await.unwrap();

    let mut p = Pipeline::new(&js, 256);
    for i in 0..500u32 {
        p.push(item(1, &format!("card{i}"))).await.unwrap();
    }
    // A retried publish with the same id is dropped inside the window.
    for i in 0..100u32 {
        p.push(item(1, &format!("card{i}"))).await.unwrap();
    }
    assert_eq!(p.finish().await.unwrap(), 600);
    let mut stream = js.get_stream(STREAM_WORK).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 500);

    let c = consumer(&js).await;
    let mut msgs = c.messages().await.unwrap();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 500 {
        let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
            .await
            .expect("message within 10 s")
            .unwrap()
            .unwrap();
        let wi: v1::WorkItem = decode("WorkItem", &m.payload).unwrap();
        assert_eq!(wi.work_order_id, 1);
        assert!(seen.insert(wi.card));
        m.ack().await.unwrap();
    }
    // Work-queue retention: acked messages are gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
}

#[tokio::test]
async fn message_survives_server_restart() {
    let mut nats = NatsServer::start().await.unwrap();
    {
        let (_c, js) = connect(&BusConfig::new(nats.url(), "test")).await.unwrap();
        ensure(&js, &Topology::default()).await.unwrap();
        publish_one(&js, item(9, "survivor")).await.unwrap();
    }
    nats.kill().await;
    nats.restart().await.unwrap();
    let (_c, js) = connect(&BusConfig::new(nats.url(), "test")).await.unwrap();
    check(&js).await.unwrap();
    let c = consumer(&js).await;
    let mut msgs = c.messages().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
        .await
        .expect("message after restart")
        .unwrap()
        .unwrap();
    let wi: v1::WorkItem = decode("WorkItem", &m.payload).unwrap();
    assert_eq!((wi.work_order_id, wi.card.as_str()), (9, "survivor"));
    m.ack().await.unwrap();
}

/// Records and guards written before keys carried their carrier are moved
/// under it by the setup step, and nothing already moved is touched.
#[tokio::test]
async fn old_item_and_guard_keys_move_under_their_carrier() {
    let nats = NatsServer::start().await.unwrap();
    let (_c, js) = connect(&BusConfig::new(nats.url(), "t")).await.unwrap();
    let b = ensure(&js, &Topology::default()).await.unwrap();
    // A CT card by its issuer prefix; a tri-net card only the (legacy KV)
    // registry knows.
    let ct_id = gsl_domain::Iccid::from_payload("898603123456789012").unwrap();
    let ct = ct_id.as_str();
    let tri = "TRI001000000007";
    let legacy = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: names::KV_CARDS.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    legacy
        .put(
            tri,
            encode(&v1::Card {
                id: tri.into(),
                carrier: v1::Carrier::Trinet as i32,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    b.items
        .put(format!("7.{ct}"), "ct-record".into())
        .await
        .unwrap();
    b.items
        .put(format!("8.{tri}"), "tri-record".into())
        .await
        .unwrap();
    b.guards
        .put(format!("same.{ct}.stop"), "guard".into())
        .await
        .unwrap();
    b.items
        .put(format!("ct.9.{ct}"), "already".into())
        .await
        .unwrap();
    b.items.put("10.unknowncard", "stays".into()).await.unwrap();
    assert_eq!(gsl_bus::topology::migrate_keys(&js, &b).await.unwrap(), 3);
    let get = |s: &async_nats::jetstream::kv::Store, k: String| {
        let s = s.clone();
        async move {
            s.get(k)
                .await
                .unwrap()
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
        }
    };
    assert_eq!(
        get(&b.items, format!("ct.7.{ct}")).await.as_deref(),
        Some("ct-record")
    );
    assert_eq!(
        get(&b.items, format!("trinet.8.{tri}")).await.as_deref(),
        Some("tri-record")
    );
    assert_eq!(
        get(&b.guards, format!("ct.same.{ct}.stop"))
            .await
            .as_deref(),
        Some("guard")
    );
    assert_eq!(
        get(&b.items, format!("7.{ct}")).await,
        None,
        "the old key is gone"
    );
    assert_eq!(
        get(&b.items, format!("ct.9.{ct}")).await.as_deref(),
        Some("already")
    );
    assert_eq!(
        get(&b.items, "10.unknowncard".into()).await.as_deref(),
        Some("stays")
    );
    // Idempotent.
    assert_eq!(gsl_bus::topology::migrate_keys(&js, &b).await.unwrap(), 0);
}
