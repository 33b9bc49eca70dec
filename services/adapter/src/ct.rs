//! China Telecom, 5G CMP OpenAPI.
//!
//! Every request is signed (`AppKey`, `Timestamp`, `Sign` = upper-case MD5
//! of the sorted parameters, the secret and the timestamp). Two fallbacks
//! live here: a threshold "add" answered `-9` ("already subscribed") becomes
//! a "modify"; a resume answered `100008` ("awaiting activation") becomes a
//! forced activation. A fallback call carries its own derived transaction id
//! (`<txn>-M`, `<txn>-F`), so it is idempotent too, and progress is polled by
//! the transaction id of whichever call was accepted.

use crate::common::{json, s, transient_status};
use chrono::Utc;
use gsl_adapter_kit::carrier::{
    Accepted, CallCtx, CallError, CallResult, CarrierApi, Item, Progress,
};
use gsl_adapter_kit::http::Http;
use gsl_domain::calendar::cst;
use gsl_domain::codes::ErrorCode;
use gsl_domain::{Carrier, speed};
use gsl_proto::v1::operation::Kind as O;
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::time::Duration;

pub struct Ct {
    base: String,
    app_key: String,
    secret: String,
    http: Http,
}

type Params = BTreeMap<String, String>;

fn params(kv: &[(&str, &str)]) -> Params {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `Sign` = upper-case hex MD5 of `k=v&...` (sorted) + secret + timestamp.
pub fn sign(p: &Params, secret: &str, timestamp: &str) -> String {
    let joined: Vec<String> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
    hex::encode_upper(Md5::digest(
        format!("{}{secret}{timestamp}", joined.join("&")).as_bytes(),
    ))
}

pub(crate) fn map_code(code: &str, desc: &str) -> CallError {
    let r = |c: ErrorCode| CallError::refused(c, code, desc);
    match code {
        "-5" => r(ErrorCode::RebindQuotaExhausted),
        "100008" | "-1" => r(ErrorCode::IllegalState),
        "-2" => r(ErrorCode::BadParameter),
        "-4" => r(ErrorCode::CardNotFound),
        "-6" => r(ErrorCode::NotSupported),
        "-7" => r(ErrorCode::PendingStop),
        "-8" => CallError::Transient {
            reason: format!("over the rate limit: {desc}"),
            retry_after: Some(Duration::from_secs(1)),
        },
        "-11" => r(ErrorCode::DirectionalLimit),
        "-99" => CallError::transient(format!("carrier busy: {desc}")),
        _ => r(ErrorCode::CarrierRejected),
    }
}

impl Ct {
    pub fn new(base: &str, app_key: &str, secret: &str, timeout: Duration) -> Ct {
        Ct {
            base: base.trim_end_matches('/').to_owned(),
            app_key: app_key.to_owned(),
            secret: secret.to_owned(),
            http: Http::new(timeout),
        }
    }

    /// One signed call; returns (rspCode, rspDesc, body).
    async fn call(
        &self,
        method: &str,
        p: &Params,
    ) -> CallResult<(String, String, serde_json::Value)> {
        let ts = Utc::now()
            .with_timezone(&cst())
            .format("%Y%m%d%H%M%S")
            .to_string();
        let rb = self
            .http
            .client
            .post(format!("{}/5gcmp/openapi/v1/common/{method}", self.base))
            .header("AppKey", &self.app_key)
            .header("Timestamp", &ts)
            .header("Sign", sign(p, &self.secret, &ts))
            .json(p);
        let resp = self.http.send(rb).await?;
        if let Some(e) = transient_status(&resp) {
            return Err(e);
        }
        let v = json(resp).await?;
        Ok((s(&v, "rspCode").to_owned(), s(&v, "rspDesc").to_owned(), v))
    }

    async fn change(
        &self,
        ctx: &CallCtx<'_>,
        method: &str,
        mut p: Params,
        txn: &str,
    ) -> CallResult<(String, String, serde_json::Value)> {
        p.insert("transactionId".into(), txn.to_owned());
        ctx.change_slot().await;
        self.call(method, &p).await
    }

    async fn query_order(
        &self,
        ctx: &CallCtx<'_>,
        txn: &str,
    ) -> CallResult<Option<serde_json::Value>> {
        ctx.pace.query().await;
        let (code, desc, v) = self
            .call("queryOrder", &params(&[("transactionId", txn)]))
            .await?;
        match code.as_str() {
            "0000" => Ok(Some(v)),
            "-4" => Ok(None),
            _ => Err(map_code(&code, &desc)),
        }
    }
}

#[tonic::async_trait]
impl CarrierApi for Ct {
    fn carrier(&self) -> Carrier {
        Carrier::Ct
    }

    async fn submit(&self, ctx: &CallCtx<'_>, item: &Item) -> CallResult<Accepted> {
        let iccid = item.card.as_str();
        let batch = item.batch_no.as_str();
        let (method, p): (&str, Params) = match item.op.kind.as_ref() {
            Some(O::Stop(_)) => (
                "disabledNumber",
                params(&[("iccid", iccid), ("orderTypeId", "19")]),
            ),
            Some(O::Resume(_)) => (
                "disabledNumber",
                params(&[("iccid", iccid), ("orderTypeId", "20")]),
            ),
            Some(O::Activate(_)) => ("requestServActive", params(&[("iccid", iccid)])),
            Some(O::CloseCard(_)) => ("cancelNumber", params(&[("iccid", iccid)])),
            Some(O::NetworkCutoff(_)) => (
                "singleCutNet",
                params(&[("iccid", iccid), ("action", "ADD")]),
            ),
            Some(O::NetworkRestore(_)) => (
                "singleCutNet",
                params(&[("iccid", iccid), ("action", "DEL")]),
            ),
            Some(O::SetUsageThreshold(t)) => (
                "offNetAction",
                params(&[
                    ("iccid", iccid),
                    ("action", "1"),
                    ("quota", &t.threshold_mb.to_string()),
                ]),
            ),
            Some(O::CancelUsageThreshold(_)) => {
                ("offNetAction", params(&[("iccid", iccid), ("action", "3")]))
            }
            Some(O::SpeedLimit(sl)) if sl.kbps == 0 => (
                "speedLimitAction",
                params(&[("iccid", iccid), ("action", "DEL")]),
            ),
            Some(O::SpeedLimit(sl)) => {
                let code = speed::ct_code(sl.kbps).ok_or_else(|| {
                    CallError::refused(
                        ErrorCode::SpeedNotOffered,
                        "",
                        format!("{} Kbps has no China Telecom code", sl.kbps),
                    )
                })?;
                (
                    "speedLimitAction",
                    params(&[
                        ("iccid", iccid),
                        ("action", "ADD"),
                        ("speedValue", &code.to_string()),
                    ]),
                )
            }
            Some(O::Rebind(r)) => {
                let fixed = r.bind_type == gsl_proto::v1::BindType::FixedImei as i32;
                (
                    "IMEIReRecord",
                    params(&[
                        ("iccid", iccid),
                        ("bind_type", if fixed { "2" } else { "" }),
                        ("imei", &r.imei),
                    ]),
                )
            }
            Some(O::DirectionalAdd(a)) => (
                "dirWhiteListAction",
                params(&[
                    ("batchNo", batch),
                    ("action", "ADD"),
                    ("entries", &a.entries.join(",")),
                ]),
            ),
            Some(O::DirectionalModify(m)) => (
                "dirWhiteListAction",
                params(&[
                    ("batchNo", batch),
                    ("action", "MOD"),
                    ("entryId", &m.entry_id),
                    ("entry", &m.entry),
                ]),
            ),
            Some(O::DirectionalDelete(d)) => (
                "dirWhiteListAction",
                params(&[
                    ("batchNo", batch),
                    ("action", "DEL"),
                    ("entryIds", &d.entry_ids.join(",")),
                ]),
            ),
            _ => {
                return Err(CallError::refused(
                    ErrorCode::NotSupported,
                    "",
                    "China Telecom does not offer this operation",
                ));
            }
        };
        let (mut code, mut desc, mut v) = self.change(ctx, method, p.clone(), ctx.txn).await?;
        let mut used = ctx.txn.to_owned();
        // Already subscribed: modify instead.
        if code == "-9" && method == "offNetAction" {
            used = format!("{}-M", ctx.txn);
            let mut m = p.clone();
            m.insert("action".into(), "2".into());
            (code, desc, v) = self.change(ctx, method, m, &used).await?;
        }
        // Resume of a card awaiting activation: force the activation.
        if code == "100008" && matches!(item.op.kind, Some(O::Resume(_))) {
            used = format!("{}-F", ctx.txn);
            (code, desc, v) = self
                .change(ctx, "requestServActive", params(&[("iccid", iccid)]), &used)
                .await?;
        }
        if code != "0000" {
            return Err(map_code(&code, &desc));
        }
        Ok(Accepted {
            ticket: s(&v, "groupTransactionId").to_owned(),
            poll_ref: used,
        })
    }

    async fn poll(&self, ctx: &CallCtx<'_>, _item: &Item, acc: &Accepted) -> CallResult<Progress> {
        let v = self.query_order(ctx, &acc.poll_ref).await?.ok_or_else(|| {
            CallError::refused(
                ErrorCode::CarrierFailed,
                "-4",
                "the carrier has no such order",
            )
        })?;
        Ok(
            match v.get("data").map(|d| s(d, "orderStatus")).unwrap_or("") {
                "SUCCESS" => Progress::Succeeded,
                "FAILED" => Progress::Failed {
                    carrier_code: "FAILED".into(),
                    message: "order failed at the carrier".into(),
                },
                _ => Progress::Pending,
            },
        )
    }

    async fn lookup(&self, ctx: &CallCtx<'_>, _item: &Item) -> CallResult<Option<Accepted>> {
        // The change may have been made by a fallback call.
        for txn in [
            ctx.txn.to_owned(),
            format!("{}-M", ctx.txn),
            format!("{}-F", ctx.txn),
        ] {
            if let Some(v) = self.query_order(ctx, &txn).await? {
                return Ok(Some(Accepted {
                    ticket: s(&v, "groupTransactionId").to_owned(),
                    poll_ref: txn,
                }));
            }
        }
        Ok(None)
    }

    async fn ping(&self) -> Result<(), String> {
        match self
            .call(
                "queryOrder",
                &params(&[("transactionId", "readiness-probe")]),
            )
            .await
        {
            Ok((code, desc, _)) if code == "-3" => Err(format!("authentication refused: {desc}")),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The adapter signs exactly as the simulator verifies.
    #[test]
    fn signature_matches_the_simulator() {
        let p = params(&[("iccid", "8986031"), ("action", "ADD")]);
        let ours = sign(&p, "secret", "20261123153000");
        let sim = gsl_carrier_sim::ct::sign(&p, "secret", "20261123153000");
        assert_eq!(ours, sim);
    }
}
