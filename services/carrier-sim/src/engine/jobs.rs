//! Batch jobs: one call changes up to 100 cards and answers with a job id;
//! the job's result lists each member (China Mobile's
//! `change/sim-status/batch` and `query/sim-batch-result`, `cmcc.md`).
//!
//! * **Whole-batch refusal**: when any member had a status change accepted
//!   inside the repeat window, the whole call is refused and nothing is
//!   changed or counted (`cmcc.md`, quoting the PDF).
//! * Otherwise each member is one order, accepted or refused on its own, as
//!   a single-card call would be; the job is pending while any order is.

use super::{Change, Engine, OrderState, Refusal};
use chrono::{DateTime, Duration, Utc};
use gsl_domain::card::SimStatus;
use gsl_domain::carrier::Carrier;
use std::sync::atomic::{AtomicU64, Ordering};

/// One member of a job: the id the caller gave, and its order (or why it
/// was refused).
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub order: Result<String, Refusal>,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub members: Vec<Member>,
}

/// A job as its result query shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Just created.
    Pending,
    /// Some orders still pending.
    Processing,
    /// Every member succeeded.
    Done,
    /// Finished, some members failed.
    DoneWithFailures,
    /// Finished, every member failed.
    Failed,
}

/// A member's result: the order's state, or the refusal.
pub type MemberResult = (String, Result<OrderState, Refusal>);

static JOB_SEQ: AtomicU64 = AtomicU64::new(0);

impl Engine {
    /// Submit one change for several cards. `members` are (name as given,
    /// card key if the name is known); `from` is the state the change must
    /// start from (activations), checked per member.
    pub fn submit_batch(
        &self,
        c: Carrier,
        members: &[(String, Option<String>)],
        change: Change,
        from: Option<SimStatus>,
    ) -> Result<String, Refusal> {
        let now = self.now();
        let window = Duration::seconds(self.config.rules.cmcc_status_spacing_s);
        let inside_window = members.iter().filter_map(|(_, id)| id.as_ref()).any(|id| {
            self.card(c, id)
                .and_then(|card| card.last_status_change)
                .is_some_and(|last| now - last < window)
        });
        if inside_window {
            self.platform(c)
                .probes
                .batch_refusals
                .fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::TooSoon);
        }
        let seq = JOB_SEQ.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("JOB{}{seq:08}", now.format("%Y%m%d"));
        let members = members
            .iter()
            .enumerate()
            .map(|(i, (name, card))| {
                let order = match card {
                    None => Err(Refusal::UnknownCard),
                    Some(card) => match (from, self.card(c, card)) {
                        (Some(f), Some(cur)) if cur.status != f => Err(Refusal::IllegalState(
                            "operType does not match the card's state".into(),
                        )),
                        _ => self
                            .submit(c, card, &format!("{id}-{i}"), change.clone())
                            .map(|r| r.order_no),
                    },
                };
                Member {
                    name: name.clone(),
                    order,
                }
            })
            .collect();
        self.platform(c)
            .world
            .jobs
            .lock()
            .expect("jobs lock")
            .insert(
                id.clone(),
                Job {
                    id: id.clone(),
                    created_at: now,
                    members,
                },
            );
        Ok(id)
    }

    /// A job's status and its members' results.
    pub fn job(&self, c: Carrier, id: &str) -> Option<(JobStatus, Vec<MemberResult>)> {
        let job = self
            .platform(c)
            .world
            .jobs
            .lock()
            .expect("jobs lock")
            .get(id)
            .cloned()?;
        let results: Vec<MemberResult> = job
            .members
            .iter()
            .map(|m| {
                let r = match &m.order {
                    Err(r) => Err(r.clone()),
                    Ok(no) => Ok(self.order(c, no).map_or(OrderState::Failed, |o| o.state)),
                };
                (m.name.clone(), r)
            })
            .collect();
        let pending = results
            .iter()
            .any(|(_, r)| matches!(r, Ok(OrderState::Pending)));
        let ok = results
            .iter()
            .filter(|(_, r)| matches!(r, Ok(OrderState::Succeeded)))
            .count();
        let status = if pending && self.now() - job.created_at < Duration::seconds(1) {
            JobStatus::Pending
        } else if pending {
            JobStatus::Processing
        } else if ok == results.len() {
            JobStatus::Done
        } else if ok == 0 {
            JobStatus::Failed
        } else {
            JobStatus::DoneWithFailures
        };
        Some((status, results))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CompletionMode, SimConfig};

    fn engine() -> Engine {
        let mut cfg = SimConfig::default();
        cfg.completion.mode = CompletionMode::Immediate;
        cfg.cards_per_carrier = 100;
        Engine::new(cfg).unwrap()
    }

    /// The n-th card of the inventory, in `status`, never changed.
    fn card(e: &Engine, n: u64, status: SimStatus) -> String {
        let id = e.page(Carrier::Cmcc, n, 1).remove(0).id;
        e.edit_card(Carrier::Cmcc, &id, |c| {
            c.status = status;
            c.last_status_change = None;
        });
        id
    }

    #[test]
    fn a_member_inside_the_window_refuses_the_whole_batch_and_changes_nothing() {
        let e = engine();
        let a = card(&e, 0, SimStatus::InUse);
        let b = card(&e, 1, SimStatus::InUse);
        e.submit(Carrier::Cmcc, &b, "single", Change::Stop).unwrap();
        let members = vec![
            ("a".to_owned(), Some(a.clone())),
            ("b".to_owned(), Some(b.clone())),
        ];
        assert_eq!(
            e.submit_batch(Carrier::Cmcc, &members, Change::Stop, None),
            Err(Refusal::TooSoon)
        );
        assert_eq!(e.card(Carrier::Cmcc, &a).unwrap().status, SimStatus::InUse);
        assert!(e.truth(Carrier::Cmcc, &a).applied.is_empty());
    }

    #[test]
    fn members_succeed_or_fail_on_their_own() {
        let e = engine();
        let a = card(&e, 0, SimStatus::InUse);
        let closed = card(&e, 1, SimStatus::Closed);
        let members = vec![
            ("a".to_owned(), Some(a.clone())),
            ("closed".to_owned(), Some(closed)),
            ("unknown".to_owned(), None),
        ];
        let id = e
            .submit_batch(Carrier::Cmcc, &members, Change::Stop, None)
            .unwrap();
        let (status, results) = e.job(Carrier::Cmcc, &id).unwrap();
        assert_eq!(status, JobStatus::DoneWithFailures);
        assert_eq!(results[0], ("a".to_owned(), Ok(OrderState::Succeeded)));
        assert!(matches!(results[1].1, Err(Refusal::IllegalState(_))));
        assert_eq!(results[2].1, Err(Refusal::UnknownCard));
        assert_eq!(
            e.card(Carrier::Cmcc, &a).unwrap().status,
            SimStatus::Stopped
        );
    }
}
