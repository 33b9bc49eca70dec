//! The transition table: what travels from step to step, the steps an item
//! can take, and the one loop that applies them.
//!
//! Every step of the item machine (`machine`, `finish`, `backoffice`,
//! `park`, `retry`, `batch`) takes the [`Delivery`] and the record it holds
//! ([`Held`]) and returns the [`Next`] step; none calls the next one.
//! [`Worker::run`] applies them until one settles the delivery:
//!
//! | step | does | then |
//! |---|---|---|
//! | `Fresh` | rules, cooldowns, quota, intent (or a batch) | `Call`, `Done` (refused), `Reread` |
//! | `Call` | the change call (or back office, or a batch) | `Accepted`, `Complete`, `Lookup`, `GiveUp`, `BackOffice`, `Done` (nak) |
//! | `Lookup` | read the card to resolve an unknown outcome | `Call`, `Accepted`, `Complete`, `Park`, `BackOffice`, `GiveUp`, `Done` (nak) |
//! | `Accepted` | record the receipt (or read it done at once), follow | `Complete`, `Done` (ack) |
//! | `BackOffice` | file (or find) a back-office request | `Accepted` |
//! | `Park` | wait out the repeat window on a follow-up | `Done` (ack) |
//! | `GiveUp` | dead-letter the last delivery | `Complete` (then terminate) |
//! | `Complete` | record the final outcome, release, report | `Done` |
//!
//! `Reread` ends the loop without settling: a compare-and-set was lost, and
//! the caller reads the record again and starts over from what it says.

use super::*;
use crate::carrier::{Accepted, Item, Lookup};
use crate::record::{ExecRecord, Final};
use crate::report::ReportError;

/// One delivery of one item: what every step needs to know besides the
/// record.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub item: &'a Item,
    /// Its execution record's key.
    pub key: &'a str,
    /// How many times its message was delivered.
    pub delivered: i64,
    /// This is the last delivery the adapter acts on.
    pub last: bool,
    /// The card as the registry has it (read once per item).
    pub card: Option<&'a v1::CardSnapshot>,
}

/// The execution record a step holds, at the revision it was read.
#[derive(Debug, Clone)]
pub struct Held {
    pub rec: ExecRecord,
    pub rev: u64,
}

/// What a lookup's "not made" leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfNotMade {
    /// Calling (again) is safe.
    Call,
    /// The last delivery's last look after an unknown outcome: give up
    /// with this reason rather than call once more with nothing left to
    /// follow a failure.
    GiveUp(String),
}

/// The next step of an item.
#[derive(Debug)]
pub enum Next {
    Fresh,
    Call(Held),
    Lookup(Held, IfNotMade),
    Accepted(Held, Accepted),
    BackOffice(Held, v1::BackOfficeKind, String),
    Park(Held, chrono::Duration),
    GiveUp(Held, String),
    /// Record the final outcome; settle with `then` (default: what the
    /// report says).
    Complete(Held, Final, Option<Disposition>),
    Done(Disposition),
    Reread,
}

/// Why a step could not go on: the bus failed, or the gateway did not take
/// a report yet. Either way the message is redelivered.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Bus(#[from] gsl_bus::BusError),
    #[error("final outcome not reported to the gateway yet: {0}")]
    Report(#[from] ReportError),
}

impl Worker {
    /// Apply steps from `next` until one settles the delivery (`Some`) or a
    /// lost race asks for the record to be read again (`None`).
    pub(super) async fn run(
        &self,
        d: &Delivery<'_>,
        mut next: Next,
    ) -> Result<Option<Disposition>, StepError> {
        loop {
            next = match next {
                Next::Fresh => self.fresh(d).await?,
                Next::Call(h) => self.call(d, h).await?,
                Next::Lookup(h, if_not_made) => self.lookup(d, h, if_not_made).await?,
                Next::Accepted(h, acc) => self.accepted(d, h, acc).await?,
                Next::BackOffice(h, kind, what) => self.file_back_office(d, h, kind, what).await?,
                Next::Park(h, wait) => self.park(d, h, wait).await?,
                Next::GiveUp(h, reason) => self.give_up(d, h, &reason).await?,
                Next::Complete(h, fin, then) => self.complete(d, h, fin, then).await?,
                Next::Done(disposition) => return Ok(Some(disposition)),
                Next::Reread => return Ok(None),
            };
        }
    }

    /// The first step for an item whose record is `held`, as a delivery of
    /// its work message finds it.
    pub(super) async fn resume(&self, d: &Delivery<'_>, h: Held) -> Result<Next, StepError> {
        use crate::record::State;
        Ok(match h.rec.state {
            State::Done => Next::Done(self.report_final(d, h).await?.disposition()),
            State::Accepted => {
                self.follow(d.item, d.key).await?;
                let _ = self
                    .reporter
                    .report(self.accepted_outcome(d.item, &h.rec))
                    .await;
                Next::Done(Disposition::Ack)
            }
            State::Intent if h.rec.batch.is_some() => self.resume_member(d, h).await?,
            // Filing is an atomic create: the request filed before is found.
            State::Intent if self.api.back_office(d.item).is_some() => Next::Call(h),
            State::Intent => Next::Lookup(h, IfNotMade::Call),
        })
    }

    /// What a lookup's answer leads to.
    pub(super) fn resolved(&self, h: Held, found: Lookup, if_not_made: IfNotMade) -> Next {
        use crate::carrier::Progress;
        match (found, if_not_made) {
            (Lookup::NotMade, IfNotMade::Call) => Next::Call(h),
            (Lookup::NotMade, IfNotMade::GiveUp(reason)) => Next::GiveUp(h, reason),
            (Lookup::Made(acc), _) => Next::Accepted(h, acc),
            (Lookup::Done(p @ (Progress::Succeeded | Progress::Failed { .. })), _) => {
                Next::Complete(h, final_of(p), None)
            }
            (Lookup::Done(Progress::Pending), _) => {
                Next::Accepted(h, Accepted::pending("", "card"))
            }
            // Waiting out the repeat window is not a failure: parked on a
            // follow-up, it spends no deliveries.
            (Lookup::Wait(d), _) => Next::Park(
                h,
                chrono::Duration::from_std(d).unwrap_or(chrono::Duration::minutes(10)),
            ),
            (Lookup::Unverifiable(what), _) => {
                Next::BackOffice(h, v1::BackOfficeKind::Verify, what)
            }
        }
    }
}
