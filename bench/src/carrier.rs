//! `carrier`: what a large order costs the carrier and the bus.
//!
//! Every run is a fresh stack (nats-server, carrier-sim, gateway, one adapter
//! as processes). The simulator limits **every call of the account to one
//! budget** (changes, polls and look-ups alike) and completes each change a
//! fixed delay after accepting it.
//!
//! * `carrier_calls_per_card`: calls the simulator received (changes, polls,
//!   number look-ups, tokens; over-limit answers included) per card, for a
//!   10,000-card China Mobile stop at 5 calls/s; the same for 1,000-card
//!   China Telecom, China Unicom and tri-net stops as extra keys (those at
//!   50 calls/s: calls per card do not depend on the limit, and per-card
//!   calls at 5/s would take many minutes), each next to its contract's
//!   minimum: CMCC 0.02 (one batch change and one job poll per 100 cards),
//!   CT 2 (one change, one status read: 5GCMP changes never complete at
//!   once), CU 1 (the PUT's answer is the outcome), tri-net 2 (one change,
//!   one ticket read).
//! * `cmcc_stop_10k_s`: submit to the last final outcome of that China
//!   Mobile order, next to the carrier-bound minimum (ceil(cards / 100) x (1
//!   change + 1 poll) calls, plus one MSISDN look-up per 100 cards without
//!   one, divided by the limit, plus the completion delay), as
//!   `ratio_to_carrier_bound` (bound / measured).
//! * `bus_ops_per_card_10k`: durable bus operations (stream and bucket
//!   writes, plus deliveries, each settled by one ack) per card for that
//!   order, next to the same figure for single-card orders measured first
//!   in the same run.
//!
//! Smoke mode: 1,000 / 50 / 50 cards. `BENCH_CMCC_CARDS`, `BENCH_CMCC_LIMIT`,
//! `BENCH_BATCH_WINDOW_MS` (0: batch calls off) and `BENCH_BUNDLE_SIZE` (1:
//! bundles off) override them, to measure the per-card path in the same
//! build.

use crate::common::{
    Mode, Service, authed, emit, import_cards, service_log, spawn_adapter, spawn_gateway,
    spawn_gateway_with,
};
use futures::StreamExt;
use gsl_carrier_sim::inventory::Generator;
use gsl_domain::card::SimStatus;
use gsl_domain::carrier::Carrier;
use gsl_proto::v1;
use gsl_testkit::NatsServer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const SEED: u64 = 23;
/// Completion delay of every change at the simulator.
const DELAY_MS: u64 = 2000;

/// Requests the simulator's platform for `c` has received.
async fn sim_requests(http: &reqwest::Client, admin: &str, c: Carrier) -> Result<f64, String> {
    let v: Value = http
        .get(format!("{admin}/admin/stats"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    Ok(v[c.as_str()]["requests"].as_f64().unwrap_or(0.0))
}

/// Durable bus operations so far: every stream's (and bucket's) last
/// sequence, plus every durable consumer's deliveries.
async fn durable_ops(js: &async_nats::jetstream::Context) -> Result<f64, String> {
    let mut total = 0.0;
    let mut names = Vec::new();
    let mut streams = js.streams();
    while let Some(s) = streams.next().await {
        let s = s.map_err(|e| e.to_string())?;
        total += s.state.last_sequence as f64;
        names.push(s.config.name.clone());
    }
    for n in names {
        let stream = js.get_stream(&n).await.map_err(|e| e.to_string())?;
        let mut consumers = stream.consumers();
        while let Some(c) = consumers.next().await {
            let c = c.map_err(|e| e.to_string())?;
            if c.config.durable_name.is_some() {
                total += c.delivered.consumer_sequence as f64;
            }
        }
    }
    Ok(total)
}

fn stop(key: String, cards: &[String]) -> v1::SubmitRequest {
    gsl_testkit::gateway::submit_request(&key, v1::operation::Kind::Stop(v1::Stop {}), cards)
}

type Orders = v1::work_orders_client::WorkOrdersClient<Channel>;

/// Wait until order `id` has a final outcome for every card.
async fn settle(o: &mut Orders, id: u64, within: Duration) -> Result<(u64, u64), String> {
    let deadline = Instant::now() + within;
    loop {
        let cur = o
            .get(authed(v1::GetRequest { id }))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        if cur.succeeded + cur.failed >= cur.total {
            return Ok((cur.succeeded, cur.failed));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "order {id}: {} of {} final after {within:?}",
                cur.succeeded + cur.failed,
                cur.total
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Measured {
    cards: u64,
    calls_per_card: f64,
    secs: f64,
    succeeded: u64,
    failed: u64,
    bus_ops_per_card: f64,
    /// Bus operations per card of `single` single-card orders, measured first.
    single_bus_ops_per_card: Option<f64>,
    single_calls_per_card: Option<f64>,
}

/// One stack; `single` single-card stops first (when > 0), then one stop
/// order of `cards` cards.
async fn run_stop(c: Carrier, cards: u64, single: u64, limit: u32) -> Result<Measured, String> {
    let knob = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let nats = NatsServer::start().await.map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("gsl-bench-carrier-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let cfg = dir.join(format!("sim-{}.json", c.as_str()));
    let total = cards + single;
    let off = json!({"limit": 0, "window_ms": 1000});
    let mut limits = serde_json::Map::new();
    limits.insert(
        c.as_str().into(),
        json!({"change": {"limit": limit, "window_ms": 1000}, "query": off, "list": off, "shared": true}),
    );
    std::fs::write(
        &cfg,
        json!({
            "seed": SEED,
            "cards_per_carrier": total,
            "all_status": "in_use",
            "completion": {"mode": "delay", "delay_ms": DELAY_MS},
            "limits": limits,
        })
        .to_string(),
    )
    .map_err(|e| e.to_string())?;
    let sim = Service::spawn_args(
        "carrier-sim",
        &["--config", cfg.to_str().unwrap_or_default()],
        &[("RUST_LOG", service_log())],
    )
    .await?;
    let sim_url = format!("http://{}", sim.addr);
    let gw = match knob("BENCH_BUNDLE_SIZE") {
        Some(size) => spawn_gateway_with(&nats, &[("GSL_BUNDLE_SIZE", size)]).await?,
        None => spawn_gateway(&nats).await?,
    };
    let gw_url = format!("http://{}", gw.addr);
    let mut extra = vec![
        ("GSL_RATE_CHANGE", limit.to_string()),
        ("GSL_RATE_QUERY", limit.to_string()),
        ("GSL_RATE_ONE_BUDGET", "on".into()),
        ("GSL_POLL_INTERVAL_MS", DELAY_MS.to_string()),
        ("POD_NAME", format!("adapter-{}-0", c.as_str())),
    ];
    if let Some(w) = knob("BENCH_BATCH_WINDOW_MS") {
        extra.push(("GSL_BATCH_WINDOW_MS", w));
    }
    let _adapter = spawn_adapter(c, nats.url(), gw_url.clone(), &sim_url, &extra).await?;
    let generator = Generator {
        carrier: c,
        seed: SEED,
        count: total,
        all_status: Some(SimStatus::InUse),
    };
    let ids: Vec<(String, String)> = (0..total)
        .map(|s| (generator.id_at(s), generator.msisdn_at(s)))
        .collect();
    let ch = Channel::from_shared(gw_url)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    import_cards(&ch, c, &ids, u32::from(SimStatus::InUse.code())).await?;
    let mut orders = Orders::new(ch.clone())
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let http = reqwest::Client::new();
    let admin = sim_url.clone();
    let (_client, js) = gsl_bus::connect(&gsl_bus::BusConfig::new(nats.url(), "bench-carrier"))
        .await
        .map_err(|e| e.to_string())?;
    let within = Duration::from_secs(900);

    let (mut single_ops, mut single_calls) = (None, None);
    if single > 0 {
        let ops0 = durable_ops(&js).await?;
        let calls0 = sim_requests(&http, &admin, c).await?;
        let mut ids_single = Vec::new();
        for (i, (id, _)) in ids[cards as usize..].iter().enumerate() {
            let r = orders
                .submit(authed(stop(
                    format!("single-{i}"),
                    std::slice::from_ref(id),
                )))
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            ids_single.push(r.work_order.ok_or("no order")?.id);
        }
        for id in ids_single {
            settle(&mut orders, id, within).await?;
        }
        // Let the last acks and record writes land.
        tokio::time::sleep(Duration::from_millis(500)).await;
        single_ops = Some((durable_ops(&js).await? - ops0) / single as f64);
        single_calls = Some((sim_requests(&http, &admin, c).await? - calls0) / single as f64);
    }

    let ops0 = durable_ops(&js).await?;
    let calls0 = sim_requests(&http, &admin, c).await?;
    let big: Vec<String> = ids[..cards as usize]
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let t = Instant::now();
    let r = orders
        .submit(authed(stop("big".into(), &big)))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let wo = r.work_order.ok_or("no order")?;
    let (succeeded, failed) = settle(&mut orders, wo.id, within).await?;
    let secs = t.elapsed().as_secs_f64();
    let calls = sim_requests(&http, &admin, c).await? - calls0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ops = durable_ops(&js).await? - ops0;
    Ok(Measured {
        cards,
        calls_per_card: calls / cards as f64,
        secs,
        succeeded,
        failed,
        bus_ops_per_card: ops / cards as f64,
        single_bus_ops_per_card: single_ops,
        single_calls_per_card: single_calls,
    })
}

fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

pub async fn run(mode: &Mode) -> Result<(), String> {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let cmcc_cards = env("BENCH_CMCC_CARDS").unwrap_or(mode.pick(10_000, 1_000));
    let other_cards = mode.pick(1_000, 50);
    let single = mode.pick(200, 20);
    let cmcc_limit = env("BENCH_CMCC_LIMIT").unwrap_or(5) as u32;
    const OTHER_LIMIT: u32 = 50;

    let cm = run_stop(Carrier::Cmcc, cmcc_cards, single, cmcc_limit).await?;
    eprintln!(
        "cmcc: {} cards in {:.1} s, {:.4} calls/card, {:.1} bus ops/card",
        cm.cards, cm.secs, cm.calls_per_card, cm.bus_ops_per_card
    );
    let ct = run_stop(Carrier::Ct, other_cards, 0, OTHER_LIMIT).await?;
    eprintln!(
        "ct: {} cards in {:.1} s, {:.3} calls/card",
        ct.cards, ct.secs, ct.calls_per_card
    );
    let cu = run_stop(Carrier::Cu, other_cards, 0, OTHER_LIMIT).await?;
    eprintln!(
        "cu: {} cards in {:.1} s, {:.3} calls/card",
        cu.cards, cu.secs, cu.calls_per_card
    );
    let tn = run_stop(Carrier::Trinet, other_cards, 0, OTHER_LIMIT).await?;
    eprintln!(
        "trinet: {} cards in {:.1} s, {:.3} calls/card",
        tn.cards, tn.secs, tn.calls_per_card
    );

    emit(
        "carrier_calls_per_card",
        cm.calls_per_card,
        "calls/card",
        json!({
            "carrier": "cmcc", "cards": cm.cards, "limit_per_s": cmcc_limit, "one_budget": true,
            "ct_1k": r3(ct.calls_per_card), "ct_cards": ct.cards, "ct_limit_per_s": OTHER_LIMIT,
            "cu_1k": r3(cu.calls_per_card), "cu_cards": cu.cards, "cu_limit_per_s": OTHER_LIMIT,
            "trinet_1k": r3(tn.calls_per_card), "trinet_cards": tn.cards,
            "contract_minimum": {"cmcc": 0.02, "ct": 2.0, "cu": 1.0, "trinet": 2.0},
            "cmcc_single_card_orders": cm.single_calls_per_card.map(r3),
            "before": "about 2 per card (one change and at least one poll each)",
            "goal": "<= 0.05",
        }),
    );
    let batches = cm.cards.div_ceil(100) as f64;
    // MSISDNs come with the cards (imported), so no look-ups are needed.
    let bound = batches * 2.0 / f64::from(cmcc_limit) + DELAY_MS as f64 / 1000.0;
    emit(
        "cmcc_stop_10k_s",
        cm.secs,
        "s",
        json!({
            "cards": cm.cards, "succeeded": cm.succeeded, "failed": cm.failed,
            "carrier_bound_s": r3(bound),
            "ratio_to_carrier_bound": r3(bound / cm.secs),
            "completion_delay_ms": DELAY_MS, "limit_per_s": cmcc_limit,
            "goal": "ratio_to_carrier_bound >= 0.8",
        }),
    );
    emit(
        "bus_ops_per_card_10k",
        cm.bus_ops_per_card,
        "ops/card",
        json!({
            "cards": cm.cards,
            "single_card_orders": cm.single_bus_ops_per_card.map(r3),
            "single_card_orders_n": single,
            "ct_1k": r3(ct.bus_ops_per_card),
            "cu_1k": r3(cu.bus_ops_per_card),
            "counted": "stream and bucket writes (last sequence) + durable consumer deliveries",
        }),
    );
    Ok(())
}
