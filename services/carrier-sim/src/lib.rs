//! # gsl-carrier-sim: four simulated carrier platforms
//!
//! Adapters are written against something close to the real platforms, and
//! tests need an independent referee. The simulator serves China Mobile
//! (OneLink EC v5 style), China Telecom (5G CMP style), China Unicom (Jasper
//! REST style) and a tri-net platform on one port, each under its own path
//! prefix (`/cmcc`, `/ct`, `/cu`, `/trinet`), so an adapter's base URL is
//! `http://host:port/<carrier>`. Each enforces its carrier's rules on its own
//! side, rate-limits per API class the way that carrier answers, completes
//! changes asynchronously on a scalable clock, keeps ground truth, and
//! misbehaves on demand. See `docs/carrier-sim.md` for every endpoint.
//!
//! ## Layout
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | settings (file, environment, code) |
//! | [`inventory`] | deterministic, copy-on-write card inventory |
//! | [`engine`] | carrier-side rules, receipts and idempotency, completion, ground truth |
//! | [`ratelimit`] | sliding-window limits per API class (or one budget), over-limit counts |
//! | [`jobs`] | batch jobs: one call for up to 100 cards, results by job id |
//! | [`gate`] | faults, authentication and rate limiting before every handler |
//! | [`cmcc`], [`ct`], [`cu`], [`trinet`] | one module per carrier API style |
//! | [`admin`] | ground truth, stats, faults, limits, cards and batches for tests |
//! | [`wire`] | query-string decoding the platforms share |
#![forbid(unsafe_code)]
// Handlers return early with a carrier-style `Response` as the error: it is
// built once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod cmcc;
pub mod config;
pub mod ct;
pub mod cu;
pub mod engine;
pub mod gate;
pub mod inventory;
pub mod ratelimit;
pub mod trinet;
pub mod wire;

pub use config::SimConfig;
pub use engine::Engine;

use axum::Router;
use gsl_domain::carrier::Carrier;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;

#[derive(Debug, Error)]
pub enum SimError {
    #[error("bad clock settings: {0}")]
    Clock(#[from] gsl_domain::clock::ClockError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// The whole application: every platform and the admin API.
pub fn app(engine: Arc<Engine>) -> Router {
    let gate = |carrier, style| gate::Gate {
        engine: engine.clone(),
        carrier,
        style,
    };
    Router::new()
        .nest("/cmcc", cmcc::router(gate(Carrier::Cmcc, cmcc::STYLE)))
        .nest("/ct", ct::router(gate(Carrier::Ct, ct::STYLE)))
        .nest("/cu", cu::router(gate(Carrier::Cu, cu::STYLE)))
        .nest(
            "/trinet",
            trinet::router(gate(Carrier::Trinet, trinet::STYLE)),
        )
        .merge(admin::router(engine.clone()))
}

/// A running simulator.
pub struct SimServer {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// Start on `config.listen` (port 0 picks a free port).
    pub async fn start(config: SimConfig) -> Result<SimServer, SimError> {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|source| SimError::Listen {
                addr: config.listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
        let engine = Arc::new(Engine::new(config)?);
        if engine.config.drift_per_hour > 0.0 {
            engine.spawn_drift(engine.config.drift_per_hour, engine.config.seed);
        }
        let (tx, mut rx) = watch::channel(false);
        let ticker_engine = engine.clone();
        let mut ticker_rx = tx.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tokio::select! {
                    _ = tick.tick() => { ticker_engine.complete_due(); }
                    _ = ticker_rx.changed() => break,
                }
            }
        });
        let app = app(engine.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.changed().await;
                })
                .await;
        });
        Ok(SimServer {
            addr,
            engine,
            shutdown: tx,
            task,
        })
    }

    /// The base URL an adapter for `c` is configured with.
    pub fn base_url(&self, c: Carrier) -> String {
        format!("http://{}/{}", self.addr, c.as_str())
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting, finish in-flight requests, stop the completion ticker.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}
