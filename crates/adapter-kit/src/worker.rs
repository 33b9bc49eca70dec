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

use crate::carrier::{Accepted, CallCtx, CallError, CarrierApi, Item, Lookup, Progress};
use crate::config::AdapterConfig;
use crate::guards::{Guards, Held, Refusal};
use crate::metrics::Metrics;
use crate::pacing::Pacer;
use crate::record::{ExecRecord, Final, Records, State};
use crate::report::{ReportError, Reporter};
use async_nats::HeaderMap;
use async_nats::jetstream::{Context, Message};
use chrono::{DateTime, Utc};
use gsl_bus::codec::{decode, encode};
use gsl_bus::names;
use gsl_bus::publish::{Outgoing, publish_one};
use gsl_domain::calendar::Calendar;
use gsl_domain::card::TriNetVersion;
use gsl_domain::codes::ErrorCode;
use gsl_domain::{OperationKind, capability, sla};
use gsl_proto::{convert, v1};
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
    fn disposition(self) -> Disposition {
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
    pub cfg: AdapterConfig,
    pub api: Arc<dyn CarrierApi>,
    pub js: Context,
    pub records: Records,
    pub guards: Guards,
    pub cards: async_nats::jetstream::kv::Store,
    pub pacer: Arc<Pacer>,
    pub reporter: Reporter,
    pub metrics: Metrics,
    pub calendar: Calendar,
    /// `gsl_backoffice`: requests for operations with no public API.
    pub backoffice: async_nats::jetstream::kv::Store,
}

/// Why a message is malformed (dead-lettered at once).
fn item_from(wi: v1::WorkItem, carrier: gsl_domain::Carrier) -> Result<Item, String> {
    let c = convert::carrier_from_wire(wi.carrier).map_err(|e| e.to_string())?;
    if c != carrier {
        return Err(format!("item for {c} delivered to the {carrier} adapter"));
    }
    if wi.card.is_empty()
        || wi.card.starts_with('_')
        || !wi
            .card
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("card {:?} is not a card key", wi.card));
    }
    let op = wi.operation.ok_or("operation missing")?;
    if convert::operation_kind(&op).is_none() {
        return Err("operation empty".into());
    }
    if wi.work_order_id == 0 {
        return Err("work_order_id missing".into());
    }
    Ok(Item {
        work_order_id: wi.work_order_id,
        card: wi.card,
        index: wi.index,
        tenant: wi.tenant,
        carrier: c,
        op,
        batch_no: wi.batch_no,
        msisdn: String::new(),
        access_number: String::new(),
    })
}

/// `poll_ref` of an item followed through the back-office queue.
pub const BACK_OFFICE_REF: &str = "backoffice:";

fn backoff(delivered: i64) -> Duration {
    // 1 s, 2 s, 4 s ... 60 s, plus up to 20 % jitter.
    let base = Duration::from_secs(1 << (delivered.clamp(1, 7) - 1)).min(Duration::from_secs(60));
    base + base.mul_f64(rand::random::<f64>() * 0.2)
}

impl Worker {
    fn now(&self) -> DateTime<Utc> {
        self.cfg.clock.now()
    }

    fn outcome(&self, item: &Item, kind: v1::OutcomeKind) -> v1::ItemOutcome {
        v1::ItemOutcome {
            work_order_id: item.work_order_id,
            card: item.card.clone(),
            index: item.index,
            tenant: item.tenant.clone(),
            carrier: convert::carrier_to_wire(item.carrier) as i32,
            operation: item
                .kind()
                .map(|k| convert::kind_to_wire(k) as i32)
                .unwrap_or_default(),
            kind: kind as i32,
            at: Some(convert::timestamp(self.now())),
            reporter: self.cfg.instance.clone(),
            ..Default::default()
        }
    }

    /// A work message.
    pub async fn process_work(&self, msg: &Message) -> Disposition {
        let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
        if delivered > 1 {
            self.metrics.redeliveries.inc();
        }
        let wi = match decode::<v1::WorkItem>("WorkItem", &msg.payload) {
            Ok(w) => w,
            Err(e) => {
                return self
                    .dead_letter(msg, ErrorCode::MalformedMessage, &e.to_string())
                    .await;
            }
        };
        let item = match item_from(wi, self.cfg.carrier) {
            Ok(i) => self.with_numbers(i).await,
            Err(why) => {
                return self
                    .dead_letter(msg, ErrorCode::MalformedMessage, &why)
                    .await;
            }
        };
        let span = info_span!(
            "consume",
            messaging.system = "nats",
            messaging.operation = "process",
            messaging.destination.name = %msg.subject,
            messaging.message.delivery_count = delivered,
            work_order_id = item.work_order_id,
            card = %item.card,
            carrier = %item.carrier,
            operation = item.kind().map(|k| k.as_str()).unwrap_or(""),
            trace_id = tracing::field::Empty,
        );
        gsl_telemetry::propagate::set_parent_from_nats(&span, msg.headers.as_ref());
        gsl_telemetry::propagate::link_order_trace(&span, msg.headers.as_ref());
        gsl_telemetry::record_trace_id(&span);
        let last = delivered >= self.cfg.max_deliver;
        match self.work(&item, delivered, last).instrument(span).await {
            Ok(d) => d,
            // The consumer gives one delivery more than we do: past our last,
            // a message that still fails (a final outcome the gateway never
            // takes, a bus that keeps failing) is kept in the dead-letter
            // stream with its reason instead of being stranded.
            Err(e) if delivered > self.cfg.max_deliver => {
                warn!(error = %e, work_order_id = item.work_order_id, card = %item.card, "still failing after the last delivery; dead-lettering");
                self.metrics.item("dead_lettered");
                self.dead_letter(
                    msg,
                    ErrorCode::MaxDeliveries,
                    &format!("still failing after {delivered} deliveries: {e}"),
                )
                .await
            }
            Err(e) => {
                warn!(error = %e, work_order_id = item.work_order_id, card = %item.card, "bus error; will be redelivered");
                Disposition::Nak(backoff(delivered))
            }
        }
    }

    async fn work(
        &self,
        item: &Item,
        delivered: i64,
        last: bool,
    ) -> Result<Disposition, gsl_bus::BusError> {
        let key = names::item_key(item.carrier, item.work_order_id, &item.card);
        for _ in 0..10 {
            let step = match self.records.get(&key).await? {
                None => self.fresh(item, &key, delivered, last).await?,
                Some((rec, rev)) => match rec.state {
                    State::Done => {
                        Some(self.report_final(item, &key, rec, rev).await?.disposition())
                    }
                    State::Accepted => {
                        self.follow(item, &key).await?;
                        let _ = self
                            .reporter
                            .report(self.accepted_outcome(item, &rec))
                            .await;
                        Some(Disposition::Ack)
                    }
                    State::Intent => {
                        self.resume_intent(item, &key, rec, rev, delivered, last)
                            .await?
                    }
                },
            };
            if let Some(d) = step {
                return Ok(d);
            }
            // A lost race: read the record again and go on from it.
        }
        Ok(Disposition::Nak(backoff(delivered)))
    }

    /// Rules at execution time, against the card registry.
    async fn check_rules(
        &self,
        item: &Item,
        kind: OperationKind,
    ) -> Result<Result<bool, Refusal>, gsl_bus::BusError> {
        if kind.is_directional() {
            return Ok(capability::check_offered(kind, item.carrier)
                .map(|_| false)
                .map_err(|v| Refusal {
                    code: v.code(),
                    message: v.to_string(),
                }));
        }
        let e = gsl_bus::kv::read(&self.cards, &item.card).await?;
        let card = gsl_bus::kv::live(&e).and_then(|b| decode::<v1::Card>("Card", b).ok());
        let Some(facts) = card.as_ref().and_then(convert::card_facts) else {
            return Ok(Err(Refusal {
                code: ErrorCode::CardNotFound,
                message: "card not in the registry".into(),
            }));
        };
        let op = match convert::operation_to_domain(&item.op) {
            Ok(op) => op,
            Err(e) => {
                return Ok(Err(Refusal {
                    code: ErrorCode::InvalidItemParameter,
                    message: e.to_string(),
                }));
            }
        };
        Ok(capability::check_capability(&op, &facts)
            .map(|_| facts.trinet_version == Some(TriNetVersion::NoSdk))
            .map_err(|v| Refusal {
                code: v.code(),
                message: v.to_string(),
            }))
    }

    async fn fresh(
        &self,
        item: &Item,
        key: &str,
        delivered: i64,
        last: bool,
    ) -> Result<Option<Disposition>, gsl_bus::BusError> {
        let kind = item.kind().expect("checked when decoded");
        let no_sdk = match self.check_rules(item, kind).await? {
            Ok(no_sdk) => no_sdk,
            Err(r) => return self.refuse(item, key, r, Vec::new(), None).await.map(Some),
        };
        let now = self.now();
        let hold = sla::deadline(&self.calendar, kind, item.carrier, now)
            .map(|d| d - now)
            .unwrap_or(chrono::Duration::days(1));
        let held = match self
            .guards
            .acquire(item, key, no_sdk, kind, hold)
            .instrument(info_span!("cooldowns"))
            .await?
        {
            Ok(h) => h,
            Err(r) => {
                self.metrics.rule_refusal(r.code.code());
                return self.refuse(item, key, r, Vec::new(), None).await.map(Some);
            }
        };
        let quota = match self
            .guards
            .reserve_quota(item, key, kind)
            .instrument(info_span!("quota"))
            .await?
        {
            Ok(q) => q,
            Err(r) => {
                self.metrics.rule_refusal(r.code.code());
                self.guards.release(key, &held).await;
                return self.refuse(item, key, r, Vec::new(), None).await.map(Some);
            }
        };
        let rec = ExecRecord {
            state: State::Intent,
            txn: self.api.make_txn(item, now),
            started_at: now,
            ticket: None,
            poll_ref: None,
            accepted_at: None,
            deadline: None,
            sla_reported: false,
            outcome: None,
            reported: false,
            guards: held,
            quota,
            owner: self.cfg.instance.clone(),
        };
        match self.records.create(key, &rec).await? {
            None => Ok(None),
            Some(rev) => self.call(item, key, rec, rev, delivered, last).await,
        }
    }

    async fn resume_intent(
        &self,
        item: &Item,
        key: &str,
        rec: ExecRecord,
        rev: u64,
        delivered: i64,
        last: bool,
    ) -> Result<Option<Disposition>, gsl_bus::BusError> {
        if self.api.back_office(item).is_some() {
            // Filing is an atomic create: the request filed before is found.
            return self.call(item, key, rec, rev, delivered, last).await;
        }
        let ctx = CallCtx::new(&self.pacer, &rec.txn);
        let found = self
            .timed("lookup", self.api.lookup(&ctx, item, rec.started_at))
            .await;
        match found {
            Ok(l) => self.resolved(item, key, rec, rev, l, delivered, last).await,
            Err(CallError::Refused { .. }) => self.call(item, key, rec, rev, delivered, last).await,
            Err(e) if last => self
                .give_up(item, key, rec, rev, &e.to_string())
                .await
                .map(Some),
            Err(_) => Ok(Some(Disposition::Nak(backoff(delivered)))),
        }
    }

    /// Act on what reading the carrier said about a lost answer.
    #[allow(clippy::too_many_arguments)]
    async fn resolved(
        &self,
        item: &Item,
        key: &str,
        rec: ExecRecord,
        rev: u64,
        found: Lookup,
        delivered: i64,
        last: bool,
    ) -> Result<Option<Disposition>, gsl_bus::BusError> {
        match found {
            Lookup::NotMade => self.call(item, key, rec, rev, delivered, last).await,
            Lookup::Made(acc) => self.accepted(item, key, rec, rev, acc).await,
            Lookup::Done(p @ (Progress::Succeeded | Progress::Failed { .. })) => {
                self.complete(item, key, rec, rev, final_of(p)).await
            }
            Lookup::Done(Progress::Pending) => {
                self.accepted(item, key, rec, rev, Accepted::pending("", "card"))
                    .await
            }
            Lookup::Wait(d) if !last => Ok(Some(Disposition::Nak(d))),
            Lookup::Wait(_) => {
                let what = "the carrier's answer was lost and the card is not yet in the target state; check whether the change was made".to_owned();
                self.file_back_office(item, key, rec, rev, v1::BackOfficeKind::Verify, what)
                    .await
            }
            Lookup::Unverifiable(what) => {
                self.file_back_office(item, key, rec, rev, v1::BackOfficeKind::Verify, what)
                    .await
            }
        }
    }

    /// The card's carrier numbers from the registry (empty when it has none).
    async fn with_numbers(&self, mut item: Item) -> Item {
        if !self.api.needs_numbers() || item.kind().is_some_and(|k| k.is_directional()) {
            return item;
        }
        if let Ok(e) = gsl_bus::kv::read(&self.cards, &item.card).await
            && let Some(c) = gsl_bus::kv::live(&e).and_then(|b| decode::<v1::Card>("Card", b).ok())
        {
            item.msisdn = c.msisdn;
            item.access_number = c.access_number;
        }
        item
    }

    /// File (or find) the item's back-office request and follow it.
    async fn file_back_office(
        &self,
        item: &Item,
        key: &str,
        rec: ExecRecord,
        rev: u64,
        kind: v1::BackOfficeKind,
        instructions: String,
    ) -> Result<Option<Disposition>, gsl_bus::BusError> {
        let now = self.now();
        let op = item.kind().expect("checked when decoded");
        let id =
            gsl_bus::backoffice::request_id(item.carrier.as_str(), item.work_order_id, &item.card);
        let req = v1::BackOfficeRequest {
            id: id.clone(),
            carrier: convert::carrier_to_wire(item.carrier) as i32,
            tenant: item.tenant.clone(),
            work_order_id: item.work_order_id,
            card: item.card.clone(),
            batch_no: item.batch_no.clone(),
            operation: Some(item.op.clone()),
            kind: kind as i32,
            state: v1::BackOfficeState::Open as i32,
            instructions,
            created_at: Some(convert::timestamp(now)),
            updated_at: Some(convert::timestamp(now)),
            sla_deadline: sla::deadline(&self.calendar, op, item.carrier, now)
                .map(convert::timestamp),
            msisdn: item.msisdn.clone(),
            ..Default::default()
        };
        let filed = gsl_bus::backoffice::file(&self.backoffice, req).await?;
        self.metrics.item("back_office");
        tracing::info!(request = %filed.id, work_order_id = item.work_order_id, card = %item.card, "back-office request filed");
        self.accepted(
            item,
            key,
            rec,
            rev,
            Accepted::pending(filed.id.clone(), format!("{BACK_OFFICE_REF}{}", filed.id)),
        )
        .await
    }

    /// Progress of an accepted change: the carrier's, or the back office's.
    async fn progress(
        &self,
        ctx: &CallCtx<'_>,
        item: &Item,
        acc: &Accepted,
    ) -> Result<Progress, CallError> {
        let Some(id) = acc.poll_ref.strip_prefix(BACK_OFFICE_REF) else {
            return self.api.poll(ctx, item, acc).await;
        };
        let req = gsl_bus::backoffice::get(&self.backoffice, id)
            .await
            .map_err(|e| CallError::transient(e.to_string()))?;
        Ok(match req {
            Some(r) if r.state == v1::BackOfficeState::Completed as i32 => Progress::Succeeded,
            Some(r) if r.state == v1::BackOfficeState::Rejected as i32 => Progress::Failed {
                carrier_code: r.carrier_ticket,
                message: format!("rejected in the carrier's back office: {}", r.reason),
            },
            Some(_) => Progress::Pending,
            None => Progress::Failed {
                carrier_code: String::new(),
                message: format!("back-office request {id} is gone"),
            },
        })
    }

    async fn call(
        &self,
        item: &Item,
        key: &str,
        rec: ExecRecord,
        rev: u64,
        delivered: i64,
        last: bool,
    ) -> Result<Option<Disposition>, gsl_bus::BusError> {
        if let Some(bo) = self.api.back_office(item) {
            return self
                .file_back_office(
                    item,
                    key,
                    rec,
                    rev,
                    v1::BackOfficeKind::NoApi,
                    bo.instructions,
                )
                .await;
        }
        // Every change call waits for the carrier's budget, then makes sure
        // the item is still ours to call for: a replica that was paused (or
        // slow) past the ack wait finds that another one took it over, and
        // does not call again (the request stack asks this after the slot).
        let still_ours = || -> futures::future::BoxFuture<'_, bool> {
            Box::pin(
                async move { matches!(self.records.get(key).await, Ok(Some((_, r))) if r == rev) },
            )
        };
        let ctx = CallCtx::guarded(&self.pacer, &rec.txn, &still_ours);
        let r = self.timed("submit", self.api.submit(&ctx, item)).await;
        match r {
            Ok(acc) => self.accepted(item, key, rec, rev, acc).await,
            Err(CallError::Superseded) => Ok(None),
            Err(CallError::Refused {
                code,
                carrier_code,
                message,
            }) => {
                self.metrics.carrier_error(code.code());
                let fin = Final {
                    succeeded: false,
                    code: code.code().into(),
                    carrier_code,
                    message,
                };
                self.complete(item, key, rec, rev, fin).await
            }
            Err(CallError::Unknown { reason }) if last => {
                // One last look before giving up: the carrier may have it.
                match self.api.lookup(&ctx, item, rec.started_at).await {
                    Ok(Lookup::NotMade) | Err(_) => {
                        self.give_up(item, key, rec, rev, &reason).await.map(Some)
                    }
                    Ok(Lookup::Made(acc)) => self.accepted(item, key, rec, rev, acc).await,
                    Ok(Lookup::Done(p @ (Progress::Succeeded | Progress::Failed { .. }))) => {
                        self.complete(item, key, rec, rev, final_of(p)).await
                    }
                    Ok(Lookup::Done(Progress::Pending)) => {
                        self.accepted(item, key, rec, rev, Accepted::pending("", "card"))
                            .await
                    }
                    Ok(Lookup::Wait(_)) => {
                        let what = format!(
                            "the carrier's answer was lost ({reason}); check whether the change was made"
                        );
                        self.file_back_office(item, key, rec, rev, v1::BackOfficeKind::Verify, what)
                            .await
                    }
                    Ok(Lookup::Unverifiable(what)) => {
                        self.file_back_office(item, key, rec, rev, v1::BackOfficeKind::Verify, what)
                            .await
                    }
                }
            }
            Err(e @ CallError::Transient { .. }) if last => self
                .give_up(item, key, rec, rev, &e.to_string())
                .await
                .map(Some),
            Err(e) => {
                warn!(error = %e, work_order_id = item.work_order_id, card = %item.card, "carrier call did not succeed; will retry");
                Ok(Some(Disposition::Nak(backoff(delivered))))
            }
        }
    }

    fn accepted_outcome(&self, item: &Item, rec: &ExecRecord) -> v1::ItemOutcome {
        let mut o = self.outcome(item, v1::OutcomeKind::CarrierAccepted);
        o.carrier_ticket = rec.ticket.clone().unwrap_or_default();
        o.sla_deadline = rec.deadline.map(convert::timestamp);
        let back_office = rec
            .poll_ref
            .as_deref()
            .is_some_and(|r| r.starts_with(BACK_OFFICE_REF));
        o.problem = Some(if back_office {
            convert::problem(
                ErrorCode::BackOfficePending,
                "waiting on the carrier's back office (no public API): an operator carries it out",
            )
        } else {
            convert::problem(ErrorCode::CarrierAccepted, "carrier accepted the change")
        });
        o
    }

    async fn accepted(
        &self,
        item: &Item,
        key: &str,
        mut rec: ExecRecord,
        rev: u64,
        acc: Accepted,
    ) -> Result<Option<Disposition>, gsl_bus::BusError> {
        let kind = item.kind().expect("checked when decoded");
        let now = self.now();
        rec.state = State::Accepted;
        rec.ticket = Some(acc.ticket.clone());
        rec.poll_ref = Some(acc.poll_ref.clone());
        rec.accepted_at = Some(now);
        rec.deadline = sla::deadline(&self.calendar, kind, item.carrier, now);
        self.metrics.item("accepted");
        if acc.done {
            return self
                .complete(item, key, rec, rev, final_of(Progress::Succeeded))
                .await;
        }
        // Poll once before writing "accepted": a change complete at once goes
        // straight to "done" (one record write, not two). Dying before either
        // write is safe: the record still says "intent", and the next
        // delivery looks the transaction up at the carrier before calling.
        if self.cfg.inline_poll {
            let ctx = CallCtx::new(&self.pacer, &rec.txn);
            if let Ok(p @ (Progress::Succeeded | Progress::Failed { .. })) =
                self.timed("poll", self.progress(&ctx, item, &acc)).await
            {
                return self.complete(item, key, rec, rev, final_of(p)).await;
            }
        }
        if self.records.update(key, &rec, rev).await?.is_none() {
            return Ok(None);
        }
        self.follow(item, key).await?;
        if let Err(e) = self
            .reporter
            .report(self.accepted_outcome(item, &rec))
            .await
        {
            warn!(error = %e, "could not report the carrier's acceptance");
        }
        Ok(Some(Disposition::Ack))
    }

    /// The item as a bus message again (follow-ups, dead letters).
    fn work_item(&self, item: &Item) -> v1::WorkItem {
        v1::WorkItem {
            work_order_id: item.work_order_id,
            card: item.card.clone(),
            index: item.index,
            tenant: item.tenant.clone(),
            carrier: convert::carrier_to_wire(item.carrier) as i32,
            operation: Some(item.op.clone()),
            submitted_at: None,
            batch_no: item.batch_no.clone(),
        }
    }

    /// Publish the follow-up message (de-duplicated per item).
    async fn follow(&self, item: &Item, key: &str) -> Result<(), gsl_bus::BusError> {
        let wi = self.work_item(item);
        let mut h = HeaderMap::new();
        gsl_telemetry::propagate::inject_nats(&mut h);
        publish_one(
            &self.js,
            Outgoing {
                subject: names::follow_subject(item.carrier),
                msg_id: Some(format!("follow:{key}")),
                headers: Some(h),
                payload: encode(&wi),
            },
        )
        .await?;
        Ok(())
    }

    /// Record a final outcome, release what it releases, report it.
    async fn complete(
        &self,
        item: &Item,
        key: &str,
        mut rec: ExecRecord,
        rev: u64,
        fin: Final,
    ) -> Result<Option<Disposition>, gsl_bus::BusError> {
        rec.state = State::Done;
        rec.outcome = Some(fin.clone());
        let Some(rev) = self.records.update(key, &rec, rev).await? else {
            return Ok(None);
        };
        if fin.succeeded {
            self.guards.release_on_completion(key, &rec.guards).await;
        } else {
            self.guards.release_on_failure(key, &rec.guards).await;
            if let Some(q) = &rec.quota {
                self.guards.release_quota(q, key).await;
            }
        }
        Ok(Some(
            self.report_final(item, key, rec, rev).await?.disposition(),
        ))
    }

    /// A refusal before any carrier call.
    async fn refuse(
        &self,
        item: &Item,
        key: &str,
        r: Refusal,
        held: Vec<Held>,
        quota: Option<String>,
    ) -> Result<Disposition, gsl_bus::BusError> {
        let rec = ExecRecord {
            state: State::Done,
            txn: String::new(),
            started_at: self.now(),
            ticket: None,
            poll_ref: None,
            accepted_at: None,
            deadline: None,
            sla_reported: false,
            outcome: Some(Final {
                succeeded: false,
                code: r.code.code().into(),
                carrier_code: String::new(),
                message: r.message,
            }),
            reported: false,
            guards: held,
            quota,
            owner: self.cfg.instance.clone(),
        };
        match self.records.create(key, &rec).await? {
            Some(rev) => Ok(self.report_final(item, key, rec, rev).await?.disposition()),
            // Someone else recorded this item meanwhile: their record wins.
            None => Ok(Disposition::Nak(Duration::from_millis(200))),
        }
    }

    /// Report a final outcome (again, if it was not acknowledged) and note it.
    async fn report_final(
        &self,
        item: &Item,
        key: &str,
        mut rec: ExecRecord,
        rev: u64,
    ) -> Result<Reported, gsl_bus::BusError> {
        let Some(fin) = rec.outcome.clone() else {
            return Ok(Reported::Acknowledged);
        };
        if rec.reported {
            return Ok(Reported::Acknowledged);
        }
        let mut o = self.outcome(
            item,
            if fin.succeeded {
                v1::OutcomeKind::Succeeded
            } else {
                v1::OutcomeKind::Failed
            },
        );
        o.carrier_ticket = rec.ticket.clone().unwrap_or_default();
        if !fin.succeeded {
            let code = ErrorCode::from_code(&fin.code).unwrap_or(ErrorCode::CarrierRejected);
            let mut p = convert::problem(code, fin.message.clone());
            p.carrier_code = fin.carrier_code.clone();
            o.problem = Some(p);
        }
        match self.reporter.report(o).await {
            Ok(_) => {
                self.metrics
                    .item(if fin.succeeded { "succeeded" } else { "failed" });
                // Not written back: reporting again (a redelivered or
                // duplicated item) is harmless, the gateway counts an item's
                // outcome once, and a write here would cost every item a
                // round trip.
                Ok(Reported::Acknowledged)
            }
            Err(ReportError::Refused(why)) => {
                // A poison item: retrying cannot help. Keep it, with the reason, in the
                // dead-letter stream and stop redelivering it.
                warn!(reason = %why, work_order_id = item.work_order_id, card = %item.card, "gateway refused the outcome; dead-lettering");
                self.publish_dead_letter(
                    &names::work_subject(item.carrier, item.kind().expect("checked")),
                    &encode(&self.work_item(item)),
                    ErrorCode::ReportRefused,
                    &why,
                    0,
                )
                .await?;
                rec.reported = true;
                let _ = self.records.update(key, &rec, rev).await?;
                Ok(Reported::Refused)
            }
            Err(e) => {
                // The record says done; the next delivery reports again.
                warn!(error = %e, work_order_id = item.work_order_id, card = %item.card, "final outcome not reported yet");
                Err(gsl_bus::BusError::Publish {
                    subject: "Results.Report".into(),
                    reason: e.to_string(),
                })
            }
        }
    }

    /// The last delivery failed: dead-letter it and fail the item.
    async fn give_up(
        &self,
        item: &Item,
        key: &str,
        rec: ExecRecord,
        rev: u64,
        reason: &str,
    ) -> Result<Disposition, gsl_bus::BusError> {
        self.metrics.item("dead_lettered");
        let fin = Final {
            succeeded: false,
            code: ErrorCode::CarrierUnavailable.code().into(),
            carrier_code: String::new(),
            message: format!(
                "gave up after {} deliveries: {reason}",
                self.cfg.max_deliver
            ),
        };
        self.publish_dead_letter(
            &names::work_subject(item.carrier, item.kind().expect("checked")),
            &encode(&self.work_item(item)),
            ErrorCode::MaxDeliveries,
            reason,
            self.cfg.max_deliver as u64,
        )
        .await?;
        match self.complete(item, key, rec, rev, fin).await? {
            Some(_) => Ok(Disposition::Term),
            None => Ok(Disposition::Nak(Duration::from_millis(200))),
        }
    }

    async fn publish_dead_letter(
        &self,
        subject: &str,
        payload: &[u8],
        code: ErrorCode,
        why: &str,
        deliveries: u64,
    ) -> Result<(), gsl_bus::BusError> {
        self.metrics.dead_letters.inc();
        let dl = v1::DeadLetter {
            subject: subject.to_owned(),
            payload: payload.to_vec(),
            problem: Some(convert::problem(code, why)),
            deliveries,
            at: Some(convert::timestamp(Utc::now())),
            consumer: names::adapter_consumer(self.cfg.carrier),
        };
        let mut h = HeaderMap::new();
        h.insert(
            names::headers::DLQ_REASON,
            why.chars().take(200).collect::<String>().as_str(),
        );
        h.insert(names::headers::DLQ_CODE, code.code());
        gsl_telemetry::propagate::inject_nats(&mut h);
        publish_one(
            &self.js,
            Outgoing {
                subject: names::dlq_subject(self.cfg.carrier.as_str()),
                msg_id: None,
                headers: Some(h),
                payload: encode(&dl),
            },
        )
        .await?;
        Ok(())
    }

    /// Dead-letter a message we cannot even read.
    pub async fn dead_letter(&self, msg: &Message, code: ErrorCode, why: &str) -> Disposition {
        warn!(subject = %msg.subject, reason = why, "dead-lettering a malformed message");
        let deliveries = msg.info().map(|i| i.delivered as u64).unwrap_or(1);
        match self
            .publish_dead_letter(&msg.subject, &msg.payload, code, why, deliveries)
            .await
        {
            Ok(()) => Disposition::Term,
            Err(_) => Disposition::Nak(Duration::from_secs(1)),
        }
    }

    /// A follow-up message: poll an accepted change.
    pub async fn process_follow(&self, msg: &Message) -> Disposition {
        let wi = match decode::<v1::WorkItem>("WorkItem", &msg.payload) {
            Ok(w) => w,
            Err(e) => {
                return self
                    .dead_letter(msg, ErrorCode::MalformedMessage, &e.to_string())
                    .await;
            }
        };
        let item = match item_from(wi, self.cfg.carrier) {
            Ok(i) => self.with_numbers(i).await,
            Err(why) => {
                return self
                    .dead_letter(msg, ErrorCode::MalformedMessage, &why)
                    .await;
            }
        };
        let span = info_span!(
            "follow_up",
            work_order_id = item.work_order_id,
            card = %item.card,
            carrier = %item.carrier,
            trace_id = tracing::field::Empty,
        );
        gsl_telemetry::propagate::set_parent_from_nats(&span, msg.headers.as_ref());
        gsl_telemetry::record_trace_id(&span);
        match self.follow_up(&item).instrument(span).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "bus error during follow-up; will retry");
                Disposition::Nak(self.cfg.poll_interval)
            }
        }
    }

    async fn follow_up(&self, item: &Item) -> Result<Disposition, gsl_bus::BusError> {
        let key = names::item_key(item.carrier, item.work_order_id, &item.card);
        for _ in 0..10 {
            let Some((mut rec, rev)) = self.records.get(&key).await? else {
                return Ok(Disposition::Ack);
            };
            match rec.state {
                State::Done => {
                    return Ok(self.report_final(item, &key, rec, rev).await?.disposition());
                }
                State::Intent => return Ok(Disposition::Ack), // the work message owns it
                State::Accepted => {}
            }
            let acc = Accepted::pending(
                rec.ticket.clone().unwrap_or_default(),
                rec.poll_ref.clone().unwrap_or_default(),
            );
            let ctx = CallCtx::new(&self.pacer, &rec.txn);
            let p = self.timed("poll", self.progress(&ctx, item, &acc)).await;
            match p {
                Ok(Progress::Pending) => {
                    let now = self.now();
                    if let Some(deadline) = rec.deadline
                        && now > deadline
                        && !rec.sla_reported
                    {
                        rec.sla_reported = true;
                        if self.records.update(&key, &rec, rev).await?.is_none() {
                            continue;
                        }
                        self.metrics.item("sla_breached");
                        let mut o = self.outcome(item, v1::OutcomeKind::SlaBreached);
                        o.carrier_ticket = acc.ticket.clone();
                        o.sla_deadline = Some(convert::timestamp(deadline));
                        o.problem = Some(convert::problem(
                            ErrorCode::SlaBreached,
                            format!("not complete at the promised time {deadline}"),
                        ));
                        if let Err(e) = self.reporter.report(o).await {
                            warn!(error = %e, "SLA breach not reported");
                        }
                    }
                    return Ok(Disposition::Nak(self.next_poll(&rec)));
                }
                Ok(p) => match self.complete(item, &key, rec, rev, final_of(p)).await? {
                    Some(d) => return Ok(d),
                    None => continue,
                },
                Err(CallError::Refused {
                    code,
                    carrier_code,
                    message,
                }) => {
                    let fin = Final {
                        succeeded: false,
                        code: ErrorCode::CarrierFailed.code().into(),
                        carrier_code,
                        message: format!("{code}: {message}"),
                    };
                    match self.complete(item, &key, rec, rev, fin).await? {
                        Some(d) => return Ok(d),
                        None => continue,
                    }
                }
                Err(_) => return Ok(Disposition::Nak(self.cfg.poll_interval)),
            }
        }
        Ok(Disposition::Nak(self.cfg.poll_interval))
    }

    /// Next poll: the poll interval, but wake up for the SLA deadline.
    fn next_poll(&self, rec: &ExecRecord) -> Duration {
        let mut d = self.cfg.poll_interval;
        if let Some(deadline) = rec.deadline
            && !rec.sla_reported
        {
            d = d.min(self.cfg.clock.real_until(deadline) + Duration::from_millis(20));
        }
        d.max(Duration::from_millis(50))
    }

    async fn timed<T>(
        &self,
        call: &'static str,
        f: impl std::future::Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        let span = info_span!("carrier_call", call, carrier = %self.cfg.carrier, outcome = tracing::field::Empty, error_code = tracing::field::Empty);
        let t = std::time::Instant::now();
        let r = f.instrument(span.clone()).await;
        let result = match &r {
            Ok(_) => "ok",
            Err(CallError::Refused { .. }) => "refused",
            Err(CallError::Transient { .. }) => "transient",
            Err(CallError::Unknown { .. }) => "unknown",
            Err(CallError::Superseded) => "superseded",
        };
        span.record("outcome", result);
        if let Err(CallError::Refused { code, .. }) = &r {
            span.record("error_code", code.code());
        }
        self.metrics.call(call, result, t.elapsed().as_secs_f64());
        r
    }
}

fn final_of(p: Progress) -> Final {
    match p {
        Progress::Succeeded => Final {
            succeeded: true,
            code: String::new(),
            carrier_code: String::new(),
            message: String::new(),
        },
        Progress::Failed {
            carrier_code,
            message,
        } => Final {
            succeeded: false,
            code: ErrorCode::CarrierFailed.code().into(),
            carrier_code,
            message,
        },
        Progress::Pending => unreachable!("only final progress is recorded"),
    }
}
