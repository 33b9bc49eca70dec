//! China Unicom, Jasper / Cisco Control Center REST, as
//! `../shared/carriers/cu.md` gives it.
//!
//! * `PUT /devices/{iccid}` (Edit Device Details) is **synchronous**: HTTP
//!   200 means the change is made, so the answer is the outcome and nothing
//!   is polled. Only an unknown outcome (no answer) is resolved, by one
//!   `GET /devices/{iccid}`: the device in the target state is done,
//!   otherwise nothing was made and calling again is safe.
//! * Activate / resume `ACTIVATED`, stop `DEACTIVATED`, close `RETIRED`.
//!   Speed tiers and usage caps exist only as account plans: with
//!   `GSL_CU_SPEED_PLANS=512=PlanA,1024=PlanB` (Kbps -> communication plan)
//!   or `GSL_CU_CAP_PLANS=100=Pool100,-1=Default` (MB -> rate plan) they are
//!   a PUT of `communicationPlan` / `ratePlan`; without a mapping they are
//!   back-office requests. Directional config is always back-office.
//! * The account's call policy: 5 calls per second **in all** and one call
//!   in flight. Every call here (changes and reads) spends the change budget,
//!   and a semaphore keeps one call in flight per replica.
//! * Errors: `{"errorMessage","errorCode"}` kept verbatim under "carrier
//!   refused"; 401 (no or invalid credentials, as documented) is a
//!   configuration fault, retried and shown on `/readyz`.

use crate::common::{json, s};
use chrono::{DateTime, Utc};
use gsl_adapter_kit::carrier::{
    Accepted, BackOfficeReason, CallClass, CallCtx, CallError, CallResult, CarrierApi, Item,
    Lookup, Progress,
};
use gsl_adapter_kit::config::AdapterConfig;
use gsl_adapter_kit::http::{AnswerPolicy, FiveXx, Http};
use gsl_domain::Carrier;
use gsl_domain::codes::ErrorCode;
use gsl_proto::v1::operation::Kind as O;
use gsl_secret::Secret;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// China Unicom's settings.
#[derive(Debug, Clone)]
pub struct CuSettings {
    pub user: String,
    pub api_key: Secret,
    /// Kbps -> communication plan name (account data).
    pub speed_plans: BTreeMap<u32, String>,
    /// Usage cap MB (-1 = none) -> rate plan name (account data).
    pub cap_plans: BTreeMap<i64, String>,
    /// How far before a changed-since pass's start the next one begins
    /// (`GSL_CU_SYNC_OVERLAP_SECS`, default 300: `cu.md`'s cursor rule; its
    /// answers carry no time).
    pub sync_overlap: std::time::Duration,
    /// The day of the month a billing cycle begins
    /// (`GSL_CU_CYCLE_START_DAY`, default 27: domain.md, `cu.md`).
    pub cycle_start_day: u32,
}

fn plan_table<K: std::str::FromStr + Ord>(s: Option<&str>) -> BTreeMap<K, String> {
    s.unwrap_or("")
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim().parse().ok()?, v.trim().to_owned()))
        })
        .filter(|(_, v): &(K, String)| !v.is_empty())
        .collect()
}

impl CuSettings {
    pub fn from_config(cfg: &AdapterConfig) -> CuSettings {
        CuSettings {
            user: cfg.carrier_user.clone(),
            api_key: cfg.carrier_secret.clone(),
            speed_plans: plan_table(cfg.carrier_setting("GSL_CU_SPEED_PLANS")),
            cap_plans: plan_table(cfg.carrier_setting("GSL_CU_CAP_PLANS")),
            sync_overlap: std::time::Duration::from_secs(
                cfg.carrier_setting("GSL_CU_SYNC_OVERLAP_SECS")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(300),
            ),
            cycle_start_day: cfg
                .carrier_setting("GSL_CU_CYCLE_START_DAY")
                .and_then(|v| v.trim().parse().ok())
                .filter(|d| (1..=28).contains(d))
                .unwrap_or(27),
        }
    }
}

/// The body of the Edit Device Details PUT, and the field whose value the
/// device must show when done.
pub fn edit(set: &CuSettings, item: &Item) -> Option<(Value, &'static str, String)> {
    let status = |s: &str| Some((json!({ "status": s }), "status", s.to_owned()));
    match item.op.kind.as_ref()? {
        O::Activate(_) | O::Resume(_) => status("ACTIVATED"),
        O::Stop(_) => status("DEACTIVATED"),
        O::CloseCard(_) => status("RETIRED"),
        O::SpeedLimit(sl) => {
            let plan = set.speed_plans.get(&sl.kbps)?;
            Some((
                json!({ "communicationPlan": plan }),
                "communicationPlan",
                plan.clone(),
            ))
        }
        O::SetUsageThreshold(t) => {
            let plan = set.cap_plans.get(&t.threshold_mb)?;
            Some((json!({ "ratePlan": plan }), "ratePlan", plan.clone()))
        }
        O::CancelUsageThreshold(_) => {
            let plan = set.cap_plans.get(&-1)?;
            Some((json!({ "ratePlan": plan }), "ratePlan", plan.clone()))
        }
        _ => None,
    }
}

/// A non-2xx answer.
pub fn refusal(status: u16, v: &Value) -> CallError {
    if status == 401 {
        return CallError::transient(format!(
            "China Unicom refused the API credentials: {}",
            s(v, "errorMessage")
        ));
    }
    CallError::refused(
        ErrorCode::CarrierRejected,
        s(v, "errorCode"),
        s(v, "errorMessage"),
    )
}

pub struct Cu {
    base: String,
    pub(crate) set: CuSettings,
    http: Http,
    /// One call in flight (the account's policy).
    one: tokio::sync::Semaphore,
}

impl Cu {
    pub fn new(base: &str, set: CuSettings, http: Http) -> Cu {
        Cu {
            base: format!("{}/rws/api/v1", base.trim_end_matches('/')),
            set,
            http,
            one: tokio::sync::Semaphore::new(1),
        }
    }

    /// Every call spends the one budget of the API user (the change class),
    /// one call in flight.
    async fn send(
        &self,
        ctx: &CallCtx<'_>,
        rb: reqwest::RequestBuilder,
    ) -> CallResult<(u16, Value)> {
        let _one = self.one.acquire().await.expect("never closed");
        let resp = self
            .http
            .call(
                ctx,
                CallClass::Change,
                rb.basic_auth(&self.set.user, Some(self.set.api_key.expose())),
            )
            .await?;
        let status = resp.status().as_u16();
        Ok((status, json(&self.http, resp).await?))
    }

    /// `GET {base}/{path}?{query}` answered 200, as JSON.
    pub(crate) async fn get_json(
        &self,
        ctx: &CallCtx<'_>,
        path: &str,
        query: &[(&str, String)],
    ) -> CallResult<Value> {
        let (status, v) = self
            .send(
                ctx,
                self.http
                    .client
                    .get(format!("{}/{path}", self.base))
                    .query(query),
            )
            .await?;
        if status != 200 {
            return Err(refusal(status, &v));
        }
        Ok(v)
    }

    async fn device(&self, ctx: &CallCtx<'_>, iccid: &str) -> CallResult<Value> {
        self.get_json(ctx, &format!("devices/{iccid}"), &[]).await
    }
}

/// What China Unicom's answers mean (`cu.md`, "Error codes"): REST
/// `40000029` is over the per-account limit (`GSL_CU_OVER_LIMIT_CODES`,
/// default `40000029`), and HTTP 429 too; `cu.md`'s reading "treat 429/5xx
/// as retry later" is marked unsure, so what a 5xx to a change means is a
/// setting (`GSL_CU_5XX=retry`, the default, or `unknown` to read back).
pub fn answers(cfg: &AdapterConfig) -> AnswerPolicy {
    AnswerPolicy {
        over_limit_codes: AnswerPolicy::codes(
            cfg.carrier_setting("GSL_CU_OVER_LIMIT_CODES"),
            &["40000029"],
        ),
        change_5xx: match cfg.carrier_setting("GSL_CU_5XX") {
            Some("unknown") => FiveXx::Unknown,
            _ => FiveXx::NotApplied,
        },
        ..AnswerPolicy::default()
    }
}

#[tonic::async_trait]
impl CarrierApi for Cu {
    fn answers(&self) -> &AnswerPolicy {
        &self.http.policy
    }

    fn carrier(&self) -> Carrier {
        Carrier::Cu
    }

    fn back_office(&self, item: &Item) -> Option<BackOfficeReason> {
        let why = match item.op.kind.as_ref()? {
            O::DirectionalAdd(_) | O::DirectionalModify(_) | O::DirectionalDelete(_) => format!(
                "China Unicom: change the directional config of purchase batch {} (about 7 working days)",
                item.batch_no
            ),
            O::SpeedLimit(sl) if edit(&self.set, item).is_none() => format!(
                "China Unicom: set the card to the {} Kbps tier (no communication plan is mapped in GSL_CU_SPEED_PLANS)",
                sl.kbps
            ),
            O::SetUsageThreshold(_) | O::CancelUsageThreshold(_) if edit(&self.set, item).is_none() => {
                "China Unicom: set the card's usage cap (no rate plan is mapped in GSL_CU_CAP_PLANS)".to_owned()
            }
            _ => return None,
        };
        Some(BackOfficeReason { instructions: why })
    }

    async fn submit(&self, ctx: &CallCtx<'_>, item: &Item) -> CallResult<Accepted> {
        let (body, _, _) = edit(&self.set, item).ok_or_else(|| {
            CallError::refused(
                ErrorCode::NotSupported,
                "",
                "China Unicom has no API for this operation",
            )
        })?;
        let url = format!("{}/devices/{}", self.base, item.card);
        let (status, v) = self
            .send(ctx, self.http.client.put(url).json(&body))
            .await?;
        if status != 200 {
            return Err(refusal(status, &v));
        }
        Ok(Accepted::done(item.card.clone()))
    }

    async fn poll(&self, ctx: &CallCtx<'_>, item: &Item, _acc: &Accepted) -> CallResult<Progress> {
        Ok(match self.lookup(ctx, item, Utc::now()).await? {
            Lookup::Done(p) => p,
            _ => Progress::Pending,
        })
    }

    async fn lookup(
        &self,
        ctx: &CallCtx<'_>,
        item: &Item,
        _since: DateTime<Utc>,
    ) -> CallResult<Lookup> {
        let Some((_, field, want)) = edit(&self.set, item) else {
            return Ok(Lookup::NotMade);
        };
        let v = self.device(ctx, &item.card).await?;
        Ok(if s(&v, field) == want {
            Lookup::Done(Progress::Succeeded)
        } else {
            Lookup::NotMade
        })
    }

    fn sync_plan(&self) -> gsl_adapter_kit::reads::SyncPlan {
        gsl_adapter_kit::reads::SyncPlan {
            sweep: gsl_adapter_kit::reads::SweepBy::EachCard,
            changed_since: true,
            overlap: self.set.sync_overlap,
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
        _now: &(dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync),
    ) -> CallResult<gsl_adapter_kit::reads::ListPage> {
        match since {
            Some(t) => self.sync_changed(ctx, t, cursor).await,
            None => Err(CallError::refused(
                ErrorCode::NotSupported,
                "",
                "China Unicom lists devices changed since a time only",
            )),
        }
    }

    async fn ping(&self) -> Result<(), String> {
        let _one = self.one.acquire().await.expect("never closed");
        let r = self
            .http
            .send(
                self.http
                    .client
                    .get(format!("{}/devices/0", self.base))
                    .basic_auth(&self.set.user, Some(self.set.api_key.expose())),
            )
            .await;
        match r {
            Ok(resp) if resp.status().as_u16() == 401 => {
                Err("China Unicom refused the API credentials".into())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}
