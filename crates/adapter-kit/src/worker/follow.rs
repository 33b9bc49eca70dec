//! Follow-ups: polling accepted changes to completion against the SLA timer.

use super::step::{Delivery, Held, Next, StepError};
use super::*;
use crate::carrier::{Accepted, CallCtx, CallError, Item, Progress};
use crate::record::{ExecRecord, Final, State};
use async_nats::HeaderMap;
use async_nats::jetstream::Message;
use gsl_bus::codec::encode;
use gsl_bus::names;
use gsl_bus::publish::{Outgoing, publish_one};
use gsl_domain::codes::ErrorCode;
use gsl_proto::{convert, v1};
use std::time::Duration;
use tracing::{Instrument, info_span, warn};

impl Worker {
    /// Publish the follow-up message (de-duplicated per item).
    pub(super) async fn follow(&self, item: &Item, key: &str) -> Result<(), gsl_bus::BusError> {
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

    /// A follow-up message: poll an accepted change.
    pub async fn process_follow(&self, msg: &Message) -> Disposition {
        if let Some(bkey) = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(super::batch::BATCH_HEADER))
        {
            return self.process_batch_follow(bkey.as_str()).await;
        }
        let (item, card) = match self.read_item(msg).await {
            Ok(i) => i,
            Err(d) => return d,
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
        match self.follow_up(&item, card.as_ref()).instrument(span).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "follow-up did not finish; will retry");
                Disposition::Nak(self.cfg.poll_interval)
            }
        }
    }

    /// One follow-up of an item, without a bus message (tests).
    pub async fn handle_follow(&self, wi: v1::WorkItem) -> Result<Disposition, String> {
        let (item, card) = self.with_card(item_from(wi, self.cfg.carrier)?);
        Ok(self
            .follow_up(&item, card.as_ref())
            .await
            .unwrap_or(Disposition::Nak(self.cfg.poll_interval)))
    }

    pub(super) async fn follow_up(
        &self,
        item: &Item,
        card: Option<&v1::CardSnapshot>,
    ) -> Result<Disposition, StepError> {
        let key = names::item_key(item.carrier, item.work_order_id, &item.card);
        // A follow-up is never an item's last chance (follow-ups have no
        // delivery limit).
        let d = Delivery {
            item,
            key: &key,
            delivered: 1,
            last: false,
            card,
        };
        for _ in 0..10 {
            let Some((mut rec, rev)) = self.records.get(&key).await? else {
                return Ok(Disposition::Ack);
            };
            if rec.state != State::Accepted {
                let h = Held { rec, rev };
                let next = if h.rec.state == State::Done {
                    Next::Done(self.report_final(&d, h).await?.disposition())
                } else {
                    self.unpark(&d, h).await?
                };
                match self.run(&d, next).await? {
                    Some(disposition) => return Ok(disposition),
                    None => continue,
                }
            }
            let acc = Accepted::pending(
                rec.ticket.clone().unwrap_or_default(),
                rec.poll_ref.clone().unwrap_or_default(),
            );
            let kind = item.kind().expect("checked when decoded");
            let waited = rec
                .accepted_at
                .map(|at| self.cfg.clock.real_duration(self.now() - at));
            // The first read waits for what the carrier takes: an earlier
            // one cannot find the change done and only spends the budget.
            // (Back-office requests are read from our own bucket: no wait.)
            if !acc.poll_ref.starts_with(super::BACK_OFFICE_REF)
                && let Some(w) = waited
            {
                let first = self.completion.first_read(kind);
                if w < first {
                    return Ok(Disposition::Nak(first - w));
                }
            }
            let ctx = CallCtx::new(&self.pacer, &rec.txn);
            let p = self.timed("poll", self.progress(&ctx, item, &acc)).await;
            if let (Ok(Progress::Succeeded | Progress::Failed { .. }), Some(w)) = (&p, waited)
                && !acc.poll_ref.starts_with(super::BACK_OFFICE_REF)
            {
                self.completion.observe(kind, w);
            }
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
                        self.report_sla_breach(item, &acc.ticket, deadline).await;
                    }
                    return Ok(Disposition::Nak(self.next_poll(&rec)));
                }
                Ok(p) => {
                    let fin = if acc.poll_ref.starts_with(super::BACK_OFFICE_REF) {
                        super::finish::back_office_final(p)
                    } else {
                        final_of(p)
                    };
                    match self
                        .run(&d, Next::Complete(Held { rec, rev }, fin, None))
                        .await?
                    {
                        Some(disposition) => return Ok(disposition),
                        None => continue,
                    }
                }
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
                    match self
                        .run(&d, Next::Complete(Held { rec, rev }, fin, None))
                        .await?
                    {
                        Some(disposition) => return Ok(disposition),
                        None => continue,
                    }
                }
                Err(_) => return Ok(Disposition::Nak(self.cfg.poll_interval)),
            }
        }
        Ok(Disposition::Nak(self.cfg.poll_interval))
    }

    /// Report an SLA breach (once per item: the caller records that first).
    pub(super) async fn report_sla_breach(
        &self,
        item: &Item,
        ticket: &str,
        deadline: DateTime<Utc>,
    ) {
        self.metrics.item("sla_breached");
        let mut o = self.outcome(item, v1::OutcomeKind::SlaBreached);
        o.carrier_ticket = ticket.to_owned();
        o.sla_deadline = Some(convert::timestamp(deadline));
        o.problem = Some(convert::problem(
            ErrorCode::SlaBreached,
            format!("not complete at the promised time {deadline}"),
        ));
        if let Err(e) = self.reporter.report(o).await {
            warn!(error = %e, "SLA breach not reported");
        }
    }

    /// Next poll: the poll interval, but wake up for the SLA deadline.
    pub(super) fn next_poll(&self, rec: &ExecRecord) -> Duration {
        self.next_poll_for(rec.deadline, rec.sla_reported)
    }

    /// The same for a deadline and whether its breach was reported (an
    /// item's record or a batch's).
    pub(super) fn next_poll_for(
        &self,
        deadline: Option<DateTime<Utc>>,
        sla_reported: bool,
    ) -> Duration {
        let mut d = self.cfg.poll_interval;
        if let Some(deadline) = deadline
            && !sla_reported
        {
            d = d.min(self.cfg.clock.real_until(deadline) + Duration::from_millis(20));
        }
        d.max(Duration::from_millis(50))
    }

    /// Progress of an accepted change: the carrier's, or the back office's.
    pub(super) async fn progress(
        &self,
        ctx: &CallCtx<'_>,
        item: &Item,
        acc: &Accepted,
    ) -> Result<Progress, CallError> {
        let Some(id) = acc.poll_ref.strip_prefix(BACK_OFFICE_REF) else {
            return self
                .api
                .answers()
                .reclass(self.api.poll(ctx, item, acc).await);
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
}
