//! `gsl-push`: configuration from the environment (see `PushConfig`), JSON
//! logs, graceful stop on SIGTERM.

use gsl_push::Push;
use gsl_push::config::PushConfig;

#[tokio::main]
async fn main() {
    let telemetry = gsl_telemetry::init("gsl-push", &[]);
    let cfg = match PushConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gsl-push: {e}");
            std::process::exit(2);
        }
    };
    let push = match Push::start(cfg).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gsl-push: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {}", push.admin_addr);
    gsl_telemetry::shutdown::signal().await;
    tracing::info!("stopping");
    push.shutdown().await;
    telemetry.shutdown();
}
