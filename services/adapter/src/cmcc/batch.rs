//! China Mobile batch status changes (`cmcc.md`): `change/sim-status/batch`
//! (23S06) for up to 100 MSISDNs joined by `_`, stop `operType 9` and resume
//! `11` with `reason=01`, answered with a `jobId`; results by
//! `query/sim-batch-result` (23M10): `jobStatus` 0 pending, 1 processing,
//! 2 done, 3 done with failures, 4 failed, and `resultList` items
//! `{resultType, resultId, status, message}` once finished (read on 4 too).
//!
//! Activations stay single-card calls: their batch `operType` depends on each
//! card's state, which only a per-card read tells. The other batch endpoints
//! of the contract (communication functions, bill-side binding, APN alerts)
//! map to none of our operations and are not used.

use super::{Cmcc, Req, envelope};
use crate::common::s;
use gsl_adapter_kit::carrier::{
    Accepted, BatchKey, BatchProgress, CallClass, CallCtx, CallError, CallResult, Item, Progress,
};
use gsl_domain::codes::ErrorCode;
use gsl_proto::v1::operation::Kind as O;
use serde_json::Value;

/// Most MSISDNs in one call (`cmcc.md`).
pub const BATCH_MAX: usize = 100;

/// `poll_ref` of a batch answered without a `jobId`: follow by the cards.
pub const NO_JOB: &str = "cards";

/// The batch `operType` (and `reason`) of an item, when it has one.
pub fn batch_oper_type(item: &Item) -> Option<&'static str> {
    match item.op.kind.as_ref()? {
        O::Stop(_) => Some("9"),
        O::Resume(_) => Some("11"),
        _ => None,
    }
}

/// The batch request for `msisdns` with `oper_type`.
pub fn batch_request(oper_type: &str, msisdns: &[&str]) -> Req {
    let mut fields = vec![
        ("msisdns", msisdns.join("_")),
        ("operType", oper_type.to_owned()),
    ];
    if matches!(oper_type, "9" | "11") {
        fields.push(("reason", "01".to_owned()));
    }
    Req {
        path: "change/sim-status/batch",
        fields,
    }
}

/// The batch call's answer: the `jobId` to follow.
pub fn parse_batch_change(v: &Value) -> CallResult<Accepted> {
    let result = envelope(v)?;
    let job = result.first().map(|r| s(r, "jobId")).unwrap_or("");
    Ok(if job.is_empty() {
        Accepted::pending("", NO_JOB)
    } else {
        Accepted::pending(job, job)
    })
}

/// `query/sim-batch-result` for the members named by `msisdns` (in member
/// order). An empty result (the job is unknown) is a refusal: the caller
/// reads the cards instead.
pub fn parse_batch_result(v: &Value, msisdns: &[&str]) -> CallResult<BatchProgress> {
    let result = envelope(v)?;
    let Some(job) = result.first() else {
        return Err(CallError::refused(
            ErrorCode::CarrierRejected,
            "",
            "China Mobile does not know the job",
        ));
    };
    match s(job, "jobStatus") {
        "0" | "1" => return Ok(BatchProgress::Pending),
        "2" | "3" | "4" => {}
        other => {
            tracing::warn!(
                job_status = other,
                "unknown China Mobile jobStatus; treated as pending"
            );
            return Ok(BatchProgress::Pending);
        }
    }
    let list = job
        .get("resultList")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(BatchProgress::Finished(
        msisdns
            .iter()
            .map(|m| {
                let r = list.iter().find(|r| s(r, "resultId") == *m)?;
                Some(match s(r, "status") {
                    "0" => Progress::Succeeded,
                    code => Progress::Failed {
                        carrier_code: code.to_owned(),
                        message: s(r, "message").to_owned(),
                    },
                })
            })
            .collect(),
    ))
}

impl Cmcc {
    pub(super) fn batch_key_of(&self, item: &Item) -> Option<BatchKey> {
        batch_oper_type(item).map(|t| BatchKey {
            call: format!("status:{t}"),
            max: BATCH_MAX,
        })
    }

    /// MSISDNs for every item that lacks one: 25S05 for up to 100 ICCIDs
    /// per call (cached).
    pub(super) async fn batch_numbers(
        &self,
        ctx: &CallCtx<'_>,
        items: &mut [Item],
    ) -> Vec<CallResult<()>> {
        {
            let cache = self.msisdns.lock().expect("msisdn cache");
            for it in items.iter_mut().filter(|i| i.msisdn.is_empty()) {
                if let Some(m) = cache.get(&it.card) {
                    it.msisdn = m.clone();
                }
            }
        }
        let missing: Vec<String> = items
            .iter()
            .filter(|i| i.msisdn.is_empty())
            .map(|i| i.card.clone())
            .collect();
        let mut failed: Option<CallError> = None;
        for chunk in missing.chunks(BATCH_MAX) {
            let r = self
                .call(
                    ctx,
                    CallClass::Query,
                    "query/sim-card-info/batch",
                    &self.transid(),
                    &[("iccids", chunk.join("_"))],
                )
                .await
                .and_then(|v| envelope(&v));
            match r {
                Ok(found) => {
                    let mut cache = self.msisdns.lock().expect("msisdn cache");
                    for f in found {
                        let (iccid, msisdn) = (s(&f, "iccid"), s(&f, "msisdn"));
                        if !iccid.is_empty() && !msisdn.is_empty() {
                            cache.insert(iccid.to_owned(), msisdn.to_owned());
                        }
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        let cache = self.msisdns.lock().expect("msisdn cache");
        items
            .iter_mut()
            .map(|it| {
                if it.msisdn.is_empty()
                    && let Some(m) = cache.get(&it.card)
                {
                    it.msisdn = m.clone();
                }
                if !it.msisdn.is_empty() {
                    return Ok(());
                }
                Err(match &failed {
                    // The look-up itself failed: try again later.
                    Some(e) if !matches!(e, CallError::Refused { .. }) => e.clone(),
                    _ => CallError::refused(
                        ErrorCode::CardNotFound,
                        "",
                        "China Mobile has no MSISDN for this ICCID",
                    ),
                })
            })
            .collect()
    }

    pub(super) async fn submit_batch_call(
        &self,
        ctx: &CallCtx<'_>,
        key: &BatchKey,
        items: &[Item],
    ) -> CallResult<Accepted> {
        let oper = key
            .call
            .strip_prefix("status:")
            .ok_or_else(|| CallError::refused(ErrorCode::NotSupported, "", "not a batch call"))?;
        let msisdns: Vec<&str> = items.iter().map(|i| i.msisdn.as_str()).collect();
        let req = batch_request(oper, &msisdns);
        let v = self
            .call(ctx, CallClass::Change, req.path, ctx.txn, &req.fields)
            .await?;
        parse_batch_change(&v)
    }

    pub(super) async fn poll_batch_call(
        &self,
        ctx: &CallCtx<'_>,
        items: &[Item],
        acc: &Accepted,
    ) -> CallResult<BatchProgress> {
        if acc.poll_ref == NO_JOB || acc.poll_ref.is_empty() {
            // No job to ask about: done when every card reads as done.
            for it in items {
                let p = gsl_adapter_kit::carrier::CarrierApi::poll(
                    self,
                    ctx,
                    it,
                    &Accepted::pending("", "card"),
                )
                .await?;
                if p == Progress::Pending {
                    return Ok(BatchProgress::Pending);
                }
            }
            return Ok(BatchProgress::Finished(vec![
                Some(Progress::Succeeded);
                items.len()
            ]));
        }
        let v = self
            .call(
                ctx,
                CallClass::Query,
                "query/sim-batch-result",
                &self.transid(),
                &[("jobId", acc.poll_ref.clone())],
            )
            .await?;
        let msisdns: Vec<&str> = items.iter().map(|i| i.msisdn.as_str()).collect();
        parse_batch_result(&v, &msisdns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(kind: O) -> Item {
        Item {
            work_order_id: 1,
            card: "89860000000000000001".into(),
            index: 0,
            tenant: "t".into(),
            carrier: gsl_domain::Carrier::Cmcc,
            op: gsl_proto::v1::Operation { kind: Some(kind) },
            batch_no: String::new(),
            msisdn: String::new(),
            access_number: String::new(),
            facts: None,
        }
    }

    /// `cmcc.md`'s request example: stop is 9 with reason 01, MSISDNs joined by `_`.
    #[test]
    fn the_stop_request_is_the_contracts_example() {
        let it = op(O::Stop(Default::default()));
        assert_eq!(batch_oper_type(&it), Some("9"));
        let r = batch_request("9", &["1440000000001", "1440000000002"]);
        assert_eq!(r.path, "change/sim-status/batch");
        assert_eq!(
            r.fields,
            vec![
                ("msisdns", "1440000000001_1440000000002".to_owned()),
                ("operType", "9".to_owned()),
                ("reason", "01".to_owned()),
            ]
        );
        assert_eq!(
            batch_oper_type(&op(O::Resume(Default::default()))),
            Some("11")
        );
        assert_eq!(batch_oper_type(&op(O::Activate(Default::default()))), None);
    }

    #[test]
    fn the_answer_gives_the_job() {
        let v = json!({"status":"0","message":"正确","result":[{"jobId":"JOB20261201000042"}]});
        assert_eq!(
            parse_batch_change(&v).unwrap(),
            Accepted::pending("JOB20261201000042", "JOB20261201000042")
        );
        let refused = json!({"status":"12090","message":"x","result":[]});
        assert!(matches!(
            parse_batch_change(&refused),
            Err(CallError::Refused { carrier_code, .. }) if carrier_code == "12090"
        ));
    }

    /// `cmcc.md`'s result example, plus a member the list does not name.
    #[test]
    fn results_per_member_and_missing_members_unknown() {
        let v = json!({"status":"0","message":"正确","result":[{"jobStatus":"3","resultList":[
            {"resultType":"1","resultId":"1440000000001","status":"0","message":"正确"},
            {"resultType":"1","resultId":"1440000000002","status":"12089","message":"状态不允许"}]}]});
        let p =
            parse_batch_result(&v, &["1440000000002", "1440000000001", "1440000000003"]).unwrap();
        assert_eq!(
            p,
            BatchProgress::Finished(vec![
                Some(Progress::Failed {
                    carrier_code: "12089".into(),
                    message: "状态不允许".into()
                }),
                Some(Progress::Succeeded),
                None,
            ])
        );
        for pending in ["0", "1", "7"] {
            let v = json!({"status":"0","result":[{"jobStatus": pending}]});
            assert_eq!(
                parse_batch_result(&v, &["1"]).unwrap(),
                BatchProgress::Pending
            );
        }
        let unknown_job = json!({"status":"0","result":[]});
        assert!(matches!(
            parse_batch_result(&unknown_job, &["1"]),
            Err(CallError::Refused { .. })
        ));
        // A hostile answer: no list, odd types. Never a panic; members unknown.
        let odd = json!({"status":"0","result":[{"jobStatus":"2","resultList":"x"}]});
        assert_eq!(
            parse_batch_result(&odd, &["1"]).unwrap(),
            BatchProgress::Finished(vec![None])
        );
    }
}
