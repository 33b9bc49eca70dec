//! China Telecom, as `../shared/carriers/ct.md` gives it: 5GCMP for status,
//! cutoff, threshold and speed; the legacy DCP `m2m_ec` for what 5GCMP lacks
//! (rebind by `IMEIReRecord`, access numbers by `getTelephone`).
//!
//! * 5GCMP calls are GETs with the parameters in the query string, so every
//!   reading of the signing rule gives the same `Sign`: lower-case
//!   `md5(sortedQuery + secret + Timestamp)`, its 32 ASCII characters
//!   hex-encoded again, upper case (64 characters). The `Timestamp` zone is
//!   a setting (`GSL_CT_TIMESTAMP_ZONE=cst|gmt`, unsure in the sources).
//! * Cards are named by `access_number`: from the registry, else looked up
//!   once by DCP `getTelephone` and cached.
//! * Answers come in four shapes (XML `SvcCont`, JSON `Response`, JSON
//!   `resultCode`, JSON `RESULT`/`result`): [`parse_answer`] reads them all.
//!   They are receipts. Stop / resume / activate complete when
//!   `queryCardMainStatus` shows the target status, cutoff / restore when
//!   `netBlockStatusName` flips. `speedLimitAction`, `offNetAction` and
//!   `IMEIReRecord` can never be read back: the accepted answer is the
//!   success, and a lost answer becomes a back-office verification request.
//! * Fallbacks: a threshold is *modified* first and *added* when the answer
//!   says none is subscribed ("未订购达量断网"); a resume answered `100008`
//!   (card awaiting activation) fails with that code unless
//!   `GSL_CT_FORCE_ACTIVATION=on`, which changes the card's billing state by
//!   calling `requestServActive`.
//! * Codes with a source: `0000`, `-5` (monthly rebind limit), `-9`
//!   (duplicate function order: already in effect), `100008`. Every other
//!   code is kept verbatim under "carrier refused".

use chrono::{DateTime, Utc};
use gsl_adapter_kit::carrier::{
    Accepted, BackOfficeReason, CallClass, CallCtx, CallError, CallResult, CarrierApi, Item,
    Lookup, Progress,
};
use gsl_adapter_kit::config::AdapterConfig;
use gsl_adapter_kit::http::{AnswerPolicy, FiveXx, Http};
use gsl_domain::calendar::cst;
use gsl_domain::codes::ErrorCode;
use gsl_domain::{Carrier, speed};
use gsl_proto::v1::operation::Kind as O;
use gsl_secret::Secret;
use md5::{Digest, Md5};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// China Telecom's settings (`GSL_CARRIER_USER` / `GSL_CARRIER_SECRET` are
/// the 5GCMP AppKey and secret; `GSL_CT_*` the rest).
#[derive(Debug, Clone)]
pub struct CtSettings {
    pub app_key: String,
    pub secret: Secret,
    /// `Timestamp` in China time (true) or GMT.
    pub timestamp_cst: bool,
    pub dcp_url: String,
    pub dcp_user: String,
    pub dcp_password: Secret,
    /// The 9-character DCP key.
    pub dcp_key: Secret,
    /// Where `IMEIReRecord` is posted (`/m2m_ec/query.do`, or
    /// `/m2m_ec/app/serviceAccept.do` in another client: unsure).
    pub rebind_path: String,
    /// Resume meeting "awaiting activation" forces an activation (changes the
    /// card's billing state): off by default.
    pub force_activation: bool,
    /// 5GCMP customer number (`custNumber` of the batch queries,
    /// `GSL_CT_CUST_NUMBER`).
    pub cust_number: String,
    /// Access numbers per `batchQryFlowByMonth` (`GSL_CT_USAGE_BATCH`,
    /// default 100 like BQ018: the real size is not in the sources; 0 turns
    /// the usage sweep off).
    pub usage_batch: usize,
    /// The month parameter of `batchQryFlowByMonth` (`GSL_CT_USAGE_MONTH_PARAM`,
    /// default none: simctl sends none and gets the current month; its name
    /// is not in the sources).
    pub usage_month_param: Option<String>,
    /// How a JSON body is signed (`GSL_CT_BATCH_SIGN`): `body`, the doc
    /// rule over the raw bytes (default), or `fields`, simctl's sorted
    /// fields with arrays Go-style.
    pub sign_fields: bool,
}

impl CtSettings {
    pub fn from_config(cfg: &AdapterConfig) -> CtSettings {
        let get = |k: &str| cfg.carrier_setting(k).map(str::to_owned);
        CtSettings {
            app_key: cfg.carrier_user.clone(),
            secret: cfg.carrier_secret.clone(),
            timestamp_cst: get("GSL_CT_TIMESTAMP_ZONE").as_deref() != Some("gmt"),
            dcp_url: get("GSL_CT_DCP_URL").unwrap_or_else(|| cfg.carrier_url.clone()),
            dcp_user: get("GSL_CT_DCP_USER").unwrap_or_default(),
            dcp_password: Secret::new(get("GSL_CT_DCP_PASSWORD").unwrap_or_default()),
            dcp_key: Secret::new(get("GSL_CT_DCP_KEY").unwrap_or_default()),
            rebind_path: get("GSL_CT_REBIND_PATH").unwrap_or_else(|| "/m2m_ec/query.do".into()),
            force_activation: get("GSL_CT_FORCE_ACTIVATION").as_deref() == Some("on"),
            cust_number: get("GSL_CT_CUST_NUMBER").unwrap_or_default(),
            usage_batch: get("GSL_CT_USAGE_BATCH")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(100),
            usage_month_param: get("GSL_CT_USAGE_MONTH_PARAM").filter(|p| !p.is_empty()),
            sign_fields: get("GSL_CT_BATCH_SIGN").as_deref() == Some("fields"),
        }
    }
}

/// 5GCMP `Sign` (ct.md): hex of the ASCII of lower-case
/// `md5(sortedQuery + rawBody + secret + timestamp)`, upper case.
pub fn sign(sorted_query: &str, raw_body: &str, secret: &str, timestamp: &str) -> String {
    let lower = hex::encode(Md5::digest(
        format!("{sorted_query}{raw_body}{secret}{timestamp}").as_bytes(),
    ));
    hex::encode_upper(lower.as_bytes())
}

/// `k=v&k=v`, sorted by key.
pub fn sorted_query(p: &BTreeMap<&str, String>) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// simctl's plain text for a JSON body (`ct.md`, "Queries for card sync"):
/// the fields sorted by key, `k=v` joined by `&`, an array as Go prints a
/// slice (`[a b]`).
pub fn body_fields(body: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    };
    let Some(m) = body.as_object() else {
        return String::new();
    };
    let sorted: BTreeMap<&str, String> = m.iter().map(|(k, v)| (k.as_str(), text(v))).collect();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The 5GCMP batch envelope: `code` 0 (a number, or `"0"`) is OK; any other
/// fails the whole call, refused with that code and `msg` / `message`.
pub fn batch_envelope(v: &serde_json::Value) -> CallResult<()> {
    let code = match v.get("code") {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    if code == "0" {
        return Ok(());
    }
    let msg = ["msg", "message"]
        .iter()
        .find_map(|k| v.get(*k).and_then(serde_json::Value::as_str))
        .unwrap_or("China Telecom batch answer without a code");
    Err(CallError::refused(ErrorCode::CarrierRejected, &code, msg))
}

/// DCP `passWord` and `sign` for a method's signed values.
pub fn dcp_auth(set: &CtSettings, values: &[&str]) -> (String, String) {
    let (k1, k2, k3) = gsl_desjs::dcp_keys(set.dcp_key.expose());
    let mut v: Vec<&str> = values.to_vec();
    v.sort();
    (
        gsl_desjs::str_enc(set.dcp_password.expose(), &k1, &k2, &k3),
        gsl_desjs::str_enc(&v.join(","), &k1, &k2, &k3),
    )
}

/// A 5GCMP request: path and query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req {
    pub path: &'static str,
    pub query: BTreeMap<&'static str, String>,
}

const COMMON: &str = "/5gcmp/openapi/v1/common/";

fn req(method: &'static str, kv: &[(&'static str, &str)]) -> Req {
    let path = match method {
        "disabledNumberService" => "/5gcmp/openapi/v1/common/disabledNumberService",
        "requestServActive" => "/5gcmp/openapi/v1/common/requestServActive",
        "singleCutNet" => "/5gcmp/openapi/v1/common/singleCutNet",
        "offNetAction" => "/5gcmp/openapi/v1/common/offNetAction",
        "speedLimitAction" => "/5gcmp/openapi/v1/common/speedLimitAction",
        _ => "/openapi/v1/prodinst/queryCardMainStatus",
    };
    debug_assert!(path.starts_with(COMMON) || method == "queryCardMainStatus");
    Req {
        path,
        query: kv.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
    }
}

/// `queryCardMainStatus` of a card by its access number (completion reads
/// and card sync).
pub fn status_request(access_number: &str) -> Req {
    req("queryCardMainStatus", &[("access_number", access_number)])
}

/// The 5GCMP change request of an item (rebind goes to DCP: [`rebind_query`]).
pub fn change_request(item: &Item, number: &str) -> CallResult<Req> {
    let n = number;
    Ok(match item.op.kind.as_ref() {
        Some(O::Stop(_)) => req(
            "disabledNumberService",
            &[("access_number", n), ("acctCd", ""), ("orderTypeId", "19")],
        ),
        Some(O::Resume(_)) => req(
            "disabledNumberService",
            &[("access_number", n), ("acctCd", ""), ("orderTypeId", "20")],
        ),
        Some(O::Activate(_)) => req("requestServActive", &[("access_number", n)]),
        Some(O::NetworkCutoff(_)) => {
            req("singleCutNet", &[("access_number", n), ("action", "ADD")])
        }
        Some(O::NetworkRestore(_)) => {
            req("singleCutNet", &[("access_number", n), ("action", "DEL")])
        }
        Some(O::SetUsageThreshold(t)) => req(
            "offNetAction",
            &[
                ("access_number", n),
                ("action", "2"),
                ("quota", &t.threshold_mb.to_string()),
                ("type", "1"),
            ],
        ),
        Some(O::CancelUsageThreshold(_)) => req(
            "offNetAction",
            &[
                ("access_number", n),
                ("action", "3"),
                ("quota", "-1"),
                ("type", "1"),
            ],
        ),
        Some(O::SpeedLimit(sl)) if sl.kbps == 0 => req(
            "speedLimitAction",
            &[
                ("access_number", n),
                ("action", "DEL"),
                ("speedValue", "10"),
            ],
        ),
        Some(O::SpeedLimit(sl)) => {
            let code = speed::ct_code(sl.kbps).ok_or_else(|| {
                CallError::refused(
                    ErrorCode::SpeedNotOffered,
                    "",
                    format!("{} Kbps has no China Telecom code", sl.kbps),
                )
            })?;
            req(
                "speedLimitAction",
                &[
                    ("access_number", n),
                    ("action", "ADD"),
                    ("speedValue", &code.to_string()),
                ],
            )
        }
        _ => {
            return Err(CallError::refused(
                ErrorCode::NotSupported,
                "",
                "China Telecom has no API for this operation",
            ));
        }
    })
}

/// DCP `IMEIReRecord` query pairs (signed values: access_number, user_id,
/// password, method, action).
pub fn rebind_query(set: &CtSettings, item: &Item, number: &str) -> Vec<(&'static str, String)> {
    let (fixed, imei) = match item.op.kind.as_ref() {
        Some(O::Rebind(r)) => (
            r.bind_type == gsl_proto::v1::BindType::FixedImei as i32,
            r.imei.clone(),
        ),
        _ => (false, String::new()),
    };
    let (pw, sign) = dcp_auth(
        set,
        &[
            number,
            &set.dcp_user,
            set.dcp_password.expose(),
            "IMEIReRecord",
            "ADD",
        ],
    );
    let mut q = vec![
        ("method", "IMEIReRecord".to_owned()),
        ("user_id", set.dcp_user.clone()),
        ("access_number", number.to_owned()),
        ("action", "ADD".to_owned()),
        ("bind_type", if fixed { "2" } else { "" }.to_owned()),
    ];
    if fixed {
        q.push(("imei", imei));
    }
    q.push(("passWord", pw));
    q.push(("sign", sign));
    q
}

/// One answer, whatever its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: String,
    pub desc: String,
    pub txn: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.code == "0000" || self.code == "0"
    }
}

fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].trim())
}

/// Read any of China Telecom's answer shapes; `None` when it is none of them.
pub fn parse_answer(body: &str) -> Option<Answer> {
    let t = body.trim_start();
    if t.starts_with('<') {
        let code = tag(t, "RspCode")?;
        return Some(Answer {
            code: code.to_owned(),
            desc: tag(t, "RspDesc").unwrap_or("").to_owned(),
            txn: tag(t, "GROUP_TRANSACTIONID").unwrap_or("").to_owned(),
        });
    }
    let v: serde_json::Value = serde_json::from_str(t).ok()?;
    let st = |v: &serde_json::Value, k: &str| -> Option<String> {
        match v.get(k)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    if let Some(r) = v.get("Response") {
        return Some(Answer {
            code: st(r, "RspCode")?,
            desc: st(r, "RspDesc").unwrap_or_default(),
            txn: st(&v, "GROUP_TRANSACTIONID").unwrap_or_default(),
        });
    }
    for (code, desc) in [
        ("resultCode", "resultMsg"),
        ("RESULT", "SMSG"),
        ("result", "resultMsg"),
        ("IRESULT", "SMSG"),
    ] {
        if let Some(c) = st(&v, code) {
            return Some(Answer {
                code: c,
                desc: st(&v, desc).unwrap_or_default(),
                txn: String::new(),
            });
        }
    }
    None
}

/// A refusal with its source-given meaning, or "carrier refused".
pub fn refusal(a: &Answer) -> CallError {
    let code = match a.code.as_str() {
        "-5" => ErrorCode::RebindQuotaExhausted,
        "100008" => ErrorCode::IllegalState,
        _ => ErrorCode::CarrierRejected,
    };
    let msg = if a.code == "100008" {
        format!("the card awaits activation at China Telecom: {}", a.desc)
    } else {
        a.desc.clone()
    };
    CallError::refused(code, &a.code, msg)
}

/// What reading the card must show when the change is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Status(&'static str),
    NetCut(bool),
}

pub fn target(item: &Item) -> Option<Target> {
    match item.op.kind.as_ref()? {
        O::Stop(_) => Some(Target::Status("5")),
        O::Resume(_) | O::Activate(_) => Some(Target::Status("4")),
        O::NetworkCutoff(_) => Some(Target::NetCut(true)),
        O::NetworkRestore(_) => Some(Target::NetCut(false)),
        _ => None,
    }
}

/// Whether a `queryCardMainStatus` answer shows the target.
pub fn reached(v: &serde_json::Value, t: Target) -> bool {
    match t {
        Target::Status(cd) => {
            v.get("productInfo")
                .and_then(|p| p.get(0))
                .and_then(|p| p.get("productMainStatusCd"))
                .and_then(|c| c.as_str())
                == Some(cd)
        }
        Target::NetCut(cut) => {
            let name = v
                .get("netBlockStatusName")
                .and_then(|n| n.as_str())
                .unwrap_or("");
            (name == "已断网") == cut && !name.is_empty()
        }
    }
}

pub struct Ct {
    base: String,
    pub(crate) set: CtSettings,
    http: Http,
    /// ICCID -> access number (DCP `getTelephone`).
    numbers: Mutex<HashMap<String, String>>,
}

impl Ct {
    pub fn new(base: &str, set: CtSettings, http: Http) -> Ct {
        Ct {
            base: base.trim_end_matches('/').to_owned(),
            set,
            http,
            numbers: Mutex::new(HashMap::new()),
        }
    }

    fn timestamp(&self) -> String {
        let now = Utc::now();
        if self.set.timestamp_cst {
            now.with_timezone(&cst()).format("%Y%m%d%H%M%S").to_string()
        } else {
            now.format("%Y%m%d%H%M%S").to_string()
        }
    }

    async fn read(&self, resp: reqwest::Response) -> CallResult<String> {
        let body = self.http.body(resp).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// One signed 5GCMP GET, through the request stack.
    async fn get(&self, ctx: &CallCtx<'_>, class: CallClass, r: &Req) -> CallResult<String> {
        self.read(self.http.call(ctx, class, self.signed(r)).await?)
            .await
    }

    fn signed(&self, r: &Req) -> reqwest::RequestBuilder {
        let ts = self.timestamp();
        let pairs: Vec<(&str, &str)> = r.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.http
            .client
            .get(format!("{}{}", self.base, r.path))
            .query(&pairs)
            .header("AppKey", &self.set.app_key)
            .header("Timestamp", &ts)
            .header(
                "Sign",
                sign(&sorted_query(&r.query), "", self.set.secret.expose(), &ts),
            )
    }

    /// One signed 5GCMP batch query: `POST` of a JSON body, answered in
    /// the `{"code", "msg"|"message", "data"}` envelope (`code` 0 or "0").
    pub(crate) async fn post_json(
        &self,
        ctx: &CallCtx<'_>,
        path: &str,
        body: &serde_json::Value,
    ) -> CallResult<serde_json::Value> {
        let raw = body.to_string();
        let ts = self.timestamp();
        let signature = if self.set.sign_fields {
            sign(&body_fields(body), "", self.set.secret.expose(), &ts)
        } else {
            sign("", &raw, self.set.secret.expose(), &ts)
        };
        let rb = self
            .http
            .client
            .post(format!("{}{path}", self.base))
            .header("AppKey", &self.set.app_key)
            .header("Timestamp", &ts)
            .header("Sign", signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(raw);
        let text = self
            .read(self.http.call(ctx, CallClass::Query, rb).await?)
            .await?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| CallError::Unknown {
            reason: "unreadable China Telecom batch answer".into(),
        })?;
        batch_envelope(&v)?;
        Ok(v)
    }

    async fn dcp(
        &self,
        ctx: &CallCtx<'_>,
        class: CallClass,
        path: &str,
        q: &[(&str, String)],
    ) -> CallResult<String> {
        let url = format!("{}{path}", self.set.dcp_url.trim_end_matches('/'));
        // A form body, so `passWord` and `sign` never sit in a URL.
        self.read(
            self.http
                .call(ctx, class, self.http.client.post(url).form(q))
                .await?,
        )
        .await
    }

    fn answer(body: &str) -> CallResult<Answer> {
        parse_answer(body).ok_or_else(|| CallError::Unknown {
            reason: "China Telecom answer in no known shape".into(),
        })
    }

    /// The card's access number: registry, cache, or DCP `getTelephone`.
    async fn number(&self, ctx: &CallCtx<'_>, item: &Item) -> CallResult<String> {
        self.number_of(ctx, &item.card, &item.access_number).await
    }

    /// The access number of `card` (`known`: the card store's, if any).
    pub(crate) async fn number_of(
        &self,
        ctx: &CallCtx<'_>,
        card: &str,
        known: &str,
    ) -> CallResult<String> {
        if !known.is_empty() {
            return Ok(known.to_owned());
        }
        if let Some(n) = self.numbers.lock().expect("number cache").get(card) {
            return Ok(n.clone());
        }
        let (pw, sign) = dcp_auth(
            &self.set,
            &[
                card,
                &self.set.dcp_user,
                self.set.dcp_password.expose(),
                "getTelephone",
            ],
        );
        let body = self
            .dcp(
                ctx,
                CallClass::Query,
                "/m2m_ec/query.do",
                &[
                    ("method", "getTelephone".into()),
                    ("user_id", self.set.dcp_user.clone()),
                    ("iccid", card.to_owned()),
                    ("passWord", pw),
                    ("sign", sign),
                ],
            )
            .await?;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let n = crate::common::s(&v, "RESULT").to_owned();
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CallError::refused(
                ErrorCode::CardNotFound,
                crate::common::s(&v, "IRESULT"),
                "China Telecom has no access number for this ICCID",
            ));
        }
        self.numbers
            .lock()
            .expect("number cache")
            .insert(card.to_owned(), n.clone());
        Ok(n)
    }

    pub(crate) async fn read_card(
        &self,
        ctx: &CallCtx<'_>,
        number: &str,
    ) -> CallResult<serde_json::Value> {
        let body = self
            .get(ctx, CallClass::Query, &status_request(number))
            .await?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|_| CallError::Unknown {
            reason: "unreadable card status".into(),
        })?;
        let a = Ct::answer(&body)?;
        if !a.ok() {
            return Err(refusal(&a));
        }
        Ok(v)
    }
}

/// What China Telecom's answers mean: `ct.md` documents no over-limit answer
/// (`GSL_CT_OVER_LIMIT_CODES`, default none, so a simulator's `-8` stays a
/// refusal; HTTP 429 is taken as one), and nothing says a 5xx means "not
/// applied": a 5xx to a change is an unknown outcome, read back.
pub fn answers(cfg: &AdapterConfig) -> AnswerPolicy {
    AnswerPolicy {
        over_limit_codes: AnswerPolicy::codes(cfg.carrier_setting("GSL_CT_OVER_LIMIT_CODES"), &[]),
        change_5xx: FiveXx::Unknown,
        ..AnswerPolicy::default()
    }
}

#[tonic::async_trait]
impl CarrierApi for Ct {
    fn answers(&self) -> &AnswerPolicy {
        &self.http.policy
    }

    /// A 5GCMP change is an accepted request (`成功接收消息`) that China
    /// Telecom carries out later: a read right after the answer can never
    /// find it done, so none is made (the first read waits for what CT
    /// takes, learned from recent completions).
    fn completes_at_once(&self, _item: &Item) -> bool {
        false
    }

    fn carrier(&self) -> Carrier {
        Carrier::Ct
    }

    fn back_office(&self, item: &Item) -> Option<BackOfficeReason> {
        let why = match item.op.kind.as_ref()? {
            O::CloseCard(_) => {
                "China Telecom: close (tear down) the card; no API offers it".to_owned()
            }
            O::DirectionalAdd(_) | O::DirectionalModify(_) | O::DirectionalDelete(_) => format!(
                "China Telecom: change the directional config (IP / domain product) of purchase batch {} (about 5 working days)",
                item.batch_no
            ),
            _ => return None,
        };
        Some(BackOfficeReason { instructions: why })
    }

    async fn submit(&self, ctx: &CallCtx<'_>, item: &Item) -> CallResult<Accepted> {
        let number = self.number(ctx, item).await?;
        if matches!(item.op.kind, Some(O::Rebind(_))) {
            let body = self
                .dcp(
                    ctx,
                    CallClass::Change,
                    &self.set.rebind_path,
                    &rebind_query(&self.set, item, &number),
                )
                .await?;
            let a = Ct::answer(&body)?;
            return if a.ok() {
                Ok(Accepted::done(a.txn))
            } else {
                Err(refusal(&a))
            };
        }
        let r = change_request(item, &number)?;
        let mut a = Ct::answer(&self.get(ctx, CallClass::Change, &r).await?)?;
        // A modify on a card without a threshold: add instead.
        if r.path.ends_with("offNetAction") && !a.ok() && a.desc.contains("未订购达量断网") {
            let mut add = r.clone();
            add.query.insert("action", "1".into());
            a = Ct::answer(&self.get(ctx, CallClass::Change, &add).await?)?;
        }
        if a.code == "100008"
            && matches!(item.op.kind, Some(O::Resume(_)))
            && self.set.force_activation
        {
            a = Ct::answer(
                &self
                    .get(
                        ctx,
                        CallClass::Change,
                        &req("requestServActive", &[("access_number", &number)]),
                    )
                    .await?,
            )?;
        }
        let readable = target(item).is_some();
        if a.ok() || a.code == "-9" {
            // `-9`: the function is already ordered, i.e. in effect.
            return Ok(if readable {
                Accepted::pending(a.txn, "card")
            } else {
                Accepted::done(a.txn)
            });
        }
        Err(refusal(&a))
    }

    async fn poll(&self, ctx: &CallCtx<'_>, item: &Item, _acc: &Accepted) -> CallResult<Progress> {
        let Some(t) = target(item) else {
            return Ok(Progress::Succeeded);
        };
        let number = self.number(ctx, item).await?;
        let v = self.read_card(ctx, &number).await?;
        Ok(if reached(&v, t) {
            Progress::Succeeded
        } else {
            Progress::Pending
        })
    }

    async fn lookup(
        &self,
        ctx: &CallCtx<'_>,
        item: &Item,
        _since: DateTime<Utc>,
    ) -> CallResult<Lookup> {
        let Some(t) = target(item) else {
            return Ok(Lookup::Unverifiable(format!(
                "China Telecom: the answer to this change was lost and the platform cannot read it back; check the card {} at the carrier",
                item.card
            )));
        };
        let number = self.number(ctx, item).await?;
        let v = self.read_card(ctx, &number).await?;
        Ok(if reached(&v, t) {
            Lookup::Done(Progress::Succeeded)
        } else {
            Lookup::NotMade
        })
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

    /// No customer number, no batch query (`custNumber` is required).
    fn usage_batch(&self) -> usize {
        if self.set.cust_number.is_empty() {
            0
        } else {
            self.set.usage_batch
        }
    }

    async fn read_usage(
        &self,
        ctx: &CallCtx<'_>,
        cards: &[gsl_adapter_kit::reads::SyncCard],
        now: &(dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync),
    ) -> CallResult<Vec<gsl_proto::v1::CardRead>> {
        self.sync_usage(ctx, cards, now).await
    }

    async fn ping(&self) -> Result<(), String> {
        // Reachability only (one call, paced by the readiness check): an
        // answer of any shape, or "over the limit", means the platform is up.
        let r = self
            .http
            .send(self.signed(&req("queryCardMainStatus", &[("access_number", "0")])))
            .await
            .and_then(gsl_adapter_kit::http::retryable);
        if gsl_adapter_kit::http::reachable(&r) {
            Ok(())
        } else {
            Err(r.err().map(|e| e.to_string()).unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// simctl's plain text of a JSON body: sorted fields, a Go-style slice.
    #[test]
    fn batch_bodies_sign_as_simctl_prints_them() {
        assert_eq!(
            body_fields(
                &serde_json::json!({"custNumber":"C0001","accessNumber":["14910000001","14910000002"]})
            ),
            "accessNumber=[14910000001 14910000002]&custNumber=C0001"
        );
    }

    /// ct.md's worked vectors, written as literals (not compared with the
    /// simulator's function).
    #[test]
    fn sign_matches_the_worked_vector_of_ct_md() {
        let r = req(
            "disabledNumberService",
            &[
                ("orderTypeId", "19"),
                ("access_number", "14910000001"),
                ("acctCd", ""),
            ],
        );
        let q = sorted_query(&r.query);
        assert_eq!(q, "access_number=14910000001&acctCd=&orderTypeId=19");
        assert_eq!(
            hex::encode(Md5::digest(
                format!("{q}Zq7Vector202620261201013000").as_bytes()
            )),
            "b02fa07acfe260810ec03890058684ab"
        );
        assert_eq!(
            sign(&q, "", "Zq7Vector2026", "20261201013000"),
            "6230326661303761636665323630383130656330333839303035383638346162"
        );
        assert_eq!(
            sign(
                "",
                r#"{"access_number":"14910000001","action":"ADD"}"#,
                "Zq7Vector2026",
                "20261201013000"
            ),
            "3536386239323864663431623637663030376565623437393762326635643238"
        );
    }

    #[test]
    fn dcp_password_matches_the_vector_of_ct_md() {
        let mut set = CtSettings::from_config(&AdapterConfig::new(
            Carrier::Ct,
            "http://x",
            "nats://x",
            "http://x",
            "t",
        ));
        set.dcp_key = "k9X2m7Q4p".into();
        set.dcp_password = "Passw0rd".into();
        assert_eq!(dcp_auth(&set, &[]).0, "3D057CC80D614CFD30E7AC02CD78E8EE");
        assert!(!format!("{set:?}").contains("Passw0rd"));
    }

    #[test]
    fn every_answer_shape_is_read() {
        let x = parse_answer("<SvcCont><Response><RspType>0</RspType><RspCode>0000</RspCode><RspDesc>成功接收消息</RspDesc></Response><GROUP_TRANSACTIONID>1000000190202612010000000001</GROUP_TRANSACTIONID></SvcCont>").unwrap();
        assert!(x.ok());
        assert_eq!(x.txn, "1000000190202612010000000001");
        let j = parse_answer(r#"{"Response":{"RspType":"1","RspCode":"-5","RspDesc":"超限"},"GROUP_TRANSACTIONID":"1"}"#).unwrap();
        assert_eq!(j.code, "-5");
        assert!(matches!(
            refusal(&j),
            CallError::Refused {
                code: ErrorCode::RebindQuotaExhausted,
                ..
            }
        ));
        assert!(
            parse_answer(r#"{"resultCode":"0000","resultMsg":"成功"}"#)
                .unwrap()
                .ok()
        );
        assert!(
            parse_answer(r#"{"RESULT":"0","SMSG":"成功"}"#)
                .unwrap()
                .ok()
        );
        assert_eq!(
            parse_answer(r#"{"result":"100008"}"#).unwrap().code,
            "100008"
        );
        assert!(parse_answer("garbage").is_none());
        assert!(parse_answer("<SvcCont>").is_none());
    }
}
