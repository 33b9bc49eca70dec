//! # gsl-push: signed webhooks that lose nothing
//!
//! The only workload that calls customers' URLs (its own NATS user and
//! `NetworkPolicy`: docs/push.md, docs/security.md). Work-order events
//! become pushes, stored on JetStream before their event is acknowledged;
//! each push is POSTed signed as the Standard Webhooks specification says,
//! retried with backoff for about 27 hours, and either delivered or kept as
//! a failure notice for 14 days to list and resend. A SIGKILL at any moment
//! loses nothing: what is not acknowledged is delivered again.
//!
//! ## Layout
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | settings (one `Default`; the environment overrides it) |
//! | [`events`] | which work-order events are pushed, as which JSON |
//! | [`fanout`] | events -> waiting pushes (`GSL_EVENTS` -> `GSL_PUSH`) |
//! | [`deliver`] | attempts, retries, failure notices, disabling |
//! | [`limits`] | per-address rate and concurrency, slowing down on 429 / timeouts |
//! | [`http`] | one POST: URL and address checks, TLS with the address's certificate, no redirects, capped answers |
//! | [`netguard`] | the ranges pushes may not reach (`GSL_PUSH_ALLOW_NETS`) |
//! | [`sign`] | Standard Webhooks signatures and secrets |
//! | [`addresses`] | push addresses in the `gsl_push` bucket, mirrored in memory |
//! | [`api`] | the push API the gateway relays (`gsl.push.api`) |
#![forbid(unsafe_code)]

pub mod addresses;
pub mod api;
pub mod config;
pub mod deliver;
pub mod events;
pub mod fanout;
pub mod http;
pub mod limits;
pub mod netguard;
pub mod sign;

use config::PushConfig;
use gsl_telemetry::shutdown::Shutdown;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bus(#[from] gsl_bus::BusError),
    #[error("cannot serve on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("cannot answer the push API: {0}")]
    Api(String),
}

/// A running gsl-push.
pub struct Push {
    pub admin_addr: SocketAddr,
    shutdown: Shutdown,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Push {
    pub async fn start(cfg: PushConfig) -> Result<Push, StartError> {
        let cfg = Arc::new(cfg);
        let (client, js) = gsl_bus::connect(&cfg.bus).await?;
        if cfg.bus.topology == gsl_bus::TopologyMode::Ensure {
            gsl_bus::topology::ensure(&js, &gsl_bus::Topology::default()).await?;
        }
        let store = js
            .get_key_value(gsl_bus::names::KV_PUSH)
            .await
            .map_err(|e| gsl_bus::BusError::Topology {
                what: format!("bucket {}", gsl_bus::names::KV_PUSH),
                reason: e.to_string(),
            })?;
        let addresses = addresses::Addresses::mirror(store);
        let fan = gsl_bus::topology::open_consumer(
            &js,
            cfg.bus.topology,
            gsl_bus::names::STREAM_EVENTS,
            gsl_bus::topology::push_fanout_consumer(),
        )
        .await?;
        let del = gsl_bus::topology::open_consumer(
            &js,
            cfg.bus.topology,
            gsl_bus::names::STREAM_PUSH,
            gsl_bus::topology::push_deliver_consumer(),
        )
        .await?;
        let metrics = deliver::Metrics::default();
        let mut registry = Registry::default();
        registry.register(
            "gsl_push_attempts",
            "Push attempts by result: ok, failed (to be retried), exhausted, dropped",
            metrics.attempts.clone(),
        );
        let registry = Arc::new(Mutex::new(registry));
        let d = Arc::new(deliver::Deliverer::new(
            cfg.clone(),
            js.clone(),
            addresses.clone(),
            metrics,
        ));
        let shutdown = Shutdown::new();
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(fanout::run(
            js.clone(),
            addresses.clone(),
            fan,
            64,
            shutdown.listener(),
        )));
        tasks.push(tokio::spawn(deliver::run(
            d.clone(),
            del,
            shutdown.listener(),
        )));
        let sub = api::subscribe(&client)
            .await
            .map_err(|e| StartError::Api(e.to_string()))?;
        tasks.push(tokio::spawn(api::run(
            client.clone(),
            sub,
            d.clone(),
            shutdown.listener(),
        )));
        // Up only once the server routes API calls to us: one call of our
        // own goes round (a flush alone does not say the server has
        // processed the subscription).
        api::wait_until_routed(&client)
            .await
            .map_err(StartError::Api)?;
        let ready_client = client.clone();
        let ready_addr = addresses.ready.clone();
        let ready: gsl_telemetry::admin::ReadyCheck = Arc::new(move || {
            let c = ready_client.clone();
            let r = *ready_addr.borrow();
            Box::pin(async move {
                if c.connection_state() != async_nats::connection::State::Connected {
                    return Err("NATS not connected".to_string());
                }
                if !r {
                    return Err("push addresses not loaded yet".to_string());
                }
                Ok(())
            })
        });
        let admin_addr = gsl_telemetry::admin::serve(
            &cfg.admin_listen,
            registry,
            ready,
            shutdown.listener().wait(),
        )
        .await
        .map_err(|e| StartError::Listen {
            addr: cfg.admin_listen.clone(),
            reason: e.to_string(),
        })?;
        tracing::info!(%admin_addr, "gsl-push running");
        Ok(Push {
            admin_addr,
            shutdown,
            tasks,
        })
    }

    /// Stop taking work; attempts in flight finish (or are delivered again
    /// after the ack wait).
    pub async fn shutdown(self) {
        self.shutdown.trigger();
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(20), t).await;
        }
    }
}
