//! Final outcomes: record, release what they release, report.

use super::step::{Delivery, Held, Next, StepError};
use super::*;
use crate::carrier::Progress;
use crate::guards::Refusal;
use crate::record::{ExecRecord, Final, State};
use crate::report::ReportError;
use gsl_bus::codec::encode;
use gsl_bus::names;
use gsl_domain::codes::ErrorCode;
use gsl_proto::{convert, v1};
use std::time::Duration;
use tracing::warn;

/// The final outcome of an item followed through the back-office queue:
/// a rejection is the operator's, not a carrier failure after acceptance.
pub(super) fn back_office_final(p: Progress) -> Final {
    let mut f = final_of(p);
    if !f.succeeded {
        f.code = ErrorCode::BackOfficeRejected.code().into();
    }
    f
}

pub(super) fn final_of(p: Progress) -> Final {
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

impl Worker {
    /// Record a final outcome, release what it releases, report it; settle
    /// with `then`, or as the report says.
    pub(super) async fn complete(
        &self,
        d: &Delivery<'_>,
        h: Held,
        fin: Final,
        then: Option<Disposition>,
    ) -> Result<Next, StepError> {
        let Held { mut rec, rev } = h;
        rec.state = State::Done;
        rec.outcome = Some(fin.clone());
        let Some(rev) = self.records.update(d.key, &rec, rev).await? else {
            return Ok(Next::Reread);
        };
        if fin.succeeded {
            self.guards.release_on_completion(d.key, &rec.guards).await;
        } else {
            self.guards.release_on_failure(d.key, &rec.guards).await;
            if let Some(q) = &rec.quota {
                self.guards.release_quota(q, d.key).await;
            }
        }
        let reported = self.report_final(d, Held { rec, rev }).await?;
        Ok(Next::Done(then.unwrap_or(reported.disposition())))
    }

    /// A refusal before any carrier call (whatever it held is released).
    pub(super) async fn refuse(
        &self,
        d: &Delivery<'_>,
        r: Refusal,
    ) -> Result<Disposition, StepError> {
        let mut rec = ExecRecord::new(
            State::Done,
            String::new(),
            self.now(),
            Vec::new(),
            None,
            self.cfg.instance.clone(),
        );
        rec.outcome = Some(Final {
            succeeded: false,
            code: r.code.code().into(),
            carrier_code: String::new(),
            message: r.message,
        });
        match self.records.create(d.key, &rec).await? {
            Some(rev) => Ok(self.report_final(d, Held { rec, rev }).await?.disposition()),
            // Someone else recorded this item meanwhile: their record wins.
            None => Ok(Disposition::Nak(Duration::from_millis(200))),
        }
    }

    /// Report a final outcome (again, if it was not acknowledged) and note it.
    pub(super) async fn report_final(
        &self,
        d: &Delivery<'_>,
        h: Held,
    ) -> Result<Reported, StepError> {
        let item = d.item;
        let Held { mut rec, rev } = h;
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
                let _ = self.records.update(d.key, &rec, rev).await?;
                Ok(Reported::Refused)
            }
            Err(e) => {
                // The record says done; the next delivery reports again.
                warn!(error = %e, work_order_id = item.work_order_id, card = %item.card, "final outcome not reported yet");
                Err(StepError::Report(e))
            }
        }
    }
}
