//! A running system for cross-service tests: nats-server, the carrier
//! simulator (in this process, so a test can read its ground truth and set
//! its faults), the gateway and adapters as real processes.

use crate::Proc;
use gsl_carrier_sim::inventory::CardRecord;
use gsl_carrier_sim::{SimConfig, SimServer};
use gsl_domain::Carrier;
use gsl_proto::{convert, v1};
use gsl_testkit::{NatsServer, gateway};
use std::time::Duration;
use tonic::Request;

pub const TENANT_TOKEN: &str = "tok-acme-secret-0001";
pub const ADAPTER_TOKEN: &str = "adapter-secret-token-7";

pub struct Rig {
    pub nats: NatsServer,
    pub sim: SimServer,
    pub gw: Proc,
    pub grpc: String,
    /// Environment every service gets (NATS, tokens, log level, OTLP...).
    pub common: Vec<(&'static str, String)>,
}

/// Start nats-server, the simulator (configured by `sim`), and the gateway
/// with `common` plus `gateway_env` in its environment.
pub async fn start(
    sim: impl FnOnce(&mut SimConfig),
    common: Vec<(&'static str, String)>,
    gateway_env: &[(&'static str, String)],
) -> Rig {
    let nats = NatsServer::start().await.expect("nats-server");
    let mut sc = SimConfig::unlimited();
    sc.cards_per_carrier = 20_000;
    sim(&mut sc);
    let sim = SimServer::start(sc).await.expect("carrier-sim");
    let mut common = common;
    common.extend([
        ("GSL_NATS_URL", nats.url()),
        ("GSL_ADMIN_LISTEN", "127.0.0.1:0".to_string()),
    ]);
    let mut env = common.clone();
    env.extend([
        ("GSL_TENANT_TOKENS", format!("{TENANT_TOKEN}=acme")),
        // The rig's tenant registers its own cards (development mode).
        ("GSL_TENANT_SELF_REGISTRATION", "on".to_string()),
        (
            "GSL_ADAPTER_TOKENS",
            gsl_testkit::gateway::adapter_tokens_env(ADAPTER_TOKEN),
        ),
        ("GSL_GRPC_LISTEN", "127.0.0.1:0".to_string()),
        ("GSL_DATABASE_URL", nats.database_url()),
    ]);
    env.extend(gateway_env.iter().cloned());
    let gw = Proc::spawn("gsl-gateway", &env).await;
    let grpc = format!("http://{}", gw.addr);
    Rig {
        nats,
        sim,
        gw,
        grpc,
        common,
    }
}

pub fn authed<T>(m: T) -> Request<T> {
    gateway::bearer(TENANT_TOKEN, m)
}

impl Rig {
    /// Environment of an adapter for `c`, with `extra` on top (limits off by default).
    pub fn adapter_env(
        &self,
        c: Carrier,
        extra: &[(&'static str, String)],
    ) -> Vec<(&'static str, String)> {
        let (u, p) = self.sim.engine.config.credentials.account(c);
        let mut env = self.common.clone();
        env.extend([
            ("GSL_CARRIER", c.as_str().to_string()),
            (
                "GSL_ADAPTER_TOKEN",
                gsl_testkit::gateway::adapter_token(ADAPTER_TOKEN, c.as_str()),
            ),
            ("GSL_CARRIER_URL", self.sim.base_url(c)),
            ("GSL_CARRIER_USER", u.to_owned()),
            ("GSL_CARRIER_SECRET", p.to_owned()),
            ("GSL_GATEWAY_URL", self.grpc.clone()),
            ("GSL_RATE_CHANGE", "0".to_string()),
            ("GSL_RATE_QUERY", "0".to_string()),
            ("GSL_POLL_INTERVAL_MS", "200".to_string()),
            // Card sync off unless a test turns it on (`extra`).
            ("GSL_SYNC", "off".to_string()),
        ]);
        env.extend(self.sim.engine.config.credentials.adapter_env(c));
        env.extend(extra.iter().cloned());
        env
    }

    pub async fn adapter(&self, c: Carrier, extra: &[(&'static str, String)]) -> Proc {
        Proc::spawn("gsl-adapter", &self.adapter_env(c, extra)).await
    }

    pub async fn orders(&self) -> gateway::OrdersClient {
        gateway::orders(&self.grpc).await.expect("gateway")
    }

    /// Generated cards `first..first+n`, changed by `f`, at the carrier and
    /// in the registry with the same state.
    pub async fn cards(
        &self,
        c: Carrier,
        first: u64,
        n: u64,
        f: impl Fn(&mut CardRecord),
    ) -> Vec<String> {
        let mut reg = v1::registry_client::RegistryClient::connect(self.grpc.clone())
            .await
            .unwrap()
            .max_encoding_message_size(64 << 20);
        let mut ids = Vec::new();
        let mut cards = Vec::new();
        for mut card in self.sim.engine.page(c, first, n) {
            f(&mut card);
            self.sim.engine.put_card(c, card.clone());
            ids.push(card.id.clone());
            cards.push(v1::Card {
                id: card.id.clone(),
                carrier: convert::carrier_to_wire(c) as i32,
                sim_status: u32::from(card.status.code()),
                stop_reason: i32::from(card.stop_reason.code()),
                pooled: card.pooled,
                real_named: card.real_named,
                threshold_mb: card.threshold_mb,
                msisdn: card.msisdn.clone(),
                imsi: card.imsi.clone(),
                access_number: if c == Carrier::Ct {
                    card.msisdn.clone()
                } else {
                    String::new()
                },
                ..Default::default()
            });
        }
        for chunk in cards.chunks(10_000) {
            let r = reg
                .import_cards(authed(v1::ImportCardsRequest {
                    cards: chunk.to_vec(),
                }))
                .await
                .unwrap()
                .into_inner();
            assert!(r.refused.is_empty(), "{:?}", r.refused.first());
        }
        ids
    }

    pub async fn submit(
        &self,
        key: &str,
        op: v1::operation::Kind,
        cards: &[String],
    ) -> v1::WorkOrder {
        self.orders()
            .await
            .submit(authed(gateway::submit_request(key, op, cards)))
            .await
            .expect("submit")
            .into_inner()
            .work_order
            .expect("work order")
    }

    pub async fn get(&self, id: u64) -> v1::WorkOrder {
        self.orders()
            .await
            .get(authed(v1::GetRequest { id }))
            .await
            .expect("get")
            .into_inner()
    }

    /// Wait until the order is terminal.
    pub async fn settled(&self, id: u64, within: Duration) -> v1::WorkOrder {
        gateway::settled(&self.grpc, TENANT_TOKEN, id, within).await
    }

    pub async fn items(&self, id: u64) -> Vec<v1::Item> {
        gateway::items(&self.grpc, TENANT_TOKEN, id).await
    }
}
