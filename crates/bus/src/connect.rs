//! Connecting to NATS with settings from the environment.

use crate::BusError;
use async_nats::jetstream::{self, Context};
pub use gsl_secret::Secret;

/// Where a service connects when `GSL_NATS_URL` is not set.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
use std::time::Duration;

/// NATS connection settings.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// `GSL_NATS_URL`, default `nats://127.0.0.1:4222`; several URLs comma-separated.
    pub url: String,
    /// `GSL_NATS_USER` / `GSL_NATS_PASSWORD`.
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// `GSL_NATS_TOKEN`.
    pub token: Option<Secret>,
    /// Connection name shown by the server (`nats server report connections`).
    pub name: String,
    /// Replicas for streams and buckets (`GSL_NATS_REPLICAS`, default 1; 3 in production).
    pub replicas: usize,
    /// This user's private inbox prefix (`GSL_NATS_INBOX_PREFIX`, default
    /// `_INBOX_<name>`): replies to this service's requests arrive only
    /// there, and its NATS user may subscribe to nothing else.
    pub inbox_prefix: String,
    /// CA certificate (PEM file) of a NATS behind TLS (`GSL_NATS_CA_CERT`):
    /// TLS is then required.
    pub ca_cert: Option<std::path::PathBuf>,
    /// `GSL_TOPOLOGY=ensure` (default: create or update streams, buckets
    /// and durable consumers at start) or `bind` (only use them: the setup
    /// step `gsl-gateway migrate` made them, and the service's NATS user may
    /// not administer JetStream).
    pub topology: TopologyMode,
}

/// Whether a service creates the topology or only binds to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyMode {
    Ensure,
    Bind,
}

/// A service's default inbox prefix: `_INBOX_` + its connection name with
/// every character that is not a subject token character replaced.
pub fn inbox_prefix_for(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("_INBOX_{clean}")
}

impl BusConfig {
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> BusConfig {
        let name = name.into();
        BusConfig {
            url: url.into(),
            user: None,
            password: None,
            token: None,
            inbox_prefix: inbox_prefix_for(&name),
            name,
            replicas: 1,
            ca_cert: None,
            topology: TopologyMode::Ensure,
        }
    }

    /// Read `GSL_NATS_*` through `get` (the environment, or a config map).
    pub fn from_lookup(name: &str, get: impl Fn(&str) -> Option<String>) -> BusConfig {
        let mut c = BusConfig::new(
            get("GSL_NATS_URL").unwrap_or_else(|| DEFAULT_NATS_URL.into()),
            name,
        );
        c.user = get("GSL_NATS_USER").filter(|s| !s.is_empty());
        c.password = get("GSL_NATS_PASSWORD")
            .filter(|s| !s.is_empty())
            .map(Secret::from);
        c.token = get("GSL_NATS_TOKEN")
            .filter(|s| !s.is_empty())
            .map(Secret::from);
        c.replicas = get("GSL_NATS_REPLICAS")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        if let Some(p) = get("GSL_NATS_INBOX_PREFIX").filter(|s| !s.is_empty()) {
            c.inbox_prefix = p;
        }
        c.ca_cert = get("GSL_NATS_CA_CERT")
            .filter(|s| !s.is_empty())
            .map(std::path::PathBuf::from);
        if get("GSL_TOPOLOGY").as_deref() == Some("bind") {
            c.topology = TopologyMode::Bind;
        }
        c
    }
}

/// Connect and build a JetStream context that waits (instead of failing)
/// when too many publish acks are in flight.
pub async fn connect(cfg: &BusConfig) -> Result<(async_nats::Client, Context), BusError> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(&cfg.name)
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .custom_inbox_prefix(cfg.inbox_prefix.clone());
    if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
        opts = opts.user_and_password(u.clone(), p.expose().to_owned());
    }
    if let Some(t) = &cfg.token {
        opts = opts.token(t.expose().to_owned());
    }
    if let Some(ca) = &cfg.ca_cert {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    let urls: Vec<async_nats::ServerAddr> = cfg
        .url
        .split(',')
        .map(|u| u.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|e: std::io::Error| BusError::Connect {
            url: cfg.url.clone(),
            reason: e.to_string(),
        })?;
    let client = tokio::time::timeout(Duration::from_secs(30), opts.connect(urls))
        .await
        .map_err(|_| BusError::Connect {
            url: cfg.url.clone(),
            reason: "timed out after 30 s".into(),
        })?
        .map_err(|e| BusError::Connect {
            url: cfg.url.clone(),
            reason: e.to_string(),
        })?;
    let js = jetstream::ContextBuilder::new()
        .backpressure_on_inflight(true)
        .max_ack_inflight(20_000)
        .timeout(Duration::from_secs(10))
        .build(client.clone());
    Ok((client, js))
}
