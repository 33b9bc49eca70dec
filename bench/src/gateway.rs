//! `gateway`: time to accept a 100,000-card order (`gateway_accept_100k_s`,
//! goal <= 2 s) and until all its items are on the work stream (in the
//! figure's `fanout_done_s`, in bundles of 100: large orders are answered once recorded and
//! published in the background), sustained single-card submissions
//! (`gateway_submit_per_s`, goal >= 2,000/s), and the gateway's peak memory
//! (`gateway_peak_rss_mb`, goal < 150 MB).
//!
//! Baselines in the same run, against the same nats-server: publishing
//! 100,000 messages of a work item's size with the same pipelining (the
//! floor under any 100k fan-out), and 64 concurrent publish-and-wait-for-ack
//! loops (one durable write per submission, the floor under a submission).

use crate::common::{Mode, authed, emit, median, rss_mb, spawn_gateway_with};
use bytes::Bytes;
use gsl_bus::publish::{Outgoing, Pipeline};
use gsl_proto::v1;
use gsl_testkit::NatsServer;
use serde_json::json;
use std::sync::Arc;

/// Items per work message the gateway is started with.
const BUNDLE: u64 = 100;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const BIG: u32 = 100_000;
const SMALL_CARDS: u32 = 10_000;
const CONCURRENCY: usize = 64;

fn iccid(tag: u32, n: u32) -> String {
    gsl_domain::Iccid::from_payload(&format!("898603{tag:03}{n:09}"))
        .expect("valid")
        .as_str()
        .to_owned()
}

async fn clients(
    addr: &str,
) -> Result<
    (
        v1::work_orders_client::WorkOrdersClient<Channel>,
        v1::registry_client::RegistryClient<Channel>,
    ),
    String,
> {
    let ch = Channel::from_shared(addr.to_owned())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        v1::work_orders_client::WorkOrdersClient::new(ch.clone())
            .max_encoding_message_size(64 << 20)
            .max_decoding_message_size(64 << 20),
        v1::registry_client::RegistryClient::new(ch).max_encoding_message_size(64 << 20),
    ))
}

fn order(
    key: String,
    kind: v1::operation::Kind,
    ids: impl Iterator<Item = String>,
) -> v1::SubmitRequest {
    v1::SubmitRequest {
        idempotency_key: key,
        operation: Some(v1::Operation { kind: Some(kind) }),
        cards: ids
            .map(|id| v1::CardRef {
                id,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub async fn run(mode: &Mode) -> Result<(), String> {
    let nats = NatsServer::start().await.map_err(|e| e.to_string())?;
    // No adapter runs, so no order ever completes: lift the per-tenant
    // open-order quota (1,000 by default) that would refuse all but the
    // first thousand submits.
    let gw = spawn_gateway_with(
        &nats,
        &[
            ("GSL_TENANT_MAX_OPEN_ORDERS", "10000000".into()),
            ("GSL_BUNDLE_SIZE", BUNDLE.to_string()),
        ],
    )
    .await?;
    let pid = gw.pid().ok_or("no pid")?;
    let addr = format!("http://{}", gw.addr);
    let (mut orders, mut registry) = clients(&addr).await?;

    // Registry: 100,000 activatable cards and 10,000 in use.
    let card = |id: String, status: u32| v1::Card {
        id,
        carrier: v1::Carrier::Ct as i32,
        sim_status: status,
        stop_reason: -1,
        threshold_mb: -1,
        ..Default::default()
    };
    let t = Instant::now();
    for chunk in 0..(BIG / 20_000) {
        let cards = (chunk * 20_000..(chunk + 1) * 20_000)
            .map(|n| card(iccid(1, n), 13))
            .collect();
        registry
            .import_cards(authed(v1::ImportCardsRequest { cards }))
            .await
            .map_err(|e| e.to_string())?;
    }
    let cards = (0..SMALL_CARDS).map(|n| card(iccid(2, n), 20)).collect();
    registry
        .import_cards(authed(v1::ImportCardsRequest { cards }))
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "imported {} cards in {:.1} s",
        BIG + SMALL_CARDS,
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Baseline: 100,000 pipelined publishes of a work item's size.
    let (_c, js) = gsl_bus::connect(&gsl_bus::BusConfig::new(nats.url(), "bench"))
        .await
        .map_err(|e| e.to_string())?;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "BENCH_RAW".into(),
        subjects: vec!["bench.raw.>".into()],
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let payload = Bytes::from(vec![7u8; 120]);
    let rounds = mode.rounds().min(3);
    let mut raw = Vec::new();
    let mut accept = Vec::new();
    let mut fanned = Vec::new();
    let mut work = js
        .get_stream(gsl_bus::names::STREAM_WORK)
        .await
        .map_err(|e| e.to_string())?;
    for round in 0..rounds {
        let t = Instant::now();
        let mut p = Pipeline::new(&js, 8192);
        for i in 0..BIG {
            p.push(Outgoing {
                subject: "bench.raw.x".into(),
                msg_id: Some(format!("{round}:{i}")),
                headers: None,
                payload: payload.clone(),
            })
            .await
            .map_err(|e| e.to_string())?;
        }
        p.finish().await.map_err(|e| e.to_string())?;
        raw.push(t.elapsed().as_secs_f64());

        let req = order(
            format!("big-{round}"),
            v1::operation::Kind::Activate(v1::Activate {}),
            (0..BIG).map(|n| iccid(1, n)),
        );
        let before = work.info().await.map_err(|e| e.to_string())?.state.messages;
        let t = Instant::now();
        let resp = orders
            .submit(authed(req))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        accept.push(t.elapsed().as_secs_f64());
        // Until every item is on the work stream (no adapter consumes here),
        // in bundles of `BUNDLE`.
        let deadline = Instant::now() + Duration::from_secs(120);
        let messages = u64::from(BIG).div_ceil(BUNDLE);
        while work.info().await.map_err(|e| e.to_string())?.state.messages < before + messages
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        fanned.push(t.elapsed().as_secs_f64());
        let o = resp.work_order.ok_or("no order")?;
        if o.total != u64::from(BIG) || resp.refused != 0 {
            return Err(format!(
                "unexpected order: total {} refused {}",
                o.total, resp.refused
            ));
        }
    }
    let (a, r, f) = (
        median(accept.clone()),
        median(raw.clone()),
        median(fanned.clone()),
    );
    emit(
        "gateway_accept_100k_s",
        a,
        "s",
        json!({
            "rounds": accept,
            "fanout_done_s": (f * 1000.0).round() / 1000.0,
            "baseline_raw_publish_100k_s": (r * 1000.0).round() / 1000.0,
            "fanout_ratio_to_baseline": (f / r * 100.0).round() / 100.0,
            "goal": "<= 2",
        }),
    );

    // Sustained single-card submissions, 64 concurrent clients.
    let secs = mode.pick(10.0, 2.0);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let mut c = orders.clone();
        let done = done.clone();
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u32;
            while Instant::now() < deadline {
                let n = (w as u32 * 7919 + i) % SMALL_CARDS;
                let req = order(
                    format!("s-{w}-{i}"),
                    v1::operation::Kind::Stop(v1::Stop {}),
                    std::iter::once(iccid(2, n)),
                );
                match c.submit(authed(req)).await {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
                i += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();

    // Baseline: 64 concurrent publish-and-wait loops.
    let bdone = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let js = js.clone();
        let bdone = bdone.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                if let Ok(f) = js.publish(format!("bench.raw.s{w}"), payload.clone()).await
                    && f.await.is_ok()
                {
                    bdone.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            i
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let base = bdone.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    emit(
        "gateway_submit_per_s",
        rate,
        "orders/s",
        json!({
            "concurrency": CONCURRENCY,
            "duration_s": secs,
            "errors": failed.load(Ordering::Relaxed),
            "baseline_jetstream_publish_ack_per_s": base.round(),
            "ratio_to_baseline": (rate / base * 1000.0).round() / 1000.0,
            "goal": ">= 2000",
        }),
    );
    let (now, peak) = rss_mb(pid).ok_or("cannot read /proc")?;
    emit(
        "gateway_peak_rss_mb",
        peak,
        "MB",
        json!({"rss_now_mb": (now * 10.0).round() / 10.0, "registry_cards": BIG + SMALL_CARDS, "goal": "< 150"}),
    );
    Ok(())
}
