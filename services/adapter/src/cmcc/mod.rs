//! China Mobile, OneLink EC API v5, as `../shared/carriers/cmcc.md` gives it.
//!
//! * Every call is a POST with a JSON body, so the password and the token
//!   never sit in a URL. The token comes from `get/token` and is kept for
//!   90 % of its `ttl` (saturating: a hostile `ttl` cannot overflow the
//!   clock); `12021` drops it, fetches another and retries once.
//! * `transid` = appid + `yyyyMMddHHmmss` (China time) + 8 digits from one
//!   per-process sequence: unique per call. The carrier does not
//!   de-duplicate by it, so a lost answer is resolved by reading the card.
//! * Activation picks `operType` from the card's state (`query/sim-status`):
//!   testable `5`, inventory `2`, awaiting activation `6`; stop `0`, resume
//!   `1`. Completion by `query/order-info` `status` strings; an unknown
//!   string is pending (logged); without an `orderNum`, by re-reading the card.
//! * The pooled-card cap (`limit/group-member-data-usage`, 23E04) takes the
//!   MSISDN and the account's `groupId`, `offerId`, `apnName`
//!   (`GSL_CMCC_GROUP_ID`, `GSL_CMCC_OFFER_ID`, `GSL_CMCC_APN_NAME`); its
//!   answer is the success. Without that account data it is a back-office
//!   request. Rebind (separation), region bind, directional config and close
//!   have no API: back-office requests.
//! * Stop and resume go in batch calls ([`batch`]): up to 100 MSISDNs per
//!   `change/sim-status/batch`, one `query/sim-batch-result` per job.
//! * Error codes: only `0` and `12021` have a meaning here; every other
//!   status is kept verbatim under "carrier refused".

mod batch;

use crate::common::{json, s};
use chrono::{DateTime, Utc};
use gsl_adapter_kit::carrier::{
    Accepted, BackOfficeReason, BatchKey, BatchProgress, CallClass, CallCtx, CallError, CallResult,
    CarrierApi, Item, Lookup, Progress,
};
use gsl_adapter_kit::config::AdapterConfig;
use gsl_adapter_kit::http::{AnswerPolicy, FiveXx, Http};
use gsl_domain::Carrier;
use gsl_domain::calendar::cst;
use gsl_domain::codes::ErrorCode;
use gsl_proto::v1::operation::Kind as O;
use gsl_secret::Secret;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// China Mobile's settings; `GSL_CMCC_*` overrides each.
#[derive(Debug, Clone, PartialEq)]
pub struct CmccSettings {
    pub appid: String,
    pub password: Secret,
    /// The per-card repeat window of status changes (the `status` cooldown),
    /// on the clock the services share.
    pub repeat_window: Duration,
    /// That clock (`GSL_CLOCK_*`, `GSL_TIME_SCALE`): how long a lost
    /// answer's call has waited is measured on it.
    pub clock: gsl_domain::clock::Clock,
    /// Account data for 23E04, the pooled-card cap.
    pub group_id: String,
    pub offer_id: String,
    pub apn_name: String,
    /// 23E04 `actionRule` (1 = stop data at the cap) and `operType` values
    /// (one client's doc comments: 1 add, 2 delete, 3 change; unsure).
    pub action_rule: String,
    pub oper_add: String,
    pub oper_delete: String,
    /// 25S02's 12-digit stop reason: positions of a `2` with a domain code
    /// (`GSL_CMCC_STOP_REASONS`, `crate::sync::cmcc::STOP_POSITIONS`).
    pub stop_positions: Vec<(usize, i32)>,
    /// Read yesterday's usage per card by 25U01 in each usage sweep
    /// (`GSL_CMCC_DAILY_USAGE=on|off`, on): one more call per 100 cards;
    /// off, daily figures are derived from successive 25U03 snapshots.
    pub daily_usage: bool,
}

impl CmccSettings {
    pub fn from_config(cfg: &AdapterConfig) -> CmccSettings {
        let get = |k: &str, d: &str| cfg.carrier_setting(k).unwrap_or(d).to_owned();
        CmccSettings {
            appid: cfg.carrier_user.clone(),
            password: cfg.carrier_secret.clone(),
            repeat_window: cfg
                .cooldown_hold("status")
                .unwrap_or(Duration::from_secs(1800)),
            clock: cfg.clock,
            group_id: get("GSL_CMCC_GROUP_ID", ""),
            offer_id: get("GSL_CMCC_OFFER_ID", ""),
            apn_name: get("GSL_CMCC_APN_NAME", ""),
            action_rule: get("GSL_CMCC_ACTION_RULE", "1"),
            oper_add: get("GSL_CMCC_CAP_OPER_ADD", "1"),
            oper_delete: get("GSL_CMCC_CAP_OPER_DELETE", "2"),
            stop_positions: crate::sync::cmcc::stop_positions(
                cfg.carrier_setting("GSL_CMCC_STOP_REASONS"),
            ),
            daily_usage: get("GSL_CMCC_DAILY_USAGE", "on") != "off",
        }
    }

    fn has_pool_account(&self) -> bool {
        !(self.group_id.is_empty() || self.offer_id.is_empty() || self.apn_name.is_empty())
    }
}

pub struct Cmcc {
    base: String,
    pub(crate) set: CmccSettings,
    http: Http,
    /// Held while fetching, so concurrent items share one token request.
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    seq: AtomicU32,
    /// ICCID -> MSISDN, looked up with `query/sim-card-info/batch`.
    msisdns: Mutex<HashMap<String, String>>,
}

/// A request as the contract gives it: path under `/v5/ec/` and the JSON
/// fields besides `transid` and `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req {
    pub path: &'static str,
    pub fields: Vec<(&'static str, String)>,
}

/// What the card must read as when the change is done (`cardStatus`).
fn target_status(item: &Item) -> Option<&'static str> {
    match item.op.kind.as_ref() {
        Some(O::Stop(_)) => Some("4"),
        Some(O::Activate(_) | O::Resume(_)) => Some("2"),
        _ => None,
    }
}

/// 23S03 `operType` of an activation, from the card's `cardStatus`.
pub fn activation_oper_type(card_status: &str) -> Option<&'static str> {
    match card_status {
        "6" => Some("5"),
        "7" => Some("2"),
        "1" => Some("6"),
        _ => None,
    }
}

/// The single-card change request (`card_status`: the card's current
/// `cardStatus`, needed for an activation).
pub fn change_request(
    set: &CmccSettings,
    item: &Item,
    card_status: &str,
    msisdn: &str,
) -> CallResult<Req> {
    let iccid = || ("iccid", item.card.clone());
    let status = |t: &str| Req {
        path: "change/sim-status",
        fields: vec![iccid(), ("operType", t.to_owned())],
    };
    Ok(match item.op.kind.as_ref() {
        Some(O::Stop(_)) => status("0"),
        Some(O::Resume(_)) => status("1"),
        Some(O::Activate(_)) => status(activation_oper_type(card_status).ok_or_else(|| {
            CallError::refused(
                ErrorCode::IllegalState,
                "",
                format!("card status {card_status:?} at China Mobile cannot be activated"),
            )
        })?),
        Some(O::SetUsageThreshold(t)) => cap(set, msisdn, &set.oper_add, t.threshold_mb),
        Some(O::CancelUsageThreshold(_)) => cap(set, msisdn, &set.oper_delete, -1),
        _ => {
            return Err(CallError::refused(
                ErrorCode::NotSupported,
                "",
                "China Mobile has no API for this operation",
            ));
        }
    })
}

fn cap(set: &CmccSettings, msisdn: &str, oper: &str, mb: i64) -> Req {
    let mut fields = vec![
        ("msisdn", msisdn.to_owned()),
        ("groupId", set.group_id.clone()),
        ("offerId", set.offer_id.clone()),
        ("apnName", set.apn_name.clone()),
        ("actionRule", set.action_rule.clone()),
        ("operType", oper.to_owned()),
    ];
    if mb >= 0 {
        fields.push(("limitValue", mb.to_string()));
    }
    Req {
        path: "limit/group-member-data-usage",
        fields,
    }
}

/// The envelope: `status` (a string) and `result` (an array).
pub fn envelope(v: &Value) -> CallResult<Vec<Value>> {
    let status = s(v, "status");
    if status != "0" {
        return Err(CallError::refused(
            ErrorCode::CarrierRejected,
            status,
            s(v, "message"),
        ));
    }
    Ok(v.get("result")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// A change's answer: an `orderNum` to follow, or none (confirm by the
/// card); 23E04's answer is the success.
pub fn parse_change(path: &str, v: &Value) -> CallResult<Accepted> {
    let result = envelope(v)?;
    if path == "limit/group-member-data-usage" {
        return Ok(Accepted::done(""));
    }
    let order = result.first().map(|r| s(r, "orderNum")).unwrap_or("");
    Ok(if order.is_empty() {
        Accepted::pending("", "card")
    } else {
        Accepted::pending(order, order)
    })
}

/// `query/order-info`: `None` when the carrier no longer has the order.
pub fn parse_order(v: &Value) -> CallResult<Option<Progress>> {
    let result = envelope(v)?;
    let Some(o) = result.first() else {
        return Ok(None);
    };
    Ok(Some(match s(o, "status") {
        "completed" => Progress::Succeeded,
        st @ ("failed" | "aborted" | "cancelled") => Progress::Failed {
            carrier_code: st.to_owned(),
            message: format!("order {st} at China Mobile"),
        },
        "acknowledged" | "ready" | "future" | "inProgress" | "amending" | "suspended"
        | "cancelling" => Progress::Pending,
        other => {
            tracing::warn!(
                status = other,
                "unknown China Mobile order status; treated as pending"
            );
            Progress::Pending
        }
    }))
}

/// `query/sim-status`: the card's `cardStatus`.
pub fn parse_card_status(v: &Value) -> CallResult<String> {
    let result = envelope(v)?;
    Ok(result
        .first()
        .map(|r| s(r, "cardStatus").to_owned())
        .unwrap_or_default())
}

/// Where a process's transid sequence starts: from the clock and the pid, so
/// two replicas started together still start apart.
fn sequence_start() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
        .unwrap_or(0);
    (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % 100_000_000
}

impl Cmcc {
    pub fn new(base: &str, set: CmccSettings, http: Http) -> Cmcc {
        Cmcc {
            base: base.trim_end_matches('/').to_owned(),
            set,
            http,
            token: tokio::sync::Mutex::new(None),
            seq: AtomicU32::new(sequence_start()),
            msisdns: Mutex::new(HashMap::new()),
        }
    }

    fn stamp(&self) -> String {
        Utc::now()
            .with_timezone(&cst())
            .format("%Y%m%d%H%M%S")
            .to_string()
    }

    /// The next transid of this process.
    pub fn transid(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed) % 100_000_000;
        format!("{}{}{n:08}", self.set.appid, self.stamp())
    }

    fn request(&self, path: &str, fields: &[(&str, String)]) -> reqwest::RequestBuilder {
        let body: Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
            .collect();
        self.http
            .client
            .post(format!("{}/v5/ec/{path}", self.base))
            .json(&body)
    }

    /// Through the request stack (paced, retried).
    async fn post(
        &self,
        ctx: &CallCtx<'_>,
        class: CallClass,
        path: &str,
        fields: &[(&str, String)],
    ) -> CallResult<Value> {
        json(
            &self.http,
            self.http
                .call(ctx, class, self.request(path, fields))
                .await?,
        )
        .await
    }

    async fn token(&self, ctx: &CallCtx<'_>) -> CallResult<String> {
        let mut cached = self.token.lock().await;
        if let Some((t, exp)) = cached.clone()
            && exp > Instant::now()
        {
            return Ok(t);
        }
        let v = self
            .post(ctx, CallClass::Query, "get/token", &self.token_fields())
            .await?;
        let result = envelope(&v)?;
        let first = result.first().cloned().unwrap_or_default();
        let token = s(&first, "token").to_owned();
        if token.is_empty() {
            return Err(CallError::transient("token answer without a token"));
        }
        let ttl: u64 = s(&first, "ttl").trim().parse().unwrap_or(60);
        // Refresh at 90 % of the ttl; a huge ttl saturates instead of
        // overflowing the clock.
        let keep = Duration::from_secs(ttl.saturating_sub(ttl / 10).clamp(1, 86_400));
        let exp = Instant::now()
            .checked_add(keep)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
        *cached = Some((token.clone(), exp));
        Ok(token)
    }

    fn token_fields(&self) -> [(&'static str, String); 3] {
        [
            ("appid", self.set.appid.clone()),
            ("password", self.set.password.expose().to_owned()),
            ("transid", self.transid()),
        ]
    }

    /// An authenticated call; on `12021` (token expired) refresh and retry once.
    pub(crate) async fn call(
        &self,
        ctx: &CallCtx<'_>,
        class: CallClass,
        path: &str,
        transid: &str,
        fields: &[(&'static str, String)],
    ) -> CallResult<Value> {
        for attempt in 0..2 {
            let token = self.token(ctx).await?;
            let mut all = vec![("transid", transid.to_owned()), ("token", token)];
            all.extend(fields.iter().cloned());
            let v = self.post(ctx, class, path, &all).await?;
            if s(&v, "status") == "12021" && attempt == 0 {
                *self.token.lock().await = None;
                continue;
            }
            return Ok(v);
        }
        Err(CallError::transient("token refused twice"))
    }

    async fn card_status(&self, ctx: &CallCtx<'_>, item: &Item) -> CallResult<String> {
        let v = self
            .call(
                ctx,
                CallClass::Query,
                "query/sim-status",
                &self.transid(),
                &[("iccid", item.card.clone())],
            )
            .await?;
        parse_card_status(&v)
    }

    /// The card's MSISDN: from the registry, a cache, or 25S05.
    async fn msisdn(&self, ctx: &CallCtx<'_>, item: &Item) -> CallResult<String> {
        if !item.msisdn.is_empty() {
            return Ok(item.msisdn.clone());
        }
        if let Some(m) = self.msisdns.lock().expect("msisdn cache").get(&item.card) {
            return Ok(m.clone());
        }
        let v = self
            .call(
                ctx,
                CallClass::Query,
                "query/sim-card-info/batch",
                &self.transid(),
                &[("iccids", item.card.clone())],
            )
            .await?;
        let found = envelope(&v)?
            .iter()
            .find(|r| s(r, "iccid") == item.card)
            .map(|r| s(r, "msisdn").to_owned())
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                CallError::refused(
                    ErrorCode::CardNotFound,
                    "",
                    "China Mobile has no MSISDN for this ICCID",
                )
            })?;
        self.msisdns
            .lock()
            .expect("msisdn cache")
            .insert(item.card.clone(), found.clone());
        Ok(found)
    }
}

/// What China Mobile's answers mean: no over-limit answer is documented
/// (`GSL_CMCC_OVER_LIMIT_CODES`, default none; HTTP 429 is taken as one),
/// and no source says a 5xx means "not applied": a 5xx to a change is an
/// unknown outcome, read back after the repeat window.
pub fn answers(cfg: &AdapterConfig) -> AnswerPolicy {
    AnswerPolicy {
        over_limit_codes: AnswerPolicy::codes(
            cfg.carrier_setting("GSL_CMCC_OVER_LIMIT_CODES"),
            &[],
        ),
        change_5xx: FiveXx::Unknown,
        ..AnswerPolicy::default()
    }
}

#[tonic::async_trait]
impl CarrierApi for Cmcc {
    fn answers(&self) -> &AnswerPolicy {
        &self.http.policy
    }

    fn carrier(&self) -> Carrier {
        Carrier::Cmcc
    }

    /// appid + China time of the first attempt + the process sequence.
    fn make_txn(&self, _item: &Item, _now: DateTime<Utc>) -> String {
        self.transid()
    }

    fn back_office(&self, item: &Item) -> Option<BackOfficeReason> {
        let why = match item.op.kind.as_ref()? {
            O::Rebind(_) => "China Mobile: re-enable the card stopped for violation or device separation (no public API; GSL SLA 3 working days)".to_owned(),
            O::RegionBind(r) => format!("China Mobile console: bind the card to restricted region {}", r.region),
            O::CloseCard(_) => "China Mobile: close (cancel) the card; no API offers it".to_owned(),
            O::DirectionalAdd(_) | O::DirectionalModify(_) | O::DirectionalDelete(_) => format!(
                "China Mobile: change the directional config of purchase batch {} (about 6 weeks)",
                item.batch_no
            ),
            O::SetUsageThreshold(_) | O::CancelUsageThreshold(_) if !self.set.has_pool_account() => {
                "China Mobile: set the pooled card's usage cap in the console (GSL_CMCC_GROUP_ID / OFFER_ID / APN_NAME are not configured)".to_owned()
            }
            _ => return None,
        };
        Some(BackOfficeReason { instructions: why })
    }

    /// Stop and resume share `change/sim-status/batch` calls.
    fn batch_key(&self, item: &Item) -> Option<BatchKey> {
        self.batch_key_of(item)
    }

    fn batch_size(&self) -> usize {
        batch::BATCH_MAX
    }

    async fn prepare_batch(&self, ctx: &CallCtx<'_>, items: &mut [Item]) -> Vec<CallResult<()>> {
        self.batch_numbers(ctx, items).await
    }

    async fn submit_batch(
        &self,
        ctx: &CallCtx<'_>,
        key: &BatchKey,
        items: &[Item],
    ) -> CallResult<Accepted> {
        self.submit_batch_call(ctx, key, items).await
    }

    async fn poll_batch(
        &self,
        ctx: &CallCtx<'_>,
        items: &[Item],
        acc: &Accepted,
    ) -> CallResult<BatchProgress> {
        self.poll_batch_call(ctx, items, acc).await
    }

    async fn submit(&self, ctx: &CallCtx<'_>, item: &Item) -> CallResult<Accepted> {
        let card_status = match item.op.kind {
            Some(O::Activate(_)) => self.card_status(ctx, item).await?,
            _ => String::new(),
        };
        let msisdn = match item.op.kind {
            Some(O::SetUsageThreshold(_) | O::CancelUsageThreshold(_)) => {
                self.msisdn(ctx, item).await?
            }
            _ => String::new(),
        };
        let req = change_request(&self.set, item, &card_status, &msisdn)?;
        let v = self
            .call(ctx, CallClass::Change, req.path, ctx.txn, &req.fields)
            .await?;
        parse_change(req.path, &v)
    }

    async fn poll(&self, ctx: &CallCtx<'_>, item: &Item, acc: &Accepted) -> CallResult<Progress> {
        if acc.poll_ref != "card" {
            let v = self
                .call(
                    ctx,
                    CallClass::Query,
                    "query/order-info",
                    &self.transid(),
                    &[("orderNum", acc.poll_ref.clone())],
                )
                .await?;
            if let Some(p) = parse_order(&v)? {
                return Ok(p);
            }
        }
        // No order number, or the carrier no longer has it: read the card.
        let status = self.card_status(ctx, item).await?;
        Ok(match target_status(item) {
            Some(t) if t == status => Progress::Succeeded,
            _ => Progress::Pending,
        })
    }

    async fn lookup(
        &self,
        ctx: &CallCtx<'_>,
        item: &Item,
        since: DateTime<Utc>,
    ) -> CallResult<Lookup> {
        let Some(target) = target_status(item) else {
            return Ok(Lookup::Unverifiable(
                "China Mobile: the answer to the usage-cap change was lost; check the card's cap in the pool".into(),
            ));
        };
        let status = self.card_status(ctx, item).await?;
        if status == target {
            return Ok(Lookup::Done(Progress::Succeeded));
        }
        // Unchanged: safe to call again only once the repeat window since
        // our call has passed (a call inside it would be refused, and a
        // change still being carried out would then be seen).
        let elapsed = (self.set.clock.now() - since).to_std().unwrap_or_default();
        match self.set.repeat_window.checked_sub(elapsed) {
            Some(left) if !left.is_zero() => Ok(Lookup::Wait(left.min(Duration::from_secs(600)))),
            _ => Ok(Lookup::NotMade),
        }
    }

    fn usage_batch(&self) -> usize {
        crate::sync::cmcc::USAGE_BATCH
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
            sweep: gsl_adapter_kit::reads::SweepBy::EachCard,
            changed_since: false,
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

    /// A valid cached token is proof enough; otherwise one token call (which
    /// fills the cache). Over the limit means reachable.
    async fn ping(&self) -> Result<(), String> {
        if let Some((_, exp)) = self.token.lock().await.as_ref()
            && *exp > Instant::now()
        {
            return Ok(());
        }
        let r = self
            .http
            .send(self.request("get/token", &self.token_fields()))
            .await
            .and_then(gsl_adapter_kit::http::retryable);
        let r = match r {
            Ok(resp) => json(&self.http, resp).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(v) if s(&v, "status") == "0" => {
                let first = envelope(&v)
                    .ok()
                    .and_then(|r| r.into_iter().next())
                    .unwrap_or_default();
                let ttl: u64 = s(&first, "ttl").trim().parse().unwrap_or(60);
                let keep = Duration::from_secs(ttl.saturating_sub(ttl / 10).clamp(1, 86_400));
                if let Some(exp) = Instant::now().checked_add(keep)
                    && !s(&first, "token").is_empty()
                {
                    *self.token.lock().await = Some((s(&first, "token").to_owned(), exp));
                }
                Ok(())
            }
            Ok(v) => Err(format!("token refused: status {}", s(&v, "status"))),
            r @ Err(_) if gsl_adapter_kit::http::reachable(&r) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn item(card: &str) -> Item {
        Item {
            work_order_id: 7,
            card: card.to_owned(),
            index: 0,
            tenant: "t".into(),
            carrier: Carrier::Cmcc,
            op: Default::default(),
            batch_no: String::new(),
            msisdn: String::new(),
            access_number: String::new(),
            facts: None,
        }
    }

    fn settings() -> CmccSettings {
        CmccSettings::from_config(&AdapterConfig::new(
            Carrier::Cmcc,
            "http://x",
            "nats://x",
            "http://x",
            "t",
        ))
    }

    #[test]
    fn transids_have_the_carrier_format_and_never_repeat_in_one_process() {
        let mut set = settings();
        set.appid = "app1".into();
        let c = Cmcc::new("http://x", set, Http::new(Duration::from_secs(1), 4));
        let mut seen = HashSet::new();
        for i in 0..20_000 {
            let t = if i % 2 == 0 {
                c.make_txn(&item(&format!("8986{i:016}")), Utc::now())
            } else {
                c.transid()
            };
            let rest = t.strip_prefix("app1").expect("appid prefix");
            assert_eq!(rest.len(), 22, "{t}");
            assert!(rest.bytes().all(|b| b.is_ascii_digit()), "{t}");
            assert!(seen.insert(rest[14..].to_owned()), "repeated {t}");
        }
    }

    #[test]
    fn activation_never_uses_oper_type_7() {
        for st in ["1", "2", "4", "6", "7", "8", "9", ""] {
            assert_ne!(activation_oper_type(st), Some("7"));
        }
        assert_eq!(activation_oper_type("6"), Some("5"));
        assert_eq!(activation_oper_type("7"), Some("2"));
        assert_eq!(activation_oper_type("1"), Some("6"));
        assert_eq!(activation_oper_type("2"), None, "already activated");
    }

    #[test]
    fn password_is_redacted_in_debug() {
        let mut set = settings();
        set.password = "hunter2-cmcc".into();
        assert!(!format!("{set:?}").contains("hunter2"));
    }
}
