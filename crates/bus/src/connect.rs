//! Connecting to NATS with settings from the environment.

use crate::BusError;
use async_nats::jetstream::{self, Context};
use std::time::Duration;

/// NATS connection settings.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// `GSL_NATS_URL`, default `nats://127.0.0.1:4222`; several URLs comma-separated.
    pub url: String,
    /// `GSL_NATS_USER` / `GSL_NATS_PASSWORD`.
    pub user: Option<String>,
    pub password: Option<String>,
    /// `GSL_NATS_TOKEN`.
    pub token: Option<String>,
    /// Connection name shown by the server (`nats server report connections`).
    pub name: String,
    /// Replicas for streams and buckets (`GSL_NATS_REPLICAS`, default 1; 3 in production).
    pub replicas: usize,
}

impl BusConfig {
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> BusConfig {
        BusConfig {
            url: url.into(),
            user: None,
            password: None,
            token: None,
            name: name.into(),
            replicas: 1,
        }
    }

    /// Read `GSL_NATS_*` through `get` (the environment, or a config map).
    pub fn from_lookup(name: &str, get: impl Fn(&str) -> Option<String>) -> BusConfig {
        let mut c = BusConfig::new(
            get("GSL_NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
            name,
        );
        c.user = get("GSL_NATS_USER").filter(|s| !s.is_empty());
        c.password = get("GSL_NATS_PASSWORD").filter(|s| !s.is_empty());
        c.token = get("GSL_NATS_TOKEN").filter(|s| !s.is_empty());
        c.replicas = get("GSL_NATS_REPLICAS")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
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
        .max_reconnects(None);
    if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
        opts = opts.user_and_password(u.clone(), p.clone());
    }
    if let Some(t) = &cfg.token {
        opts = opts.token(t.clone());
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
