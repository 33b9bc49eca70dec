//! `gsl-gateway`: configuration from the environment (see `GatewayConfig`),
//! JSON logs, graceful drain on SIGTERM.

use gsl_gateway::Gateway;
use gsl_gateway::config::GatewayConfig;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("migrate") => {
            let bus = gsl_bus::BusConfig::from_lookup("gsl-migrate", |k| std::env::var(k).ok());
            let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let run = async {
                let d = gsl_gateway::setup::delivery_from_env()?;
                let url = gsl_gateway::config::database_url_from(get)?;
                gsl_gateway::setup::migrate(&bus, d)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("topology ready");
                let grant = get("GSL_DATABASE_APP_ROLE");
                let store = gsl_cardstore::StoreConfig {
                    ca_cert: get("GSL_DATABASE_CA_CERT").map(std::path::PathBuf::from),
                    ..Default::default()
                };
                gsl_gateway::setup::migrate_store(&bus, &url, &store, grant.as_deref()).await
            };
            match run.await {
                Ok(done) => println!("{done}"),
                Err(e) => {
                    eprintln!("gsl-gateway migrate: {e}");
                    std::process::exit(1);
                }
            }
            return;
        }
        Some("nats-user") => {
            let yaml = args.iter().any(|a| a == "--yaml");
            let rest: Vec<&String> = args.iter().filter(|a| *a != "--yaml").collect();
            let [_, role, user, password] = rest.as_slice() else {
                eprintln!("usage: gsl-gateway nats-user <role> <user> <password> [--yaml]");
                std::process::exit(2);
            };
            match gsl_gateway::setup::nats_user(role, user, password, yaml) {
                Ok(entry) => println!("{entry}"),
                Err(e) => {
                    eprintln!("gsl-gateway nats-user: {e}");
                    std::process::exit(2);
                }
            }
            return;
        }
        _ => {}
    }
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
