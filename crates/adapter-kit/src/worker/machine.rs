//! The item state machine's own steps: rules, guards, intent, the carrier
//! call, the lookup that resolves an unknown outcome, and acceptance. Each
//! returns the next step ([`super::step`]).

use super::step::{Delivery, Held, IfNotMade, Next, StepError};
use super::*;
use crate::carrier::{Accepted, CallCtx, CallError, Progress};
use crate::guards::Refusal;
use crate::record::{ExecRecord, Final, State};
use gsl_domain::card::TriNetVersion;
use gsl_domain::codes::ErrorCode;
use gsl_domain::{OperationKind, capability, sla};
use gsl_proto::{convert, v1};
use tracing::{Instrument, info_span, warn};

impl Worker {
    /// One delivery of an item: read its record, go on from what it says.
    pub(super) async fn work(&self, d: &Delivery<'_>) -> Result<Disposition, StepError> {
        for _ in 0..10 {
            let next = match self.records.get(d.key).await? {
                None => Next::Fresh,
                Some((rec, rev)) => self.resume(d, Held { rec, rev }).await?,
            };
            if let Some(disposition) = self.run(d, next).await? {
                return Ok(disposition);
            }
            // A lost race: read the record again and go on from it.
        }
        Ok(Disposition::Nak(backoff(d.delivered)))
    }

    /// Rules at execution time, against the card as the gateway read it
    /// when it validated the order (the work item carries it).
    /// `Ok(no_sdk)`: allowed (and whether the card is a tri-net card
    /// without the SDK, for its switch spacing).
    ///
    /// An item without card facts (directional config acts on a batch; an
    /// item published by a gateway older than the card store, during a
    /// rolling upgrade) is checked against the carrier's offer only: the
    /// gateway checked the card when it accepted the order.
    fn check_rules(&self, d: &Delivery<'_>, kind: OperationKind) -> Result<bool, Refusal> {
        let facts = match d.card {
            Some(c) if !kind.is_directional() => convert::snapshot_facts(c),
            _ => None,
        };
        let Some(facts) = facts else {
            if d.card.is_some() && !kind.is_directional() {
                return Err(Refusal {
                    code: ErrorCode::BadParameter,
                    message: "the work item's card facts name no valid carrier and status".into(),
                });
            }
            return capability::check_offered(kind, d.item.carrier)
                .map(|_| false)
                .map_err(|v| Refusal {
                    code: v.code(),
                    message: v.to_string(),
                });
        };
        let op = convert::operation_to_domain(&d.item.op).map_err(|e| Refusal {
            code: ErrorCode::InvalidItemParameter,
            message: e.to_string(),
        })?;
        capability::check_capability(&op, &facts)
            .map(|_| facts.trinet_version == Some(TriNetVersion::NoSdk))
            .map_err(|v| Refusal {
                code: v.code(),
                message: v.to_string(),
            })
    }

    /// No record yet: rules, cooldowns, quota, then intent (or a batch).
    pub(super) async fn fresh(&self, d: &Delivery<'_>) -> Result<Next, StepError> {
        let item = d.item;
        let kind = item.kind().expect("checked when decoded");
        let no_sdk = match self.check_rules(d, kind) {
            Ok(no_sdk) => no_sdk,
            Err(r) => return Ok(Next::Done(self.refuse(d, r).await?)),
        };
        let now = self.now();
        let hold = sla::deadline(&self.calendar, kind, item.carrier, now)
            .map(|t| t - now)
            .unwrap_or(chrono::Duration::days(1));
        let held = match self
            .guards
            .acquire(item, d.key, no_sdk, kind, hold)
            .instrument(info_span!("cooldowns"))
            .await?
        {
            Ok(h) => h,
            Err(r) => {
                self.metrics.rule_refusal(r.code.code());
                return Ok(Next::Done(self.refuse(d, r).await?));
            }
        };
        let quota = match self
            .guards
            .reserve_quota(item, d.key, kind)
            .instrument(info_span!("quota"))
            .await?
        {
            Ok(q) => q,
            Err(r) => {
                self.metrics.rule_refusal(r.code.code());
                self.guards.release(d.key, &held).await;
                return Ok(Next::Done(self.refuse(d, r).await?));
            }
        };
        if let Some(bk) = self.batch_key(item) {
            let m = Member {
                item: item.clone(),
                key: d.key.to_owned(),
                prior: None,
                held,
                quota,
                delivered: d.delivered,
            };
            return self.join_batch(bk, m).await;
        }
        let rec = ExecRecord::new(
            State::Intent,
            self.api.make_txn(item, now),
            now,
            held,
            quota,
            self.cfg.instance.clone(),
        );
        Ok(match self.records.create(d.key, &rec).await? {
            None => Next::Reread,
            Some(rev) => Next::Call(Held { rec, rev }),
        })
    }

    /// Read the card to resolve an unknown outcome. A read that fails in
    /// any way (refused, over the limit, lost) is no answer: read again
    /// later, never call on it.
    pub(super) async fn lookup(
        &self,
        d: &Delivery<'_>,
        h: Held,
        if_not_made: IfNotMade,
    ) -> Result<Next, StepError> {
        let ctx = CallCtx::new(&self.pacer, &h.rec.txn);
        let found = self
            .timed("lookup", self.api.lookup(&ctx, d.item, h.rec.started_at))
            .await;
        Ok(match (found, if_not_made) {
            (Ok(l), if_not_made) => self.resolved(h, l, if_not_made),
            (Err(_), IfNotMade::GiveUp(reason)) => Next::GiveUp(h, reason),
            (Err(e), IfNotMade::Call) if d.last => Next::GiveUp(h, e.to_string()),
            (Err(_), IfNotMade::Call) => Next::Done(Disposition::Nak(backoff(d.delivered))),
        })
    }

    /// The change call (or the back office, or a batch).
    pub(super) async fn call(&self, d: &Delivery<'_>, h: Held) -> Result<Next, StepError> {
        let item = d.item;
        if let Some(bo) = self.api.back_office(item) {
            return Ok(Next::BackOffice(
                h,
                v1::BackOfficeKind::NoApi,
                bo.instructions,
            ));
        }
        if let Some(bk) = self.batch_key(item) {
            let m = Member {
                item: item.clone(),
                key: d.key.to_owned(),
                prior: Some((h.rec, h.rev)),
                held: Vec::new(),
                quota: None,
                delivered: d.delivered,
            };
            return self.join_batch(bk, m).await;
        }
        // Every change call waits for the carrier's budget, then makes sure
        // the item is still ours to call for: a replica that was paused (or
        // slow) past the ack wait finds that another one took it over, and
        // does not call again (the request stack asks this after the slot).
        let rev = h.rev;
        let key = d.key;
        let still_ours = || -> futures::future::BoxFuture<'_, bool> {
            Box::pin(
                async move { matches!(self.records.get(key).await, Ok(Some((_, r))) if r == rev) },
            )
        };
        let ctx = CallCtx::guarded(&self.pacer, &h.rec.txn, &still_ours);
        let r = self.timed("submit", self.api.submit(&ctx, item)).await;
        Ok(match r {
            Ok(acc) => Next::Accepted(h, acc),
            Err(CallError::Superseded) => Next::Reread,
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
                Next::Complete(h, fin, None)
            }
            // One last look before giving up: the carrier may have it.
            Err(CallError::Unknown { reason }) if d.last => {
                Next::Lookup(h, IfNotMade::GiveUp(reason))
            }
            Err(e @ CallError::Transient { .. }) if d.last => Next::GiveUp(h, e.to_string()),
            Err(e) => {
                warn!(error = %e, work_order_id = item.work_order_id, card = %item.card, "carrier call did not succeed; will retry");
                Next::Done(Disposition::Nak(backoff(d.delivered)))
            }
        })
    }

    /// The carrier accepted: done at once, or recorded and followed.
    pub(super) async fn accepted(
        &self,
        d: &Delivery<'_>,
        h: Held,
        acc: Accepted,
    ) -> Result<Next, StepError> {
        let item = d.item;
        let Held { mut rec, rev } = h;
        let kind = item.kind().expect("checked when decoded");
        let now = self.now();
        rec.state = State::Accepted;
        rec.ticket = Some(acc.ticket.clone());
        rec.poll_ref = Some(acc.poll_ref.clone());
        rec.accepted_at = Some(now);
        rec.deadline = sla::deadline(&self.calendar, kind, item.carrier, now);
        self.metrics.item("accepted");
        if acc.done {
            return Ok(Next::Complete(
                Held { rec, rev },
                final_of(Progress::Succeeded),
                None,
            ));
        }
        // Poll once before writing "accepted" where a change may be complete
        // at once: it goes straight to "done" (one record write, not two).
        // Dying before either write is safe: the record still says "intent",
        // and the next delivery looks the transaction up before calling.
        if self.cfg.inline_poll && self.api.completes_at_once(item) {
            let ctx = CallCtx::new(&self.pacer, &rec.txn);
            if let Ok(p @ (Progress::Succeeded | Progress::Failed { .. })) =
                self.timed("poll", self.progress(&ctx, item, &acc)).await
            {
                return Ok(Next::Complete(Held { rec, rev }, final_of(p), None));
            }
        }
        if self.records.update(d.key, &rec, rev).await?.is_none() {
            return Ok(Next::Reread);
        }
        self.follow(item, d.key).await?;
        if let Err(e) = self
            .reporter
            .report(self.accepted_outcome(item, &rec))
            .await
        {
            warn!(error = %e, "could not report the carrier's acceptance");
        }
        Ok(Next::Done(Disposition::Ack))
    }
}
