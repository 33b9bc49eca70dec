//! An adapter reports to a gateway behind TLS: with the gateway's CA it is
//! heard (the gateway answers the report itself); without TLS it never
//! reaches the gateway, so its bearer token never crosses in clear text.

use gsl_adapter_kit::report::{ReportError, Reporter};
use gsl_gateway::Gateway;
use gsl_gateway::auth::StaticTokens;
use gsl_gateway::config::GatewayConfig;
use gsl_proto::v1;
use gsl_testkit::{NatsServer, tls_files};
use std::collections::HashMap;
use std::time::Duration;

const ADAPTER_TOKEN: &str = "adapter-secret-tls";

#[tokio::test]
async fn reports_reach_a_tls_gateway_only_over_tls() {
    let nats = NatsServer::start().await.expect("nats");
    let (ca, cert, key) = tls_files();
    let mut cfg = GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        StaticTokens::new(HashMap::new(), Some(ADAPTER_TOKEN.into())),
    );
    cfg.tls = Some((cert.display().to_string(), key.display().to_string()));
    let gw = Gateway::start(cfg).await.expect("gateway");
    let port = gw.grpc_addr.port();
    // An order the gateway never saw: only the gateway itself can say so.
    let outcome = v1::ItemOutcome {
        work_order_id: 987_654_321,
        card: "89860000000000000001".into(),
        ..Default::default()
    };

    let tls = Reporter::new(
        &format!("https://localhost:{port}"),
        &ADAPTER_TOKEN.into(),
        Duration::from_secs(5),
        Some(&ca),
    )
    .expect("reporter");
    match tls.report(outcome.clone()).await {
        Err(ReportError::Refused(_)) => {}
        other => panic!("expected the gateway's own refusal over TLS, got {other:?}"),
    }

    let plain = Reporter::new(
        &format!("http://localhost:{port}"),
        &ADAPTER_TOKEN.into(),
        Duration::from_millis(500),
        None,
    )
    .expect("reporter");
    match plain.report(outcome).await {
        Err(ReportError::GaveUp(_)) => {}
        other => panic!("a clear-text report must not be heard, got {other:?}"),
    }
    gw.shutdown().await;
}
