//! `carrier-sim [--config sim.json]`: the simulator as a process.
//!
//! Settings: the JSON config file (see `gsl_carrier_sim::SimConfig`), then
//! `SIM_LISTEN`, `SIM_SEED`, `SIM_CARDS_PER_CARRIER`, `SIM_TIME_SCALE`,
//! `SIM_CLOCK_START`, `SIM_CLOCK_ANCHOR`, `SIM_UNLIMITED=1` (limits off,
//! immediate completion) from the environment. Prints `listening on <addr>`.

use gsl_carrier_sim::{SimConfig, SimServer};

fn fail(msg: String) -> ! {
    eprintln!("carrier-sim: {msg}");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().collect();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut cfg = if env("SIM_UNLIMITED").as_deref() == Some("1") {
        SimConfig::unlimited()
    } else {
        SimConfig::default()
    };
    if let Some(i) = args.iter().position(|a| a == "--config") {
        let path = args
            .get(i + 1)
            .unwrap_or_else(|| fail("--config needs a path".into()));
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| fail(format!("{path}: {e}")));
        cfg = serde_json::from_str(&text).unwrap_or_else(|e| fail(format!("{path}: {e}")));
    }
    if let Some(v) = env("SIM_LISTEN") {
        cfg.listen = v;
    }
    let num = |k: &str| {
        env(k).map(|v| {
            v.parse::<f64>()
                .unwrap_or_else(|_| fail(format!("{k} must be a number")))
        })
    };
    if let Some(v) = num("SIM_SEED") {
        cfg.seed = v as u64;
    }
    if let Some(v) = num("SIM_CARDS_PER_CARRIER") {
        cfg.cards_per_carrier = v as u64;
    }
    if let Some(v) = num("SIM_DRIFT_PER_HOUR") {
        cfg.drift_per_hour = v;
    }
    if let Some(v) = num("SIM_TIME_SCALE") {
        cfg.time_scale = Some(v);
    }
    if let Some(v) = env("SIM_CLOCK_START") {
        cfg.clock_start = Some(v);
    }
    if let Some(v) = env("SIM_ALL_STATUS") {
        cfg.all_status = Some(
            serde_json::from_value(serde_json::Value::String(v.clone()))
                .unwrap_or_else(|_| fail(format!("SIM_ALL_STATUS {v:?}: expected testable, not_activated, activatable, in_use, stopped or closed"))),
        );
    }
    if let Some(v) = env("SIM_CLOCK_ANCHOR") {
        cfg.clock_anchor = Some(v);
    }
    let server = SimServer::start(cfg)
        .await
        .unwrap_or_else(|e| fail(e.to_string()));
    println!("listening on {}", server.addr);
    tracing::info!(addr = %server.addr, "carrier-sim listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| fail(format!("signal handler: {e}")));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("carrier-sim stopping");
    server.shutdown().await;
}
