//! A NATS server behind TLS: a service given the CA (`GSL_NATS_CA_CERT`)
//! connects and uses JetStream; a client that does not trust that CA is
//! turned away, so credentials never cross in clear text.

use gsl_bus::{BusConfig, connect};
use gsl_testkit::{NatsOptions, NatsServer, tls_files};
use std::time::Duration;

#[tokio::test]
async fn services_reach_a_tls_nats_only_with_its_ca() {
    let (ca, cert, key) = tls_files();
    let nats = NatsServer::start_with(NatsOptions {
        extra_config: format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
            cert.display(),
            key.display()
        ),
        ready_ca: Some(ca.clone()),
        ..Default::default()
    })
    .await
    .expect("nats with tls");

    let mut cfg = BusConfig::from_lookup("gsl-tls-test", |k| {
        (k == "GSL_NATS_CA_CERT").then(|| ca.display().to_string())
    });
    cfg.url = nats.url();
    assert_eq!(cfg.ca_cert.as_deref(), Some(ca.as_path()));
    let (_client, js) = connect(&cfg).await.expect("connect over tls");
    js.query_account().await.expect("jetstream over tls");

    let plain = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(nats.url())
        .await;
    assert!(
        plain.is_err(),
        "a client without the CA must not get a connection"
    );
}
