//! China Mobile, OneLink EC API v5, as `../shared/carriers/cmcc.md` gives it.
//!
//! * `get/token?appid=&password=&transid=` -> `result[0].token`, `ttl`
//!   (seconds, a string). Every other call carries `transid` and `token`; an
//!   unknown or expired token answers `12021`. GET with a query string or
//!   POST with a JSON body of the same fields.
//! * Envelope `{"status":"0","message":"正确","result":[...]}`: `status` a
//!   string, `result` always an array.
//! * A single card is named by exactly one of `msisdn`, `iccid`, `imsi`.
//! * `change/sim-status` (23S03): `operType` 0 stop, 1 resume, 2
//!   inventory->activated, 5 testable->activated, 6 awaiting->activated (3,
//!   4, 8, 9 are inventory moves the project never makes: refused as not
//!   simulated); there is no `operType 7`. Answers `{"iccid"|..., "orderNum"}`
//!   (`orderNum` omitted for a configured share of answers).
//! * `query/order-info` (23M27): `status` strings `acknowledged` ...
//!   `completed` / `failed`; `query/sim-status` (25S04): `cardStatus`
//!   (1 awaiting, 2 activated, 4 stopped, 6 testable, 7 inventory, 9
//!   cancelled) and `lastChangeDate`; `query/sim-card-info/batch` (25S05):
//!   number mapping, <= 100 ids joined by `_`.
//! * `change/sim-status/batch` (23S06): `msisdns` (<= 100, joined by `_`),
//!   `operType` 9 stop / 11 resume (with `reason=01`), 3 / 5 / 7 activations
//!   from testable / inventory / awaiting; answers `{"jobId"}`. A member
//!   changed inside the repeat window refuses the whole batch
//!   ([`crate::jobs`]). `query/sim-batch-result` (23M10): `jobStatus` 0-4
//!   and, once finished, `resultList` items `{resultType, resultId, status,
//!   message}`.
//! * `limit/group-member-data-usage` (23E04): `msisdn` only, with `groupId`,
//!   `offerId`, `apnName`, `limitValue` (MB), `actionRule`, `operType` (1 add,
//!   2 delete, 3 change); the answer is the success (nothing to poll).
//! * No API exists for rebind, region bind, directional config or close:
//!   the simulator has no endpoint for them (the adapter files back-office
//!   requests).
//!
//! Codes: `0` OK, `12021` token, `11000` bad parameter, `12004` /`12022`
//! credentials, `12009` card not this customer's, `12010` card unknown,
//! `12089` state does not allow it, `12098` stop reason does not allow a
//! self-service resume (the reseller table; unsure). Over the limit, inside
//! the repeat window and "not pooled" are labelled settings
//! ([`crate::config::Undocumented`]).

use crate::config::ApiClass;
use crate::engine::jobs::JobStatus;
use crate::engine::{CardIdKind, Change, Engine, OrderState, Refusal};
use crate::gate::Gate;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::Datelike;
use chrono::{DateTime, Duration, Utc};
use gsl_domain::calendar::cst;
use gsl_domain::card::{SimStatus, StopReason};
use gsl_domain::carrier::Carrier;
use gsl_domain::ids::Iccid;
use rand::Rng;
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

/// How China Mobile answers at the gate.
pub const STYLE: crate::gate::Style = crate::gate::Style {
    classify: |parts, _| classify(parts),
    busy,
    over_limit: |e, _| over_limit(e),
    authenticate,
};

pub fn busy(e: &Engine) -> Response {
    over_limit(e)
}

pub fn over_limit(e: &Engine) -> Response {
    err(
        &e.config.undocumented.cmcc_over_limit,
        "访问频率超过限制（模拟器设定）",
    )
}

pub fn classify(parts: &http::request::Parts) -> ApiClass {
    let path = parts.uri.path();
    if path.contains("/query/") || path.ends_with("/get/token") {
        ApiClass::Query
    } else {
        ApiClass::Change
    }
}

fn params(parts: &http::request::Parts, body: &[u8]) -> HashMap<String, String> {
    let mut p: HashMap<String, String> = parts
        .uri
        .query()
        .map(crate::wire::query_pairs)
        .unwrap_or_default();
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

/// Token and transid checks (the token endpoint checks the password instead).
pub fn authenticate(e: &Engine, parts: &http::request::Parts, body: &[u8]) -> Result<(), Response> {
    if parts.uri.path().ends_with("/get/token") {
        return Ok(());
    }
    let p = params(parts, body);
    let appid = &e.config.credentials.cmcc_appid;
    match p.get("transid") {
        Some(t) if valid_transid(appid, t) => {}
        _ => return Err(err("11000", "transid 格式错误")),
    }
    let Some(token) = p.get("token") else {
        return Err(err("12021", "TOKEN不存在或已过期，请重新获取"));
    };
    let tokens = e
        .platform(Carrier::Cmcc)
        .access
        .tokens
        .lock()
        .expect("tokens lock");
    match tokens.get(token) {
        Some(exp) if *exp > Utc::now() => Ok(()),
        _ => Err(err("12021", "TOKEN不存在或已过期，请重新获取")),
    }
}

/// appid + 14 digits (time) + 8 digits (sequence).
fn valid_transid(appid: &str, t: &str) -> bool {
    t.strip_prefix(appid)
        .is_some_and(|rest| rest.len() == 22 && rest.bytes().all(|b| b.is_ascii_digit()))
}

fn refusal(e: &Engine, r: &Refusal) -> Response {
    let (code, msg) = refusal_code(e, r);
    envelope(&code, &format!("{msg}: {r}"), json!([]))
}

/// The envelope `status` and message of a refusal.
fn refusal_code(e: &Engine, r: &Refusal) -> (String, &'static str) {
    let u = &e.config.undocumented;
    let (code, msg) = match r {
        Refusal::UnknownCard => ("12010", "卡号不存在"),
        Refusal::ResumeNotAllowed => ("12098", "停机原因不允许自助复机"),
        Refusal::TooSoon => (
            u.cmcc_repeat_window.as_str(),
            "同一号码在限定时间内不允许重复办理（模拟器设定）",
        ),
        Refusal::NotPooled => (u.cmcc_not_pooled.as_str(), "非流量池成员（模拟器设定）"),
        Refusal::BadParam(_) => ("11000", "参数错误"),
        _ => ("12089", "当前状态不允许办理该业务"),
    };
    (code.to_owned(), msg)
}

/// The card a single-card call names: exactly one of `msisdn`, `iccid`,
/// `imsi`. Returns the card key and the (name, value) to echo.
fn named_card(
    e: &Engine,
    get: &dyn Fn(&str) -> String,
) -> Result<(String, &'static str, String), Response> {
    let given: Vec<(&'static str, String)> = ["msisdn", "iccid", "imsi"]
        .into_iter()
        .map(|k| (k, get(k)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let [(name, value)] = given.as_slice() else {
        return Err(err("11000", "msisdn、iccid、imsi 必须且只能填写一个"));
    };
    let kind = match *name {
        "msisdn" => CardIdKind::Msisdn,
        "iccid" => CardIdKind::Iccid,
        _ => CardIdKind::Imsi,
    };
    match e.find_card(Carrier::Cmcc, kind, value) {
        Some(id) => Ok((id, name, value.clone())),
        None => {
            let other = kind == CardIdKind::Iccid
                && Iccid::parse(value)
                    .ok()
                    .and_then(|i| i.carrier())
                    .is_some_and(|c| c != Carrier::Cmcc);
            Err(if other {
                err("12009", "号码不属于该集团")
            } else {
                err("12010", "卡号不存在")
            })
        }
    }
}

/// `cardStatus` of the OneLink-CT platform.
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

/// 25S02's 12-digit stop reason (`cmcc.md`, SMOC's table): one `2` per
/// reason. Reasons with no position of their own are the nearest the
/// table has: over plan, threshold and pool are credit-control stops
/// (the `2` at index 4), a violation a forced stop (index 10).
pub fn stop_reason_code(status: SimStatus, r: StopReason) -> &'static str {
    if status != SimStatus::Stopped {
        return "000000000000";
    }
    match r {
        StopReason::Normal => "000000000000",
        StopReason::OnRequest => "000000002000",
        StopReason::DeviceSeparation => "020000000000",
        StopReason::PlanExpired => "200000000000",
        StopReason::OverPlanQuota | StopReason::OverThreshold | StopReason::PoolExhausted => {
            "000020000000"
        }
        StopReason::Violation => "000000000020",
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.with_timezone(&cst()).format("%Y%m%d%H%M%S").to_string()
}

/// `operType` of 23S06 -> the change and the state it starts from.
fn batch_status_change(oper: &str, reason: &str) -> Result<(Change, Option<SimStatus>), Response> {
    let needs_reason = |c: Change| {
        if reason == "01" {
            Ok((c, None))
        } else {
            Err(err("11000", "reason 错误：停复机须填 01"))
        }
    };
    match oper {
        "9" => needs_reason(Change::Stop),
        "11" => needs_reason(Change::Resume),
        "3" => Ok((Change::Activate, Some(SimStatus::Testable))),
        "5" => Ok((Change::Activate, Some(SimStatus::NotActivated))),
        "7" => Ok((Change::Activate, Some(SimStatus::Activatable))),
        "1" | "2" | "4" | "6" => Err(err("11000", "该 operType 未在模拟器中实现")),
        _ => Err(err("11000", "operType 错误")),
    }
}

/// `query/sim-batch-result` `jobStatus` of a job.
fn job_status(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Pending => "0",
        JobStatus::Processing => "1",
        JobStatus::Done => "2",
        JobStatus::DoneWithFailures => "3",
        JobStatus::Failed => "4",
    }
}

/// `query/order-info` `status` of an order.
fn order_status(o: &crate::engine::Order, now: DateTime<Utc>) -> &'static str {
    match o.state {
        OrderState::Succeeded => "completed",
        OrderState::Failed => "failed",
        OrderState::Pending if now - o.accepted_at < Duration::seconds(1) => "acknowledged",
        OrderState::Pending => "inProgress",
    }
}

/// `operType` of 23S03 -> the change and the state it starts from.
fn status_change(oper: &str) -> Result<(Change, Option<SimStatus>), Response> {
    Ok(match oper {
        "0" => (Change::Stop, None),
        "1" => (Change::Resume, None),
        "2" => (Change::Activate, Some(SimStatus::NotActivated)),
        "5" => (Change::Activate, Some(SimStatus::Testable)),
        "6" => (Change::Activate, Some(SimStatus::Activatable)),
        "3" | "4" | "8" | "9" => return Err(err("11000", "该 operType 未在模拟器中实现")),
        _ => return Err(err("11000", "operType 错误")),
    })
}

async fn handle(State(g): State<Gate>, parts: http::request::Parts, body: Bytes) -> Response {
    let e: &Arc<Engine> = &g.engine;
    let p = params(&parts, &body);
    let path = parts.uri.path().to_owned();
    let op = path.rsplit("/v5/ec/").next().unwrap_or("");
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let txn = get("transid");
    match op {
        "get/token" => {
            let c = &e.config.credentials;
            if get("appid") != c.cmcc_appid || get("password") != c.cmcc_password {
                return err("12022", "appid 或密码错误");
            }
            if !valid_transid(&c.cmcc_appid, &txn) {
                return err("11000", "transid 格式错误");
            }
            let token = format!("{:032x}", rand::random::<u128>());
            let ttl = c.cmcc_token_ttl_s;
            e.platform(Carrier::Cmcc)
                .access
                .tokens
                .lock()
                .expect("tokens lock")
                .insert(
                    token.clone(),
                    Duration::try_seconds(ttl.min(i64::MAX as u64) as i64)
                        .and_then(|d| Utc::now().checked_add_signed(d))
                        .unwrap_or(DateTime::<Utc>::MAX_UTC),
                );
            ok(json!([{"token": token, "ttl": ttl.to_string()}]))
        }
        "change/sim-status" => {
            let (card, name, value) = match named_card(e, &get) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let (change, from) = match status_change(&get("operType")) {
                Ok(c) => c,
                Err(r) => return r,
            };
            if let Some(from) = from
                && e.card(Carrier::Cmcc, &card)
                    .is_some_and(|c| c.status != from)
            {
                return refusal(
                    e,
                    &Refusal::IllegalState("operType does not match the card's state".into()),
                );
            }
            match e.submit(Carrier::Cmcc, &card, &txn, change) {
                Ok(r) => {
                    let share = e.config.undocumented.cmcc_omit_order_num_share;
                    let mut item = json!({ name: value });
                    if !(share > 0.0 && rand::rng().random_bool(share.clamp(0.0, 1.0))) {
                        item["orderNum"] = json!(r.order_no);
                    }
                    ok(json!([item]))
                }
                Err(r) => refusal(e, &r),
            }
        }
        "change/sim-status/batch" => {
            if !get("iccids").is_empty() || !get("imsis").is_empty() {
                return err("11000", "批量接口只接受 msisdns");
            }
            let ids: Vec<String> = get("msisdns")
                .split('_')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if ids.is_empty() || ids.len() > 100 {
                return err("11000", "msisdns 须为 1 到 100 个号码");
            }
            let (change, from) = match batch_status_change(&get("operType"), &get("reason")) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let members: Vec<(String, Option<String>)> = ids
                .into_iter()
                .map(|m| {
                    let id = e.find_card(Carrier::Cmcc, CardIdKind::Msisdn, &m);
                    (m, id)
                })
                .collect();
            match e.submit_batch(Carrier::Cmcc, &members, change, from) {
                Ok(job) => ok(json!([{ "jobId": job }])),
                Err(r) => refusal(e, &r),
            }
        }
        "query/sim-batch-result" => {
            let Some((status, results)) = e.job(Carrier::Cmcc, &get("jobId")) else {
                return ok(json!([]));
            };
            let mut r = json!({ "jobStatus": job_status(status) });
            if matches!(
                status,
                JobStatus::Done | JobStatus::DoneWithFailures | JobStatus::Failed
            ) {
                let list: Vec<Value> = results
                    .iter()
                    .map(|(name, res)| {
                        let (code, msg) = match res {
                            Ok(OrderState::Succeeded) => ("0".to_owned(), "正确"),
                            Ok(_) => ("12089".to_owned(), "办理失败（模拟器设定）"),
                            Err(r) => refusal_code(e, r),
                        };
                        json!({"resultType": "1", "resultId": name, "status": code, "message": msg})
                    })
                    .collect();
                r["resultList"] = Value::Array(list);
            }
            ok(json!([r]))
        }
        "limit/group-member-data-usage" => {
            let msisdn = get("msisdn");
            if msisdn.is_empty() || !get("iccid").is_empty() || !get("imsi").is_empty() {
                return err("11000", "该接口只接受 msisdn");
            }
            for k in ["groupId", "offerId", "apnName", "actionRule", "operType"] {
                if get(k).is_empty() {
                    return err("11000", &format!("{k} 不能为空"));
                }
            }
            let Some(card) = e.find_card(Carrier::Cmcc, CardIdKind::Msisdn, &msisdn) else {
                return err("12010", "卡号不存在");
            };
            let limit = || get("limitValue").parse::<i64>().ok().filter(|v| *v >= -1);
            let exists = e
                .card(Carrier::Cmcc, &card)
                .is_some_and(|c| c.threshold_mb != -1);
            let change = match (get("operType").as_str(), limit()) {
                ("1" | "3", Some(mb)) if exists => Change::ThresholdModify { mb },
                ("1" | "3", Some(mb)) => Change::ThresholdAdd { mb },
                ("2", _) if exists => Change::ThresholdCancel,
                // Deleting a cap the card does not have leaves it without one.
                ("2", _) => return ok(json!([])),
                ("1" | "3", None) => return err("11000", "limitValue 错误"),
                _ => return err("11000", "operType 错误"),
            };
            match e.submit_sync(Carrier::Cmcc, &card, change) {
                Ok(_) => ok(json!([])),
                Err(r) => refusal(e, &r),
            }
        }
        "query/order-info" => match e.order(Carrier::Cmcc, &get("orderNum")) {
            // Orders are kept 60 days; an unknown one is an empty result.
            None => ok(json!([])),
            Some(o) => ok(json!([{
                "orderNum": o.order_no,
                "status": order_status(&o, e.now()),
                "statusDate": stamp(o.completed_at.unwrap_or(o.accepted_at)),
                "createDate": stamp(o.accepted_at),
            }])),
        },
        "query/sim-status" => {
            let (card, _, _) = match named_card(e, &get) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let c = e.card(Carrier::Cmcc, &card).expect("found above");
            ok(json!([{
                "cardStatus": card_status(c.status),
                "lastChangeDate": c.last_status_change.map(stamp).unwrap_or_default(),
            }]))
        }
        "query/sim-stop-reason" => {
            let (card, _, _) = match named_card(e, &get) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let c = e.card(Carrier::Cmcc, &card).expect("found above");
            ok(json!([{
                "platformType": "OneLink-CT",
                "stopReason": stop_reason_code(c.status, c.stop_reason),
            }]))
        }
        "query/sim-card-info/batch" => {
            let (kind, list) = match (get("msisdns"), get("iccids"), get("imsis")) {
                (m, i, s) if !m.is_empty() && i.is_empty() && s.is_empty() => {
                    (CardIdKind::Msisdn, m)
                }
                (m, i, s) if m.is_empty() && !i.is_empty() && s.is_empty() => {
                    (CardIdKind::Iccid, i)
                }
                (m, i, s) if m.is_empty() && i.is_empty() && !s.is_empty() => (CardIdKind::Imsi, s),
                _ => return err("11000", "msisdns、iccids、imsis 必须且只能填写一个"),
            };
            let ids: Vec<&str> = list.split('_').filter(|s| !s.is_empty()).collect();
            if ids.len() > 100 {
                return err("11000", "一次最多 100 个号码");
            }
            let found: Vec<Value> = ids
                .iter()
                .filter_map(|v| e.find_card(Carrier::Cmcc, kind, v))
                .filter_map(|id| e.card(Carrier::Cmcc, &id))
                .map(|c| json!({"msisdn": c.msisdn, "imsi": c.imsi, "iccid": c.id}))
                .collect();
            ok(Value::Array(found))
        }
        "query/sim-data-usage-daily/batch" => {
            let (kind, key, list) = match usage_cards(&get) {
                Ok(x) => x,
                Err(r) => return r,
            };
            let ids: Vec<&str> = list.split('_').filter(|s| !s.is_empty()).collect();
            // One day of the last 7, up to yesterday (PHP client's doc
            // comment, id 5419956481).
            let today = gsl_domain::calendar::cst_date(e.now());
            let Ok(day) = chrono::NaiveDate::parse_from_str(&get("queryDate"), "%Y%m%d") else {
                return err("11000", "queryDate 格式错误");
            };
            let back = (today - day).num_days();
            if !(1..=7).contains(&back) {
                return err("11000", "queryDate 须为近 7 天中的某一天（截止前一天）");
            }
            usage_answer(e, &ids, kind, key, |id| e.daily_mb(id, day))
        }
        "query/sim-data-usage-monthly/batch" => {
            let (kind, key, list) = match usage_cards(&get) {
                Ok(x) => x,
                Err(r) => return r,
            };
            let ids: Vec<&str> = list.split('_').filter(|s| !s.is_empty()).collect();
            // One of the last 6 months (this one included), to yesterday
            // 24:00 CST for this month.
            let now = e.now();
            let today = gsl_domain::calendar::cst_date(now);
            let Some(first) =
                chrono::NaiveDate::parse_from_str(&format!("{}01", get("queryDate")), "%Y%m%d")
                    .ok()
            else {
                return err("11000", "queryDate 格式错误");
            };
            let this = gsl_domain::calendar::calendar_month(today).0;
            let months_back =
                (this.year() - first.year()) * 12 + this.month() as i32 - first.month() as i32;
            if !(0..6).contains(&months_back) {
                return err("11000", "queryDate 须为近 6 个月");
            }
            let (_, last) = gsl_domain::calendar::calendar_month(first);
            let until =
                gsl_domain::calendar::cst_midnight(last.succ_opt().expect("a next day").min(today));
            usage_answer(e, &ids, kind, key, |id| e.used_mb(id, first, until))
        }
        _ => (http::StatusCode::NOT_FOUND, "no such API").into_response(),
    }
}

/// A usage batch's answer: `dataAmountList[{<key>, dataAmount KB}]` for each
/// named card found, with the per-APN list left out when the amount is 0
/// (PHP client's doc comment, id 5419956481).
fn usage_answer(
    e: &Engine,
    ids: &[&str],
    kind: CardIdKind,
    key: &str,
    mb: impl Fn(&str) -> f64,
) -> Response {
    let list: Vec<Value> = ids
        .iter()
        .filter_map(|v| Some((*v, e.find_card(Carrier::Cmcc, kind, v)?)))
        .map(|(named, id)| {
            let kb = (mb(&id) * 1024.0).round() as u64;
            let mut item = json!({ key: named, "dataAmount": kb.to_string() });
            if kb > 0 {
                item["apnDataAmountList"] =
                    json!([{"apnName": "CMIOT", "apnDataAmount": kb.to_string()}]);
            }
            item
        })
        .collect();
    ok(json!([{ "dataAmountList": list }]))
}

/// The cards a usage batch names: exactly one of `msisdns`, `iccids`,
/// `imsis` (joined by `_`, at most 100).
fn usage_cards(
    get: &dyn Fn(&str) -> String,
) -> Result<(CardIdKind, &'static str, String), Response> {
    let (kind, key, list) = match (get("msisdns"), get("iccids"), get("imsis")) {
        (m, i, s) if !m.is_empty() && i.is_empty() && s.is_empty() => {
            (CardIdKind::Msisdn, "msisdn", m)
        }
        (m, i, s) if m.is_empty() && !i.is_empty() && s.is_empty() => {
            (CardIdKind::Iccid, "iccid", i)
        }
        (m, i, s) if m.is_empty() && i.is_empty() && !s.is_empty() => (CardIdKind::Imsi, "imsi", s),
        _ => return Err(err("11000", "msisdns、iccids、imsis 必须且只能填写一个")),
    };
    if list.split('_').filter(|s| !s.is_empty()).count() > 100 {
        return Err(err("11000", "一次最多 100 个号码"));
    }
    Ok((kind, key, list))
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
        let m = crate::wire::query_pairs("a=1&b=x%2Cy&c=hello+world&d");
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x,y");
        assert_eq!(m["c"], "hello world");
        assert_eq!(m["d"], "");
        assert!(crate::wire::decode("%zz").is_none());
        assert!(crate::wire::decode("%4").is_none(), "truncated escape");
        assert_eq!(crate::wire::decode("%E5%AE%9A").as_deref(), Some("定"));
    }
}
