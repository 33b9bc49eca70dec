//! China Unicom, Jasper / Control Center REST.
//!
//! Status changes by `PUT /devices/{iccid}`; speed tiers and usage
//! thresholds by the same PUT; no rebind (the carrier unbinds on its own).
//! Over the limit: HTTP 429 with `Retry-After`, honoured. Our transaction id
//! goes in `X-Request-Id` (a simulator extension: Jasper itself documents no
//! idempotency key), and progress is read from `/requests/{id}`.

use crate::common::{json, s, transient_status};
use gsl_adapter_kit::carrier::{
    Accepted, CallCtx, CallError, CallResult, CarrierApi, Item, Progress,
};
use gsl_adapter_kit::http::Http;
use gsl_domain::Carrier;
use gsl_domain::codes::ErrorCode;
use gsl_proto::v1::operation::Kind as O;
use serde_json::json;
use std::time::Duration;

pub struct Cu {
    base: String,
    user: String,
    key: String,
    http: Http,
}

impl Cu {
    pub fn new(base: &str, user: &str, key: &str, timeout: Duration) -> Cu {
        Cu {
            base: format!("{}/rws/api/v1", base.trim_end_matches('/')),
            user: user.to_owned(),
            key: key.to_owned(),
            http: Http::new(timeout),
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> CallResult<(u16, serde_json::Value)> {
        let resp = self
            .http
            .send(rb.basic_auth(&self.user, Some(&self.key)))
            .await?;
        if let Some(e) = transient_status(&resp) {
            return Err(e);
        }
        let status = resp.status().as_u16();
        Ok((status, json(resp).await?))
    }

    pub(crate) fn refusal(status: u16, v: &serde_json::Value) -> CallError {
        let code = match status {
            400 => ErrorCode::BadParameter,
            404 => ErrorCode::CardNotFound,
            409 => ErrorCode::IllegalState,
            403 => ErrorCode::NotSupported,
            _ => ErrorCode::CarrierRejected,
        };
        CallError::refused(code, s(v, "errorCode"), s(v, "errorMessage"))
    }

    fn progress(v: &serde_json::Value) -> Progress {
        match s(v, "status") {
            "COMPLETED" => Progress::Succeeded,
            "FAILED" => Progress::Failed {
                carrier_code: "FAILED".into(),
                message: "request failed at the carrier".into(),
            },
            _ => Progress::Pending,
        }
    }
}

#[tonic::async_trait]
impl CarrierApi for Cu {
    fn carrier(&self) -> Carrier {
        Carrier::Cu
    }

    async fn submit(&self, ctx: &CallCtx<'_>, item: &Item) -> CallResult<Accepted> {
        let device = format!("{}/devices/{}", self.base, item.card);
        let (url, body) = match item.op.kind.as_ref() {
            Some(O::Activate(_) | O::Resume(_)) => (device, json!({"status": "ACTIVATED"})),
            Some(O::Stop(_)) => (device, json!({"status": "DEACTIVATED"})),
            Some(O::CloseCard(_)) => (device, json!({"status": "RETIRED"})),
            Some(O::SpeedLimit(sl)) => (device, json!({"speedTier": sl.kbps})),
            Some(O::SetUsageThreshold(t)) => (device, json!({"usageThresholdMb": t.threshold_mb})),
            Some(O::CancelUsageThreshold(_)) => (device, json!({"usageThresholdMb": -1})),
            Some(O::DirectionalAdd(a)) => (
                format!("{}/batches/{}/directional", self.base, item.batch_no),
                json!({"action": "ADD", "entries": a.entries}),
            ),
            Some(O::DirectionalModify(m)) => (
                format!("{}/batches/{}/directional", self.base, item.batch_no),
                json!({"action": "MODIFY", "entry_id": m.entry_id, "entry": m.entry}),
            ),
            Some(O::DirectionalDelete(d)) => (
                format!("{}/batches/{}/directional", self.base, item.batch_no),
                json!({"action": "DELETE", "entry_ids": d.entry_ids}),
            ),
            _ => {
                return Err(CallError::refused(
                    ErrorCode::NotSupported,
                    "",
                    "China Unicom does not offer this operation",
                ));
            }
        };
        ctx.change_slot().await;
        let (status, v) = self
            .send(
                self.http
                    .client
                    .put(url)
                    .header("X-Request-Id", ctx.txn)
                    .json(&body),
            )
            .await?;
        if status != 202 && status != 200 {
            return Err(Cu::refusal(status, &v));
        }
        let id = s(&v, "requestId").to_owned();
        Ok(Accepted {
            ticket: id.clone(),
            poll_ref: id,
        })
    }

    async fn poll(&self, ctx: &CallCtx<'_>, _item: &Item, acc: &Accepted) -> CallResult<Progress> {
        ctx.pace.query().await;
        let (status, v) = self
            .send(
                self.http
                    .client
                    .get(format!("{}/requests/{}", self.base, acc.poll_ref)),
            )
            .await?;
        if status != 200 {
            return Err(Cu::refusal(status, &v));
        }
        Ok(Cu::progress(&v))
    }

    async fn lookup(&self, ctx: &CallCtx<'_>, _item: &Item) -> CallResult<Option<Accepted>> {
        ctx.pace.query().await;
        let (status, v) = self
            .send(
                self.http
                    .client
                    .get(format!("{}/requests", self.base))
                    .query(&[("externalId", ctx.txn)]),
            )
            .await?;
        match status {
            200 => {
                let id = s(&v, "requestId").to_owned();
                Ok(Some(Accepted {
                    ticket: id.clone(),
                    poll_ref: id,
                }))
            }
            404 => Ok(None),
            _ => Err(Cu::refusal(status, &v)),
        }
    }

    async fn ping(&self) -> Result<(), String> {
        match self
            .send(
                self.http
                    .client
                    .get(format!("{}/requests", self.base))
                    .query(&[("externalId", "readiness-probe")]),
            )
            .await
        {
            Ok((401, _)) => Err("authentication refused".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}
