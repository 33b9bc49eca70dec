//! Gateway settings, from the environment (and tests build them in code).

use crate::auth::StaticTokens;
use crate::bounds::RequestBounds;
use gsl_bus::BusConfig;
use gsl_cardstore::StoreConfig;
use gsl_secret::Secret;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// gRPC listen address (`GSL_GRPC_LISTEN`, default `0.0.0.0:50051`).
    pub grpc_listen: String,
    /// Admin HTTP (`/healthz`, `/readyz`, `/metrics`) (`GSL_ADMIN_LISTEN`, default `0.0.0.0:9090`).
    pub admin_listen: String,
    pub bus: BusConfig,
    /// `GSL_TENANT_TOKENS=token=tenant,...` or `GSL_TENANT_TOKENS_FILE`, plus
    /// `GSL_ADAPTER_TOKENS=cmcc=token,ct=token,...` (one per carrier adapter)
    /// and `GSL_OPERATOR_TOKEN` (the back-office queue; unset: nobody may
    /// work it).
    pub tokens: StaticTokens,
    /// PEM files for TLS (`GSL_TLS_CERT`, `GSL_TLS_KEY`); plain gRPC when unset.
    pub tls: Option<(String, String)>,
    /// Publish acks in flight during a fan-out (`GSL_FANOUT_WINDOW`, default 8192).
    pub fanout_window: usize,
    /// Items of one carrier per work message of a multi-card order
    /// (`GSL_BUNDLE_SIZE`, default 100; 1: one message per item).
    pub bundle_size: usize,
    /// Consume the NATS intake (`GSL_INTAKE`, default on).
    pub intake: bool,
    /// Size caps per method and the shared byte budget of requests being
    /// decoded and handled (`GSL_MAX_*_BYTES`, `GSL_DECODE_BUDGET_*`; see
    /// [`RequestBounds`]).
    pub bounds: RequestBounds,
    /// Orders with more items than this (`GSL_TRACE_ITEMS_PER_ORDER`, default 100) do not put
    /// every item in the order's trace: each item starts its own trace at the adapter, linked
    /// to the order's, sampled by the adapter's `OTEL_TRACES_SAMPLER`.
    pub trace_items_per_order: usize,
    /// Orders with more valid items than this (`GSL_BACKGROUND_FANOUT_OVER`, default 1000) are
    /// answered once recorded (chunks and order record on disk in JetStream) and their items
    /// published in the background; smaller orders are answered once every item is on the
    /// work stream. `off` publishes every order before answering.
    pub background_fanout_over: usize,
    /// How often every replica looks for fan-outs nobody is finishing (`GSL_FANOUT_SWEEP_SECS`,
    /// default 15), and how long a fan-out may go unfinished before it is taken over
    /// (`GSL_FANOUT_STALE_SECS`, default 60).
    pub fanout_sweep: std::time::Duration,
    pub fanout_stale: std::time::Duration,
    /// Requests handled at once, in all (`GSL_MAX_CONCURRENT_REQUESTS`,
    /// default 1024) and per connection (`GSL_MAX_REQUESTS_PER_CONNECTION`,
    /// default 256; also the HTTP/2 stream limit). An adapter multiplexes its
    /// reports over one connection: 32 per connection cut end-to-end
    /// throughput by a quarter (docs/benchmarks.md).
    pub max_concurrent_requests: usize,
    pub max_requests_per_connection: usize,
    /// Open (not final) work orders a tenant may have at once
    /// (`GSL_TENANT_MAX_OPEN_ORDERS`, default 1000): a submit past it is
    /// refused with `GSL.00010011`. Counted per order, whatever its size.
    pub tenant_max_open_orders: usize,
    /// Whether a tenant may register cards nobody holds by importing them
    /// (`GSL_TENANT_SELF_REGISTRATION=on`). Off by default: only the
    /// operator credential assigns cards to tenants; a tenant's import then
    /// updates only the cards it already holds. [`GatewayConfig::local`]
    /// (tests, development) turns it on.
    pub tenant_self_registration: bool,
    /// The card store (`GSL_DATABASE_URL`, or the file named by
    /// `GSL_DATABASE_URL_FILE`: `postgres://user:password@host:port/db`;
    /// required). A secret: it never prints.
    pub database_url: Secret,
    /// Connections to the card store (`GSL_DATABASE_POOL`, default 8), how
    /// long a request waits for one (`GSL_DATABASE_WAIT_MS`, default 5000),
    /// and the CA of a server behind TLS (`GSL_DATABASE_CA_CERT`).
    pub database: StoreConfig,
    /// How long `Registry.RefreshCards` waits for its cards to be read
    /// (`GSL_REFRESH_TIMEOUT_SECS`, default 150: 500 single-card reads at
    /// 5 calls/s take 100 s); the cards not read by then are refused as
    /// not read in time (the reads stay queued).
    pub refresh_timeout: std::time::Duration,
    /// Months of daily usage rows kept (`GSL_USAGE_DAILY_RETENTION_MONTHS`,
    /// default 13: a year and the month before it); older rows are deleted
    /// once a day. Storage per million cards: `docs/operations.md`, "Usage".
    pub usage_daily_retention_months: u32,
}

impl Default for GatewayConfig {
    /// The production defaults, written once: `from_env` and [`local`]
    /// (tests, development) start from them.
    ///
    /// [`local`]: GatewayConfig::local
    fn default() -> Self {
        GatewayConfig {
            grpc_listen: "0.0.0.0:50051".into(),
            admin_listen: "0.0.0.0:9090".into(),
            bus: BusConfig::new(gsl_bus::connect::DEFAULT_NATS_URL, "gsl-gateway"),
            tokens: StaticTokens::default(),
            tls: None,
            fanout_window: 8192,
            bundle_size: 100,
            intake: true,
            bounds: RequestBounds::default(),
            trace_items_per_order: 100,
            background_fanout_over: 1000,
            fanout_sweep: std::time::Duration::from_secs(15),
            fanout_stale: std::time::Duration::from_secs(60),
            max_concurrent_requests: 1024,
            max_requests_per_connection: 256,
            tenant_max_open_orders: 1000,
            tenant_self_registration: false,
            database_url: Secret::new(""),
            database: StoreConfig::default(),
            refresh_timeout: std::time::Duration::from_secs(150),
            usage_daily_retention_months: 13,
        }
    }
}

impl GatewayConfig {
    /// For tests: loopback ports chosen by the OS, tenants may register
    /// their own cards; the card store at `database_url`.
    pub fn local(nats_url: &str, database_url: &str, tokens: StaticTokens) -> GatewayConfig {
        GatewayConfig {
            grpc_listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
            bus: BusConfig::new(nats_url, "gsl-gateway"),
            tokens,
            database_url: Secret::new(database_url),
            tenant_self_registration: true,
            ..GatewayConfig::default()
        }
    }

    pub fn from_env() -> Result<GatewayConfig, String> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut tenants_text = get("GSL_TENANT_TOKENS").unwrap_or_default();
        if let Some(path) = get("GSL_TENANT_TOKENS_FILE") {
            let t = std::fs::read_to_string(&path)
                .map_err(|e| format!("GSL_TENANT_TOKENS_FILE {path}: {e}"))?;
            tenants_text.push('\n');
            tenants_text.push_str(&t);
        }
        let tenants = StaticTokens::parse_tenants(&tenants_text)
            .map_err(|e| format!("GSL_TENANT_TOKENS: {e}"))?;
        if tenants.is_empty() {
            return Err("GSL_TENANT_TOKENS is empty: no client could call the gateway".into());
        }
        if get("GSL_MAX_REQUEST_BYTES").is_some() {
            return Err("GSL_MAX_REQUEST_BYTES (one cap for every method) is no longer accepted: each method has its own cap (GSL_MAX_SUBMIT_BYTES, GSL_MAX_IMPORT_BYTES, GSL_MAX_IMPORT_BATCHES_BYTES, GSL_MAX_SMALL_REQUEST_BYTES; docs/security.md)".into());
        }
        if get("GSL_ADAPTER_TOKEN").is_some() {
            return Err("GSL_ADAPTER_TOKEN (one token for every carrier) is no longer accepted: set GSL_ADAPTER_TOKENS=cmcc=...,ct=...,cu=...,trinet=... (one per carrier adapter)".into());
        }
        let adapters = StaticTokens::parse_adapters(&get("GSL_ADAPTER_TOKENS").unwrap_or_default())
            .map_err(|e| format!("GSL_ADAPTER_TOKENS: {e}"))?;
        if adapters.is_empty() {
            return Err("GSL_ADAPTER_TOKENS is not set: adapters could not report results".into());
        }
        let tls = match (get("GSL_TLS_CERT"), get("GSL_TLS_KEY")) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("set both GSL_TLS_CERT and GSL_TLS_KEY, or neither".into()),
        };
        let num = |k: &str, d: usize| -> Result<usize, String> {
            get(k)
                .map(|v| v.parse().map_err(|_| format!("{k} must be a number")))
                .unwrap_or(Ok(d))
        };
        let d = GatewayConfig::default();
        let database_url = database_url_from(get)?;
        Ok(GatewayConfig {
            grpc_listen: get("GSL_GRPC_LISTEN").unwrap_or(d.grpc_listen),
            admin_listen: get("GSL_ADMIN_LISTEN").unwrap_or(d.admin_listen),
            bus: BusConfig::from_lookup("gsl-gateway", |k| get(k)),
            tokens: StaticTokens::new(tenants, None)
                .with_adapters(adapters)
                .with_operator(get("GSL_OPERATOR_TOKEN")),
            tls,
            fanout_window: num("GSL_FANOUT_WINDOW", d.fanout_window)?,
            bundle_size: num("GSL_BUNDLE_SIZE", d.bundle_size)?.max(1),
            intake: get("GSL_INTAKE").as_deref() != Some("off"),
            bounds: RequestBounds::from_lookup(|k| get(k))?,
            trace_items_per_order: num("GSL_TRACE_ITEMS_PER_ORDER", d.trace_items_per_order)?,
            background_fanout_over: match get("GSL_BACKGROUND_FANOUT_OVER").as_deref() {
                Some("off") => usize::MAX,
                _ => num("GSL_BACKGROUND_FANOUT_OVER", d.background_fanout_over)?,
            },
            fanout_sweep: std::time::Duration::from_secs(
                num("GSL_FANOUT_SWEEP_SECS", d.fanout_sweep.as_secs() as usize)?.max(1) as u64,
            ),
            fanout_stale: std::time::Duration::from_secs(
                num("GSL_FANOUT_STALE_SECS", d.fanout_stale.as_secs() as usize)?.max(1) as u64,
            ),
            max_concurrent_requests: num("GSL_MAX_CONCURRENT_REQUESTS", d.max_concurrent_requests)?
                .max(1),
            max_requests_per_connection: num(
                "GSL_MAX_REQUESTS_PER_CONNECTION",
                d.max_requests_per_connection,
            )?
            .max(1),
            tenant_max_open_orders: num("GSL_TENANT_MAX_OPEN_ORDERS", d.tenant_max_open_orders)?
                .max(1),
            tenant_self_registration: get("GSL_TENANT_SELF_REGISTRATION").as_deref() == Some("on"),
            database_url,
            database: StoreConfig {
                pool_size: num("GSL_DATABASE_POOL", d.database.pool_size)?.max(1),
                wait: std::time::Duration::from_millis(num(
                    "GSL_DATABASE_WAIT_MS",
                    d.database.wait.as_millis() as usize,
                )? as u64),
                ca_cert: get("GSL_DATABASE_CA_CERT").map(std::path::PathBuf::from),
            },
            refresh_timeout: std::time::Duration::from_secs(
                num(
                    "GSL_REFRESH_TIMEOUT_SECS",
                    d.refresh_timeout.as_secs() as usize,
                )?
                .max(1) as u64,
            ),
            usage_daily_retention_months: num(
                "GSL_USAGE_DAILY_RETENTION_MONTHS",
                d.usage_daily_retention_months as usize,
            )?
            .max(1) as u32,
        })
    }
}

/// The card store's URL: `GSL_DATABASE_URL`, or the file named by
/// `GSL_DATABASE_URL_FILE` (a mounted Secret). Required.
pub fn database_url_from(get: impl Fn(&str) -> Option<String>) -> Result<Secret, String> {
    match (get("GSL_DATABASE_URL"), get("GSL_DATABASE_URL_FILE")) {
        (Some(u), None) => Ok(Secret::new(u)),
        (None, Some(path)) => Ok(Secret::new(
            std::fs::read_to_string(&path)
                .map_err(|e| format!("GSL_DATABASE_URL_FILE {path}: {e}"))?
                .trim(),
        )),
        (Some(_), Some(_)) => Err("set GSL_DATABASE_URL or GSL_DATABASE_URL_FILE, not both".into()),
        (None, None) => Err("GSL_DATABASE_URL is not set: the gateway keeps cards, purchase batches and the order index in PostgreSQL (docs/operations.md)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Printing the whole configuration shows no token and no password.
    #[test]
    fn debug_prints_no_secret() {
        let mut tenants = HashMap::new();
        tenants.insert("tenant-secret-tok-1".to_string(), "acme".to_string());
        let tokens = StaticTokens::new(tenants, Some("any-adapter-secret-2".into()))
            .with_adapters(StaticTokens::parse_adapters("ct=adapter-secret-ct-000003").unwrap())
            .with_operator(Some("operator-secret-4".into()));
        let mut cfg = GatewayConfig::local(
            "nats://127.0.0.1:4222",
            "postgres://gsl:db-password-7@127.0.0.1:5432/gsl",
            tokens,
        );
        cfg.bus.password = Some("nats-password-5".into());
        cfg.bus.token = Some("nats-token-6".into());
        let text = format!("{cfg:?} {cfg:#?} {:?} {:?}", cfg.bus, cfg.tokens);
        for secret in [
            "tenant-secret-tok-1",
            "any-adapter-secret-2",
            "adapter-secret-ct-000003",
            "operator-secret-4",
            "nats-password-5",
            "nats-token-6",
            "db-password-7",
        ] {
            assert!(!text.contains(secret), "{secret} printed: {text}");
        }
        assert!(text.contains("acme"), "what is not secret still shows");
    }
}
