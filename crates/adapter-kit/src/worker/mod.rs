//! What happens to one item, from delivery to final outcome.
//!
//! ```text
//! delivery ─► record?  none ──► rules ─► cooldowns ─► quota ─► intent ─► call ─┬─ accepted ─► (inline poll) ─► follow ─► ack
//!                      intent ─► look the transaction up at the carrier ───────┤─ refused ──► done (failed) ─► report ─► ack
//!                      accepted ─► make sure it is followed, ack               ├─ transient ► nak with backoff (last delivery: dead letter)
//!                      done ─► report again if needed, ack                     └─ unknown ──► nak; the next delivery looks it up
//! follow-up ─► poll (query budget) ─► pending: SLA breach? nak with delay │ final: done ─► release ─► report ─► ack
//! ```
//!
//! Every step that changes shared state does so by compare-and-set; a lost
//! race re-reads the record and continues from what it says.
//!
//! ## Layout
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the worker, a work message's entry point |
//! | [`wire`] | bus messages to items and back |
//! | [`step`] | **the transition table**: the steps, what travels between them, the one loop that applies them (read this first) |
//! | [`machine`] | the machine's own steps (rules, guards, intent, call, lookup, acceptance) |
//! | [`finish`] | final outcomes: record, release, report |
//! | [`follow`] | follow-ups and the SLA timer |
//! | [`park`] | waiting out a carrier's repeat window on a follow-up, not on deliveries |
//! | [`deadletter`] | the dead-letter stream |
//! | [`retry`] | backoff and giving up |
//! | [`timing`] | spans and metrics of carrier calls |
//! | [`backoffice`] | requests for operations with no public API |
//! | [`batch`] | batch calls: many items, one carrier call, one job to follow |
//! | [`bundle`] | bundles: many items in one work message |

mod backoffice;
mod batch;
mod bundle;
mod deadletter;
mod finish;
mod follow;
mod machine;
mod park;
mod retry;
mod step;
mod timing;
mod wire;

pub use backoffice::BACK_OFFICE_REF;
pub use batch::{BATCH_HEADER, Member, MemberResult};
use finish::final_of;
use retry::backoff;
use wire::item_from;

use crate::carrier::{CarrierApi, Item};
use crate::config::AdapterConfig;
use crate::guards::Guards;
use crate::metrics::Metrics;
use crate::pacing::Pacer;
use crate::record::Records;
use crate::report::Reporter;
use async_nats::jetstream::{Context, Message};
use chrono::{DateTime, Utc};
use gsl_bus::codec::decode;
use gsl_domain::calendar::Calendar;
use gsl_domain::codes::ErrorCode;
use gsl_proto::v1;
use std::sync::Arc;
use std::time::Duration;
use tracing::{Instrument, info_span, warn};

/// Whether the gateway took a final outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    Acknowledged,
    /// Refused for good; the item was dead-lettered.
    Refused,
}

impl Reported {
    pub(super) fn disposition(self) -> Disposition {
        match self {
            Reported::Acknowledged => Disposition::Ack,
            Reported::Refused => Disposition::Term,
        }
    }
}

/// What to do with a message once processing returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Disposition {
    Ack,
    Nak(Duration),
    /// Dead-lettered already: stop redelivery.
    Term,
}

pub struct Worker {
    pub(crate) cfg: AdapterConfig,
    pub(crate) api: Arc<dyn CarrierApi>,
    pub(crate) js: Context,
    pub(crate) records: Records,
    pub(crate) guards: Guards,
    pub(crate) pacer: Arc<Pacer>,
    pub(crate) reporter: Reporter,
    pub(crate) metrics: Metrics,
    pub(crate) calendar: Calendar,
    /// `gsl_backoffice`: requests for operations with no public API.
    pub(crate) backoffice: async_nats::jetstream::kv::Store,
    /// Items gathered into batch calls ([`crate::batch`]).
    pub(crate) batcher: crate::batch::Batcher<Member, MemberResult>,
    /// Items of bundles in hand at once, and how many permits there are.
    pub(crate) item_permits: tokio::sync::Semaphore,
    pub(crate) item_permit_count: usize,
    /// How long the carrier takes per operation (the first read waits it).
    pub(crate) completion: crate::completion::CompletionTimes,
}

impl Worker {
    /// The item's batch key, when batch calls are on and the carrier
    /// batches its operation.
    pub(super) fn batch_key(&self, item: &Item) -> Option<crate::carrier::BatchKey> {
        if self.cfg.batch_window.is_zero() {
            return None;
        }
        self.api.batch_key(item)
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.cfg.clock.now()
    }

    /// The settings this worker runs with.
    pub fn config(&self) -> &AdapterConfig {
        &self.cfg
    }

    /// An item's execution record and its revision (tests, tools).
    pub async fn record(
        &self,
        key: &str,
    ) -> Result<Option<(crate::record::ExecRecord, u64)>, gsl_bus::BusError> {
        self.records.get(key).await
    }

    /// A batch call's record and its revision (tests, tools).
    pub async fn batch_record(
        &self,
        key: &str,
    ) -> Result<Option<(crate::record::BatchRecord, u64)>, gsl_bus::BusError> {
        self.records.get_batch(key).await
    }

    /// How long the first read of an accepted `kind` change waits now.
    pub fn first_read(&self, kind: gsl_domain::OperationKind) -> Duration {
        self.completion.first_read(kind)
    }

    /// One work item at its `delivered`-th delivery, without a bus message:
    /// the state machine as the consume loop drives it (deterministic tests
    /// drive it through this). A malformed item is an error, not a dead
    /// letter; a bus error is a nak.
    pub async fn handle(&self, wi: v1::WorkItem, delivered: i64) -> Result<Disposition, String> {
        let (item, card) = self.with_card(item_from(wi, self.cfg.carrier)?);
        let key = gsl_bus::names::item_key(item.carrier, item.work_order_id, &item.card);
        let d = step::Delivery {
            item: &item,
            key: &key,
            delivered,
            last: delivered >= self.cfg.max_deliver,
            card: card.as_ref(),
        };
        Ok(self
            .work(&d)
            .await
            .unwrap_or(Disposition::Nak(backoff(delivered))))
    }

    /// A work message.
    pub async fn process_work(&self, msg: &Message) -> Disposition {
        let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
        if delivered > 1 {
            self.metrics.redeliveries.inc();
        }
        if msg
            .headers
            .as_ref()
            .and_then(|h| h.get(gsl_bus::names::headers::BUNDLE))
            .is_some()
        {
            return self.process_bundle(msg, delivered).await;
        }
        let (item, card) = match self.read_item(msg).await {
            Ok(i) => i,
            Err(d) => return d,
        };
        self.consume(
            &item,
            card.as_ref(),
            delivered,
            &msg.subject,
            msg.headers.as_ref(),
            &msg.payload,
        )
        .await
    }

    /// One item at its `delivered`-th delivery, in a `consume` span
    /// parented (or linked) from its message's headers. `payload` is the
    /// item as published on `subject`, kept in the dead-letter stream when it
    /// still fails past the last delivery.
    pub(super) async fn consume(
        &self,
        item: &Item,
        card: Option<&v1::CardSnapshot>,
        delivered: i64,
        subject: &str,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
    ) -> Disposition {
        let span = info_span!(
            "consume",
            messaging.system = "nats",
            messaging.operation = "process",
            messaging.destination.name = %subject,
            messaging.message.delivery_count = delivered,
            work_order_id = item.work_order_id,
            card = %item.card,
            carrier = %item.carrier,
            operation = item.kind().map(|k| k.as_str()).unwrap_or(""),
            trace_id = tracing::field::Empty,
        );
        gsl_telemetry::propagate::set_parent_from_nats(&span, headers);
        gsl_telemetry::propagate::link_order_trace(&span, headers);
        gsl_telemetry::record_trace_id(&span);
        let key = gsl_bus::names::item_key(item.carrier, item.work_order_id, &item.card);
        let d = step::Delivery {
            item,
            key: &key,
            delivered,
            last: delivered >= self.cfg.max_deliver,
            card,
        };
        match self.work(&d).instrument(span).await {
            Ok(d) => d,
            // The consumer gives one delivery more than we do: past our last,
            // a message that still fails (a final outcome the gateway never
            // takes, a bus that keeps failing) is kept in the dead-letter
            // stream with its reason instead of being stranded.
            Err(e) if delivered > self.cfg.max_deliver => {
                warn!(error = %e, work_order_id = item.work_order_id, card = %item.card, "still failing after the last delivery; dead-lettering");
                self.metrics.item("dead_lettered");
                let why = format!("still failing after {delivered} deliveries: {e}");
                match self
                    .publish_dead_letter(
                        subject,
                        payload,
                        ErrorCode::MaxDeliveries,
                        &why,
                        delivered as u64,
                    )
                    .await
                {
                    Ok(()) => Disposition::Term,
                    Err(_) => Disposition::Nak(Duration::from_secs(1)),
                }
            }
            Err(e) => {
                warn!(error = %e, work_order_id = item.work_order_id, card = %item.card, "step failed; will be redelivered");
                Disposition::Nak(backoff(delivered))
            }
        }
    }
}
