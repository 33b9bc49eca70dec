//! `sync`: what card sync costs the carriers, how fast it sees a change, and
//! what it costs work orders.
//!
//! Every run is a fresh stack (nats-server, carrier-sim, gateway, one
//! adapter as processes), every unsure setting at its default.
//!
//! * `sync_calls_per_card`: carrier calls (every request the simulator's
//!   platform received) per card for one full sweep of the store's cards,
//!   one field per carrier, each next to its contract's minimum (CMCC 1:
//!   25S04 per card, every card in use so no 25S02; CT 1:
//!   `queryCardMainStatus` per card; CU 1: `ctdUsages` per card; tri-net
//!   0.01: list pages of 100), and `ratio_to_minimum` of the worst carrier;
//!   with the usage part run too, the usage sweep's figures (below) as
//!   `usage_sweep`.
//!   The simulator's limit and the adapter's pacing are off for these
//!   (`limit_per_s` 0): calls per card do not depend on the limit, and at
//!   1,000 calls/s a shared slot is usable for a quarter of a millisecond,
//!   so on this loaded 2-core machine most slots were dropped as late and
//!   a 100,000-card sweep crawled (see docs/benchmarks.md). The sweep is
//!   still spread over its interval (`cards / 1,000` s).
//! * `sync_calls_per_card_incremental`: calls per fleet card for the
//!   changed-since pass after 1 % of the cards changed at the carrier (CU:
//!   one list call per 50 changed plus one read per changed card; tri-net:
//!   one list call per 100 changed). CMCC and CT have no changed-since
//!   query: their incremental cost is the sweep's.
//! * `sync_drift_detect_s`: from a change at the simulator to its
//!   `CardChanged` event on the bus (median), with the interval it ran
//!   under: CU's changed-since pass, CMCC's sweep.
//! * `sync_usage_calls_per_card`: carrier calls per card for one usage
//!   sweep of the store's cards, per carrier, each next to its contract's
//!   minimum: CMCC 0.02 (25U03 month and 25U01 yesterday, 100 cards each),
//!   CT 0.01 (`batchQryFlowByMonth`, 100 cards: the size is unsure), CU 0
//!   more (`ctdUsages`, one card a call, is the card sweep's own read:
//!   usage comes with it), tri-net 0.01 (usage query, 100 cards). Counted
//!   by the simulator per API path, so the card sweep running beside it
//!   does not blur the figure. The next sweep is due as this one ends, so
//!   its first batch may be in the count (one call: +0.001 per carrier at
//!   100,000 cards, +0.05 at the smoke size).
//! * `sync_workorder_slowdown`: a China Telecom stop's time with a CT sweep
//!   running beside it over the same budget, divided by its time alone
//!   (same run, strict 5 calls/s per class), with `over_limit` (answers the
//!   simulator gave over its limit).
//!
//! Sizes: `BENCH_SYNC_CARDS` (default 100,000; smoke 200) per carrier for
//! the sweep, `BENCH_SYNC_STOP_CARDS` (1,000; smoke 20) for the stop.
//! `BENCH_SYNC_PARTS=sweep,usage,incremental,detect,slowdown` runs some of them.

use crate::common::{Mode, Service, emit, import_cards, service_log, spawn_adapter, spawn_gateway};
use futures::StreamExt;
use gsl_carrier_sim::inventory::Generator;
use gsl_domain::card::SimStatus;
use gsl_domain::carrier::Carrier;
use gsl_proto::v1;
use gsl_testkit::NatsServer;
use prost::Message;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const SEED: u64 = 29;

struct Stack {
    nats: NatsServer,
    _sim: Service,
    sim_url: String,
    _gw: Service,
    gw_url: String,
    ch: Channel,
    js: async_nats::jetstream::Context,
    client: async_nats::Client,
    http: reqwest::Client,
    ids: Vec<(String, String)>,
}

/// A stack for `c` with `cards` generated at the simulator (all in use,
/// limit `limit` calls/s per class, changes completing after `delay_ms`),
/// `imported` of them registered with the gateway.
async fn stack(
    c: Carrier,
    cards: u64,
    imported: u64,
    limit: u32,
    delay_ms: u64,
) -> Result<Stack, String> {
    let nats = NatsServer::start().await.map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("gsl-bench-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let cfg = dir.join(format!("sim-{}.json", c.as_str()));
    let one = json!({"limit": limit, "window_ms": 1000});
    let mut limits = serde_json::Map::new();
    limits.insert(
        c.as_str().into(),
        json!({"change": one, "query": one, "list": one, "shared": c == Carrier::Cu}),
    );
    std::fs::write(
        &cfg,
        json!({
            "seed": SEED,
            "cards_per_carrier": cards,
            "all_status": "in_use",
            "completion": {"mode": "delay", "delay_ms": delay_ms},
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
    let gw = spawn_gateway(&nats).await?;
    let gw_url = format!("http://{}", gw.addr);
    let generator = Generator {
        carrier: c,
        seed: SEED,
        count: cards,
        all_status: Some(SimStatus::InUse),
    };
    let ids: Vec<(String, String)> = (0..cards)
        .map(|s| (generator.id_at(s), generator.msisdn_at(s)))
        .collect();
    let ch = Channel::from_shared(gw_url.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    import_cards(
        &ch,
        c,
        &ids[..imported as usize],
        u32::from(SimStatus::InUse.code()),
    )
    .await?;
    let (client, js) = gsl_bus::connect(&gsl_bus::BusConfig::new(nats.url(), "bench-sync"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(Stack {
        nats,
        _sim: sim,
        sim_url,
        _gw: gw,
        gw_url,
        ch,
        js,
        client,
        http: reqwest::Client::new(),
        ids,
    })
}

impl Stack {
    async fn adapter(&self, c: Carrier, extra: &[(&str, String)]) -> Result<Service, String> {
        spawn_adapter(
            c,
            self.nats.url(),
            self.gw_url.clone(),
            &self.sim_url,
            extra,
        )
        .await
    }

    async fn stats(&self, c: Carrier) -> Result<Value, String> {
        let v: Value = self
            .http
            .get(format!("{}/admin/stats", self.sim_url))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok(v[c.as_str()].clone())
    }

    async fn requests(&self, c: Carrier) -> Result<f64, String> {
        Ok(self.stats(c).await?["requests"].as_f64().unwrap_or(0.0))
    }

    async fn over_limit(&self, c: Carrier) -> Result<u64, String> {
        let s = self.stats(c).await?;
        let o = &s["over_limit"];
        Ok(["change", "query", "list"]
            .iter()
            .map(|k| o[*k].as_u64().unwrap_or(0))
            .sum())
    }

    /// A `<carrier>.<what>` record of `gsl_sync`.
    async fn progress(&self, c: Carrier, what: &str) -> Value {
        let Ok(kv) = self.js.get_key_value(gsl_bus::names::KV_SYNC).await else {
            return Value::Null;
        };
        match kv.get(format!("{}.{what}", c.as_str())).await {
            Ok(Some(v)) => serde_json::from_slice(&v).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// Wait until `<carrier>.<what>` shows a completion after `after_ms`.
    async fn completed(
        &self,
        c: Carrier,
        what: &str,
        after_ms: i64,
        within: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let p = self.progress(c, what).await;
            if p["last_complete_ms"].as_i64().unwrap_or(0) > after_ms {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{c} {what}: no completion within {within:?}: {p}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn drift(&self, c: Carrier, id: &str) -> Result<(), String> {
        let r = self
            .http
            .post(format!(
                "{}/admin/{}/cards/{id}/drift",
                self.sim_url,
                c.as_str()
            ))
            .json(&json!({"kind": "separation_stop"}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("drift {id}: {}", r.status()));
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn r4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// One full sweep of `cards` cards of `c`, spread over `cards / pace`
/// seconds, the carrier's limit `limit` (0: off): carrier calls per card.
async fn sweep_calls(c: Carrier, cards: u64, limit: u32, pace: u32) -> Result<f64, String> {
    let s = stack(c, cards, cards, limit, 0).await?;
    let interval = (cards as f64 / f64::from(pace)).max(2.0);
    let rate = limit.to_string();
    let t0 = now_ms();
    let before = s.requests(c).await?;
    let _a = s
        .adapter(
            c,
            &[
                ("GSL_SYNC", "on".into()),
                ("GSL_SYNC_INTERVAL_SECS", format!("{interval:.1}")),
                // One changed-since pass at start, then none in the sweep.
                ("GSL_SYNC_CHANGED_SECS", "86400".into()),
                ("GSL_SYNC_CHUNK", "100".into()),
                ("GSL_RATE_CHANGE", rate.clone()),
                ("GSL_RATE_QUERY", rate),
            ],
        )
        .await?;
    let within = Duration::from_secs_f64(interval * 4.0 + 120.0);
    s.completed(c, "sweep", t0 - 1, within).await?;
    let calls = s.requests(c).await? - before;
    Ok(calls / cards as f64)
}

/// The API paths of `c`'s usage reads (as the simulator counts them).
fn usage_paths(c: Carrier) -> &'static [&'static str] {
    match c {
        Carrier::Cmcc => &[
            "/v5/ec/query/sim-data-usage-monthly/batch",
            "/v5/ec/query/sim-data-usage-daily/batch",
        ],
        Carrier::Ct => &["/api/v1/batchQry/batchQryFlowByMonth"],
        Carrier::Cu => &[],
        Carrier::Trinet => &["/api/v1/usage/query"],
    }
}

/// One usage sweep of `cards` cards of `c` over `cards / pace` seconds:
/// usage calls per card (the simulator's count of the usage paths).
async fn usage_calls(c: Carrier, cards: u64, pace: u32) -> Result<f64, String> {
    let s = stack(c, cards, cards, 0, 0).await?;
    let interval = (cards as f64 / f64::from(pace)).max(2.0);
    let t0 = now_ms();
    let _a = s
        .adapter(
            c,
            &[
                ("GSL_SYNC", "on".into()),
                // The card sweep crawls beside it (a day long).
                ("GSL_SYNC_INTERVAL_SECS", "86400".into()),
                ("GSL_SYNC_CHANGED_SECS", "86400".into()),
                ("GSL_SYNC_USAGE_INTERVAL_SECS", format!("{interval:.1}")),
                ("GSL_RATE_CHANGE", "0".into()),
                ("GSL_RATE_QUERY", "0".into()),
            ],
        )
        .await?;
    s.completed(
        c,
        "usage",
        t0 - 1,
        Duration::from_secs_f64(interval * 4.0 + 120.0),
    )
    .await?;
    let by_path = s.stats(c).await?["by_path"].clone();
    let calls: f64 = usage_paths(c)
        .iter()
        .map(|p| {
            by_path
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.ends_with(p))
                .map(|(_, v)| v.as_f64().unwrap_or(0.0))
                .sum::<f64>()
        })
        .sum();
    eprintln!("{c}: usage sweep of {cards} cards: {calls} calls; by path {by_path}");
    Ok(calls / cards as f64)
}

/// A changed-since pass after 1 % of `cards` changed: calls per fleet card.
async fn incremental_calls(c: Carrier, cards: u64, limit: u32) -> Result<(f64, u64, f64), String> {
    // Nothing imported: the sweep has nothing to read, the pass is all.
    let s = stack(c, cards, 0, limit, 0).await?;
    let rate = limit.to_string();
    let t0 = now_ms();
    let _a = s
        .adapter(
            c,
            &[
                ("GSL_SYNC", "on".into()),
                ("GSL_SYNC_CHANGED_SECS", "2".into()),
                ("GSL_RATE_CHANGE", rate.clone()),
                ("GSL_RATE_QUERY", rate),
            ],
        )
        .await?;
    s.completed(c, "changed", t0 - 1, Duration::from_secs(60))
        .await?;
    let changed = (cards / 100).max(1);
    let before = s.requests(c).await?;
    for (id, _) in s
        .ids
        .iter()
        .step_by((cards / changed).max(1) as usize)
        .take(changed as usize)
    {
        s.drift(c, id).await?;
    }
    // Two passes after the last change: the second finds nothing (one call).
    let t1 = now_ms();
    s.completed(c, "changed", t1, Duration::from_secs(300))
        .await?;
    let t2 = now_ms();
    s.completed(c, "changed", t2, Duration::from_secs(300))
        .await?;
    let calls = s.requests(c).await? - before;
    eprintln!("{c}: {calls} calls for {changed} changed of {cards}");
    Ok((calls / cards as f64, changed, calls))
}

/// From a change at the simulator to its `CardChanged` on the bus.
async fn detect(
    c: Carrier,
    cards: u64,
    extra: &[(&str, String)],
    rounds: usize,
) -> Result<f64, String> {
    let s = stack(c, cards, cards, 0, 0).await?;
    let mut sub = s
        .client
        .subscribe("gsl.evt.bench.0.>")
        .await
        .map_err(|e| e.to_string())?;
    let mut env = vec![("GSL_SYNC", "on".to_string())];
    env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    let _a = s.adapter(c, &env).await?;
    // The first sweep finds nothing to publish; let it run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut times = Vec::new();
    for i in 0..rounds {
        let (id, _) = &s.ids[(i * 7 + 1) % s.ids.len()];
        let t = Instant::now();
        s.drift(c, id).await?;
        let deadline = t + Duration::from_secs(600);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = tokio::time::timeout(left, sub.next())
                .await
                .map_err(|_| format!("{c}: no CardChanged for {id}"))?
                .ok_or("event subscription ended")?;
            let ev = v1::WorkOrderEvent::decode(m.payload.as_ref()).map_err(|e| e.to_string())?;
            if let Some(v1::work_order_event::Event::CardChanged(ch)) = ev.event
                && &ch.card == id
            {
                times.push(t.elapsed().as_secs_f64());
                break;
            }
        }
    }
    Ok(crate::common::median(times))
}

/// A China Telecom stop of `cards` cards at 5 calls/s per class: seconds,
/// alone or beside a sweep of `swept` other cards, and over-limit answers.
async fn ct_stop(cards: u64, swept: u64, with_sweep: bool) -> Result<(f64, u64), String> {
    let total = cards + swept;
    let s = stack(Carrier::Ct, total, total, 5, 500).await?;
    let mut env = vec![
        ("GSL_RATE_CHANGE", "5".to_string()),
        ("GSL_RATE_QUERY", "5".to_string()),
        ("GSL_POLL_INTERVAL_MS", "500".to_string()),
    ];
    if with_sweep {
        env.extend([
            ("GSL_SYNC", "on".to_string()),
            // A sweep that would take every free call: due at once.
            ("GSL_SYNC_INTERVAL_SECS", "2".to_string()),
        ]);
    }
    let _a = s.adapter(Carrier::Ct, &env).await?;
    if with_sweep {
        // Let the sweep get going before the order arrives.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let stop_ids: Vec<String> = s.ids[swept as usize..]
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let mut orders = v1::work_orders_client::WorkOrdersClient::new(s.ch.clone());
    let t = Instant::now();
    let o = orders
        .submit(crate::common::authed(gsl_testkit::gateway::submit_request(
            "stop",
            v1::operation::Kind::Stop(v1::Stop {}),
            &stop_ids,
        )))
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .work_order
        .ok_or("no order")?;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let w = orders
            .get(crate::common::authed(v1::GetRequest { id: o.id }))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        if w.succeeded + w.failed >= w.total {
            break;
        }
        if Instant::now() > deadline {
            return Err("the stop did not finish".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok((secs, s.over_limit(Carrier::Ct).await?))
}

pub async fn run(mode: &Mode) -> Result<(), String> {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let cards = env("BENCH_SYNC_CARDS").unwrap_or(mode.pick(100_000, 200));
    let stop_cards = env("BENCH_SYNC_STOP_CARDS").unwrap_or(mode.pick(1_000, 20));
    // Calls per card do not depend on the limit: pacing off, the sweep
    // spread over cards / 1,000 s.
    let limit: u32 = 0;
    let pace: u32 = 1000;
    let parts = std::env::var("BENCH_SYNC_PARTS").unwrap_or_default();
    let part = |p: &str| parts.is_empty() || parts.split(',').any(|x| x.trim() == p);

    // Usage first: its figures also go into the sweep's line.
    let usage_fig = if part("usage") {
        Some(usage(cards, pace).await?)
    } else {
        None
    };
    if part("sweep") {
        sweeps(cards, limit, pace, usage_fig).await?;
    }
    if part("incremental") {
        incremental(cards, limit).await?;
    }
    if part("detect") {
        detection(mode).await?;
    }
    if part("slowdown") {
        slowdown(mode, stop_cards).await?;
    }
    Ok(())
}

async fn sweeps(cards: u64, limit: u32, pace: u32, usage: Option<Value>) -> Result<(), String> {
    let mut per = serde_json::Map::new();
    let minimum = [
        (Carrier::Cmcc, 1.0),
        (Carrier::Ct, 1.0),
        (Carrier::Cu, 1.0),
        (Carrier::Trinet, 0.01),
    ];
    let mut worst: (f64, &str) = (0.0, "");
    for (c, min) in minimum {
        let v = sweep_calls(c, cards, limit, pace).await?;
        eprintln!("{c}: sweep of {cards} cards: {v:.4} calls/card (minimum {min})");
        per.insert(c.as_str().into(), json!(r4(v)));
        if v / min > worst.0 {
            worst = (v / min, c.as_str());
        }
    }
    let cmcc = per["cmcc"].as_f64().unwrap_or(0.0);
    emit(
        "sync_calls_per_card",
        cmcc,
        "calls/card",
        json!({
            "carrier": "cmcc", "cards": cards, "limit_per_s": limit, "sweep_pace_per_s": pace,
            "per_carrier": per,
            "contract_minimum": {"cmcc": 1.0, "ct": 1.0, "cu": 1.0, "trinet": 0.01},
            "ratio_to_minimum": r4(worst.0), "worst": worst.1,
            "goal": "ratio_to_minimum <= 1.05",
            "usage_sweep": usage,
        }),
    );

    Ok(())
}

/// The usage sweeps: emits `sync_usage_calls_per_card` and returns its
/// figures (for the sweep's line).
async fn usage(cards: u64, pace: u32) -> Result<Value, String> {
    let minimum = [
        (Carrier::Cmcc, 0.02),
        (Carrier::Ct, 0.01),
        (Carrier::Trinet, 0.01),
    ];
    let mut per = serde_json::Map::new();
    let mut worst: (f64, &str) = (0.0, "");
    for (c, min) in minimum {
        let v = usage_calls(c, cards, pace).await?;
        per.insert(c.as_str().into(), json!(r4(v)));
        if v / min > worst.0 {
            worst = (v / min, c.as_str());
        }
    }
    let fig = json!({
        "per_carrier": per,
        "contract_minimum": {"cmcc": 0.02, "ct": 0.01, "cu": 0.0, "trinet": 0.01},
        "cu": "ctdUsages is the card sweep's read (1 call per card, sync_calls_per_card): usage adds none",
        "ratio_to_minimum": r4(worst.0), "worst": worst.1,
    });
    let mut extra = json!({
        "carrier": "cmcc", "cards": cards, "sweep_pace_per_s": pace,
        "goal": "ratio_to_minimum <= 1.05",
    });
    if let (Some(e), Some(f)) = (extra.as_object_mut(), fig.as_object()) {
        e.extend(f.clone());
    }
    emit(
        "sync_usage_calls_per_card",
        per["cmcc"].as_f64().unwrap_or(0.0),
        "calls/card",
        extra,
    );
    Ok(fig)
}

async fn incremental(cards: u64, limit: u32) -> Result<(), String> {
    let (cu_inc, changed, cu_calls) = incremental_calls(Carrier::Cu, cards, limit).await?;
    let (tn_inc, _, tn_calls) = incremental_calls(Carrier::Trinet, cards, limit).await?;
    let frac = changed as f64 / cards as f64;
    let cu_min = frac * (1.0 + 1.0 / 50.0);
    emit(
        "sync_calls_per_card_incremental",
        cu_inc,
        "calls/card",
        json!({
            "carrier": "cu", "cards": cards, "changed": changed, "limit_per_s": limit,
            "cu_calls": cu_calls, "cu_per_card": (cu_inc * 1e5).round() / 1e5,
            "cu_ratio_to_minimum": r4(cu_inc / cu_min),
            "trinet": (tn_inc * 1e5).round() / 1e5, "trinet_calls": tn_calls,
            "passes": "every 2 s; each pass costs at least one list call",
            "contract_minimum": {
                "cu": r4(cu_min),
                "trinet": r4((changed as f64 / 100.0).ceil() / cards as f64),
            },
            "cmcc_ct": "no changed-since query: a pass is the sweep (1 call per card)",
        }),
    );

    Ok(())
}

async fn detection(mode: &Mode) -> Result<(), String> {
    let rounds = mode.pick(5, 1);
    let cu_s = detect(
        Carrier::Cu,
        100,
        &[("GSL_SYNC_CHANGED_SECS", "5".into())],
        rounds,
    )
    .await?;
    let cm_s = detect(
        Carrier::Cmcc,
        100,
        &[
            ("GSL_SYNC_INTERVAL_SECS", "10".into()),
            ("GSL_SYNC_CHUNK", "5".into()),
        ],
        rounds,
    )
    .await?;
    emit(
        "sync_drift_detect_s",
        cu_s,
        "s",
        json!({
            "carrier": "cu", "changed_every_s": 5, "rounds": rounds,
            "cmcc_s": r4(cm_s), "cmcc_sweep_interval_s": 10, "cmcc_cards": 100,
            "bound": "a change is found within one pass or one sweep interval",
        }),
    );

    Ok(())
}

async fn slowdown(mode: &Mode, stop_cards: u64) -> Result<(), String> {
    let swept = mode.pick(2_000, 100);
    let (alone, over_alone) = ct_stop(stop_cards, swept, false).await?;
    let (beside, over_beside) = ct_stop(stop_cards, swept, true).await?;
    eprintln!("ct stop of {stop_cards}: {alone:.1} s alone, {beside:.1} s beside a sweep");
    emit(
        "sync_workorder_slowdown",
        beside / alone,
        "ratio",
        json!({
            "cards": stop_cards, "limit_per_s": 5, "alone_s": r4(alone), "with_sweep_s": r4(beside),
            "swept_cards": swept, "share": 0.05,
            "over_limit": over_alone + over_beside,
            "goal": "<= 1.1, over_limit 0",
        }),
    );
    Ok(())
}
