//! `e2e`: the whole path against the raw bus, in one run on one machine.
//!
//! 1. `raw_jetstream_per_s`: N messages of 1 KB published to a JetStream
//!    stream by 64 concurrent publishers (each waits for its publish ack, as a
//!    client waits for its submit), consumed by a pull consumer and acked one
//!    by one; messages per second from the first publish to the last ack. The
//!    same with one pipelined publisher is printed as `pipelined_per_s`.
//! 2. `e2e_items_per_s`, `e2e_ratio`, `e2e_p50_ms`, `e2e_p99_ms`: N
//!    single-card activate orders from 64 concurrent clients through gateway
//!    -> NATS -> China Telecom adapter -> simulator (limits off, completion at
//!    once) -> outcome reported -> event seen on a tenant-wide Watch. Latency
//!    is submit call to final outcome on the watch.
//! 3. `accept_100k_s`, `drain_100k_s`: one 100,000-card activate order: the
//!    submit call, then until every item has its final outcome.
//! 4. `peak_rss_mb_<service>`: peak resident memory of gateway, adapter,
//!    carrier-sim and nats-server after all of the above.

use crate::common::{
    Mode, Service, authed, cpu_s, emit, import_ct_cards, median, rss_mb, service_log,
    spawn_ct_adapter, spawn_gateway_with,
};
use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use gsl_carrier_sim::inventory::Generator;
use gsl_domain::card::SimStatus;
use gsl_domain::carrier::Carrier;
use gsl_proto::v1;
use gsl_testkit::NatsServer;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const BIG: u64 = 100_000;
const CONCURRENCY: usize = 64;
const SEED: u64 = 11;

type Orders = v1::work_orders_client::WorkOrdersClient<Channel>;

struct Sizes {
    /// Single-card orders per round.
    n: u64,
    rounds: usize,
    /// Cards in the large order (100,000; smoke mode 10,000).
    big: u64,
}

/// Sizes by mode; `BENCH_E2E_N`, `BENCH_E2E_ROUNDS` and `BENCH_BIG_CARDS`
/// override them (for profiling one part).
fn sizes(mode: &Mode) -> Sizes {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    Sizes {
        n: env("BENCH_E2E_N").unwrap_or(mode.pick(5_000, 500)).max(1),
        rounds: env("BENCH_E2E_ROUNDS").unwrap_or(mode.pick(3, 1)).max(1) as usize,
        big: env("BENCH_BIG_CARDS")
            .unwrap_or(mode.pick(BIG, 10_000))
            .max(1),
    }
}

/// One raw round: (concurrent publishers per second, pipelined per second).
async fn raw_round(js: &jetstream::Context, round: usize, n: u64) -> Result<(f64, f64), String> {
    let payload = Bytes::from(vec![b'x'; 1024]);
    let mut rates = Vec::new();
    for pipelined in [false, true] {
        let name = format!("BENCH_RAW_{round}_{}", u8::from(pipelined));
        let subject = format!("bench.raw.{round}.{}", u8::from(pipelined));
        let stream = js
            .create_stream(jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![subject.clone()],
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                durable_name: Some("raw".into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                max_ack_pending: 10_000,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        let consume = tokio::spawn(async move {
            let mut msgs = consumer.messages().await.map_err(|e| e.to_string())?;
            let mut seen = 0u64;
            while seen < n {
                let m = msgs
                    .next()
                    .await
                    .ok_or("consumer ended")?
                    .map_err(|e| e.to_string())?;
                m.ack().await.map_err(|e| e.to_string())?;
                seen += 1;
            }
            Ok::<_, String>(Instant::now())
        });
        if pipelined {
            let mut p = gsl_bus::publish::Pipeline::new(js, 8192);
            for i in 0..n {
                p.push(gsl_bus::publish::Outgoing {
                    subject: subject.clone(),
                    msg_id: Some(i.to_string()),
                    headers: None,
                    payload: payload.clone(),
                })
                .await
                .map_err(|e| e.to_string())?;
            }
            p.finish().await.map_err(|e| e.to_string())?;
        } else {
            let next = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..CONCURRENCY {
                let (js, next, subject, payload) =
                    (js.clone(), next.clone(), subject.clone(), payload.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok::<_, String>(());
                        }
                        let mut h = async_nats::HeaderMap::new();
                        h.insert("Nats-Msg-Id", i.to_string().as_str());
                        js.publish_with_headers(subject.clone(), h, payload.clone())
                            .await
                            .map_err(|e| e.to_string())?
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }));
            }
            for t in tasks {
                t.await.map_err(|e| e.to_string())??;
            }
        }
        let end = tokio::time::timeout(Duration::from_secs(300), consume)
            .await
            .map_err(|_| "raw consumer did not finish in 300 s")?
            .map_err(|e| e.to_string())??;
        rates.push(n as f64 / (end - t).as_secs_f64());
        js.delete_stream(&name).await.map_err(|e| e.to_string())?;
    }
    Ok((rates[0], rates[1]))
}

/// When each order was submitted and when its final outcome was seen.
#[derive(Default)]
struct Timing {
    submitted: HashMap<u64, Instant>,
    done: HashMap<u64, (Instant, bool)>,
}

/// Follow every final item outcome of the tenant.
fn watch_outcomes(mut orders: Orders, timing: Arc<Mutex<Timing>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(resp) = orders
            .watch(authed(v1::WatchRequest {
                work_order_id: 0,
                after_sequence: 0,
            }))
            .await
        else {
            eprintln!("watch refused");
            return;
        };
        let mut s = resp.into_inner();
        while let Some(Ok(ev)) = s.next().await {
            let Some(e) = ev.event else { continue };
            if let Some(v1::work_order_event::Event::Item(item)) = e.event {
                let ok = item.kind == v1::OutcomeKind::Succeeded as i32;
                if ok || item.kind == v1::OutcomeKind::Failed as i32 {
                    let now = Instant::now();
                    if let Ok(mut t) = timing.lock() {
                        t.done.entry(e.work_order_id).or_insert((now, ok));
                    }
                }
            }
        }
    })
}

fn activate(key: String, cards: impl Iterator<Item = String>) -> v1::SubmitRequest {
    v1::SubmitRequest {
        idempotency_key: key,
        operation: Some(v1::Operation {
            kind: Some(v1::operation::Kind::Activate(v1::Activate {})),
        }),
        cards: cards
            .map(|id| v1::CardRef {
                id,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct E2eRound {
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
    submit_errors: u64,
}

async fn e2e_round(
    orders: &Orders,
    timing: &Arc<Mutex<Timing>>,
    round: usize,
    cards: &[String],
) -> Result<E2eRound, String> {
    let n = cards.len() as u64;
    let cards: Arc<Vec<String>> = Arc::new(cards.to_vec());
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let ids = Arc::new(Mutex::new(Vec::with_capacity(cards.len())));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (mut c, next, errors, cards, ids, timing) = (
            orders.clone(),
            next.clone(),
            errors.clone(),
            cards.clone(),
            ids.clone(),
            timing.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let card = cards[i as usize].clone();
                let start = Instant::now();
                let req = activate(format!("e2e-{round}-{i}"), std::iter::once(card));
                match c.submit(authed(req)).await {
                    Ok(r) => {
                        if let Some(o) = r.into_inner().work_order {
                            if let Ok(mut t) = timing.lock() {
                                t.submitted.insert(o.id, start);
                            }
                            if let Ok(mut v) = ids.lock() {
                                v.push(o.id);
                            }
                        }
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("submit failed: {e}");
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    let ids: Vec<u64> = ids.lock().map_err(|e| e.to_string())?.clone();
    // Wait for every accepted order's outcome (bounded: a stuck item is reported, not waited on forever).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen = {
            let t = timing.lock().map_err(|e| e.to_string())?;
            ids.iter().filter(|id| t.done.contains_key(id)).count()
        };
        if seen == ids.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = timing.lock().map_err(|e| e.to_string())?;
    let mut last = t0;
    let mut lat = Vec::with_capacity(ids.len());
    let mut failed = 0;
    for id in &ids {
        match (t.submitted.get(id), t.done.get(id)) {
            (Some(s), Some((d, ok))) => {
                lat.push(d.saturating_duration_since(*s).as_secs_f64() * 1000.0);
                last = last.max(*d);
                if !ok {
                    failed += 1;
                }
            }
            _ => failed += 1,
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let through = lat.len() as f64;
    Ok(E2eRound {
        per_s: through / (last - t0).as_secs_f64().max(1e-9),
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        failed,
        submit_errors: errors.load(Ordering::Relaxed),
    })
}

/// Messages each client connection has sent and received so far, by
/// connection name (from nats-server's monitoring endpoint).
async fn bus_messages(http: &reqwest::Client, port: u16) -> HashMap<String, (f64, f64)> {
    let mut out = HashMap::new();
    let Ok(r) = http
        .get(format!("http://127.0.0.1:{port}/connz?limit=1000"))
        .send()
        .await
    else {
        return out;
    };
    let Ok(v) = r.json::<serde_json::Value>().await else {
        return out;
    };
    for c in v["connections"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("unnamed").to_owned();
        let e = out.entry(name).or_insert((0.0, 0.0));
        // The server's in_msgs are what the client sent.
        e.0 += c["in_msgs"].as_f64().unwrap_or(0.0);
        e.1 += c["out_msgs"].as_f64().unwrap_or(0.0);
    }
    out
}

fn per_item(
    a: &HashMap<String, (f64, f64)>,
    b: &HashMap<String, (f64, f64)>,
    items: f64,
) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (name, (sent, got)) in b {
        let (s0, g0) = a.get(name).copied().unwrap_or_default();
        m.insert(
            name.clone(),
            json!({"sent": ((sent - s0) / items * 10.0).round() / 10.0, "received": ((got - g0) / items * 10.0).round() / 10.0}),
        );
    }
    serde_json::Value::Object(m)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

pub async fn run(mode: &Mode) -> Result<(), String> {
    let sz = sizes(mode);

    // Monitoring on: per-connection message counts show what an item costs the bus.
    let monitor = gsl_testkit::free_port().map_err(|e| e.to_string())?;
    let nats = NatsServer::start_with(gsl_testkit::NatsOptions {
        extra_config: format!("http: 127.0.0.1:{monitor}"),
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let http = reqwest::Client::new();
    let (_client, js) = gsl_bus::connect(&gsl_bus::BusConfig::new(nats.url(), "bench-raw"))
        .await
        .map_err(|e| e.to_string())?;

    // 1. Raw baseline.
    let raw_n = sz.n.max(mode.pick(20_000, 2_000));
    let mut raw = Vec::new();
    let mut piped = Vec::new();
    for round in 0..sz.rounds {
        let (r, p) = raw_round(&js, round, raw_n).await?;
        raw.push(r);
        piped.push(p);
    }
    let raw_per_s = median(raw.clone());
    let piped_per_s = median(piped.clone());
    emit(
        "raw_jetstream_per_s",
        raw_per_s,
        "msgs/s",
        json!({
            "n": raw_n, "message_bytes": 1024, "publishers": CONCURRENCY,
            "rounds": raw.iter().map(|v| v.round()).collect::<Vec<_>>(),
            "pipelined_per_s": piped_per_s.round(),
        }),
    );

    // 2. The stack: simulator (limits off, every card activatable), gateway, one CT adapter.
    let total_cards = sz.n * sz.rounds as u64 + sz.big;
    let sim = Service::spawn(
        "carrier-sim",
        &[
            ("SIM_UNLIMITED", "1".into()),
            ("SIM_ALL_STATUS", "activatable".into()),
            ("SIM_SEED", SEED.to_string()),
            ("SIM_CARDS_PER_CARRIER", total_cards.to_string()),
            ("SIM_LISTEN", "127.0.0.1:0".into()),
            ("RUST_LOG", service_log()),
        ],
    )
    .await?;
    let sim_url = format!("http://{}", sim.addr);
    // 5,000 single-card orders are submitted as fast as 64 clients can:
    // lift the per-tenant open-order quota (1,000 by default).
    let gw =
        spawn_gateway_with(&nats, &[("GSL_TENANT_MAX_OPEN_ORDERS", "10000000".into())]).await?;
    let gw_url = format!("http://{}", gw.addr);
    // China Telecom never completes a change at once, so the adapter reads
    // it back after a wait (one poll interval, then 0.9 x the learned
    // completion time); the simulator here completes at once, so a short
    // interval keeps the figure about the pipeline, not the wait.
    let adapter = spawn_ct_adapter(
        nats.url(),
        gw_url.clone(),
        &sim_url,
        &[
            ("GSL_RATE_CHANGE", "0".into()),
            ("GSL_RATE_QUERY", "0".into()),
            ("GSL_CONCURRENCY", "256".into()),
            ("GSL_POLL_INTERVAL_MS", "100".into()),
            ("POD_NAME", "adapter-ct-0".into()),
        ],
    )
    .await?;

    // The simulator's cards, as its generator makes them (same seed and count).
    let generator = Generator {
        carrier: Carrier::Ct,
        seed: SEED,
        count: total_cards,
        all_status: Some(SimStatus::Activatable),
    };
    let cards: Vec<(String, String)> = (0..total_cards)
        .map(|s| (generator.id_at(s), generator.msisdn_at(s)))
        .collect();
    let ids: Vec<String> = cards.iter().map(|(id, _)| id.clone()).collect();
    let ch = Channel::from_shared(gw_url.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    import_ct_cards(&ch, &cards, 13).await?;
    eprintln!(
        "registered {} cards in {:.1} s",
        ids.len(),
        t.elapsed().as_secs_f64()
    );
    let orders = v1::work_orders_client::WorkOrdersClient::new(ch.clone())
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);

    // 3. End to end, single-card orders.
    let timing = Arc::new(Mutex::new(Timing::default()));
    let watcher = watch_outcomes(orders.clone(), timing.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pids = [
        ("gateway", gw.pid()),
        ("adapter", adapter.pid()),
        ("carrier_sim", sim.pid()),
        ("nats", nats.pid()),
        ("bench_client", Some(std::process::id())),
    ];
    let cpu = || pids.map(|(_, p)| p.and_then(cpu_s).unwrap_or(0.0));
    let cpu0 = cpu();
    let msgs0 = bus_messages(&http, monitor).await;
    let mut rounds = Vec::new();
    for round in 0..sz.rounds {
        let lo = round * sz.n as usize;
        let r = e2e_round(&orders, &timing, round, &ids[lo..lo + sz.n as usize]).await?;
        eprintln!(
            "e2e round {round}: {:.0} items/s, p50 {:.1} ms, p99 {:.1} ms, failed {}, submit errors {}",
            r.per_s, r.p50_ms, r.p99_ms, r.failed, r.submit_errors
        );
        rounds.push(r);
    }
    watcher.abort();
    let cpu1 = cpu();
    let msgs1 = bus_messages(&http, monitor).await;
    let items = (sz.n * sz.rounds as u64) as f64;
    let cpu_ms: serde_json::Map<String, serde_json::Value> = pids
        .iter()
        .zip(cpu0.iter().zip(cpu1.iter()))
        .map(|((name, _), (a, b))| {
            (
                name.to_string(),
                json!(((b - a) / items * 1e6).round() / 1000.0),
            )
        })
        .collect();
    let per_s = median(rounds.iter().map(|r| r.per_s).collect());
    let p50 = median(rounds.iter().map(|r| r.p50_ms).collect());
    let p99 = median(rounds.iter().map(|r| r.p99_ms).collect());
    let failed: u64 = rounds.iter().map(|r| r.failed + r.submit_errors).sum();
    let common = json!({"n": sz.n, "rounds": sz.rounds, "clients": CONCURRENCY, "adapter_concurrency": 256, "failed_or_missing": failed});
    emit(
        "e2e_items_per_s",
        per_s,
        "items/s",
        json!({
            "rounds_per_s": rounds.iter().map(|r| r.per_s.round()).collect::<Vec<_>>(),
            "cpu_ms_per_item": cpu_ms,
            "bus_messages_per_item": per_item(&msgs0, &msgs1, items),
            "setup": common,
        }),
    );
    emit(
        "e2e_ratio",
        per_s / raw_per_s,
        "ratio",
        json!({
            "baseline": "raw_jetstream_per_s",
            "ratio_to_pipelined": round3(per_s / piped_per_s),
            "goal": ">= 0.2",
        }),
    );
    emit(
        "e2e_p50_ms",
        p50,
        "ms",
        json!({"rounds": rounds.iter().map(|r| round3(r.p50_ms)).collect::<Vec<_>>()}),
    );
    emit(
        "e2e_p99_ms",
        p99,
        "ms",
        json!({"rounds": rounds.iter().map(|r| round3(r.p99_ms)).collect::<Vec<_>>()}),
    );

    // 4. One 100,000-card order.
    {
        let lo = sz.n as usize * sz.rounds;
        let big: Vec<String> = ids[lo..lo + sz.big as usize].to_vec();
        let mut o = orders.clone();
        let t = Instant::now();
        let resp = o
            .submit(authed(activate("big".into(), big.into_iter())))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let accept = t.elapsed().as_secs_f64();
        let wo = resp.work_order.ok_or("no order")?;
        emit(
            "accept_100k_s",
            accept,
            "s",
            json!({"cards": sz.big, "total": wo.total, "refused": resp.refused, "goal": "<= 2"}),
        );
        let deadline = Instant::now() + Duration::from_secs(mode.pick(900, 600));
        let (succeeded, failed) = loop {
            let cur = o
                .get(authed(v1::GetRequest { id: wo.id }))
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            if cur.succeeded + cur.failed >= cur.total || Instant::now() > deadline {
                break (cur.succeeded, cur.failed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let drain = t.elapsed().as_secs_f64();
        emit(
            "drain_100k_s",
            drain,
            "s",
            json!({
                "succeeded": succeeded, "failed": failed,
                "cards": sz.big,
                "items_per_s": (sz.big as f64 / drain).round(),
                "complete": succeeded + failed >= sz.big,
            }),
        );
    }

    // 5. Peak memory of each service.
    for (name, pid, goal) in [
        ("gateway", gw.pid(), "< 150"),
        ("adapter", adapter.pid(), "< 100"),
        ("carrier_sim", sim.pid(), "none (simulator)"),
        ("nats", nats.pid(), "none (nats-server)"),
    ] {
        if let Some((now, peak)) = pid.and_then(rss_mb) {
            emit(
                &format!("peak_rss_mb_{name}"),
                peak,
                "MB",
                json!({"rss_now_mb": (now * 10.0).round() / 10.0, "goal": goal}),
            );
        }
    }

    drop(adapter);
    drop(gw);
    drop(sim);
    Ok(())
}
