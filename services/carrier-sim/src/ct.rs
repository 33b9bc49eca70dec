//! China Telecom, 5G CMP OpenAPI style.
//!
//! * `POST /ct/5gcmp/openapi/v1/common/{method}` with a flat JSON body of
//!   string parameters.
//! * Headers `AppKey`, `Timestamp` (`yyyyMMddHHmmss`, China time) and `Sign` =
//!   upper-case hex MD5 of the parameters sorted by name as `k=v&k=v`, then
//!   the secret, then the timestamp. A timestamp more than `ct_max_skew_s`
//!   from the clock is refused.
//! * Answers `{"rspCode":"0000","rspDesc":..,"groupTransactionId":..,"data":{..}}`;
//!   `0000` = accepted (the change itself is asynchronous).
//! * Methods: `disabledNumber` (`orderTypeId` 19 stop, 20 resume),
//!   `requestServActive` (forced activation), `singleCutNet` (`action`
//!   ADD / DEL), `offNetAction` (`action` 1 add / 2 modify / 3 cancel, `quota`
//!   MB), `speedLimitAction` (`action` ADD / DEL, `speedValue` code),
//!   `IMEIReRecord` (`bind_type` "" normal / "2" fixed, `imei`),
//!   `queryCardMainStatus` (1 activatable, 2 test-active, 3 inventory, 4 in
//!   use, 5 stopped, 6 closed); unsure: `cancelNumber` (close),
//!   `dirWhiteListAction` (directional), `queryOrder` (by `transactionId`).
//! * Every change carries our `transactionId`; a repeat returns the original
//!   receipt.
//!
//! Codes: `-5` monthly rebind limit, `-9` duplicate subscription
//! ("不能重复订购"), `100008` card awaiting activation; unsure: `-1` illegal
//! state, `-2` bad parameter, `-3` signature or auth failed, `-4` card
//! unknown, `-6` not offered, `-7` pending order, `-8` over the rate limit,
//! `-10` nothing to modify, `-11` directional refused, `-12` transaction id
//! conflict, `-99` system busy.

use crate::config::ApiClass;
use crate::engine::{Change, DirChange, Engine, OrderState, Refusal};
use crate::gate::Gate;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{NaiveDateTime, TimeZone, Utc};
use gsl_domain::calendar::cst;
use gsl_domain::card::SimStatus;
use gsl_domain::carrier::Carrier;
use gsl_domain::speed;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn answer(code: &str, desc: &str, txn: &str, data: Value) -> Response {
    axum::Json(json!({"rspCode": code, "rspDesc": desc, "groupTransactionId": txn, "data": data}))
        .into_response()
}

fn err(code: &str, desc: &str) -> Response {
    answer(code, desc, "", json!({}))
}

pub fn busy() -> Response {
    err("-99", "系统繁忙")
}

pub fn over_limit() -> Response {
    err("-8", "调用频率超过限制")
}

fn method(parts: &http::request::Parts) -> &str {
    parts.uri.path().rsplit('/').next().unwrap_or("")
}

pub fn classify(parts: &http::request::Parts, _body: &[u8]) -> ApiClass {
    let m = method(parts);
    if m.starts_with("query") {
        ApiClass::Query
    } else if m.starts_with("list") {
        ApiClass::List
    } else {
        ApiClass::Change
    }
}

/// The body as sorted string parameters.
pub fn params(body: &[u8]) -> Option<BTreeMap<String, String>> {
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Object(m) => Some(
            m.into_iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, s)
                })
                .collect(),
        ),
        _ => None,
    }
}

/// `Sign` = upper-case hex MD5 of `k=v&...` (sorted) + secret + timestamp.
pub fn sign(params: &BTreeMap<String, String>, secret: &str, timestamp: &str) -> String {
    let joined: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let text = format!("{}{secret}{timestamp}", joined.join("&"));
    hex::encode_upper(Md5::digest(text.as_bytes()))
}

pub fn authenticate(e: &Engine, parts: &http::request::Parts, body: &[u8]) -> Result<(), Response> {
    let c = &e.config.credentials;
    let h = |k: &str| {
        parts
            .headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if h("AppKey") != c.ct_app_key {
        return Err(err("-3", "AppKey 无效"));
    }
    let ts = h("Timestamp");
    let Some(t) = NaiveDateTime::parse_from_str(ts, "%Y%m%d%H%M%S")
        .ok()
        .and_then(|n| cst().from_local_datetime(&n).single())
    else {
        return Err(err("-3", "Timestamp 格式错误"));
    };
    let skew = (t.with_timezone(&Utc) - Utc::now()).num_seconds().abs();
    if skew > c.ct_max_skew_s {
        return Err(err("-3", "Timestamp 超出允许范围"));
    }
    let Some(p) = params(body) else {
        return Err(err("-2", "请求体不是 JSON 对象"));
    };
    if !sign(&p, &c.ct_secret, ts).eq_ignore_ascii_case(h("Sign")) {
        return Err(err("-3", "签名错误"));
    }
    Ok(())
}

fn refusal(r: &Refusal) -> Response {
    let (code, desc) = match r {
        Refusal::RebindQuota => ("-5", "该卡本月调用次数超过限制"),
        Refusal::AlreadySubscribed => ("-9", "已订购该业务，不能重复订购"),
        Refusal::AwaitingActivation => ("100008", "卡处于待激活状态"),
        Refusal::IllegalState(_) | Refusal::ResumeNotAllowed | Refusal::TooSoon => {
            ("-1", "卡状态不允许此操作")
        }
        Refusal::BadParam(_) => ("-2", "参数错误"),
        Refusal::UnknownCard | Refusal::BatchUnknown => ("-4", "号码不存在"),
        Refusal::NotOffered
        | Refusal::RealNameRequired
        | Refusal::NotPooled
        | Refusal::RegionForbidden
        | Refusal::SwitchTooSoon
        | Refusal::PolicyUnusable(_) => ("-6", "不支持此业务"),
        Refusal::PendingStop => ("-7", "存在在途工单"),
        Refusal::NotSubscribed => ("-10", "未订购该业务"),
        Refusal::Directional(_) => ("-11", "定向配置不符合要求"),
        Refusal::TxnConflict => ("-12", "流水号重复"),
    };
    err(code, &format!("{desc}: {r}"))
}

fn submit(e: &Engine, card: &str, txn: &str, change: Change) -> Response {
    if txn.is_empty() {
        return err("-2", "transactionId 不能为空");
    }
    match e.submit(Carrier::Ct, card, txn, change) {
        Ok(r) => answer(
            "0000",
            "受理成功",
            &r.order_no,
            json!({"transactionId": txn}),
        ),
        Err(r) => refusal(&r),
    }
}

fn main_status(s: SimStatus) -> &'static str {
    match s {
        SimStatus::Activatable => "1",
        SimStatus::Testable => "2",
        SimStatus::NotActivated => "3",
        SimStatus::InUse => "4",
        SimStatus::Stopped => "5",
        SimStatus::Closed => "6",
    }
}

async fn handle(State(g): State<Gate>, parts: http::request::Parts, body: Bytes) -> Response {
    let e = &g.engine;
    let p = params(&body).unwrap_or_default();
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let card = if get("iccid").is_empty() {
        get("access_number")
    } else {
        get("iccid")
    };
    let txn = get("transactionId");
    let change = match method(&parts) {
        "disabledNumber" => match get("orderTypeId") {
            "19" => Change::Stop,
            "20" => Change::Resume,
            _ => return err("-2", "orderTypeId 错误"),
        },
        "requestServActive" => Change::Activate,
        "cancelNumber" => Change::Close,
        "singleCutNet" => match get("action") {
            "ADD" => Change::CutNet,
            "DEL" => Change::RestoreNet,
            _ => return err("-2", "action 错误"),
        },
        "offNetAction" => {
            let quota = || {
                get("quota")
                    .parse::<i64>()
                    .map_err(|_| err("-2", "quota 错误"))
            };
            match get("action") {
                "1" => match quota() {
                    Ok(mb) => Change::ThresholdAdd { mb },
                    Err(r) => return r,
                },
                "2" => match quota() {
                    Ok(mb) => Change::ThresholdModify { mb },
                    Err(r) => return r,
                },
                "3" => Change::ThresholdCancel,
                _ => return err("-2", "action 错误"),
            }
        }
        "speedLimitAction" => match get("action") {
            "ADD" => match get("speedValue")
                .parse::<u8>()
                .ok()
                .and_then(speed::ct_kbps)
            {
                Some(kbps) => Change::Speed { kbps },
                None => return err("-2", "speedValue 错误"),
            },
            "DEL" => Change::Speed { kbps: 0 },
            _ => return err("-2", "action 错误"),
        },
        "IMEIReRecord" => {
            let fixed = match get("bind_type") {
                "" => false,
                "2" => true,
                _ => return err("-2", "bind_type 错误"),
            };
            let imei = Some(get("imei").to_owned()).filter(|s| !s.is_empty());
            Change::Rebind { imei, fixed }
        }
        "dirWhiteListAction" => {
            let list = |k: &str| DirChange::list(get(k));
            let plan = match get("action") {
                "ADD" => DirChange::Add {
                    entries: list("entries"),
                },
                "MOD" => DirChange::Modify {
                    id: get("entryId").to_owned(),
                    entry: get("entry").to_owned(),
                },
                "DEL" => DirChange::Delete {
                    ids: list("entryIds"),
                },
                _ => return err("-2", "action 错误"),
            };
            let batch = get("batchNo").to_owned();
            return submit(
                e,
                &format!("batch:{batch}"),
                txn,
                Change::Directional { batch, plan },
            );
        }
        "queryCardMainStatus" => {
            return match e.card(Carrier::Ct, card) {
                None => err("-4", "号码不存在"),
                Some(c) => answer(
                    "0000",
                    "成功",
                    "",
                    json!({
                        "iccid": c.id,
                        "msisdn": c.msisdn,
                        "cardMainStatus": main_status(c.status),
                        "stopReason": c.stop_reason.code().to_string(),
                        "cutNet": c.cut_net,
                        "speedValue": speed::ct_code(c.speed_kbps).map(|x| x.to_string()).unwrap_or_default(),
                        "offNetQuota": c.threshold_mb.to_string(),
                        "imei": c.imei.unwrap_or_default(),
                        "imeiBindRemainTimes": e.config.rules.ct_rebinds_per_month.saturating_sub(
                            c.rebinds.get(&gsl_domain::calendar::month_key(e.now())).copied().unwrap_or(0)).to_string(),
                    }),
                ),
            };
        }
        "queryOrder" => {
            return match e.order_by_txn(Carrier::Ct, txn) {
                None => err("-4", "工单不存在"),
                Some(o) => answer(
                    "0000",
                    "成功",
                    &o.order_no,
                    json!({
                        "transactionId": o.txn,
                        "orderStatus": match o.state { OrderState::Pending => "PROCESSING", OrderState::Succeeded => "SUCCESS", OrderState::Failed => "FAILED" },
                    }),
                ),
            };
        }
        other => return err("-2", &format!("未知方法 {other}")),
    };
    submit(e, card, txn, change)
}

/// Routes under `/ct`.
pub fn router(g: Gate) -> Router {
    Router::new()
        .route("/5gcmp/openapi/v1/common/{method}", post(handle))
        .layer(axum::middleware::from_fn_with_state(
            g.clone(),
            crate::gate::gate,
        ))
        .with_state(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_stable_and_order_independent() {
        let mut p = BTreeMap::new();
        p.insert("iccid".to_string(), "8986031".to_string());
        p.insert("action".to_string(), "ADD".to_string());
        let s = sign(&p, "secret", "20261123153000");
        // md5("action=ADD&iccid=8986031secret20261123153000")
        let expect =
            hex::encode_upper(Md5::digest(b"action=ADD&iccid=8986031secret20261123153000"));
        assert_eq!(s, expect);
        assert_eq!(s.len(), 32);
        assert!(
            s.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }
}
