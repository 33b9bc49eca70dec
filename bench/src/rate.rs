//! `rate_fidelity`: 3 China Telecom adapter replicas (separate processes)
//! sharing one carrier budget against a simulator that enforces 50 change
//! calls per second strictly (at most 50 in any sliding one-second window).
//! Prints the achieved call rate as a share of the limit (goal >= 0.9 at the
//! default safety of 0.95) and the number of over-limit answers (goal 0),
//! measured at the simulator over a steady-state window with a backlog the
//! whole time. For comparison, the same with one replica pacing alone
//! (governor).
//!
//! `rate_fidelity_low`: the same three replicas at a strict 5 calls/s for
//! at least 120 s (10 s in smoke mode): at a low limit one late slot is a
//! larger share of the window, which is where over-limit answers appeared
//! (7 in 2,035 calls with one replica, 1 in 400 with three, before the
//! pacer kept half its slack for lateness).

use crate::common::{
    Mode, Service, authed, emit, import_ct_cards, service_log, spawn_ct_adapter, spawn_gateway,
};
use gsl_proto::v1;
use gsl_testkit::NatsServer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const LIMIT: u32 = 50;
const LOW_LIMIT: u32 = 5;

async fn stats(http: &reqwest::Client, admin: &str) -> Result<(f64, f64), String> {
    let v: Value = http
        .get(format!("{admin}/admin/stats"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let ct = &v["ct"];
    Ok((
        ct["allowed"]["change"].as_f64().unwrap_or(0.0),
        ct["over_limit"]["change"].as_f64().unwrap_or(0.0),
    ))
}

/// One run: `replicas` adapters in `budget` mode; returns (share of limit, over-limit answers).
async fn run_once(
    replicas: usize,
    budget: &str,
    limit: u32,
    measure_s: f64,
) -> Result<(f64, f64, f64), String> {
    let nats = NatsServer::start().await.map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("gsl-bench-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let cfg = dir.join("sim.json");
    std::fs::write(
        &cfg,
        json!({
            "cards_per_carrier": 100000,
            "completion": {"mode": "immediate"},
            "limits": {
                "ct": {"change": {"limit": limit, "window_ms": 1000}, "query": {"limit": 0}, "list": {"limit": 0}},
            },
        })
        .to_string(),
    )
    .map_err(|e| e.to_string())?;
    // The simulator takes its limits from the file.
    let sim = Service::spawn_args(
        "carrier-sim",
        &["--config", cfg.to_str().unwrap_or_default()],
        &[("RUST_LOG", service_log())],
    )
    .await?;
    let sim_url = format!("http://{}", sim.addr);
    let gw = spawn_gateway(&nats).await?;
    let gw_url = format!("http://{}", gw.addr);
    let http = reqwest::Client::new();
    // In-use CT cards from the simulator's inventory, registered with the gateway.
    let needed = (f64::from(limit) * (measure_s + 8.0)) as usize;
    let mut cards = Vec::new();
    let mut offset = 0;
    while cards.len() < needed {
        let page: Vec<Value> = http
            .get(format!(
                "{sim_url}/admin/ct/cards?offset={offset}&limit=5000"
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        offset += 5000;
        cards.extend(
            page.into_iter()
                .filter(|c| c["status"] == "in_use")
                .map(|c| {
                    let f = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                    (f("id"), f("msisdn"))
                }),
        );
    }
    cards.truncate(needed);
    let ch = Channel::from_shared(gw_url.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut orders = v1::work_orders_client::WorkOrdersClient::new(ch.clone());
    import_ct_cards(&ch, &cards, 20).await?;
    let mut adapters = Vec::new();
    for i in 0..replicas {
        adapters.push(
            spawn_ct_adapter(
                nats.url(),
                gw_url.clone(),
                &sim_url,
                &[
                    ("GSL_RATE_CHANGE", limit.to_string()),
                    ("GSL_RATE_QUERY", "0".into()),
                    ("GSL_RATE_BUDGET", budget.into()),
                    ("GSL_CONCURRENCY", "64".into()),
                    ("POD_NAME", format!("adapter-ct-{i}")),
                ],
            )
            .await?,
        );
    }
    let req = v1::SubmitRequest {
        idempotency_key: "rate".into(),
        operation: Some(v1::Operation {
            kind: Some(v1::operation::Kind::Stop(v1::Stop {})),
        }),
        cards: cards
            .iter()
            .map(|(id, _)| v1::CardRef {
                id: id.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    orders
        .submit(authed(req))
        .await
        .map_err(|e| e.to_string())?;
    // Warm up, then measure at the simulator while the backlog lasts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (a0, _) = stats(&http, &sim_url).await?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(measure_s)).await;
    let (a1, over) = stats(&http, &sim_url).await?;
    let rate = (a1 - a0) / t0.elapsed().as_secs_f64();
    drop(adapters);
    drop(gw);
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((rate / f64::from(limit), over, rate))
}

pub async fn run(mode: &Mode) -> Result<(), String> {
    let measure_s = mode.pick(20.0, 6.0);
    let (share, over, rate) = run_once(3, "shared", LIMIT, measure_s).await?;
    let mut extra = json!({
        "over_limit": over,
        "calls_per_s": (rate * 100.0).round() / 100.0,
        "limit_per_s": LIMIT,
        "replicas": 3,
        "budget": "shared (KV slot lease)",
        "goal": "share >= 0.9, over_limit 0",
    });
    if !mode.smoke() {
        let (s1, o1, _) = run_once(1, "local", LIMIT, measure_s).await?;
        extra["baseline_one_replica_local_share"] = json!((s1 * 1000.0).round() / 1000.0);
        extra["baseline_one_replica_local_over_limit"] = json!(o1);
    }
    emit("rate_fidelity", share, "share_of_limit", extra);
    let low_s = mode.pick(120.0, 10.0);
    let (share, over, rate) = run_once(3, "shared", LOW_LIMIT, low_s).await?;
    emit(
        "rate_fidelity_low",
        share,
        "share_of_limit",
        json!({
            "over_limit": over,
            "calls_per_s": (rate * 100.0).round() / 100.0,
            "limit_per_s": LOW_LIMIT,
            "measured_s": low_s,
            "replicas": 3,
            "budget": "shared (KV slot lease)",
            "goal": "share >= 0.9, over_limit 0",
        }),
    );
    Ok(())
}
