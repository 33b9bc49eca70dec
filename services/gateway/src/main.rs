//! `gsl-gateway`: configuration from the environment (see `GatewayConfig`),
//! JSON logs, graceful drain on SIGTERM.

use gsl_gateway::Gateway;
use gsl_gateway::config::GatewayConfig;

#[tokio::main]
async fn main() {
    let telemetry = gsl_telemetry::init("gsl-gateway", &[]);
    let cfg = match GatewayConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gsl-gateway: {e}");
            std::process::exit(2);
        }
    };
    let gw = match Gateway::start(cfg).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("gsl-gateway: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {}", gw.grpc_addr);
    println!("admin on {}", gw.admin_addr);
    gsl_telemetry::shutdown::signal().await;
    tracing::info!("draining");
    gw.shutdown().await;
    telemetry.shutdown();
}
