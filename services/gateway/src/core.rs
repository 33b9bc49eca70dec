//! The gateway's shared state and the helpers every operation uses:
//! publishing events, the per-order metadata cache, metrics.

use crate::auth::Authenticator;
use crate::config::GatewayConfig;
use crate::error::ApiError;
use crate::registry::Registry;
use crate::store::{Counts, Store, chunks_for};
use async_nats::HeaderMap;
use async_nats::jetstream::Context;
use chrono::Utc;
use gsl_bus::codec::encode;
use gsl_bus::names;
use gsl_bus::publish::{Outgoing, Pipeline, publish_one};
use gsl_domain::workorder::WorkOrderStatus;
use gsl_proto::{convert, v1};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry as MetricRegistry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub operation: String,
    /// The order's carrier, or `mixed`.
    pub carrier: String,
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriftLabels {
    pub carrier: String,
    /// status, stop_reason, real_name, imei, network, profile.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReportLabels {
    pub kind: String,
    pub duplicate: String,
}

/// The gateway's metrics.
#[derive(Clone)]
pub struct Metrics {
    pub orders_accepted: Family<OpLabels, Counter>,
    pub orders_refused: Family<CodeLabels, Counter>,
    pub items_refused: Family<CodeLabels, Counter>,
    pub items_published: Counter,
    pub reports: Family<ReportLabels, Counter>,
    pub submit_seconds: Histogram,
    pub intake_dead_letters: Counter,
    /// Bytes stored and the byte limit of every stream and bucket: alert
    /// on `gsl_store_bytes / gsl_store_max_bytes` (see docs/security.md).
    pub store_bytes: Family<StreamLabels, prometheus_client::metrics::gauge::Gauge>,
    pub store_max_bytes: Family<StreamLabels, prometheus_client::metrics::gauge::Gauge>,
    /// Cards the carrier changed behind our back, found by card sync.
    pub card_drift: Family<DriftLabels, Counter>,
}

impl Metrics {
    pub fn new(reg: &mut MetricRegistry) -> Metrics {
        let m = Metrics {
            orders_accepted: Family::default(),
            orders_refused: Family::default(),
            items_refused: Family::default(),
            items_published: Counter::default(),
            reports: Family::default(),
            submit_seconds: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            intake_dead_letters: Counter::default(),
            store_bytes: Family::default(),
            store_max_bytes: Family::default(),
            card_drift: Family::default(),
        };
        reg.register(
            "gsl_card_drift",
            "Cards the carrier changed behind our back (card sync), by carrier and what changed",
            m.card_drift.clone(),
        );
        reg.register(
            "gsl_gateway_orders_accepted",
            "Work orders accepted, by operation and source",
            m.orders_accepted.clone(),
        );
        reg.register(
            "gsl_gateway_orders_refused",
            "Whole requests refused, by code",
            m.orders_refused.clone(),
        );
        reg.register(
            "gsl_gateway_items_refused",
            "Items refused at validation, by code",
            m.items_refused.clone(),
        );
        reg.register(
            "gsl_gateway_items_published",
            "Work items published to GSL_WORK",
            m.items_published.clone(),
        );
        reg.register(
            "gsl_gateway_reports",
            "Item outcomes reported by adapters, by kind and whether they were repeats",
            m.reports.clone(),
        );
        reg.register(
            "gsl_gateway_submit_seconds",
            "Time to accept a work order (validation, persistence, fan-out)",
            m.submit_seconds.clone(),
        );
        reg.register(
            "gsl_gateway_intake_dead_letters",
            "Intake messages dead-lettered",
            m.intake_dead_letters.clone(),
        );
        reg.register(
            "gsl_store_bytes",
            "Bytes stored in each stream and bucket",
            m.store_bytes.clone(),
        );
        reg.register(
            "gsl_store_max_bytes",
            "Byte limit of each stream and bucket (0: none)",
            m.store_max_bytes.clone(),
        );
        m
    }
}

/// Every stream and bucket the project stores in.
pub const STORES: &[&str] = &[
    gsl_bus::names::STREAM_WORK,
    gsl_bus::names::STREAM_EVENTS,
    gsl_bus::names::STREAM_INTAKE,
    gsl_bus::names::STREAM_FOLLOW,
    gsl_bus::names::STREAM_DLQ,
    "KV_gsl_workorders",
    "KV_gsl_items",
    "KV_gsl_quota",
    "KV_gsl_guards",
    "KV_gsl_cards",
    "KV_gsl_batches",
    "KV_gsl_idempotency",
    "KV_gsl_results",
    "KV_gsl_rate",
    "KV_gsl_active",
    "KV_gsl_backoffice",
];

/// Refresh the storage gauges every `every` until the gateway stops.
pub async fn watch_storage(
    js: Context,
    m: Metrics,
    every: std::time::Duration,
    stop: gsl_telemetry::shutdown::Listener,
) {
    loop {
        for name in STORES {
            if let Ok(mut s) = js.get_stream(*name).await
                && let Ok(info) = s.info().await
            {
                let l = StreamLabels {
                    stream: (*name).to_owned(),
                };
                m.store_bytes.get_or_create(&l).set(info.state.bytes as i64);
                m.store_max_bytes
                    .get_or_create(&l)
                    .set(info.config.max_bytes.max(0));
            }
        }
        tokio::select! {
            _ = stop.clone().wait() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// What the Results path needs about an order, cached (it never changes).
#[derive(Debug, Clone)]
pub struct Meta {
    pub tenant: String,
    pub total: u64,
    pub chunks: usize,
    pub op: v1::Operation,
    /// The items went to the adapters (not held in review, cancelled or
    /// rejected before that): only then are outcomes taken.
    pub sent: bool,
}

/// Whether an order in this status has had its items sent.
pub fn items_sent(status: i32) -> bool {
    [
        v1::WorkOrderStatus::Processing,
        v1::WorkOrderStatus::Completed,
        v1::WorkOrderStatus::Failed,
    ]
    .iter()
    .any(|s| *s as i32 == status)
}

/// Why the items of an order cancelled or rejected in review were never sent.
pub fn never_sent(o: &v1::WorkOrder) -> Option<&'static str> {
    let cancelled = o.status == v1::WorkOrderStatus::Cancelled as i32;
    let rejected = o.status == v1::WorkOrderStatus::Rejected as i32
        && o.history
            .iter()
            .any(|h| h.status == v1::WorkOrderStatus::InReview as i32);
    if cancelled {
        Some("work order cancelled before its items were sent")
    } else if rejected {
        Some("work order rejected in review: its items were never sent")
    } else {
        None
    }
}

/// Shared state.
pub struct Core {
    pub js: Context,
    pub client: async_nats::Client,
    pub store: Store,
    pub registry: Registry,
    pub auth: Arc<dyn Authenticator>,
    pub cfg: GatewayConfig,
    pub metrics: Metrics,
    pub tenants: Vec<String>,
    /// Orders whose counts changed since the last counts event.
    pub dirty: Mutex<HashMap<u64, (String, u64, usize)>>,
    /// Orders this replica is fanning out in the background right now.
    pub fanning: Mutex<std::collections::HashSet<u64>>,
    /// Every order's summary (for per-tenant quotas).
    pub index: crate::index::OrderIndex,
    meta: Mutex<HashMap<u64, Arc<Meta>>>,
}

const META_CACHE: usize = 10_000;

/// What a gateway's shared state is made of.
pub struct CoreParts {
    pub js: Context,
    pub client: async_nats::Client,
    pub store: Store,
    pub registry: Registry,
    pub auth: Arc<dyn Authenticator>,
    pub cfg: GatewayConfig,
    pub metrics: Metrics,
    pub tenants: Vec<String>,
    pub index: crate::index::OrderIndex,
}

impl Core {
    pub fn new(p: CoreParts) -> Core {
        let CoreParts {
            js,
            client,
            store,
            registry,
            auth,
            cfg,
            metrics,
            tenants,
            index,
        } = p;
        Core {
            index,
            js,
            client,
            store,
            registry,
            auth,
            cfg,
            metrics,
            tenants,
            dirty: Mutex::default(),
            fanning: Mutex::default(),
            meta: Mutex::default(),
        }
    }

    /// Immutable facts of an order (cached).
    pub async fn meta(&self, id: u64) -> Result<Arc<Meta>, ApiError> {
        if let Some(m) = self.meta.lock().expect("meta cache").get(&id) {
            return Ok(m.clone());
        }
        let rec = self
            .store
            .order(id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let o = rec.order.unwrap_or_default();
        let sent = items_sent(o.status);
        let m = Arc::new(Meta {
            tenant: o.tenant,
            total: o.total,
            chunks: rec.chunks as usize,
            op: o.operation.unwrap_or_default(),
            sent,
        });
        // An order not sent yet may be approved later: read it again then.
        if sent {
            self.remember_meta(id, m.clone());
        }
        Ok(m)
    }

    /// An order of this tenant, or "not found" (another tenant's order is not found either).
    pub async fn order_of(&self, tenant: &str, id: u64) -> Result<v1::OrderRecord, ApiError> {
        let rec = self
            .store
            .order(id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        if rec.order.as_ref().map(|o| o.tenant.as_str()) != Some(tenant) {
            return Err(ApiError::not_found());
        }
        Ok(rec)
    }

    /// Publish an event to GSL_EVENTS (`card` None: an order-level event).
    /// An order event as a bus message.
    pub fn event_msg(
        &self,
        tenant: &str,
        id: u64,
        card: Option<&str>,
        event: v1::work_order_event::Event,
        msg_id: Option<String>,
    ) -> Outgoing {
        let ev = v1::WorkOrderEvent {
            work_order_id: id,
            tenant: tenant.to_owned(),
            at: Some(convert::timestamp(Utc::now())),
            event: Some(event),
        };
        let subject = match card {
            Some(c) => names::event_subject(tenant, id, c),
            None => names::order_event_subject(tenant, id),
        };
        let mut headers = HeaderMap::new();
        gsl_telemetry::propagate::inject_nats(&mut headers);
        Outgoing {
            subject,
            msg_id,
            headers: Some(headers),
            payload: encode(&ev),
        }
    }

    pub async fn publish_event(
        &self,
        tenant: &str,
        id: u64,
        card: Option<&str>,
        event: v1::work_order_event::Event,
        msg_id: Option<String>,
    ) -> Result<(), ApiError> {
        publish_one(&self.js, self.event_msg(tenant, id, card, event, msg_id)).await?;
        Ok(())
    }

    /// Publish events in order, waiting for all acks at the end (one round
    /// trip for the lot instead of one each).
    pub async fn publish_events(&self, msgs: Vec<Outgoing>) -> Result<(), ApiError> {
        let mut p = Pipeline::new(&self.js, self.cfg.fanout_window);
        for m in msgs {
            p.push(m).await?;
        }
        p.finish().await?;
        Ok(())
    }

    /// A status-change event message.
    pub fn status_msg(&self, tenant: &str, id: u64, change: &v1::StatusChange) -> Outgoing {
        self.event_msg(
            tenant,
            id,
            None,
            v1::work_order_event::Event::StatusChanged(change.clone()),
            Some(format!("{id}:status:{}", change.status)),
        )
    }

    /// A counts event message.
    pub fn counts_msg(&self, tenant: &str, id: u64, counts: Counts) -> Outgoing {
        self.event_msg(
            tenant,
            id,
            None,
            v1::work_order_event::Event::Counts(counts.to_wire()),
            None,
        )
    }

    pub async fn publish_status(
        &self,
        tenant: &str,
        id: u64,
        change: &v1::StatusChange,
    ) -> Result<(), ApiError> {
        publish_one(&self.js, self.status_msg(tenant, id, change)).await?;
        Ok(())
    }

    pub async fn publish_counts(
        &self,
        tenant: &str,
        id: u64,
        counts: Counts,
    ) -> Result<(), ApiError> {
        publish_one(&self.js, self.counts_msg(tenant, id, counts)).await?;
        Ok(())
    }

    /// Remember an order's immutable facts (at submit, so reports need not read them).
    pub fn remember_meta(&self, id: u64, m: Arc<Meta>) {
        let mut cache = self.meta.lock().expect("meta cache");
        if cache.len() >= META_CACHE {
            cache.clear();
        }
        cache.insert(id, m);
    }

    pub fn mark_dirty(&self, id: u64, tenant: &str, total: u64) {
        self.dirty
            .lock()
            .expect("dirty set")
            .insert(id, (tenant.to_owned(), total, chunks_for(total as usize)));
    }

    /// Fill in counts: stored ones for terminal orders, exact ones otherwise.
    pub async fn with_counts(&self, rec: &v1::OrderRecord) -> Result<v1::WorkOrder, ApiError> {
        let mut o = rec.order.clone().unwrap_or_default();
        let status = convert::status_from_wire(o.status).ok();
        let settled = status
            .is_some_and(|s| matches!(s, WorkOrderStatus::Completed | WorkOrderStatus::Failed));
        if !settled {
            let c = self
                .store
                .counts(o.id, o.total, rec.chunks as usize)
                .await?;
            o.succeeded = c.succeeded;
            o.failed = c.failed;
            o.processing = c.processing();
            if never_sent(&o).is_some() {
                o.failed += o.processing;
                o.processing = 0;
            }
        }
        Ok(o)
    }
}

/// A status change entry.
pub fn status_change(s: WorkOrderStatus, reason: &str) -> v1::StatusChange {
    v1::StatusChange {
        status: convert::status_to_wire(s) as i32,
        at: Some(convert::timestamp(Utc::now())),
        reason: reason.to_owned(),
        counts: None,
    }
}
