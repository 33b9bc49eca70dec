//! The whole path for tests: nats-server, gateway, carrier-sim and adapters,
//! with helpers to put a card in the same state at the carrier and in the
//! registry, submit, and wait for outcomes.
#![allow(dead_code)]

use gsl_adapter_kit::Adapter;
use gsl_adapter_kit::config::{AdapterConfig, Rate};
use gsl_carrier_sim::config::{CompletionMode, Limits};
use gsl_carrier_sim::inventory::CardRecord;
use gsl_carrier_sim::{SimConfig, SimServer};
use gsl_domain::Carrier;
use gsl_domain::clock::Clock;
use gsl_gateway::Gateway;
use gsl_gateway::auth::StaticTokens;
use gsl_gateway::config::GatewayConfig;
use gsl_proto::{convert, v1};
use gsl_testkit::{NatsServer, gateway};
use std::collections::HashMap;
use std::time::Duration;
use tonic::Request;
use tonic::transport::Channel;

pub const TENANT_TOKEN: &str = "tok-acme-0001";
pub const ADAPTER_TOKEN: &str = "adapter-secret-1";
pub const OPERATOR_TOKEN: &str = "operator-secret-1";

/// Account data the test adapters and the simulator share: China Mobile's
/// pool account (23E04), China Unicom's plan names for a speed tier and caps.
pub const CARRIER_SETTINGS: &[(&str, &str)] = &[
    ("GSL_CMCC_GROUP_ID", "G1"),
    ("GSL_CMCC_OFFER_ID", "O1"),
    ("GSL_CMCC_APN_NAME", "CMIOT"),
    ("GSL_CU_SPEED_PLANS", "512=Tier512"),
    ("GSL_CU_CAP_PLANS", "100=Cap100,-1=NoCap"),
];

#[derive(Clone)]
pub struct Opts {
    pub completion: CompletionMode,
    pub late_share: f64,
    pub time_scale: Option<f64>,
    pub clock_start: Option<String>,
    pub cooldowns_disabled: Vec<&'static str>,
    pub carriers: Vec<Carrier>,
    pub sim_limits: Option<Limits>,
    pub rate_change: Rate,
    pub poll_interval: Duration,
    pub call_timeout: Duration,
    pub max_deliver: i64,
    /// China Mobile's token `ttl` answer (seconds); `None`: the default.
    pub cmcc_token_ttl_s: Option<u64>,
    /// China Mobile's repeat window of status changes, seconds, at the
    /// simulator and in the adapter (`None`: their defaults).
    pub cmcc_window_s: Option<u64>,
    /// Card sync runs in the adapters (off by default: other tests count
    /// carrier calls exactly).
    pub sync: Option<gsl_adapter_kit::config::SyncSettings>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            completion: CompletionMode::Immediate,
            late_share: 0.0,
            time_scale: None,
            clock_start: None,
            cooldowns_disabled: vec![],
            carriers: Carrier::ALL.to_vec(),
            sim_limits: None,
            rate_change: Rate::OFF,
            poll_interval: Duration::from_millis(100),
            call_timeout: Duration::from_secs(5),
            max_deliver: 8,
            cmcc_token_ttl_s: None,
            cmcc_window_s: None,
            sync: None,
        }
    }
}

pub struct Stack {
    pub nats: NatsServer,
    pub sim: SimServer,
    pub gw: Gateway,
    pub adapters: Vec<Adapter>,
    pub opts_clock: (Option<String>, String, Option<f64>),
    pub grpc: String,
}

pub async fn stack(o: Opts) -> Stack {
    let nats = NatsServer::start().await.expect("nats");
    let anchor = format!(
        "{:.3}",
        chrono::Utc::now().timestamp_millis() as f64 / 1000.0
    );
    let mut sc = SimConfig::unlimited();
    sc.completion.mode = o.completion;
    sc.completion.late_share = o.late_share;
    sc.cards_per_carrier = 10_000;
    sc.time_scale = o.time_scale;
    sc.clock_start = o.clock_start.clone();
    sc.clock_anchor = Some(anchor.clone());
    if let Some(w) = o.cmcc_window_s {
        sc.rules.cmcc_status_spacing_s = w as i64;
    }
    if let Some(ttl) = o.cmcc_token_ttl_s {
        sc.credentials.cmcc_token_ttl_s = ttl;
    }
    sc.rules.cu_speed_plans.insert("Tier512".into(), 512);
    sc.rules.cu_cap_plans.insert("Cap100".into(), 100);
    sc.rules.cu_cap_plans.insert("NoCap".into(), -1);
    if let Some(l) = &o.sim_limits {
        for c in Carrier::ALL {
            sc.limits.insert(c, l.clone());
        }
    }
    let sim = SimServer::start(sc).await.expect("sim");
    let mut tenants = HashMap::new();
    tenants.insert(TENANT_TOKEN.to_string(), "acme".to_string());
    let gw = Gateway::start(GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        StaticTokens::new(tenants, Some(ADAPTER_TOKEN.into()))
            .with_operator(Some(OPERATOR_TOKEN.into())),
    ))
    .await
    .expect("gateway");
    let grpc = format!("http://{}", gw.grpc_addr);
    let mut s = Stack {
        nats,
        sim,
        gw,
        adapters: vec![],
        opts_clock: (o.clock_start.clone(), anchor, o.time_scale),
        grpc,
    };
    for c in &o.carriers {
        let a = Adapter::start(
            s.adapter_config(*c, &o),
            gsl_adapter::module_for(&s.adapter_config(*c, &o)),
        )
        .await
        .expect("adapter");
        s.adapters.push(a);
    }
    s
}

impl Stack {
    pub fn clock(&self) -> Clock {
        let scale = self.opts_clock.2.map(|s| s.to_string());
        Clock::from_settings(
            self.opts_clock.0.as_deref(),
            Some(&self.opts_clock.1),
            scale.as_deref(),
        )
        .unwrap()
    }

    pub fn adapter_config(&self, c: Carrier, o: &Opts) -> AdapterConfig {
        let mut cfg = AdapterConfig::new(
            c,
            &self.sim.base_url(c),
            &self.nats.url(),
            &self.grpc,
            ADAPTER_TOKEN,
        );
        let (u, p) = self.sim.engine.config.credentials.account(c);
        cfg.carrier_user = u.into();
        cfg.carrier_secret = p.into();
        for (k, v) in self.sim.engine.config.credentials.adapter_env(c) {
            cfg.set_carrier_setting(k, v);
        }
        for (k, v) in CARRIER_SETTINGS {
            cfg.set_carrier_setting(k, *v);
        }
        cfg.rate_change = o.rate_change;
        cfg.rate_query = Rate::OFF;
        cfg.poll_interval = o.poll_interval;
        cfg.call_timeout = o.call_timeout;
        cfg.max_deliver = o.max_deliver;
        cfg.ack_wait = Duration::from_secs(10);
        cfg.cooldowns_disabled = o.cooldowns_disabled.iter().map(|s| s.to_string()).collect();
        cfg.clock = self.clock();
        cfg.concurrency = 32;
        cfg.sync = o
            .sync
            .clone()
            .unwrap_or(gsl_adapter_kit::config::SyncSettings {
                enabled: false,
                ..Default::default()
            });
        if let Some(w) = o.cmcc_window_s {
            cfg.cooldown_holds
                .insert("status".into(), Duration::from_secs(w));
        }
        cfg
    }

    /// Environment for an adapter process with the same settings.
    pub fn adapter_env(&self, c: Carrier, o: &Opts) -> Vec<(String, String)> {
        let (u, p) = self.sim.engine.config.credentials.account(c);
        let mut env = vec![
            ("GSL_CARRIER", c.as_str().to_string()),
            ("GSL_CARRIER_URL", self.sim.base_url(c)),
            ("GSL_CARRIER_USER", u.to_owned()),
            ("GSL_CARRIER_SECRET", p.to_owned()),
            ("GSL_NATS_URL", self.nats.url()),
        ];
        env.extend(self.sim.engine.config.credentials.adapter_env(c));
        env.extend(CARRIER_SETTINGS.iter().map(|(k, v)| (*k, (*v).to_owned())));
        env.extend([
            ("GSL_GATEWAY_URL", self.grpc.clone()),
            ("GSL_ADAPTER_TOKEN", ADAPTER_TOKEN.to_string()),
            ("GSL_ADMIN_LISTEN", "127.0.0.1:0".to_string()),
            ("GSL_RATE_CHANGE", o.rate_change.limit.to_string()),
            ("GSL_RATE_QUERY", "0".to_string()),
            (
                "GSL_POLL_INTERVAL_MS",
                o.poll_interval.as_millis().to_string(),
            ),
            ("GSL_ACK_WAIT_SECS", "5".to_string()),
            ("GSL_CONCURRENCY", "16".to_string()),
            (
                "GSL_SYNC",
                if o.sync.is_some() { "on" } else { "off" }.to_string(),
            ),
            ("GSL_COOLDOWNS_DISABLED", o.cooldowns_disabled.join(",")),
            ("GSL_CLOCK_ANCHOR", self.opts_clock.1.clone()),
            ("RUST_LOG", "warn".to_string()),
        ]);
        if let Some(w) = o.cmcc_window_s {
            env.push(("GSL_COOLDOWN_HOLDS", format!("status={w}")));
        }
        if let Some(s) = &self.opts_clock.0 {
            env.push(("GSL_CLOCK_START", s.clone()));
        }
        if let Some(s) = self.opts_clock.2 {
            env.push(("GSL_TIME_SCALE", s.to_string()));
        }
        env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    pub async fn orders(&self) -> gateway::OrdersClient {
        gateway::orders(&self.grpc).await.unwrap()
    }

    pub async fn backoffice(&self) -> v1::back_office_client::BackOfficeClient<Channel> {
        v1::back_office_client::BackOfficeClient::connect(self.grpc.clone())
            .await
            .unwrap()
    }

    pub async fn registry(&self) -> v1::registry_client::RegistryClient<Channel> {
        v1::registry_client::RegistryClient::connect(self.grpc.clone())
            .await
            .unwrap()
            .max_encoding_message_size(64 << 20)
    }

    /// Generated card `serial`, changed by `f`, stored at the carrier and in
    /// the registry with the same state. Returns its id.
    pub async fn card(&self, c: Carrier, serial: u64, f: impl Fn(&mut CardRecord)) -> String {
        let mut card = self.sim.engine.page(c, serial, 1)[0].clone();
        f(&mut card);
        self.sim.engine.put_card(c, card.clone());
        let mut reg = self.registry().await;
        let r = reg
            .import_cards(authed(v1::ImportCardsRequest {
                cards: vec![registry_card(c, &card)],
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.imported, 1, "{:?}", r.refused);
        card.id
    }

    pub async fn submit(
        &self,
        key: &str,
        op: v1::operation::Kind,
        cards: &[String],
    ) -> v1::WorkOrder {
        let mut c = self.orders().await;
        c.submit(authed(gateway::submit_request(key, op, cards)))
            .await
            .unwrap()
            .into_inner()
            .work_order
            .unwrap()
    }

    /// Wait until the order is terminal.
    pub async fn settled(&self, id: u64, within: Duration) -> v1::WorkOrder {
        gateway::settled(&self.grpc, TENANT_TOKEN, id, within).await
    }

    pub async fn items(&self, id: u64) -> Vec<v1::Item> {
        gateway::items(&self.grpc, TENANT_TOKEN, id).await
    }

    pub async fn shutdown(self) {
        for a in self.adapters {
            a.shutdown().await;
        }
    }
}

pub fn authed<T>(m: T) -> Request<T> {
    gateway::bearer(TENANT_TOKEN, m)
}

pub fn registry_card(c: Carrier, card: &CardRecord) -> v1::Card {
    v1::Card {
        id: card.id.clone(),
        carrier: convert::carrier_to_wire(c) as i32,
        sim_status: u32::from(card.status.code()),
        stop_reason: i32::from(card.stop_reason.code()),
        pooled: card.pooled,
        real_named: card.real_named,
        trinet_version: match card.trinet_version {
            Some(gsl_domain::card::TriNetVersion::Sdk) => v1::TriNetVersion::Sdk as i32,
            Some(gsl_domain::card::TriNetVersion::NoSdk) => v1::TriNetVersion::NoSdk as i32,
            None => 0,
        },
        imei: card.imei.clone().unwrap_or_default(),
        speed_kbps: card.speed_kbps,
        threshold_mb: card.threshold_mb,
        batch_no: card.batch_no.clone(),
        // China Mobile numbers come with the card; China Telecom access
        // numbers are left to the adapter's DCP look-up.
        msisdn: if c == Carrier::Cmcc {
            card.msisdn.clone()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

pub fn code(item: &v1::Item) -> String {
    item.problem
        .as_ref()
        .map(|p| p.code.clone())
        .unwrap_or_default()
}
