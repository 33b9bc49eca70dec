//! `sim`: the carrier simulator's request rate with limits off
//! (`sim_requests_per_s`, goal > 20,000/s so it never limits a measurement of
//! the adapters) and its memory with 1,000,000 cards per carrier
//! (`sim_memory_1m_cards_mb`).
//!
//! Load: 64 keep-alive connections, half China Unicom device reads, half
//! status changes with fresh request ids (each one a real receipt in the
//! engine). Baseline in the same run: `/healthz` on the same server, i.e.
//! what the HTTP stack alone gives on this machine.

use crate::common::{Mode, Service, emit, median, rss_mb};
use futures::future::join_all;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 64;

async fn load(client: &reqwest::Client, urls: Arc<Vec<(String, bool)>>, secs: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let auth = "Basic Z3NsY3U6Y3Utc2VjcmV0"; // gslcu:cu-secret
    let tasks = (0..CONCURRENCY).map(|w| {
        let client = client.clone();
        let urls = urls.clone();
        let done = done.clone();
        let errors = errors.clone();
        async move {
            let mut i = w;
            while Instant::now() < deadline {
                let (url, write) = &urls[i % urls.len()];
                let req = if *write {
                    client
                        .put(url)
                        .header("authorization", auth)
                        .header("X-Request-Id", format!("b{w}-{i}"))
                        .header("content-type", "application/json")
                        .body(if i % 4 < 2 {
                            r#"{"status":"DEACTIVATED"}"#
                        } else {
                            r#"{"status":"ACTIVATED"}"#
                        })
                } else {
                    client.get(url).header("authorization", auth)
                };
                match req.send().await {
                    Ok(r) => {
                        let _ = r.bytes().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += CONCURRENCY;
            }
        }
    });
    let t = Instant::now();
    join_all(tasks).await;
    done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
}

pub async fn run(mode: &Mode) -> Result<(), String> {
    let secs = mode.pick(5.0, 1.0);
    let sim = Service::spawn(
        "carrier-sim",
        &[
            ("SIM_UNLIMITED", "1".into()),
            ("SIM_CARDS_PER_CARRIER", "100000".into()),
            ("RUST_LOG", crate::common::service_log()),
        ],
    )
    .await?;
    let base = format!("http://{}", sim.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .map_err(|e| e.to_string())?;
    let cards: Vec<serde_json::Value> = client
        .get(format!("{base}/admin/cu/cards?offset=0&limit=2000"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let mix: Vec<(String, bool)> = cards
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                format!(
                    "{base}/cu/rws/api/v1/devices/{}",
                    c["id"].as_str().unwrap_or("")
                ),
                i % 2 == 0,
            )
        })
        .collect();
    let mix = Arc::new(mix);
    let health = Arc::new(vec![(format!("{base}/healthz"), false)]);
    // warm up
    load(&client, health.clone(), 0.5).await;
    let mut rates = Vec::new();
    let mut baselines = Vec::new();
    for _ in 0..mode.rounds() {
        baselines.push(load(&client, health.clone(), secs).await);
        rates.push(load(&client, mix.clone(), secs).await);
    }
    let (rate, base_rate) = (median(rates.clone()), median(baselines.clone()));
    emit(
        "sim_requests_per_s",
        rate,
        "req/s",
        json!({
            "baseline_healthz_per_s": base_rate.round(),
            "ratio_to_baseline": (rate / base_rate * 1000.0).round() / 1000.0,
            "rounds": rates.len(),
            "rounds_values": rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
            "concurrency": CONCURRENCY,
            "mix": "50% CU device GET, 50% CU status PUT with fresh X-Request-Id",
            "goal": "> 20000",
        }),
    );
    drop(sim);

    // Memory: 1,000,000 cards per carrier; touch 100,000 of them.
    let big = Service::spawn(
        "carrier-sim",
        &[
            ("SIM_UNLIMITED", "1".into()),
            ("SIM_CARDS_PER_CARRIER", "1000000".into()),
            ("RUST_LOG", crate::common::service_log()),
        ],
    )
    .await?;
    let pid = big.pid().ok_or("no pid")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (start_rss, _) = rss_mb(pid).ok_or("cannot read /proc")?;
    let base = format!("http://{}", big.addr);
    let touch = mode.pick(100_000u64, 10_000);
    let page: Vec<serde_json::Value> = client
        .get(format!("{base}/admin/cu/cards?offset=0&limit={touch}"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let urls = Arc::new(
        page.iter()
            .map(|c| {
                (
                    format!(
                        "{base}/cu/rws/api/v1/devices/{}",
                        c["id"].as_str().unwrap_or("")
                    ),
                    true,
                )
            })
            .collect::<Vec<_>>(),
    );
    let writes = Arc::new(AtomicU64::new(0));
    let tasks = (0..CONCURRENCY).map(|w| {
        let client = client.clone();
        let urls = urls.clone();
        let writes = writes.clone();
        async move {
            let mut i = w;
            while i < urls.len() {
                let r = client
                    .put(&urls[i].0)
                    .header("authorization", "Basic Z3NsY3U6Y3Utc2VjcmV0")
                    .header("X-Request-Id", format!("m{i}"))
                    .header("content-type", "application/json")
                    .body(r#"{"usageThresholdMb":100}"#)
                    .send()
                    .await;
                if r.is_ok() {
                    writes.fetch_add(1, Ordering::Relaxed);
                }
                i += CONCURRENCY;
            }
        }
    });
    join_all(tasks).await;
    let (after_rss, peak) = rss_mb(pid).ok_or("cannot read /proc")?;
    emit(
        "sim_memory_1m_cards_mb",
        start_rss,
        "MB",
        json!({
            "cards_per_carrier": 1_000_000,
            "carriers": 4,
            "rss_after_touching_mb": (after_rss * 10.0).round() / 10.0,
            "peak_rss_mb": (peak * 10.0).round() / 10.0,
            "cards_touched": writes.load(Ordering::Relaxed),
            "note": "inventory is generated from the seed and copy-on-write: memory grows with cards touched (each touched card also holds its receipt and ground truth)",
        }),
    );
    Ok(())
}
