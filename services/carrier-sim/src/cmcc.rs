//! China Mobile, OneLink EC API v5 style.
//!
//! * `GET /cmcc/v5/ec/get/token?appid=&password=&transid=` -> a token with a `ttl`.
//! * Every other call carries `transid` (appid + `yyyyMMddHHmmss` + 8 digits)
//!   and `token`; an expired or unknown token answers status `12021`.
//! * Envelope `{"status":"0","message":"正确","result":[...]}`; `status` is a
//!   string, `result` always an array. Query string (GET) or JSON body (POST).
//! * `change/sim-status` (`operType` 0 stop, 1 resume, 6 activate, 7 close
//!   (the close code is unsure)) returns an `orderNum`;
//!   `query/order-info?orderNum=` (or `?origTransid=`) its result;
//!   `query/sim-status?iccid=` the card.
//! * `limit/group-member-data-usage` (`operType` 1 set, 2 cancel, `limitValue`
//!   MB): the usage cap of pooled cards.
//! * Back-office processes (no public API; filed, then polled):
//!   `backoffice/rebind`, `backoffice/region-bind`, `backoffice/directional`.
//!
//! Codes: `11000` bad parameter, `12004` auth failed, `12009` card not yours,
//! `12010` card unknown, `12021` token expired, `12089` illegal state, `12098`
//! resume not allowed. Unsure (no public source): `12006` over the rate limit,
//! `12090` too soon, `12091` region not allowed, `12092` not offered, `12093`
//! pooled cards only, `12094` directional refused, `12095` already set / not
//! set, `10000` system busy.

use crate::config::ApiClass;
use crate::engine::{Change, DirChange, Engine, OrderState, Refusal};
use crate::gate::Gate;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::{Duration, Utc};
use gsl_domain::card::SimStatus;
use gsl_domain::carrier::Carrier;
use gsl_domain::ids::Iccid;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

fn envelope(status: &str, message: &str, result: Value) -> Response {
    axum::Json(json!({"status": status, "message": message, "result": result})).into_response()
}

fn ok(result: Value) -> Response {
    envelope("0", "正确", result)
}

fn err(code: &str, msg: &str) -> Response {
    envelope(code, msg, json!([]))
}

pub fn busy() -> Response {
    err("10000", "系统繁忙")
}

pub fn over_limit() -> Response {
    err("12006", "访问频率超过限制")
}

pub fn classify(parts: &http::request::Parts) -> ApiClass {
    let path = parts.uri.path();
    if path.contains("/query/") || path.ends_with("/get/token") {
        ApiClass::Query
    } else if path.contains("/list/") {
        ApiClass::List
    } else {
        ApiClass::Change
    }
}

fn params(parts: &http::request::Parts, body: &[u8]) -> HashMap<String, String> {
    let mut p: HashMap<String, String> =
        parts.uri.query().map(url_decode_pairs).unwrap_or_default();
    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
        for (k, v) in m {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            p.insert(k, s);
        }
    }
    p
}

fn url_decode_pairs(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Percent-decoding of a query component (`+` is a space). `None` on a
/// truncated or non-hex escape or on invalid UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let h = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Token and transid checks (the token endpoint checks the password instead).
pub fn authenticate(e: &Engine, parts: &http::request::Parts) -> Result<(), Response> {
    if parts.uri.path().ends_with("/get/token") {
        return Ok(());
    }
    let p = params(parts, &[]);
    let appid = &e.config.credentials.cmcc_appid;
    match p.get("transid") {
        Some(t) if valid_transid(appid, t) => {}
        _ => return Err(err("11000", "transid 格式错误")),
    }
    let Some(token) = p.get("token") else {
        return Err(err("12021", "token 不存在或已过期"));
    };
    let tokens = e
        .platform(Carrier::Cmcc)
        .tokens
        .lock()
        .expect("tokens lock");
    match tokens.get(token) {
        Some(exp) if *exp > Utc::now() => Ok(()),
        _ => Err(err("12021", "token 不存在或已过期")),
    }
}

/// appid + 14 digits (time) + 8 digits (sequence).
fn valid_transid(appid: &str, t: &str) -> bool {
    t.strip_prefix(appid)
        .is_some_and(|rest| rest.len() == 22 && rest.bytes().all(|b| b.is_ascii_digit()))
}

fn refusal(r: &Refusal) -> Response {
    let (code, msg) = match r {
        Refusal::UnknownCard => ("12010", "卡号不存在"),
        Refusal::IllegalState(_) | Refusal::PendingStop | Refusal::AwaitingActivation => {
            ("12089", "卡状态不允许此操作")
        }
        Refusal::ResumeNotAllowed => ("12098", "只有主动停机可以复机"),
        Refusal::TooSoon => ("12090", "操作过于频繁"),
        Refusal::RegionForbidden => ("12091", "该区域不允许绑定"),
        Refusal::NotOffered
        | Refusal::RealNameRequired
        | Refusal::SwitchTooSoon
        | Refusal::PolicyUnusable(_) => ("12092", "不支持此业务"),
        Refusal::NotPooled => ("12093", "仅限流量池成员"),
        Refusal::Directional(_) | Refusal::BatchUnknown => ("12094", "定向配置不符合要求"),
        Refusal::AlreadySubscribed | Refusal::NotSubscribed => ("12095", "业务已存在或不存在"),
        Refusal::RebindQuota => ("12096", "本月重绑次数已用完"),
        Refusal::BadParam(_) | Refusal::TxnConflict => ("11000", "参数错误"),
    };
    let detail = r.to_string();
    envelope(code, &format!("{msg}: {detail}"), json!([]))
}

/// Card lookup with China Mobile's distinction between "not yours" and "unknown".
fn card_known(e: &Engine, iccid: &str) -> Result<(), Response> {
    if e.card(Carrier::Cmcc, iccid).is_some() {
        return Ok(());
    }
    match Iccid::parse(iccid).ok().and_then(|i| i.carrier()) {
        Some(c) if c != Carrier::Cmcc => Err(err("12009", "卡号不属于该集团")),
        _ => Err(err("12010", "卡号不存在")),
    }
}

fn submit(e: &Engine, card: &str, txn: &str, change: Change) -> Response {
    match e.submit(Carrier::Cmcc, card, txn, change) {
        Ok(r) => ok(json!([{"orderNum": r.order_no}])),
        Err(r) => refusal(&r),
    }
}

fn card_status(s: SimStatus) -> &'static str {
    match s {
        SimStatus::Activatable => "1",
        SimStatus::InUse => "2",
        SimStatus::Stopped => "4",
        SimStatus::Testable => "6",
        SimStatus::NotActivated => "7",
        SimStatus::Closed => "9",
    }
}

async fn handle(State(g): State<Gate>, parts: http::request::Parts, body: Bytes) -> Response {
    let e: &Arc<Engine> = &g.engine;
    let p = params(&parts, &body);
    let path = parts.uri.path().to_owned();
    let op = path.rsplit("/v5/ec/").next().unwrap_or("");
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let txn = get("transid");
    match op {
        "get/token" => {
            let c = &e.config.credentials;
            if get("appid") != c.cmcc_appid || get("password") != c.cmcc_password {
                return err("12004", "鉴权失败");
            }
            if !valid_transid(&c.cmcc_appid, get("transid")) {
                return err("11000", "transid 格式错误");
            }
            let token = format!("{:032x}", rand::random::<u128>());
            let ttl = c.cmcc_token_ttl_s;
            e.platform(Carrier::Cmcc)
                .tokens
                .lock()
                .expect("tokens lock")
                .insert(token.clone(), Utc::now() + Duration::seconds(ttl as i64));
            ok(json!([{"token": token, "ttl": ttl.to_string()}]))
        }
        "change/sim-status" => {
            let iccid = get("iccid");
            if let Err(r) = card_known(e, iccid) {
                return r;
            }
            let change = match get("operType") {
                "0" => Change::Stop,
                "1" => Change::Resume,
                "6" => Change::Activate,
                "7" => Change::Close,
                _ => return err("11000", "operType 错误"),
            };
            submit(e, iccid, txn, change)
        }
        "limit/group-member-data-usage" => {
            let iccid = get("iccid");
            if let Err(r) = card_known(e, iccid) {
                return r;
            }
            let change = match get("operType") {
                "1" => {
                    let Ok(mb) = get("limitValue").parse::<i64>() else {
                        return err("11000", "limitValue 错误");
                    };
                    // China Mobile "sets" the cap: add or replace.
                    let exists = e
                        .card(Carrier::Cmcc, iccid)
                        .is_some_and(|c| c.threshold_mb != -1);
                    if exists {
                        Change::ThresholdModify { mb }
                    } else {
                        Change::ThresholdAdd { mb }
                    }
                }
                "2" => Change::ThresholdCancel,
                _ => return err("11000", "operType 错误"),
            };
            submit(e, iccid, txn, change)
        }
        "backoffice/rebind" => {
            let iccid = get("iccid");
            if let Err(r) = card_known(e, iccid) {
                return r;
            }
            let imei = Some(get("imei").to_owned()).filter(|s| !s.is_empty());
            submit(e, iccid, txn, Change::Rebind { imei, fixed: false })
        }
        "backoffice/region-bind" => {
            let iccid = get("iccid");
            if let Err(r) = card_known(e, iccid) {
                return r;
            }
            let Ok(code) = get("provinceCode").parse::<u16>() else {
                return err("11000", "provinceCode 错误");
            };
            submit(e, iccid, txn, Change::RegionBind { code })
        }
        "backoffice/directional" => {
            let batch = get("batchNo").to_owned();
            let list = |k: &str| DirChange::list(get(k));
            let plan = match get("action") {
                "add" => DirChange::Add {
                    entries: list("entries"),
                },
                "modify" => DirChange::Modify {
                    id: get("entryId").to_owned(),
                    entry: get("entry").to_owned(),
                },
                "delete" => DirChange::Delete {
                    ids: list("entryIds"),
                },
                _ => return err("11000", "action 错误"),
            };
            let key = format!("batch:{batch}");
            submit(e, &key, txn, Change::Directional { batch, plan })
        }
        "query/order-info" => {
            let order = if !get("orderNum").is_empty() {
                e.order(Carrier::Cmcc, get("orderNum"))
            } else {
                e.order_by_txn(Carrier::Cmcc, get("origTransid"))
            };
            match order {
                None => err("12097", "订单不存在"),
                Some(o) => ok(json!([{
                    "orderNum": o.order_no,
                    "iccid": o.card,
                    "orderStatus": match o.state { OrderState::Pending => "1", OrderState::Succeeded => "2", OrderState::Failed => "3" },
                    "acceptTime": o.accepted_at.to_rfc3339(),
                }])),
            }
        }
        "query/sim-status" => match e.card(Carrier::Cmcc, get("iccid")) {
            None => match card_known(e, get("iccid")) {
                Err(r) => r,
                Ok(()) => err("12010", "卡号不存在"),
            },
            Some(c) => ok(json!([{
                "iccid": c.id,
                "msisdn": c.msisdn,
                "imsi": c.imsi,
                "cardStatus": card_status(c.status),
                "stopReason": c.stop_reason.code().to_string(),
                "imei": c.imei.unwrap_or_default(),
                "usageLimitMb": c.threshold_mb.to_string(),
                "region": c.region.map(|r| r.to_string()).unwrap_or_default(),
            }])),
        },
        _ => err("11000", "接口不存在"),
    }
}

/// Routes under `/cmcc`.
pub fn router(g: Gate) -> Router {
    Router::new()
        .route("/v5/ec/{*op}", any(handle))
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
    fn transid_format() {
        // appid + yyyyMMddHHmmss + 8-digit sequence
        assert!(valid_transid("app", "app2026112315300000000001"));
        assert!(
            !valid_transid("app", "app202611231530000000001"),
            "21 digits"
        );
        assert!(!valid_transid("app", "other2026112315300000000001"));
        assert!(!valid_transid("app", "app202611231530000000000x"));
    }

    #[test]
    fn url_decoding() {
        let m = url_decode_pairs("a=1&b=x%2Cy&c=hello+world&d");
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x,y");
        assert_eq!(m["c"], "hello world");
        assert_eq!(m["d"], "");
        assert!(decode("%zz").is_none());
        assert!(decode("%4").is_none(), "truncated escape");
        assert_eq!(decode("%E5%AE%9A").as_deref(), Some("定"));
    }
}
