//! A gateway killed (SIGKILL) in the middle of fanning out a large order:
//! no item is lost and none is published twice, whether the client retries
//! with the same idempotency key, the next gateway start finishes it, or a
//! live replica's fan-out sweep takes it over.

mod common;

use common::*;
use gsl_bus::names;
use gsl_proto::v1;
use gsl_testkit::NatsServer;
use std::collections::HashSet;
use std::time::Duration;

const N: u32 = 20_000;
/// Work messages of the order: its items go in bundles of 100 (the default).
const MESSAGES: u64 = N as u64 / 100;

async fn stream_count(js: &async_nats::jetstream::Context) -> u64 {
    js.get_stream(names::STREAM_WORK)
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .state
        .messages
}

/// Distinct items in GSL_WORK, and the total number of items in its
/// messages (bundles hold many).
async fn distinct_items(js: &async_nats::jetstream::Context) -> (usize, u64) {
    let mut stream = js.get_stream(names::STREAM_WORK).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut seen = HashSet::new();
    let mut items = 0u64;
    for seq in state.first_sequence..=state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            for wi in names::work_items(Some(&m.headers), &m.payload).unwrap() {
                seen.insert((wi.work_order_id, wi.card));
                items += 1;
            }
        }
    }
    (seen.len(), items)
}

/// Start a gateway (with `env`), register N cards, submit an N-card order
/// and kill the gateway once the fan-out has begun (with `answered_first`,
/// once the submit has also been answered: a background fan-out's first
/// items can reach the stream before the answer reaches the client). Returns
/// the cards, the count at the kill and whether the client heard "accepted".
async fn kill_mid_fanout(
    nats: &NatsServer,
    key: &str,
    tag: u32,
    env: &[(&str, &str)],
    answered_first: bool,
) -> (Vec<String>, u64, bool) {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut gw = spawn_gateway_with(nats, env).await;
    let ids: Vec<String> = (0..N).map(|i| ct_iccid(tag, i)).collect();
    // Activation: the operation that allows 100,000 cards per order.
    let r = import(
        &gw.addr,
        ACME,
        ids.iter().map(|i| card(i, v1::Carrier::Ct, 13)).collect(),
    )
    .await;
    assert_eq!(r.imported, N as u64);
    let before = stream_count(&js).await;
    let addr = gw.addr.clone();
    let req = submit_req(key, activate_op(), &ids);
    let mut submit = Some(tokio::spawn(async move {
        let mut c = orders(&addr).await;
        c.submit(with_token(req, ACME)).await
    }));
    let mut heard = None;
    if answered_first {
        let answer = submit.take().unwrap().await.unwrap();
        heard = Some(answer.is_ok());
    }
    let mut at_kill = 0;
    for _ in 0..20_000 {
        at_kill = stream_count(&js).await - before;
        if at_kill > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    gw.child.start_kill().unwrap();
    gw.child.wait().await.unwrap();
    let heard = match (heard, submit) {
        (Some(h), _) => h,
        (None, Some(task)) => task.await.unwrap().is_ok(),
        (None, None) => unreachable!("the answer was awaited or is pending"),
    };
    (ids, at_kill, heard)
}

/// Wait until the work stream holds at least `n` messages (or 30 s).
async fn wait_for_stream(nats: &NatsServer, n: u64) -> u64 {
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let mut count = 0;
    for _ in 0..300 {
        count = stream_count(&js).await;
        if count >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    count
}

#[tokio::test]
async fn client_retry_with_same_key_completes_the_fanout() {
    let nats = NatsServer::start().await.unwrap();
    // Fan-out before answering: the client is cut off without an answer.
    let sync = [("GSL_BACKGROUND_FANOUT_OVER", "off")];
    let (ids, at_kill, heard) = kill_mid_fanout(&nats, "crash-retry", 21, &sync, false).await;
    assert!(
        at_kill < MESSAGES,
        "killed mid fan-out ({at_kill} of {MESSAGES} messages published)"
    );
    assert!(!heard, "the client never heard 'accepted'");
    let gw = spawn_gateway(&nats).await;
    let mut c = orders(&gw.addr).await;
    let resp = c
        .submit(with_token(
            submit_req("crash-retry", activate_op(), &ids),
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    let o = resp.work_order.unwrap();
    assert!(resp.replayed);
    assert_eq!(o.total, N as u64);
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let (distinct, messages) = distinct_items(&js).await;
    assert_eq!(distinct, N as usize, "no item lost");
    assert_eq!(messages, N as u64, "no item published twice");
    let got = c
        .get(with_token(v1::GetRequest { id: o.id }, ACME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.processing, got.failed), (N as u64, 0));
}

#[tokio::test]
async fn restart_alone_completes_the_fanout() {
    let nats = NatsServer::start().await.unwrap();
    // Background fan-out (the default for large orders): accepted, then killed.
    let (_ids, at_kill, heard) = kill_mid_fanout(&nats, "crash-restart", 22, &[], true).await;
    assert!(
        at_kill < MESSAGES,
        "killed mid fan-out ({at_kill} of {MESSAGES} messages published)"
    );
    assert!(heard, "a large order is answered before its fan-out");
    let _gw = spawn_gateway(&nats).await;
    let count = wait_for_stream(&nats, MESSAGES).await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let (distinct, messages) = distinct_items(&js).await;
    assert_eq!(distinct, N as usize, "no item lost (stream had {count})");
    assert_eq!(messages, N as u64, "no item published twice");
}

#[tokio::test]
async fn a_live_replica_takes_over_a_dead_replicas_fanout() {
    let nats = NatsServer::start().await.unwrap();
    // Replica B runs throughout and sweeps every second for fan-outs
    // unfinished for 2 s.
    let _b = spawn_gateway_with(
        &nats,
        &[
            ("GSL_FANOUT_SWEEP_SECS", "1"),
            ("GSL_FANOUT_STALE_SECS", "2"),
        ],
    )
    .await;
    let (_ids, at_kill, heard) = kill_mid_fanout(&nats, "crash-sweep", 23, &[], true).await;
    assert!(
        at_kill < MESSAGES,
        "killed mid fan-out ({at_kill} of {MESSAGES} messages published)"
    );
    assert!(heard);
    let count = wait_for_stream(&nats, MESSAGES).await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let (distinct, messages) = distinct_items(&js).await;
    assert_eq!(distinct, N as usize, "no item lost (stream had {count})");
    assert_eq!(messages, N as u64, "no item published twice");
}
