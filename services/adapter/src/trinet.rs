//! The tri-net platform: lifecycle operations go to the card's active
//! profile; switch network and switch policy are spaced 5 minutes apart for
//! cards without the SDK (the guard in `adapter-kit` refuses early; the
//! platform refuses too, and its answer maps to the same code).

use crate::common::{json, s};
use gsl_adapter_kit::carrier::{
    Accepted, CallClass, CallCtx, CallError, CallResult, CarrierApi, Item, Lookup, Progress,
};
use gsl_adapter_kit::config::AdapterConfig;
use gsl_adapter_kit::http::{AnswerPolicy, FiveXx, Http};
use gsl_domain::Carrier;
use gsl_domain::codes::ErrorCode;
use gsl_proto::convert;
use gsl_proto::v1::operation::Kind as O;
use gsl_secret::Secret;
use serde_json::json;

pub struct Trinet {
    pub(crate) base: String,
    key: Secret,
    pub(crate) http: Http,
}

impl Trinet {
    pub fn new(base: &str, key: &Secret, http: Http) -> Trinet {
        Trinet {
            base: format!("{}/api/v1", base.trim_end_matches('/')),
            key: key.clone(),
            http,
        }
    }

    pub(crate) async fn send(
        &self,
        ctx: &CallCtx<'_>,
        class: CallClass,
        rb: reqwest::RequestBuilder,
    ) -> CallResult<(u16, serde_json::Value)> {
        let resp = self
            .http
            .call(ctx, class, rb.bearer_auth(self.key.expose()))
            .await?;
        let status = resp.status().as_u16();
        Ok((status, json(&self.http, resp).await?))
    }

    /// A read (the query budget) answered 200, as JSON; any other status
    /// is the platform's refusal.
    pub(crate) async fn read(
        &self,
        ctx: &CallCtx<'_>,
        rb: reqwest::RequestBuilder,
    ) -> CallResult<serde_json::Value> {
        let (status, v) = self.send(ctx, CallClass::Query, rb).await?;
        if status != 200 {
            return Err(Trinet::refusal(status, &v));
        }
        Ok(v)
    }

    pub fn refusal(status: u16, v: &serde_json::Value) -> CallError {
        let code = match (status, s(v, "code")) {
            (409, "SWITCH_TOO_SOON") => ErrorCode::SwitchTooSoon,
            (409, "POLICY_NOT_USABLE") => ErrorCode::PolicyNotUsable,
            (409, _) => ErrorCode::IllegalState,
            (403, _) => ErrorCode::NotSupported,
            (404, _) => ErrorCode::CardNotFound,
            (400, _) => ErrorCode::BadParameter,
            _ => ErrorCode::CarrierRejected,
        };
        CallError::refused(code, s(v, "code"), s(v, "message"))
    }

    fn accepted(v: &serde_json::Value) -> Accepted {
        let t = s(v, "ticket").to_owned();
        Accepted::pending(t.clone(), t)
    }
}

/// What tri-net's answers mean (`trinet.md`, "Refusals"): 429 and 5xx mean
/// nothing happened, retried blind (`Retry-After` honoured).
pub fn answers(_cfg: &AdapterConfig) -> AnswerPolicy {
    AnswerPolicy {
        change_5xx: FiveXx::NotApplied,
        ..AnswerPolicy::default()
    }
}

#[tonic::async_trait]
impl CarrierApi for Trinet {
    fn answers(&self) -> &AnswerPolicy {
        &self.http.policy
    }

    /// Every change answers `202` with a ticket that is `pending` at first:
    /// lifecycle changes finish in working days, switches in minutes,
    /// directional config after review (`trinet.md`, "Results"). A read
    /// right after the answer never finds it done.
    fn completes_at_once(&self, _item: &Item) -> bool {
        false
    }

    fn carrier(&self) -> Carrier {
        Carrier::Trinet
    }

    async fn submit(&self, ctx: &CallCtx<'_>, item: &Item) -> CallResult<Accepted> {
        let card = format!("{}/cards/{}", self.base, item.card);
        let batch = format!("{}/batches/{}/directional", self.base, item.batch_no);
        let rid = ctx.txn;
        let lifecycle = |a: &str| {
            (
                format!("{card}/lifecycle"),
                json!({"action": a, "requestId": rid}),
            )
        };
        let (url, body) = match item.op.kind.as_ref() {
            Some(O::Activate(_)) => lifecycle("activate"),
            Some(O::Stop(_)) => lifecycle("stop"),
            Some(O::Resume(_)) => lifecycle("resume"),
            Some(O::CloseCard(_)) => lifecycle("close"),
            Some(O::SwitchNetwork(sw)) => {
                let target = convert::carrier_from_wire(sw.target).map_err(|e| {
                    CallError::refused(ErrorCode::InvalidItemParameter, "", e.to_string())
                })?;
                (
                    format!("{card}/switch-network"),
                    json!({"target": target.as_str(), "requestId": rid}),
                )
            }
            Some(O::SwitchPolicy(p)) => (
                format!("{card}/switch-policy"),
                json!({"policyId": p.policy_id, "requestId": rid}),
            ),
            Some(O::DirectionalAdd(a)) => (
                batch,
                json!({"action": "add", "entries": a.entries, "requestId": rid}),
            ),
            Some(O::DirectionalModify(m)) => (
                batch,
                json!({"action": "modify", "entryId": m.entry_id, "entry": m.entry, "requestId": rid}),
            ),
            Some(O::DirectionalDelete(d)) => (
                batch,
                json!({"action": "delete", "entryIds": d.entry_ids, "requestId": rid}),
            ),
            _ => {
                return Err(CallError::refused(
                    ErrorCode::NotSupported,
                    "",
                    "the tri-net platform does not offer this operation",
                ));
            }
        };
        let (status, v) = self
            .send(
                ctx,
                CallClass::Change,
                self.http.client.post(url).json(&body),
            )
            .await?;
        if status != 202 && status != 200 {
            return Err(Trinet::refusal(status, &v));
        }
        Ok(Trinet::accepted(&v))
    }

    async fn poll(&self, ctx: &CallCtx<'_>, _item: &Item, acc: &Accepted) -> CallResult<Progress> {
        let v = self
            .read(
                ctx,
                self.http
                    .client
                    .get(format!("{}/tickets/{}", self.base, acc.poll_ref)),
            )
            .await?;
        Ok(match s(&v, "state") {
            "done" => Progress::Succeeded,
            "failed" => Progress::Failed {
                carrier_code: "failed".into(),
                message: "ticket failed at the platform".into(),
            },
            _ => Progress::Pending,
        })
    }

    /// The project's own contract keeps `GET /tickets?requestId=`: the one
    /// platform where a change is found by our id.
    async fn lookup(
        &self,
        ctx: &CallCtx<'_>,
        _item: &Item,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> CallResult<Lookup> {
        let (status, v) = self
            .send(
                ctx,
                CallClass::Query,
                self.http
                    .client
                    .get(format!("{}/tickets", self.base))
                    .query(&[("requestId", ctx.txn)]),
            )
            .await?;
        match status {
            200 => Ok(Lookup::Made(Trinet::accepted(&v))),
            404 => Ok(Lookup::NotMade),
            _ => Err(Trinet::refusal(status, &v)),
        }
    }

    fn usage_batch(&self) -> usize {
        crate::sync::trinet::USAGE_BATCH
    }

    async fn read_usage(
        &self,
        ctx: &CallCtx<'_>,
        cards: &[gsl_adapter_kit::reads::SyncCard],
        now: &(dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync),
    ) -> CallResult<Vec<gsl_proto::v1::CardRead>> {
        self.sync_usage(ctx, cards, now()).await
    }

    fn sync_plan(&self) -> gsl_adapter_kit::reads::SyncPlan {
        gsl_adapter_kit::reads::SyncPlan {
            sweep: gsl_adapter_kit::reads::SweepBy::List,
            changed_since: true,
            overlap: std::time::Duration::ZERO,
        }
    }

    async fn read_card(
        &self,
        ctx: &CallCtx<'_>,
        card: &gsl_adapter_kit::reads::SyncCard,
        now: chrono::DateTime<chrono::Utc>,
    ) -> CallResult<gsl_proto::v1::CardRead> {
        self.sync_read(ctx, card, now).await
    }

    async fn list_cards(
        &self,
        ctx: &CallCtx<'_>,
        since: Option<chrono::DateTime<chrono::Utc>>,
        cursor: &str,
        now: &(dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync),
    ) -> CallResult<gsl_adapter_kit::reads::ListPage> {
        self.sync_list(ctx, since, cursor, now()).await
    }

    /// One call, not through the stack (the readiness check paces it).
    async fn ping(&self) -> Result<(), String> {
        let r = self
            .http
            .send(
                self.http
                    .client
                    .get(format!("{}/tickets", self.base))
                    .query(&[("requestId", "readiness-probe")])
                    .bearer_auth(self.key.expose()),
            )
            .await
            .and_then(gsl_adapter_kit::http::retryable);
        match r {
            Ok(resp) if resp.status().as_u16() == 401 => Err("authentication refused".into()),
            r if gsl_adapter_kit::http::reachable(&r) => Ok(()),
            Err(e) => Err(e.to_string()),
            Ok(_) => Ok(()),
        }
    }
}
