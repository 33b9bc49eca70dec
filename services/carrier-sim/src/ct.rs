//! China Telecom, as `../shared/carriers/ct.md` gives it: the 5GCMP open API
//! and, where 5GCMP has no method, the legacy DCP `m2m_ec`.
//!
//! **5GCMP** (`/5gcmp/openapi/v1/common/{method}`,
//! `/openapi/v1/prodinst/queryCardMainStatus`), GET with a query string (or
//! POST with a JSON body). Headers `AppKey`, `Timestamp` (`yyyyMMddHHmmss`,
//! China time or GMT: either is accepted within `ct_max_skew_s`, the zone is
//! unsure) and `Sign` = hex of the ASCII of lower-case `md5(sortedQuery +
//! rawBody + secret + Timestamp)`, upper case, 64 characters. The card is
//! named by `access_number`.
//!
//! | method | params | answer |
//! |---|---|---|
//! | `disabledNumberService` | `access_number`, `acctCd` (required, may be empty), `orderTypeId` 19 stop / 20 resume | XML `SvcCont` `RspCode 0000`; resume of a card awaiting activation: `result=100008` |
//! | `requestServActive` | `access_number` | `{"RESULT":"0","SMSG":"成功"}` |
//! | `singleCutNet` | `access_number`, `action` ADD / DEL | XML `SvcCont` |
//! | `offNetAction` | `access_number`, `action` 1 add / 2 modify / 3 cancel, `quota` MB, `type` 1 / 2 | XML `SvcCont`; an add on a card that has a threshold answers success and changes nothing; a modify on one without answers "未订购达量断网" |
//! | `speedLimitAction` | `access_number`, `action` ADD + `speedValue` code, DEL + `speedValue=10` | `{"resultCode":"0000","resultMsg":"成功"}` |
//! | `queryCardMainStatus` | `access_number` | `{"result":"0","productInfo":[{"productMainStatusCd",..}],"netBlockStatusName"}` |
//! | `batchQryFlowByMonth` (POST JSON `/api/v1/batchQry/`, body signed raw or as sorted fields) | `custNumber`, `accessNumber[]` (≤ `ct_usage_batch`) | `{"code":0,"data":[{accessNumber, flowAmount MB, unit, month, status}]}` |
//!
//! **DCP** (`/m2m_ec/query.do`, `/m2m_ec/app/serviceAccept.do`): `method`,
//! `user_id`, `access_number` or `iccid`, `passWord` = `strEnc(password)`,
//! `sign` = `strEnc(values sorted and joined by ",")` with the keys of the
//! 9-character DCP key. Methods: `IMEIReRecord` (`action=ADD`, `bind_type`
//! "" / 2, `imei` for 2; JSON `Response` + `GROUP_TRANSACTIONID`; `-5` over
//! the monthly limit) and `getTelephone` (`iccid` or `imsi` -> access
//! number; answer shape not public: `{"IRESULT":"0","SMSG":..,"RESULT":n}`,
//! a simulator choice).
//!
//! Codes with a source: `0000`, `-5`, `-9`, `100008`. Refusals without one
//! (auth, over the limit, state) are labelled settings
//! ([`crate::config::Undocumented`]). No endpoint exists for close, region
//! bind or directional config.

use crate::config::ApiClass;
use crate::engine::{CardIdKind, Change, Engine, Refusal};
use crate::gate::Gate;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::{NaiveDateTime, TimeZone, Utc};
use gsl_domain::calendar::cst;
use gsl_domain::card::SimStatus;
use gsl_domain::carrier::Carrier;
use gsl_domain::speed;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn xml(rsp_type: &str, code: &str, desc: &str, txn: &str) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        format!(
            "<SvcCont><Response><RspType>{rsp_type}</RspType><RspCode>{code}</RspCode><RspDesc>{}</RspDesc></Response><GROUP_TRANSACTIONID>{txn}</GROUP_TRANSACTIONID></SvcCont>",
            escape(desc)
        ),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn xml_refused(code: &str, desc: &str) -> Response {
    xml("1", code, desc, "")
}

/// How China Telecom answers at the gate.
pub const STYLE: crate::gate::Style = crate::gate::Style {
    classify,
    busy,
    over_limit: |e, _| over_limit(e),
    authenticate,
};

pub fn busy(e: &Engine) -> Response {
    over_limit(e)
}

pub fn over_limit(e: &Engine) -> Response {
    xml_refused(
        &e.config.undocumented.ct_over_limit,
        "调用频率超过限制（模拟器设定）",
    )
}

fn method(parts: &http::request::Parts) -> &str {
    parts.uri.path().rsplit('/').next().unwrap_or("")
}

fn is_dcp(parts: &http::request::Parts) -> bool {
    parts.uri.path().contains("/m2m_ec/")
}

pub fn classify(parts: &http::request::Parts, body: &[u8]) -> ApiClass {
    let m = if is_dcp(parts) {
        params(parts, body)
            .get("method")
            .cloned()
            .unwrap_or_default()
    } else {
        method(parts).to_owned()
    };
    if m.starts_with("query") || m.starts_with("get") || m.starts_with("batchQry") {
        ApiClass::Query
    } else {
        ApiClass::Change
    }
}

/// Query pairs (decoded) and, for a JSON or form body, its fields.
pub fn params(parts: &http::request::Parts, body: &[u8]) -> BTreeMap<String, String> {
    let mut p = query_pairs(parts.uri.query().unwrap_or(""));
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => {
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                p.insert(k, s);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(body)
                && text.contains('=')
            {
                p.extend(query_pairs(text));
            }
        }
    }
    p
}

fn query_pairs(q: &str) -> BTreeMap<String, String> {
    crate::wire::query_pairs(q).into_iter().collect()
}

/// The 5GCMP `Sign` the platform expects (ct.md, "5GCMP transport and signing").
fn expected_sign(sorted_query: &str, raw_body: &[u8], secret: &str, ts: &str) -> String {
    let mut plain = sorted_query.as_bytes().to_vec();
    plain.extend_from_slice(raw_body);
    plain.extend_from_slice(secret.as_bytes());
    plain.extend_from_slice(ts.as_bytes());
    let lower = hex::encode(Md5::digest(&plain));
    hex::encode_upper(lower.as_bytes())
}

fn within_skew(ts: &str, max_skew_s: i64) -> bool {
    let Ok(n) = NaiveDateTime::parse_from_str(ts, "%Y%m%d%H%M%S") else {
        return false;
    };
    let now = Utc::now();
    let as_cst = cst()
        .from_local_datetime(&n)
        .single()
        .map(|t| t.with_timezone(&Utc));
    let as_gmt = Some(Utc.from_utc_datetime(&n));
    [as_cst, as_gmt]
        .into_iter()
        .flatten()
        .any(|t| (t - now).num_seconds().abs() <= max_skew_s)
}

/// The values each DCP method signs (ct.md, "Sign value lists").
fn dcp_signed_values(method: &str, p: &BTreeMap<String, String>, password: &str) -> Vec<String> {
    let g = |k: &str| p.get(k).cloned().unwrap_or_default();
    let card = if p.contains_key("access_number") {
        g("access_number")
    } else if p.contains_key("iccid") {
        g("iccid")
    } else {
        g("imsi")
    };
    let mut v = vec![card, g("user_id"), password.to_owned(), method.to_owned()];
    if method == "IMEIReRecord" {
        v.push(g("action"));
    }
    v
}

pub fn authenticate(e: &Engine, parts: &http::request::Parts, body: &[u8]) -> Result<(), Response> {
    let c = &e.config.credentials;
    let denied = |why: &str| {
        Err(xml_refused(
            &e.config.undocumented.ct_auth_failed,
            &format!("鉴权失败（模拟器设定）: {why}"),
        ))
    };
    if is_dcp(parts) {
        let p = params(parts, body);
        let g = |k: &str| p.get(k).cloned().unwrap_or_default();
        let (k1, k2, k3) = gsl_desjs::dcp_keys(&c.ct_dcp_key);
        if g("user_id") != c.ct_dcp_user {
            return denied("user_id");
        }
        if g("passWord") != gsl_desjs::str_enc(&c.ct_dcp_password, &k1, &k2, &k3) {
            return denied("passWord");
        }
        let mut values = dcp_signed_values(&g("method"), &p, &c.ct_dcp_password);
        values.sort();
        if g("sign") != gsl_desjs::str_enc(&values.join(","), &k1, &k2, &k3) {
            return denied("sign");
        }
        return Ok(());
    }
    let h = |k: &str| {
        parts
            .headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if h("AppKey") != c.ct_app_key {
        return denied("AppKey");
    }
    let ts = h("Timestamp");
    if !within_skew(ts, c.ct_max_skew_s) {
        return denied("Timestamp");
    }
    let sorted: Vec<String> = query_pairs(parts.uri.query().unwrap_or(""))
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let sign = h("Sign");
    // A JSON body may be signed as the doc says (its raw bytes) or as
    // simctl does (its fields sorted, arrays Go-style): which one the
    // platform checks is unsure (ct.md, "Queries for card sync"), so both.
    let fields = body_fields(body);
    if sign.len() != 64
        || (sign != expected_sign(&sorted.join("&"), body, &c.ct_secret, ts)
            && fields.is_none_or(|f| sign != expected_sign(&f, b"", &c.ct_secret, ts)))
    {
        return denied("Sign");
    }
    Ok(())
}

/// simctl's plain text for a JSON body: its fields sorted by key, `k=v`
/// joined by `&`, an array printed as Go prints a slice (`[a b]`).
fn body_fields(body: &[u8]) -> Option<String> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let sorted: BTreeMap<&String, String> = m
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Array(a) => {
                    format!("[{}]", a.iter().map(text).collect::<Vec<_>>().join(" "))
                }
                other => text(other),
            };
            (k, v)
        })
        .collect();
    Some(
        sorted
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// The 5GCMP batch queries (`/api/v1/batchQry/{method}`, POST JSON,
/// envelope `{"code", "msg", "data"}`). Only `batchQryFlowByMonth` is
/// served: this CST month's usage (MB, a decimal string) of up to
/// `ct_usage_batch` access numbers, up to now (the lag is unsure); a
/// `month` field (`yyyyMM`, a simulator choice: the parameter's name is
/// unsure) asks for another month of the last six.
async fn batch(
    State(g): State<Gate>,
    axum::extract::Path(m): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    let e = &g.engine;
    let fail = |code: i64, msg: &str| axum::Json(json!({"code": code, "msg": msg})).into_response();
    if m != "batchQryFlowByMonth" {
        return (http::StatusCode::NOT_FOUND, "no such method").into_response();
    }
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(&body) else {
        return fail(-1, "请求体须为 JSON 对象");
    };
    if b.get("custNumber").and_then(Value::as_str) != Some(&e.config.credentials.ct_cust_number) {
        return fail(-1, "custNumber 不是本账号的客户编码");
    }
    let Some(numbers) = b.get("accessNumber").and_then(Value::as_array) else {
        return fail(-1, "accessNumber 须为数组");
    };
    if numbers.is_empty() || numbers.len() > e.config.rules.ct_usage_batch {
        return fail(
            -1,
            &format!(
                "accessNumber 须为 1 到 {} 个号码",
                e.config.rules.ct_usage_batch
            ),
        );
    }
    let now = e.now();
    let today = gsl_domain::calendar::cst_date(now);
    let this = gsl_domain::calendar::calendar_month(today).0;
    let first = match b.get("month").and_then(Value::as_str) {
        None => this,
        Some(m) => match chrono::NaiveDate::parse_from_str(&format!("{m}01"), "%Y%m%d") {
            Ok(f) if f <= this && this - chrono::Months::new(5) <= f => f,
            _ => return fail(-1, "month 须为近 6 个月 yyyyMM"),
        },
    };
    let (_, last) = gsl_domain::calendar::calendar_month(first);
    let until = now.min(gsl_domain::calendar::cst_midnight(
        last.succ_opt().expect("a next day"),
    ));
    let month = first.format("%Y%m").to_string();
    let data: Vec<Value> = numbers
        .iter()
        .map(|n| {
            let n = n.as_str().unwrap_or_default();
            match e.find_card(Carrier::Ct, CardIdKind::Msisdn, n) {
                Some(id) => json!({
                    "accessNumber": n, "result": "1", "unit": "MB",
                    "flowAmount": format!("{:.3}", e.used_mb(&id, first, until)),
                    "month": month, "status": "0", "statusDesc": "查询成功",
                }),
                None => json!({
                    "accessNumber": n, "result": "1", "unit": "MB", "flowAmount": "0",
                    "month": month, "status": "1", "statusDesc": "号码不存在",
                }),
            }
        })
        .collect();
    axum::Json(json!({"code": 0, "msg": "查询成功", "data": data})).into_response()
}

/// 28 digits, as in the carrier's example.
fn group_txn(order_no: &str) -> String {
    let digits: String = order_no.chars().filter(char::is_ascii_digit).collect();
    format!("1000000190{:0>18}", digits)
}

fn main_status(s: SimStatus) -> (&'static str, &'static str) {
    match s {
        SimStatus::Activatable => ("1", "可激活"),
        SimStatus::Testable => ("2", "测试激活"),
        SimStatus::NotActivated => ("3", "测试去激活"),
        SimStatus::InUse => ("4", "在用"),
        SimStatus::Stopped => ("5", "停机"),
        SimStatus::Closed => ("7", "拆机"),
    }
}

fn xml_refusal(e: &Engine, r: &Refusal) -> Response {
    match r {
        Refusal::RebindQuota => {
            xml_refused("-5", "业务校验失败（单卡本月调用次数已超过限定次数！）")
        }
        Refusal::AlreadySubscribed => {
            xml_refused("-9", "[O0300304-1148]已订购功能产品，不能重复订购")
        }
        other => xml_refused(&e.config.undocumented.ct_illegal_state, &other.to_string()),
    }
}

fn submit_xml(e: &Engine, card: &str, change: Change) -> Response {
    match e.submit(Carrier::Ct, card, "", change) {
        Ok(r) => xml("0", "0000", "成功接收消息", &group_txn(&r.order_no)),
        Err(r) => xml_refusal(e, &r),
    }
}

async fn handle(State(g): State<Gate>, parts: http::request::Parts, body: Bytes) -> Response {
    let e = &g.engine;
    let p = params(&parts, &body);
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    if is_dcp(&parts) {
        return dcp(e, &p);
    }
    let number = get("access_number");
    let card = e.find_card(Carrier::Ct, CardIdKind::Msisdn, &number);
    let m = method(&parts);
    let Some(card) = card else {
        return xml_refused(
            &e.config.undocumented.ct_illegal_state,
            &format!("号码 {number:?} 不存在"),
        );
    };
    match m {
        "disabledNumberService" => {
            if !p.contains_key("acctCd") {
                return xml_refused("-1", "acctCd 不能为空");
            }
            let change = match get("orderTypeId").as_str() {
                "19" => Change::Stop,
                "20" => Change::Resume,
                _ => return xml_refused("-1", "orderTypeId 错误"),
            };
            match e.submit(Carrier::Ct, &card, "", change) {
                Ok(r) => xml("0", "0000", "成功接收消息", &group_txn(&r.order_no)),
                Err(Refusal::AwaitingActivation) => {
                    axum::Json(json!({"result": "100008", "resultMsg": "卡处于待激活状态"}))
                        .into_response()
                }
                Err(r) => xml_refusal(e, &r),
            }
        }
        "requestServActive" => match e.submit(Carrier::Ct, &card, "", Change::Activate) {
            Ok(_) => axum::Json(json!({"RESULT": "0", "SMSG": "成功"})).into_response(),
            Err(r) => axum::Json(
                json!({"RESULT": e.config.undocumented.ct_illegal_state, "SMSG": r.to_string()}),
            )
            .into_response(),
        },
        "singleCutNet" => match get("action").as_str() {
            "ADD" => submit_xml(e, &card, Change::CutNet),
            "DEL" => submit_xml(e, &card, Change::RestoreNet),
            _ => xml_refused("-1", "action 错误"),
        },
        "offNetAction" => {
            if !matches!(get("type").as_str(), "1" | "2") {
                return xml_refused("-1", "type 错误");
            }
            let quota = get("quota").parse::<i64>().ok().filter(|q| *q >= -1);
            let has = e
                .card(Carrier::Ct, &card)
                .is_some_and(|c| c.threshold_mb != -1);
            match (get("action").as_str(), quota) {
                // 5GCMP reports an add on a card that has a threshold as a
                // success and changes nothing (yunze's reason to modify first).
                ("1", Some(_)) if has => xml("0", "0000", "成功接收消息", &group_txn("0")),
                ("1", Some(mb)) => submit_xml(e, &card, Change::ThresholdAdd { mb }),
                ("2", Some(_)) if !has => {
                    xml_refused(&e.config.undocumented.ct_illegal_state, "未订购达量断网")
                }
                ("2", Some(mb)) => submit_xml(e, &card, Change::ThresholdModify { mb }),
                ("3", _) if !has => {
                    xml_refused(&e.config.undocumented.ct_illegal_state, "未订购达量断网")
                }
                ("3", _) => submit_xml(e, &card, Change::ThresholdCancel),
                _ => xml_refused("-1", "action 或 quota 错误"),
            }
        }
        "speedLimitAction" => {
            let change = match (get("action").as_str(), get("speedValue").as_str()) {
                ("DEL", "10") => Change::Speed { kbps: 0 },
                ("ADD", v) => match v.parse::<u8>().ok().and_then(speed::ct_kbps) {
                    Some(kbps) => Change::Speed { kbps },
                    None => {
                        return axum::Json(
                            json!({"resultCode": "-1", "resultMsg": "speedValue 错误"}),
                        )
                        .into_response();
                    }
                },
                _ => {
                    return axum::Json(
                        json!({"resultCode": "-1", "resultMsg": "action 或 speedValue 错误"}),
                    )
                    .into_response();
                }
            };
            match e.submit(Carrier::Ct, &card, "", change) {
                Ok(_) => axum::Json(json!({"resultCode": "0000", "resultMsg": "成功"})).into_response(),
                Err(r) => axum::Json(json!({"resultCode": e.config.undocumented.ct_illegal_state, "resultMsg": r.to_string()})).into_response(),
            }
        }
        "queryCardMainStatus" => {
            let c = e.card(Carrier::Ct, &card).expect("found above");
            let (cd, name) = main_status(c.status);
            axum::Json(json!({
                "result": "0",
                "resultMsg": "成功",
                "productInfo": [{"productMainStatusCd": cd, "productMainStatusName": name}],
                "netBlockStatusName": if c.cut_net { "已断网" } else { "未断网" },
                "authStatus": if c.real_named { "1" } else { "0" },
            }))
            .into_response()
        }
        _ => (http::StatusCode::NOT_FOUND, "no such method").into_response(),
    }
}

fn dcp(e: &Engine, p: &BTreeMap<String, String>) -> Response {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let answer = |t: &str, code: &str, desc: &str, txn: &str| {
        axum::Json(json!({"Response": {"RspType": t, "RspCode": code, "RspDesc": desc}, "GROUP_TRANSACTIONID": txn})).into_response()
    };
    match get("method").as_str() {
        "getTelephone" => {
            let found = if !get("iccid").is_empty() {
                e.find_card(Carrier::Ct, CardIdKind::Iccid, &get("iccid"))
            } else {
                e.find_card(Carrier::Ct, CardIdKind::Imsi, &get("imsi"))
            };
            match found.and_then(|id| e.card(Carrier::Ct, &id)) {
                Some(c) => axum::Json(json!({"IRESULT": "0", "SMSG": "成功", "RESULT": c.msisdn}))
                    .into_response(),
                None => axum::Json(json!({"IRESULT": "-1", "SMSG": "号码不存在"})).into_response(),
            }
        }
        "IMEIReRecord" => {
            let Some(card) = e.find_card(Carrier::Ct, CardIdKind::Msisdn, &get("access_number"))
            else {
                return answer(
                    "1",
                    &e.config.undocumented.ct_illegal_state,
                    "号码不存在",
                    "",
                );
            };
            if get("action") != "ADD" {
                return answer("1", "-1", "action 必须为 ADD", "");
            }
            let (fixed, imei) = match get("bind_type").as_str() {
                "" => (false, None),
                "2" => (true, Some(get("imei")).filter(|s| !s.is_empty())),
                _ => return answer("1", "-1", "bind_type 错误", ""),
            };
            match e.submit(Carrier::Ct, &card, "", Change::Rebind { imei, fixed }) {
                Ok(r) => answer("0", "0000", "成功接收消息", &group_txn(&r.order_no)),
                Err(Refusal::RebindQuota) => answer(
                    "1",
                    "-5",
                    "业务校验失败（单卡本月调用次数已超过限定次数！）",
                    "",
                ),
                Err(r) => answer(
                    "1",
                    &e.config.undocumented.ct_illegal_state,
                    &r.to_string(),
                    "",
                ),
            }
        }
        other => answer("1", "-1", &format!("未知方法 {other}"), ""),
    }
}

/// Routes under `/ct`.
pub fn router(g: Gate) -> Router {
    Router::new()
        .route("/5gcmp/openapi/v1/common/{method}", any(handle))
        .route("/openapi/v1/prodinst/{method}", any(handle))
        .route("/m2m_ec/query.do", any(handle))
        .route("/m2m_ec/app/serviceAccept.do", any(handle))
        .route("/api/v1/batchQry/{method}", axum::routing::post(batch))
        .layer(axum::middleware::from_fn_with_state(
            g.clone(),
            crate::gate::gate,
        ))
        .with_state(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// simctl's plain text of a JSON body: sorted fields, a Go-style slice.
    #[test]
    fn batch_bodies_sign_as_simctl_prints_them() {
        assert_eq!(
            body_fields(br#"{"custNumber":"C0001","accessNumber":["14910000001","14910000002"]}"#)
                .unwrap(),
            "accessNumber=[14910000001 14910000002]&custNumber=C0001"
        );
    }

    /// The worked vectors of ct.md, as literals.
    #[test]
    fn sign_vectors_of_ct_md() {
        assert_eq!(
            expected_sign(
                "access_number=14910000001&acctCd=&orderTypeId=19",
                b"",
                "Zq7Vector2026",
                "20261201013000"
            ),
            "6230326661303761636665323630383130656330333839303035383638346162"
        );
        assert_eq!(
            expected_sign(
                "",
                br#"{"access_number":"14910000001","action":"ADD"}"#,
                "Zq7Vector2026",
                "20261201013000"
            ),
            "3536386239323864663431623637663030376565623437393762326635643238"
        );
    }

    #[test]
    fn query_pairs_sort_and_decode() {
        let p = query_pairs("orderTypeId=19&access_number=149%31&acctCd=");
        let joined: Vec<String> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            joined.join("&"),
            "access_number=1491&acctCd=&orderTypeId=19"
        );
    }
}
