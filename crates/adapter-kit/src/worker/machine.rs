//! The item state machine: rules, guards, intent, the carrier call, and what
//! each answer (or a lost one) leads to.

use super::*;
use crate::carrier::{Accepted, CallCtx, CallError, Item, Lookup, Progress};
use crate::guards::Refusal;
use crate::record::{ExecRecord, Final, State};
use gsl_bus::codec::decode;
use gsl_bus::names;
use gsl_domain::card::TriNetVersion;
use gsl_domain::codes::ErrorCode;
use gsl_domain::{OperationKind, capability, sla};
use gsl_proto::{convert, v1};
use tracing::{Instrument, info_span, warn};

impl Worker {
    pub(super) async fn work(
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
                    State::Intent if rec.batch.is_some() => {
                        self.resume_member(item, &key, rec, rev, delivered, last)
                            .await?
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
    pub(super) async fn check_rules(
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

    pub(super) async fn fresh(
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
        if let Some(bk) = self.batch_key(item) {
            let m = Member {
                item: item.clone(),
                key: key.to_owned(),
                prior: None,
                held,
                quota,
                delivered,
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
        match self.records.create(key, &rec).await? {
            None => Ok(None),
            Some(rev) => self.call(item, key, rec, rev, delivered, last).await,
        }
    }

    pub(super) async fn resume_intent(
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
            // A read that failed in any way (refused, over the limit, lost)
            // is no answer: read again later, never call on it.
            Err(e) if last => self
                .give_up(item, key, rec, rev, &e.to_string())
                .await
                .map(Some),
            Err(_) => Ok(Some(Disposition::Nak(backoff(delivered)))),
        }
    }

    /// Act on what reading the carrier said about a lost answer.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn resolved(
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
            // Waiting out the repeat window is not a failure: parked on a
            // follow-up, it spends no deliveries.
            Lookup::Wait(d) => {
                let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::minutes(10));
                self.park(item, key, rec, rev, d).await
            }
            Lookup::Unverifiable(what) => {
                self.file_back_office(item, key, rec, rev, v1::BackOfficeKind::Verify, what)
                    .await
            }
        }
    }

    pub(super) async fn call(
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
        if let Some(bk) = self.batch_key(item) {
            let m = Member {
                item: item.clone(),
                key: key.to_owned(),
                prior: Some((rec, rev)),
                held: Vec::new(),
                quota: None,
                delivered,
            };
            return self.join_batch(bk, m).await;
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
                match self
                    .timed("lookup", self.api.lookup(&ctx, item, rec.started_at))
                    .await
                {
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
                    Ok(Lookup::Wait(d)) => {
                        let d =
                            chrono::Duration::from_std(d).unwrap_or(chrono::Duration::minutes(10));
                        self.park(item, key, rec, rev, d).await
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

    pub(super) async fn accepted(
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
        if self.cfg.inline_poll && self.api.completes_at_once(item) {
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
}
