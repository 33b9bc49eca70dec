//! # gsl-gateway: the front door
//!
//! Accepts work orders over gRPC (`WorkOrders`, `Registry`) and from other
//! services over NATS (`gsl.intake.<tenant>`), validates everything that
//! needs no carrier round trip, persists, fans each order out as one
//! JetStream message per card, takes item outcomes from the adapters
//! (`Results`), answers queries and streams progress (`Watch`).
//!
//! ## Layout
//!
//! An order's way through the gateway, in the order it takes:
//!
//! | step | module | holds |
//! |---|---|---|
//! | in | [`service`], [`intake`] | the tonic services (thin); the NATS intake |
//! | who, how big | [`auth`], [`bounds`] | bearer tokens -> tenant, adapter or operator, and who may call which service; size caps per method and the byte budget, before any body is decoded |
//! | check | [`validate`] (with [`registry`]) | request and per-item validation against the card store (PostgreSQL, `gsl_cardstore`: the cards an order names, read in a few set-based queries) and purchase batches |
//! | accept | [`submit`] | idempotency, quota, validation, then record and fan out |
//! | record | [`record`], [`store`] | the order's chunks, progress and record (the commit point); exact counts (read `store` first) |
//! | send | [`fanout`] | items onto the work stream, in bundles; in the background for large orders |
//! | outcomes | [`results`], [`backoffice`] | the Results API adapters report to; operators working the back-office queue |
//! | life | [`lifecycle`] | review, settlement |
//! | read | [`query`], [`index`], [`watch`] | get / list / items / card history; the order index (a card-store table every replica keeps following the order bucket); the event stream |
//! | restart | [`recovery`] | what a starting gateway (or any replica's sweep) finishes |
//! | the fleet | [`cardlist`], [`cardupdate`], [`cardsync`], [`usage`] | the reference card list and card detail (`ListCards`, `GetCard` with rebinds left from the quota ledger); a tenant's own card data (`UpdateCards`, audited); card sync: the adapters' reads written newest-wins, drift published (`ReportCards`, `SweepCards`), on-demand reads (`RefreshCards`); daily usage (`BatchUsage`) and its retention |
//! | pushes | [`push`] | `PushAddresses`: a tenant's push addresses, relayed to gsl-push over NATS (the gateway has no egress and never sees a secret after creation) |
//! | around | [`core`], [`config`], [`error`], [`setup`], [`upgrade`] | shared state, events, metrics; settings; codes -> gRPC statuses; `gsl-gateway migrate` and `nats-user`; the copy of a NATS KV registry into the card store |
#![forbid(unsafe_code)]

pub mod auth;
pub mod backoffice;
pub mod bounds;
pub mod cardlist;
pub mod cardsync;
pub mod cardupdate;
pub mod config;
pub mod core;
pub mod error;
pub mod fanout;
pub mod index;
pub mod intake;
pub mod lifecycle;
pub mod push;
pub mod query;
pub mod record;
pub mod recovery;
pub mod registry;
pub mod results;
pub mod service;
pub mod setup;
pub mod store;
pub mod submit;
pub mod upgrade;
pub mod usage;
pub mod validate;
pub mod watch;

use crate::config::GatewayConfig;
use crate::core::{Core, Metrics};
use crate::index::OrderIndex;
use crate::registry::Registry;
use crate::service::Api;
use crate::store::Store;
use gsl_bus::topology::{self, Topology};
use gsl_cardstore::CardStore;
use gsl_proto::v1;
use gsl_telemetry::shutdown::Shutdown;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tracing::{info, warn};

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Bus(#[from] gsl_bus::BusError),
    #[error("{0}")]
    Api(#[from] error::ApiError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Store(#[from] gsl_cardstore::StoreError),
}

/// A running gateway.
pub struct Gateway {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub core: Arc<Core>,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<()>,
}

impl Gateway {
    pub async fn start(cfg: GatewayConfig) -> Result<Gateway, StartError> {
        let (client, js) = gsl_bus::connect(&cfg.bus).await?;
        let topo = Topology {
            replicas: cfg.bus.replicas,
            ..Default::default()
        };
        let buckets = topology::open(&js, cfg.bus.topology, &topo).await?;
        let cards = CardStore::connect(cfg.database_url.expose(), &cfg.database)?;
        // Like the bus topology: development and tests migrate at start;
        // production (`GSL_TOPOLOGY=bind`) only checks the schema, which
        // `gsl-gateway migrate` keeps.
        match cfg.bus.topology {
            gsl_bus::TopologyMode::Ensure => {
                cards.migrate(None).await?;
            }
            gsl_bus::TopologyMode::Bind => cards.check_schema().await?,
        }
        let registry = Registry::new(cards.clone());
        let index = OrderIndex::start(js.clone(), cards);
        let mut metric_registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::new(&mut metric_registry);
        let tenants: Vec<String> = cfg.tokens.tenants().map(str::to_owned).collect();
        let auth: Arc<dyn auth::Authenticator> = Arc::new(cfg.tokens.clone());
        let bo_requests = buckets.backoffice.clone();
        let core = Arc::new(Core::new(crate::core::CoreParts {
            js: js.clone(),
            client: client.clone(),
            store: Store::new(buckets),
            registry,
            auth,
            cfg: cfg.clone(),
            metrics,
            tenants,
            index,
        }));
        let backoffice = backoffice::BackOfficeApi {
            core: core.clone(),
            requests: bo_requests,
        };
        let shutdown = Shutdown::new();

        // Finish what a previous gateway left, in the background.
        let rc = core.clone();
        tokio::spawn(async move {
            if let Err(e) = recovery::run(&rc).await {
                warn!(error = %e, "recovery failed");
            }
        });
        if cfg.intake {
            let ic = core.clone();
            let stop = shutdown.listener();
            tokio::spawn(async move {
                if let Err(e) = intake::run(ic, stop).await {
                    warn!(error = %e, "intake stopped");
                }
            });
        }
        spawn_counts_publisher(core.clone(), shutdown.clone());
        recovery::spawn_sweeper(core.clone(), shutdown.listener());
        usage::spawn_retention(core.clone(), shutdown.listener());
        tokio::spawn(crate::core::watch_storage(
            core.js.clone(),
            core.metrics.clone(),
            Duration::from_secs(30),
            shutdown.listener(),
        ));

        // Admin endpoints.
        let ready_core = core.clone();
        let ready: gsl_telemetry::admin::ReadyCheck = Arc::new(move || {
            let c = ready_core.clone();
            Box::pin(async move {
                if c.client.connection_state() != async_nats::connection::State::Connected {
                    return Err("NATS not connected".to_string());
                }
                c.registry.store.ping().await.map_err(|e| e.to_string())?;
                if !c.index.is_current() {
                    return Err(
                        "order index is not current (catching up with the order bucket, or its follower restarting)".to_string(),
                    );
                }
                topology::check(&c.js).await.map_err(|e| e.to_string())
            })
        });
        let admin_addr = gsl_telemetry::admin::serve(
            &cfg.admin_listen,
            Arc::new(Mutex::new(metric_registry)),
            ready,
            shutdown.listener().wait(),
        )
        .await
        .map_err(|e| StartError::Listen {
            addr: cfg.admin_listen.clone(),
            reason: e.to_string(),
        })?;

        // gRPC.
        let api = Api { core: core.clone() };
        let max = cfg.bounds.largest();
        let bounds = cfg.bounds.layer();
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<v1::work_orders_server::WorkOrdersServer<Api>>()
            .await;
        // Reflection answers both protocol versions (many clients still use
        // v1alpha) and lists the health service too.
        let reflection_builder = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(gsl_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection = reflection_builder()
            .build_v1()
            .map_err(|e| StartError::Tls(e.to_string()))?;
        let reflection_alpha = reflection_builder()
            .build_v1alpha()
            .map_err(|e| StartError::Tls(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(&cfg.grpc_listen)
            .await
            .map_err(|e| StartError::Listen {
                addr: cfg.grpc_listen.clone(),
                reason: e.to_string(),
            })?;
        let grpc_addr = listener.local_addr().map_err(|e| StartError::Listen {
            addr: cfg.grpc_listen.clone(),
            reason: e.to_string(),
        })?;
        let per_conn = cfg.max_requests_per_connection;
        let mut builder = tonic::transport::Server::builder()
            .trace_fn(gsl_telemetry::grpc::server_span)
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .concurrency_limit_per_connection(per_conn)
            .max_concurrent_streams(Some(per_conn as u32));
        if let Some((cert, key)) = &cfg.tls {
            let cert = std::fs::read(cert).map_err(|e| StartError::Tls(format!("{cert}: {e}")))?;
            let key = std::fs::read(key).map_err(|e| StartError::Tls(format!("{key}: {e}")))?;
            let identity = tonic::transport::Identity::from_pem(cert, key);
            builder = builder
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .map_err(|e| StartError::Tls(e.to_string()))?;
        }
        // Every API checks the bearer token, and that the principal may call
        // the service, from the headers before its body is read or decoded;
        // the bounds layer then caps each method's message and takes it from
        // the shared byte budget before it is read.
        let gate = |callers| auth::Gate {
            auth: core.auth.clone(),
            callers,
        };
        let router = builder
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                cfg.max_concurrent_requests,
            ))
            .layer(bounds)
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(tonic::service::interceptor::InterceptedService::new(
                v1::work_orders_server::WorkOrdersServer::new(api.clone())
                    .max_decoding_message_size(max),
                gate(auth::WORK_ORDERS_CALLERS),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                v1::registry_server::RegistryServer::new(api.clone())
                    .max_decoding_message_size(max),
                gate(auth::REGISTRY_CALLERS),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                v1::results_server::ResultsServer::new(api).max_decoding_message_size(max),
                gate(auth::RESULTS_CALLERS),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                v1::back_office_server::BackOfficeServer::new(backoffice)
                    .max_decoding_message_size(max),
                gate(auth::BACK_OFFICE_CALLERS),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                v1::push_addresses_server::PushAddressesServer::new(push::PushApi {
                    core: core.clone(),
                })
                .max_decoding_message_size(max),
                gate(auth::PUSH_CALLERS),
            ));
        let stop = shutdown.listener();
        // The builder's `tcp_nodelay` applies only to listeners tonic binds
        // itself: set it on each accepted stream. Without it every answer
        // waited for the client's delayed ACK (44 ms per call, measured).
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            |s| {
                if let Ok(s) = &s {
                    let _ = s.set_nodelay(true);
                }
                s
            },
        );
        let server = tokio::spawn(async move {
            if let Err(e) = router
                .serve_with_incoming_shutdown(incoming, stop.wait())
                .await
            {
                warn!(error = %e, "gRPC server stopped");
            }
        });
        info!(%grpc_addr, %admin_addr, "gateway listening");
        Ok(Gateway {
            grpc_addr,
            admin_addr,
            core,
            shutdown,
            server,
        })
    }

    /// Stop taking requests, let in-flight ones finish (background fan-outs
    /// included), stop background work.
    pub async fn shutdown(self) {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.server).await;
        let core = self.core.clone();
        let fanouts = async move {
            while !core.fanning.lock().expect("fanning set").is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(30), fanouts)
            .await
            .is_err()
        {
            warn!(
                "stopping with a background fan-out unfinished; another replica's sweep or the next start finishes it"
            );
        }
        let _ = self.core.client.flush().await;
    }

    /// Stop abruptly (tests of crash recovery): nothing is flushed.
    pub fn abort(self) {
        self.shutdown.trigger();
        self.server.abort();
    }
}

/// Publish a counts event for every order whose counts changed, twice a second.
fn spawn_counts_publisher(core: Arc<Core>, shutdown: Shutdown) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let stop = shutdown.listener();
        loop {
            tick.tick().await;
            if stop.is_triggered() {
                return;
            }
            let dirty: Vec<(u64, (String, u64, usize))> =
                core.dirty.lock().expect("dirty set").drain().collect();
            for (id, (tenant, total, chunks)) in dirty {
                match core.store.counts(id, total, chunks).await {
                    Ok(c) => {
                        let _ = core.publish_counts(&tenant, id, c).await;
                    }
                    Err(e) => warn!(work_order_id = id, error = %e, "counts not published"),
                }
            }
        }
    });
}
