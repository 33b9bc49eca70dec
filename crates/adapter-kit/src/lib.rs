//! # gsl-adapter-kit: what every carrier adapter shares
//!
//! An adapter pulls its carrier's items from `GSL_WORK` (one durable consumer
//! per carrier that every replica binds to), applies that carrier's rules,
//! paces itself under the carrier's rate limit, calls the carrier through a
//! [`carrier::CarrierApi`] module, follows the carrier's asynchronous
//! completion against SLA timers, and reports every outcome to the gateway.
//!
//! ## Layout
//!
//! | module | holds |
//! |---|---|
//! | [`carrier`] | the trait a carrier module implements, and call outcomes |
//! | [`worker`] | one item from delivery to final outcome (read this first) |
//! | [`batch`] | gathering items of one key into batch calls |
//! | [`record`] | the execution record: what makes redelivery safe |
//! | [`guards`] | cooldowns (atomic create) and quotas (compare-and-set) from the domain tables |
//! | [`pacing`] | governor locally; a shared slot lease in KV across replicas |
//! | [`report`] | Results reporting with retries (outcomes, and card-sync reads) |
//! | [`reads`], [`sync`] | card sync: what a module reads, and the sweeps, changed-since passes and refreshes that drive it |
//! | [`http`] | the carrier HTTP client: trace headers, timeouts, "may it have been sent?" |
//! | [`config`], [`metrics`] | settings; Prometheus metrics |
#![forbid(unsafe_code)]

pub mod batch;
pub mod carrier;
pub mod completion;
pub mod config;
pub mod guards;
pub mod http;
pub mod metrics;
pub mod pacing;
pub mod readiness;
pub mod reads;
pub mod record;
pub mod report;
pub mod sync;
pub mod worker;

use crate::config::AdapterConfig;
use crate::worker::{Disposition, Worker};
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::pull;
use futures::StreamExt;
use gsl_bus::names;
use gsl_bus::topology::{self, Topology};
use gsl_telemetry::shutdown::Shutdown;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Semaphore;
use tracing::{info, warn};

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Bus(#[from] gsl_bus::BusError),
    #[error("{0}")]
    Config(String),
    #[error("consumer: {0}")]
    Consumer(String),
}

/// A running adapter.
pub struct Adapter {
    pub admin_addr: SocketAddr,
    pub worker: Arc<Worker>,
    shutdown: Shutdown,
    loops: Vec<tokio::task::JoinHandle<()>>,
    client: async_nats::Client,
}

impl Adapter {
    pub async fn start(
        cfg: AdapterConfig,
        api: Arc<dyn carrier::CarrierApi>,
    ) -> Result<Adapter, StartError> {
        if api.carrier() != cfg.carrier {
            return Err(StartError::Config(format!(
                "module for {} started as the {} adapter",
                api.carrier(),
                cfg.carrier
            )));
        }
        let Opened {
            worker,
            mut registry,
            client,
            js,
            metrics,
            sync_kv,
        } = Worker::open(&cfg, api.clone()).await?;
        let shutdown = Shutdown::new();

        let delivery = topology::Delivery {
            max_deliver: cfg.max_deliver,
            ack_wait: cfg.ack_wait,
        };
        let work = topology::open_consumer(
            &js,
            cfg.bus.topology,
            names::STREAM_WORK,
            topology::work_consumer(cfg.carrier, delivery),
        )
        .await
        .map_err(|e| StartError::Consumer(e.to_string()))?;
        let follow = topology::open_consumer(
            &js,
            cfg.bus.topology,
            names::STREAM_FOLLOW,
            topology::follow_consumer_config(cfg.carrier, delivery),
        )
        .await
        .map_err(|e| StartError::Consumer(e.to_string()))?;

        let sync_metrics = sync::SyncMetrics::default();
        sync_metrics.register(&mut registry);
        let syncer = Arc::new(sync::Syncer {
            api: api.clone(),
            pacer: worker.pacer.clone(),
            reporter: worker.reporter.clone(),
            kv: sync_kv,
            cfg: cfg.clone(),
            metrics: sync_metrics,
            recent: Default::default(),
        });
        let mut loops = vec![
            tokio::spawn(run_loop(worker.clone(), work, shutdown.clone(), Kind::Work)),
            tokio::spawn(run_loop(
                worker.clone(),
                follow,
                shutdown.clone(),
                Kind::Follow,
            )),
            tokio::spawn(consumer_stats(
                js.clone(),
                cfg.carrier,
                metrics.clone(),
                shutdown.clone(),
            )),
        ];
        loops.extend(syncer.spawn(client.clone(), &shutdown));

        let ready_js = js.clone();
        let ready_client = client.clone();
        let ready_carrier = Arc::new(readiness::Readiness::new(
            api.clone(),
            worker.pacer.clone(),
            Duration::from_secs(15),
        ));
        let ready: gsl_telemetry::admin::ReadyCheck = Arc::new(move || {
            let (js, client, carrier) = (
                ready_js.clone(),
                ready_client.clone(),
                ready_carrier.clone(),
            );
            Box::pin(async move {
                if client.connection_state() != async_nats::connection::State::Connected {
                    return Err("NATS not connected".to_string());
                }
                topology::check(&js).await.map_err(|e| e.to_string())?;
                carrier
                    .check()
                    .await
                    .map_err(|e| format!("carrier unreachable: {e}"))
            })
        });
        let admin_addr = gsl_telemetry::admin::serve(
            &cfg.admin_listen,
            Arc::new(Mutex::new(registry)),
            ready,
            shutdown.listener().wait(),
        )
        .await
        .map_err(|e| StartError::Config(format!("admin listen {}: {e}", cfg.admin_listen)))?;
        info!(carrier = %cfg.carrier, %admin_addr, instance = %cfg.instance, "adapter running");
        Ok(Adapter {
            admin_addr,
            worker,
            shutdown,
            loops,
            client,
        })
    }

    /// Stop taking work, finish what is in hand (up to the ack wait), exit.
    /// Anything not finished is redelivered to another replica: nothing is lost.
    pub async fn shutdown(self) {
        self.shutdown.trigger();
        let drain = self.worker.cfg.ack_wait;
        for l in self.loops {
            let _ = tokio::time::timeout(drain, l).await;
        }
        let _ = self.client.flush().await;
    }
}

/// What [`Worker::open`] gives: the worker and what the adapter serves
/// beside it.
pub struct Opened {
    pub worker: Arc<Worker>,
    pub registry: prometheus_client::registry::Registry,
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub metrics: metrics::Metrics,
    /// Card-sync progress (`gsl_sync`).
    pub sync_kv: async_nats::jetstream::kv::Store,
}

impl Worker {
    /// Connect to the bus, open the topology and build the worker (no
    /// consume loops: [`Adapter::start`] adds those; tests drive
    /// [`Worker::handle`] directly).
    pub async fn open(
        cfg: &AdapterConfig,
        api: Arc<dyn carrier::CarrierApi>,
    ) -> Result<Opened, StartError> {
        let (client, js) = gsl_bus::connect(&cfg.bus).await?;
        let b = topology::open(
            &js,
            cfg.bus.topology,
            &Topology {
                replicas: cfg.bus.replicas,
                ..Default::default()
            },
        )
        .await?;
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = metrics::Metrics::new(&mut registry, cfg.carrier.as_str());
        for (class, rate) in [("change", cfg.rate_change), ("query", cfg.rate_query)] {
            metrics
                .rate_limit
                .get_or_create(&metrics::Labels {
                    carrier: cfg.carrier.as_str().into(),
                    value: class.into(),
                })
                .set(f64::from(rate.limit) / rate.window.as_secs_f64());
        }
        let pacer = pacing::Pacer::new(cfg, &b.rate, metrics.limiter_wait_seconds.clone());
        let reporter = report::Reporter::new(
            &cfg.gateway_url,
            &cfg.adapter_token,
            cfg.report_give_up,
            cfg.gateway_ca_cert.as_deref(),
        )
        .map_err(StartError::Config)?;
        // Enough items in hand for a batch to fill.
        let items_in_hand = cfg.concurrency.max(api.batch_size() * 3);
        let worker = Arc::new(Worker {
            api: api.clone(),
            js: js.clone(),
            records: record::Records {
                kv: b.items.clone(),
            },
            guards: guards::Guards {
                guards: b.guards.clone(),
                quota: b.quota.clone(),
                clock: cfg.clock,
                disabled: cfg.cooldowns_disabled.clone(),
                holds: cfg.cooldown_holds.clone(),
            },
            backoffice: b.backoffice.clone(),
            pacer,
            reporter,
            metrics: metrics.clone(),
            calendar: gsl_domain::calendar::Calendar::builtin().clone(),
            batcher: batch::Batcher::new(cfg.batch_window),
            item_permits: tokio::sync::Semaphore::new(items_in_hand),
            item_permit_count: items_in_hand,
            completion: completion::CompletionTimes::new(
                cfg.first_poll_min,
                cfg.first_poll_max,
                cfg.poll_interval,
            ),
            cfg: cfg.clone(),
        });
        Ok(Opened {
            worker,
            registry,
            client,
            js,
            metrics,
            sync_kv: b.sync.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Work,
    Follow,
}

/// Pull, process with bounded concurrency, keep long work alive with
/// in-progress acks, and settle each message.
async fn run_loop(
    w: Arc<Worker>,
    consumer: async_nats::jetstream::consumer::Consumer<pull::Config>,
    shutdown: Shutdown,
    kind: Kind,
) {
    // A batch fills only if enough of its members are in hand at once.
    let concurrency = match kind {
        Kind::Work => w.item_permit_count,
        Kind::Follow => w.cfg.concurrency,
    };
    let sem = Arc::new(Semaphore::new(concurrency));
    let stop = shutdown.listener();
    'outer: loop {
        let mut msgs = match consumer
            .stream()
            .max_messages_per_batch(concurrency)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
        {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "cannot pull; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                if stop.is_triggered() {
                    break;
                }
                continue;
            }
        };
        loop {
            let permit = tokio::select! {
                _ = stop.clone().wait() => break 'outer,
                p = sem.clone().acquire_owned() => p.expect("semaphore open"),
            };
            let next = tokio::select! {
                _ = stop.clone().wait() => break 'outer,
                m = msgs.next() => m,
            };
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    warn!(error = %e, "consumer error");
                    continue;
                }
                None => break,
            };
            let w = w.clone();
            tokio::spawn(async move {
                w.metrics.in_flight.inc();
                let work = async {
                    match kind {
                        Kind::Work => w.process_work(&msg).await,
                        Kind::Follow => w.process_follow(&msg).await,
                    }
                };
                let d = keep_alive(&msg, w.cfg.ack_wait, work).await;
                let r = match d {
                    Disposition::Ack => msg.ack().await,
                    Disposition::Nak(delay) => msg.ack_with(AckKind::Nak(Some(delay))).await,
                    Disposition::Term => msg.ack_with(AckKind::Term).await,
                };
                if let Err(e) = r {
                    warn!(error = %e, "ack failed; the message will be redelivered");
                }
                w.metrics.in_flight.dec();
                drop(permit);
            });
        }
    }
    // Drain: wait for the tasks in hand to finish.
    let _ = tokio::time::timeout(w.cfg.ack_wait, sem.acquire_many(concurrency as u32)).await;
}

/// Run `work`, sending in-progress acks so a slow item (waiting for the rate
/// budget, retrying a carrier, reporting to a gateway that is down) keeps its
/// message instead of being redelivered elsewhere.
async fn keep_alive<T>(
    msg: &async_nats::jetstream::Message,
    ack_wait: Duration,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(ack_wait / 3);
    tick.tick().await;
    loop {
        tokio::select! {
            r = &mut work => return r,
            _ = tick.tick() => {
                let _ = msg.ack_with(AckKind::Progress).await;
            }
        }
    }
}

async fn consumer_stats(
    js: async_nats::jetstream::Context,
    carrier: gsl_domain::Carrier,
    m: metrics::Metrics,
    shutdown: Shutdown,
) {
    let stop = shutdown.listener();
    loop {
        for (stream, consumer, gauge) in [
            (
                names::STREAM_WORK,
                names::adapter_consumer(carrier),
                &m.consumer_pending,
            ),
            (
                names::STREAM_FOLLOW,
                names::follow_consumer(carrier),
                &m.follow_pending,
            ),
        ] {
            if let Ok(s) = js.get_stream(stream).await
                && let Ok(mut c) = s.get_consumer::<pull::Config>(&consumer).await
                && let Ok(info) = c.info().await
            {
                gauge.set((info.num_pending + info.num_ack_pending as u64) as i64);
            }
        }
        tokio::select! {
            _ = stop.clone().wait() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
