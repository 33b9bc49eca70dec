//! `gsl-adapter`: one carrier's adapter. Configuration from the environment
//! (see `gsl_adapter_kit::config::AdapterConfig::from_env`); drains on SIGTERM.

use gsl_adapter_kit::Adapter;
use gsl_adapter_kit::config::AdapterConfig;

#[tokio::main]
async fn main() {
    let cfg = match AdapterConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gsl-adapter: {e}");
            std::process::exit(2);
        }
    };
    let telemetry = gsl_telemetry::init(
        "gsl-adapter",
        &[("gsl.carrier", cfg.carrier.as_str().to_owned())],
    );
    let api = gsl_adapter::module_for(&cfg);
    let adapter = match Adapter::start(cfg, api).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gsl-adapter: {e}");
            std::process::exit(1);
        }
    };
    // Every service announces its address the same way (scripts wait for it).
    println!("listening on {}", adapter.admin_addr);
    gsl_telemetry::shutdown::signal().await;
    tracing::info!("draining");
    adapter.shutdown().await;
    telemetry.shutdown();
}
