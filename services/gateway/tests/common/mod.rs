//! Shared helpers for the gateway's integration tests.
#![allow(dead_code)]

use gsl_domain::ids::Iccid;
use gsl_gateway::Gateway;
use gsl_gateway::auth::StaticTokens;
use gsl_gateway::config::GatewayConfig;
use gsl_proto::v1;
use gsl_testkit::NatsServer;
use std::collections::HashMap;
use tonic::Request;
use tonic::transport::Channel;

pub const ACME: &str = "tok-acme-0001";
pub const BETA: &str = "tok-beta-0002";
pub const ADAPTER: &str = "adapter-secret-1";

pub fn tokens() -> StaticTokens {
    let mut m = HashMap::new();
    m.insert(ACME.to_string(), "acme".to_string());
    m.insert(BETA.to_string(), "beta".to_string());
    StaticTokens::new(m, Some(ADAPTER.to_string())).with_adapters(
        ["cmcc", "ct", "cu", "trinet"]
            .into_iter()
            .map(|c| {
                (
                    gsl_testkit::gateway::adapter_token(ADAPTER, c),
                    c.parse().expect("a carrier"),
                )
            })
            .collect(),
    )
}

pub fn env_tokens() -> String {
    format!("{ACME}=acme,{BETA}=beta")
}

pub struct Env {
    pub nats: NatsServer,
    pub gw: Gateway,
}

pub async fn start() -> Env {
    let nats = NatsServer::start().await.expect("nats");
    let gw = Gateway::start(GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens(),
    ))
    .await
    .expect("gateway");
    Env { nats, gw }
}

pub fn url(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}")
}

/// `msg` with the bearer `token`, or with no credentials when it is empty.
pub fn with_token<T>(msg: T, token: &str) -> Request<T> {
    if token.is_empty() {
        Request::new(msg)
    } else {
        gsl_testkit::gateway::bearer(token, msg)
    }
}

pub async fn orders(addr: &str) -> v1::work_orders_client::WorkOrdersClient<Channel> {
    v1::work_orders_client::WorkOrdersClient::connect(addr.to_owned())
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

pub async fn registry(addr: &str) -> v1::registry_client::RegistryClient<Channel> {
    v1::registry_client::RegistryClient::connect(addr.to_owned())
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20)
}

pub async fn results(addr: &str) -> v1::results_client::ResultsClient<Channel> {
    v1::results_client::ResultsClient::connect(addr.to_owned())
        .await
        .unwrap()
}

/// A valid China Telecom ICCID, distinct per (tag, n).
pub fn ct_iccid(tag: u32, n: u32) -> String {
    Iccid::from_payload(&format!("898603{tag:03}{n:09}"))
        .unwrap()
        .as_str()
        .to_owned()
}

/// A valid China Mobile ICCID.
pub fn cmcc_iccid(tag: u32, n: u32) -> String {
    Iccid::from_payload(&format!("898600{tag:03}{n:09}"))
        .unwrap()
        .as_str()
        .to_owned()
}

pub fn card(id: &str, carrier: v1::Carrier, status: u32) -> v1::Card {
    v1::Card {
        id: id.to_owned(),
        carrier: carrier as i32,
        sim_status: status,
        stop_reason: if status == 14 { 5 } else { -1 },
        threshold_mb: -1,
        ..Default::default()
    }
}

pub async fn import(addr: &str, token: &str, cards: Vec<v1::Card>) -> v1::ImportCardsResponse {
    let mut c = registry(addr).await;
    c.import_cards(with_token(v1::ImportCardsRequest { cards }, token))
        .await
        .unwrap()
        .into_inner()
}

pub fn stop_op() -> v1::Operation {
    v1::Operation {
        kind: Some(v1::operation::Kind::Stop(v1::Stop {})),
    }
}

pub fn activate_op() -> v1::Operation {
    v1::Operation {
        kind: Some(v1::operation::Kind::Activate(v1::Activate {})),
    }
}

pub fn refs(ids: &[String]) -> Vec<v1::CardRef> {
    ids.iter()
        .map(|i| v1::CardRef {
            id: i.clone(),
            ..Default::default()
        })
        .collect()
}

pub fn submit_req(key: &str, op: v1::Operation, ids: &[String]) -> v1::SubmitRequest {
    v1::SubmitRequest {
        idempotency_key: key.to_owned(),
        operation: Some(op),
        cards: refs(ids),
        ..Default::default()
    }
}

/// The gateway binary as a child process (killed on drop).
pub struct GatewayProcess {
    pub child: tokio::process::Child,
    pub addr: String,
}

pub async fn spawn_gateway(nats: &NatsServer) -> GatewayProcess {
    spawn_gateway_with(nats, &[]).await
}

/// A gateway process with extra settings.
pub async fn spawn_gateway_with(nats: &NatsServer, env: &[(&str, &str)]) -> GatewayProcess {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gsl-gateway"))
        .envs(env.iter().copied())
        .env("GSL_NATS_URL", nats.url())
        .env("GSL_DATABASE_URL", nats.database_url())
        .env("GSL_TENANT_TOKENS", env_tokens())
        .env("GSL_TENANT_SELF_REGISTRATION", "on")
        .env(
            "GSL_ADAPTER_TOKENS",
            gsl_testkit::gateway::adapter_tokens_env(ADAPTER),
        )
        .env("GSL_GRPC_LISTEN", "127.0.0.1:0")
        .env("GSL_ADMIN_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn gsl-gateway");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(a) = l.strip_prefix("listening on ") {
                return a.to_owned();
            }
        }
        panic!("gateway exited before listening");
    })
    .await
    .expect("gateway listening within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    GatewayProcess {
        child,
        addr: format!("http://{addr}"),
    }
}
