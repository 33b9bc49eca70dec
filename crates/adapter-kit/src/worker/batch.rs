//! Batch calls: many items, one carrier call, one job to follow.
//!
//! ```text
//! member ─► join ─► (leader) prepare numbers ─► member records: intent, txn = batch txn, batch = id
//!                          ─► batch record: intent ─► one call ─┬─ accepted ─► batch record accepted ─► one follow-up ─► ack all
//!                                                               ├─ refused (whole batch) ─► not sent ─► split in two and run each half
//!                                                               ├─ transient ─► not sent ─► nak all (rebatched at once)
//!                                                               └─ unknown ─► nak all; each member reads its card after the repeat window
//! batch follow-up ─► one poll ─► pending: SLA breach reported once per member │ finished: each member done (missing: read the card)
//! ```
//!
//! A member is never called twice blindly: its record names the batch
//! before the call, and a member whose batch may have been sent is resolved
//! by reading its card ([`crate::carrier::CarrierApi::lookup`], which waits
//! out the repeat window) before it joins another batch. A refused batch
//! changed nothing (`cmcc.md`), so its halves may go at once.

use super::step::{Delivery, Held as HeldRecord, IfNotMade, Next, StepError};
use super::*;
use crate::carrier::{Accepted, CallCtx, CallError, Item, Progress};
use crate::carrier::{BatchKey, BatchProgress};
use crate::guards::Held;
use crate::guards::Refusal;
use crate::record::{BatchMember, BatchRecord, BatchState, batch_key};
use crate::record::{ExecRecord, Final, State};
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, join_all};
use gsl_bus::codec::{decode, encode};
use gsl_bus::names;
use gsl_bus::publish::{Outgoing, publish_one};
use gsl_domain::sla;
use gsl_proto::v1;
use std::time::Duration;
use tracing::{Instrument, info_span, warn};

/// Header naming the batch record of a follow-up message.
pub const BATCH_HEADER: &str = "Gsl-Batch";

/// An item waiting for (or in) a batch.
#[derive(Debug, Clone)]
pub struct Member {
    pub(super) item: Item,
    pub(super) key: String,
    /// Its execution record when it has one (a member batched again).
    pub(super) prior: Option<(ExecRecord, u64)>,
    /// Guards and quota taken for a fresh item (kept in the record).
    pub(super) held: Vec<Held>,
    pub(super) quota: Option<String>,
    pub(super) delivered: i64,
}

/// A member's result for its delivery: `None` re-reads the record.
pub type MemberResult = Option<Disposition>;

impl Member {
    /// The member's delivery, as its steps see it.
    fn delivery(&self) -> Delivery<'_> {
        Delivery {
            item: &self.item,
            key: &self.key,
            delivered: self.delivered,
            last: false,
            card: None,
        }
    }
}

/// A batch's record, at the revision it was written.
struct BatchHeld {
    key: String,
    rec: BatchRecord,
    rev: u64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Worker {
    /// Join (or lead) a batch; the item's disposition for this delivery.
    pub(super) async fn join_batch(&self, bk: BatchKey, m: Member) -> Result<Next, StepError> {
        let delivered = m.delivered;
        let joined = self.batcher.join(&bk, m).await;
        if let Some(members) = joined.lead {
            let (ms, txs): (Vec<Member>, Vec<_>) = members.into_iter().unzip();
            let results = self.run_batch(&bk, ms).await;
            for (tx, r) in txs.into_iter().zip(results) {
                let _ = tx.send(r);
            }
        }
        Ok(
            match joined
                .result
                .await
                .unwrap_or(Some(Disposition::Nak(backoff(delivered))))
            {
                Some(d) => Next::Done(d),
                None => Next::Reread,
            },
        )
    }

    /// Run a member's steps from `next` to its result for this delivery.
    async fn settle(&self, d: &Delivery<'_>, next: Next) -> MemberResult {
        match self.run(d, next).await {
            Ok(r) => r,
            Err(_) => Some(Disposition::Nak(backoff(d.delivered))),
        }
    }

    /// Run one batch call for `members`; one result per member, in order.
    fn run_batch<'a>(
        &'a self,
        bk: &'a BatchKey,
        members: Vec<Member>,
    ) -> BoxFuture<'a, Vec<MemberResult>> {
        Box::pin(async move {
            let mut out: Vec<MemberResult> = vec![None; members.len()];
            let txn = self.api.make_txn(&members[0].item, self.now());
            let mut items: Vec<Item> = members.iter().map(|m| m.item.clone()).collect();
            let prepared = {
                let ctx = CallCtx::new(&self.pacer, &txn);
                self.api.prepare_batch(&ctx, &mut items).await
            };
            let mut live = Vec::new();
            for (i, r) in prepared.into_iter().enumerate() {
                match r {
                    Ok(()) => live.push(i),
                    Err(e) => out[i] = self.leave_batch(&members[i], e).await,
                }
            }
            // Every member's record names the batch before the call.
            let bkey = batch_key(self.cfg.carrier, &txn);
            let now = self.now();
            let mut writes = Vec::with_capacity(live.len());
            for &i in &live {
                writes.push(self.member_intent(&members[i], &txn, &bkey, now));
            }
            let writes = join_all(writes).await;
            let mut inb: Vec<(usize, ExecRecord, u64)> = Vec::new();
            for (&i, w) in live.iter().zip(writes) {
                match w {
                    Ok(Some((rec, rev))) => inb.push((i, rec, rev)),
                    Ok(None) => out[i] = None,
                    Err(_) => out[i] = Some(Disposition::Nak(backoff(members[i].delivered))),
                }
            }
            if inb.is_empty() {
                return out;
            }
            let mut brec = BatchRecord {
                state: BatchState::Intent,
                txn: txn.clone(),
                call: bk.call.clone(),
                started_at: now,
                ticket: None,
                poll_ref: None,
                accepted_at: None,
                deadline: None,
                sla_reported: false,
                members: inb
                    .iter()
                    .map(|(i, _, _)| BatchMember {
                        key: members[*i].key.clone(),
                        work: hex(&encode(&self.work_item(&items[*i]))),
                        msisdn: items[*i].msisdn.clone(),
                        access_number: items[*i].access_number.clone(),
                    })
                    .collect(),
            };
            let nak_all = |out: &mut Vec<MemberResult>, inb: &[(usize, ExecRecord, u64)]| {
                for (i, _, _) in inb {
                    out[*i] = Some(Disposition::Nak(backoff(members[*i].delivered)));
                }
            };
            let brev = match self.records.create_batch(&bkey, &brec).await {
                Ok(Some(r)) => r,
                // Nothing was called: the members join another batch.
                _ => {
                    nak_all(&mut out, &inb);
                    return out;
                }
            };
            let bitems: Vec<Item> = inb.iter().map(|(i, _, _)| items[*i].clone()).collect();
            let revs: Vec<(String, u64)> = inb
                .iter()
                .map(|(i, _, rev)| (members[*i].key.clone(), *rev))
                .collect();
            // After the budget slot: are the members still ours? (A replica
            // paused past the ack wait finds that another took them over.)
            let still_ours = || -> BoxFuture<'_, bool> { Box::pin(self.all_unchanged(&revs)) };
            let ctx = CallCtx::guarded(&self.pacer, &txn, &still_ours);
            let r = self
                .timed("submit_batch", self.api.submit_batch(&ctx, bk, &bitems))
                .await;
            self.metrics.batch_size.observe(bitems.len() as f64);
            match r {
                Ok(acc) => {
                    let b = BatchHeld {
                        key: bkey.clone(),
                        rec: brec,
                        rev: brev,
                    };
                    self.batch_accepted(b, &inb, &bitems, acc, &mut out).await;
                }
                Err(CallError::Superseded) => {}
                Err(CallError::Refused {
                    code,
                    carrier_code,
                    message,
                }) => {
                    // The whole batch was refused and nothing changed.
                    self.metrics.carrier_error(code.code());
                    brec.state = BatchState::NotSent;
                    let _ = self.records.update_batch(&bkey, &brec, brev).await;
                    if inb.len() == 1 {
                        let (i, rec, rev) = inb.into_iter().next().expect("one");
                        let fin = Final {
                            succeeded: false,
                            code: code.code().into(),
                            carrier_code,
                            message,
                        };
                        out[i] = self
                            .settle(
                                &members[i].delivery(),
                                Next::Complete(HeldRecord { rec, rev }, fin, None),
                            )
                            .await;
                        return out;
                    }
                    warn!(carrier_code = %carrier_code, members = inb.len(), "the carrier refused a whole batch; splitting it");
                    let mid = inb.len() / 2;
                    let again: Vec<(usize, Member)> = inb
                        .into_iter()
                        .map(|(i, rec, rev)| {
                            let mut m = members[i].clone();
                            m.prior = Some((rec, rev));
                            (i, m)
                        })
                        .collect();
                    let (a, b) = again.split_at(mid);
                    for half in [a, b] {
                        let r = self
                            .run_batch(bk, half.iter().map(|(_, m)| m.clone()).collect())
                            .await;
                        for ((i, _), r) in half.iter().zip(r) {
                            out[*i] = r;
                        }
                    }
                }
                Err(e @ CallError::Transient { .. }) => {
                    warn!(error = %e, members = inb.len(), "batch call not sent; its members will be batched again");
                    brec.state = BatchState::NotSent;
                    let _ = self.records.update_batch(&bkey, &brec, brev).await;
                    nak_all(&mut out, &inb);
                }
                Err(e @ CallError::Unknown { .. }) => {
                    // The job id is lost with the answer: each member reads
                    // its card on its next delivery, after the repeat window.
                    warn!(error = %e, members = inb.len(), "batch answer lost; members will be read back");
                    nak_all(&mut out, &inb);
                }
            }
            out
        })
    }

    /// Whether every record is still at its revision.
    async fn all_unchanged(&self, revs: &[(String, u64)]) -> bool {
        let mut reads = Vec::with_capacity(revs.len());
        for (k, _) in revs {
            reads.push(self.records.get(k));
        }
        join_all(reads)
            .await
            .into_iter()
            .zip(revs)
            .all(|(r, (_, want))| matches!(r, Ok(Some((_, x))) if x == *want))
    }

    /// A member that cannot be in the batch (no carrier number): final if
    /// refused, otherwise retried on a later delivery.
    async fn leave_batch(&self, m: &Member, e: CallError) -> MemberResult {
        let d = m.delivery();
        match (e, &m.prior) {
            (
                CallError::Refused {
                    code,
                    carrier_code,
                    message,
                },
                Some((rec, rev)),
            ) => {
                let fin = Final {
                    succeeded: false,
                    code: code.code().into(),
                    carrier_code,
                    message,
                };
                let h = HeldRecord {
                    rec: rec.clone(),
                    rev: *rev,
                };
                self.settle(&d, Next::Complete(h, fin, None)).await
            }
            (CallError::Refused { code, message, .. }, None) => {
                self.release_fresh(m).await;
                match self.refuse(&d, Refusal { code, message }).await {
                    Ok(disposition) => Some(disposition),
                    Err(_) => Some(Disposition::Nak(backoff(m.delivered))),
                }
            }
            (_, None) => {
                self.release_fresh(m).await;
                Some(Disposition::Nak(backoff(m.delivered)))
            }
            (_, Some(_)) => Some(Disposition::Nak(backoff(m.delivered))),
        }
    }

    /// Give back what a fresh member took (guards, quota) before any record.
    async fn release_fresh(&self, m: &Member) {
        self.guards.release(&m.key, &m.held).await;
        if let Some(q) = &m.quota {
            self.guards.release_quota(q, &m.key).await;
        }
    }

    /// Write (or rewrite) a member's record: intent under the batch.
    async fn member_intent(
        &self,
        m: &Member,
        txn: &str,
        bkey: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(ExecRecord, u64)>, gsl_bus::BusError> {
        let mut rec = match &m.prior {
            Some((rec, _)) => rec.clone(),
            None => ExecRecord::new(
                State::Intent,
                String::new(),
                now,
                m.held.clone(),
                m.quota.clone(),
                self.cfg.instance.clone(),
            ),
        };
        rec.state = State::Intent;
        rec.txn = txn.to_owned();
        rec.started_at = now;
        rec.batch = Some(bkey.to_owned());
        rec.owner = self.cfg.instance.clone();
        let rev = match &m.prior {
            Some((_, rev)) => self.records.update(&m.key, &rec, *rev).await?,
            None => self.records.create(&m.key, &rec).await?,
        };
        Ok(rev.map(|r| (rec, r)))
    }

    async fn batch_accepted(
        &self,
        b: BatchHeld,
        inb: &[(usize, ExecRecord, u64)],
        items: &[Item],
        acc: Accepted,
        out: &mut [MemberResult],
    ) {
        let BatchHeld {
            key: bkey,
            rec: mut brec,
            rev: brev,
        } = b;
        let bkey = bkey.as_str();
        let now = self.now();
        let kind = items[0].kind().expect("checked when decoded");
        brec.state = BatchState::Accepted;
        brec.ticket = Some(acc.ticket.clone());
        brec.poll_ref = Some(acc.poll_ref.clone());
        brec.accepted_at = Some(now);
        brec.deadline = sla::deadline(&self.calendar, kind, self.cfg.carrier, now);
        for _ in 0..items.len() {
            self.metrics.item("accepted");
        }
        if acc.done {
            for ((i, rec, rev), item) in inb.iter().zip(items) {
                let key = names::item_key(item.carrier, item.work_order_id, &item.card);
                let d = Delivery {
                    item,
                    key: &key,
                    delivered: 1,
                    last: false,
                    card: None,
                };
                let h = HeldRecord {
                    rec: rec.clone(),
                    rev: *rev,
                };
                out[*i] = self
                    .settle(&d, Next::Complete(h, final_of(Progress::Succeeded), None))
                    .await;
            }
            brec.state = BatchState::Done;
            let _ = self.records.update_batch(bkey, &brec, brev).await;
            return;
        }
        // The job id exists only in this answer: keep trying to record it.
        let mut written = false;
        for attempt in 0..5u32 {
            match self.records.update_batch(bkey, &brec, brev).await {
                Ok(Some(_)) => {
                    written = true;
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "batch receipt not recorded yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        if !written || self.follow_batch_publish(bkey).await.is_err() {
            // Redelivered members find the batch as it was recorded and
            // resolve themselves (by reading their cards if need be).
            for (i, _, _) in inb {
                out[*i] = Some(Disposition::Nak(Duration::from_secs(1)));
            }
            return;
        }
        let outcomes: Vec<v1::ItemOutcome> = inb
            .iter()
            .zip(items)
            .map(|((_, rec, _), item)| {
                let mut rec = rec.clone();
                rec.ticket = brec.ticket.clone();
                rec.deadline = brec.deadline;
                rec.poll_ref = brec.poll_ref.clone();
                self.accepted_outcome(item, &rec)
            })
            .collect();
        for chunk in outcomes.chunks(32) {
            let mut sends = Vec::with_capacity(chunk.len());
            for o in chunk {
                sends.push(self.reporter.report(o.clone()));
            }
            for r in join_all(sends).await {
                if let Err(e) = r {
                    warn!(error = %e, "could not report the carrier's acceptance");
                }
            }
        }
        for (i, _, _) in inb {
            out[*i] = Some(Disposition::Ack);
        }
    }

    /// Publish the batch's follow-up message (de-duplicated per batch).
    pub(super) async fn follow_batch_publish(&self, bkey: &str) -> Result<(), gsl_bus::BusError> {
        let mut h = HeaderMap::new();
        h.insert(BATCH_HEADER, bkey);
        gsl_telemetry::propagate::inject_nats(&mut h);
        publish_one(
            &self.js,
            Outgoing {
                subject: names::follow_subject(self.cfg.carrier),
                msg_id: Some(format!("follow:{bkey}")),
                headers: Some(h),
                payload: bytes::Bytes::new(),
            },
        )
        .await?;
        Ok(())
    }

    /// A member whose record names a batch, found again (a redelivery, or
    /// a parked member whose time has come).
    pub(super) async fn resume_member(
        &self,
        _d: &Delivery<'_>,
        h: HeldRecord,
    ) -> Result<Next, StepError> {
        let bkey = h.rec.batch.clone().unwrap_or_default();
        Ok(match self.records.get_batch(&bkey).await? {
            Some((b, _)) if b.state == BatchState::Accepted => {
                // The batch's follow-up owns it.
                self.follow_batch_publish(&bkey).await?;
                Next::Done(Disposition::Ack)
            }
            // Possibly sent: read the card (after the repeat window).
            Some((b, _)) if matches!(b.state, BatchState::Intent | BatchState::Done) => {
                Next::Lookup(h, IfNotMade::Call)
            }
            // Written before its batch record, or the batch was not sent:
            // nothing was called for it.
            _ => Next::Call(h),
        })
    }

    /// A batch follow-up message (`bkey`: the batch record's key, from
    /// the message's [`BATCH_HEADER`]).
    pub async fn process_batch_follow(&self, bkey: &str) -> Disposition {
        let span = info_span!("follow_up_batch", batch = %bkey, carrier = %self.cfg.carrier);
        match self.follow_batch(bkey).instrument(span).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "bus error during a batch follow-up; will retry");
                Disposition::Nak(self.cfg.poll_interval)
            }
        }
    }

    fn members_of(&self, b: &BatchRecord) -> Vec<(String, Item)> {
        b.members
            .iter()
            .filter_map(|m| {
                let wi = decode::<v1::WorkItem>("WorkItem", &unhex(&m.work)?).ok()?;
                let mut item = item_from(wi, self.cfg.carrier).ok()?;
                item.msisdn = m.msisdn.clone();
                item.access_number = m.access_number.clone();
                Some((m.key.clone(), item))
            })
            .collect()
    }

    async fn follow_batch(&self, bkey: &str) -> Result<Disposition, gsl_bus::BusError> {
        for _ in 0..10 {
            let Some((mut b, brev)) = self.records.get_batch(bkey).await? else {
                return Ok(Disposition::Ack);
            };
            if b.state != BatchState::Accepted {
                return Ok(Disposition::Ack);
            }
            // The first poll one poll interval after acceptance: a job is
            // never done at once, and every early poll spends the budget.
            if let Some(at) = b.accepted_at {
                let due =
                    at + chrono::Duration::from_std(self.cfg.poll_interval).unwrap_or_default();
                let wait = self.cfg.clock.real_until(due);
                if !wait.is_zero() {
                    return Ok(Disposition::Nak(wait.max(Duration::from_millis(50))));
                }
            }
            let members = self.members_of(&b);
            let items: Vec<Item> = members.iter().map(|(_, i)| i.clone()).collect();
            if items.is_empty() {
                return Ok(Disposition::Ack);
            }
            let acc = Accepted::pending(
                b.ticket.clone().unwrap_or_default(),
                b.poll_ref.clone().unwrap_or_default(),
            );
            let ctx = CallCtx::new(&self.pacer, &b.txn);
            let p = self
                .timed("poll_batch", self.api.poll_batch(&ctx, &items, &acc))
                .await;
            let results = match p {
                Ok(BatchProgress::Pending) => {
                    let now = self.now();
                    if let Some(deadline) = b.deadline
                        && now > deadline
                        && !b.sla_reported
                    {
                        b.sla_reported = true;
                        if self.records.update_batch(bkey, &b, brev).await?.is_none() {
                            continue;
                        }
                        for (_, item) in &members {
                            self.report_sla_breach(item, &acc.ticket, deadline).await;
                        }
                    }
                    return Ok(Disposition::Nak(
                        self.next_poll_for(b.deadline, b.sla_reported),
                    ));
                }
                Ok(BatchProgress::Finished(r)) => r,
                // The job cannot be read: read each card instead.
                Err(CallError::Refused { .. }) => vec![None; items.len()],
                Err(_) => return Ok(Disposition::Nak(self.cfg.poll_interval)),
            };
            let mut finished = Vec::with_capacity(members.len());
            let pairs: Vec<_> = members.iter().zip(results).collect();
            for chunk in pairs.chunks(16) {
                let mut fs = Vec::with_capacity(chunk.len());
                for ((key, item), p) in chunk {
                    fs.push(self.finish_member(item, key, bkey, &b.txn, p.clone()));
                }
                finished.extend(join_all(fs).await);
            }
            if finished.iter().any(|r| !matches!(r, Ok(true))) {
                return Ok(Disposition::Nak(self.cfg.poll_interval));
            }
            b.state = BatchState::Done;
            if self.records.update_batch(bkey, &b, brev).await?.is_none() {
                continue;
            }
            return Ok(Disposition::Ack);
        }
        Ok(Disposition::Nak(self.cfg.poll_interval))
    }

    /// One member's final outcome from a finished batch. `Ok(false)`: not
    /// settled yet (its card could not be read); the follow-up comes again.
    async fn finish_member(
        &self,
        item: &Item,
        key: &str,
        bkey: &str,
        txn: &str,
        p: Option<Progress>,
    ) -> Result<bool, StepError> {
        let d = Delivery {
            item,
            key,
            delivered: 1,
            last: false,
            card: None,
        };
        let p = match p {
            Some(p @ (Progress::Succeeded | Progress::Failed { .. })) => p,
            // Missing from the results: read the card, never assume.
            _ => {
                let ctx = CallCtx::new(&self.pacer, txn);
                match self
                    .timed("poll", self.progress(&ctx, item, &Accepted::pending("", "card")))
                    .await
                {
                    Ok(Progress::Succeeded) => Progress::Succeeded,
                    Ok(_) => Progress::Failed {
                        carrier_code: String::new(),
                        message: "not in the finished batch's results, and the card is not in the target state".into(),
                    },
                    Err(_) => return Ok(false),
                }
            }
        };
        for _ in 0..5 {
            match self.records.get(key).await? {
                Some((rec, rev))
                    if rec.state == State::Intent && rec.batch.as_deref() == Some(bkey) =>
                {
                    let next = Next::Complete(HeldRecord { rec, rev }, final_of(p.clone()), None);
                    if self.run(&d, next).await?.is_some() {
                        return Ok(true);
                    }
                }
                Some((rec, rev)) if rec.state == State::Done => {
                    self.report_final(&d, HeldRecord { rec, rev }).await?;
                    return Ok(true);
                }
                // Not this batch's any more (or gone): nothing to do here.
                _ => return Ok(true),
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let b = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(unhex(&hex(&b)), Some(b));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
