//! The adapter's request builders and parsers against the hand-written
//! contract fixtures in `tests/contracts/` (see its README). Nothing here
//! calls the simulator.

use gsl_adapter::{cmcc, ct, cu};
use gsl_adapter_kit::carrier::{Accepted, CallError, Item, Progress};
use gsl_adapter_kit::config::AdapterConfig;
use gsl_domain::Carrier;
use gsl_proto::v1;
use gsl_proto::v1::operation::Kind as O;
use serde_json::Value;
use std::collections::BTreeMap;

const ICCID: &str = "89860012345678901234";
const MSISDN: &str = "1440000000001";

fn fixture(name: &str) -> Value {
    let p = format!(
        "{}/../../tests/contracts/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    // Usage queries name the month of the card-sync test's fixed read time.
    let text = text
        .replace("$MONTH", "202612")
        .replace("$YYYY_MM", "2026-12")
        .replace("$YESTERDAY", "20261203");
    serde_json::from_str(&text.replace("$ICCID", ICCID).replace("$MSISDN", MSISDN)).unwrap()
}

/// A fixture's operation (`name` or `name:number`), built by the same
/// catalogue as the intake and gslctl (`gsl_proto::ops`).
pub fn operation(s: &str) -> v1::Operation {
    use gsl_domain::OperationKind as K;
    use gsl_proto::ops::OpParams;
    let (name, arg) = s.split_once(':').unwrap_or((s, ""));
    let n = || Some(arg.parse::<i64>().unwrap());
    let (kind, p) = match name {
        "stop" => (K::Stop, OpParams::default()),
        "resume" => (K::Resume, OpParams::default()),
        "activate" => (K::Activate, OpParams::default()),
        "close" => (K::CloseCard, OpParams::default()),
        "cutoff" => (K::NetworkCutoff, OpParams::default()),
        "restore" => (K::NetworkRestore, OpParams::default()),
        "threshold" => (
            K::SetUsageThreshold,
            OpParams {
                threshold_mb: n(),
                ..Default::default()
            },
        ),
        "cancel_threshold" => (K::CancelUsageThreshold, OpParams::default()),
        "speed" => (
            K::SpeedLimit,
            OpParams {
                kbps: n().map(|v| v as u32),
                ..Default::default()
            },
        ),
        "rebind" => (K::Rebind, OpParams::default()),
        other => panic!("unknown fixture operation {other}"),
    };
    gsl_proto::ops::build(kind, &p).unwrap()
}

fn item(carrier: Carrier, op: &str) -> Item {
    Item {
        work_order_id: 1,
        card: ICCID.into(),
        index: 0,
        tenant: "t".into(),
        carrier,
        op: operation(op),
        batch_no: String::new(),
        msisdn: MSISDN.into(),
        access_number: MSISDN.into(),
        facts: None,
    }
}

fn config(carrier: Carrier, f: &Value) -> AdapterConfig {
    let mut cfg = AdapterConfig::new(carrier, "http://carrier", "nats://x", "http://gw", "t");
    for (k, v) in f["settings"].as_object().unwrap() {
        cfg.set_carrier_setting(k, v.as_str().unwrap());
    }
    cfg
}

fn want_fields(case: &Value) -> BTreeMap<String, String> {
    case["request"]["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

fn same_fields(case: &Value, got: BTreeMap<String, String>) {
    let want = want_fields(case);
    let name = &case["name"];
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{name}: field names"
    );
    for (k, w) in &want {
        if w != "*" {
            assert_eq!(&got[k], w, "{name}: field {k}");
        }
    }
}

/// The outcome a fixture names, from what the adapter read.
fn outcome(r: Result<Accepted, CallError>) -> Value {
    match r {
        Ok(a) if a.done => serde_json::json!({"done": true}),
        Ok(a) if a.poll_ref == "card" => serde_json::json!({"follow_card": true}),
        Ok(a) => serde_json::json!({"accepted": a.ticket}),
        Err(CallError::Refused { carrier_code, .. }) => {
            serde_json::json!({"refused": carrier_code})
        }
        Err(CallError::Transient { .. }) => serde_json::json!({"transient": true}),
        Err(CallError::Unknown { .. } | CallError::Superseded) => {
            serde_json::json!({"unknown": true})
        }
    }
}

#[test]
fn cmcc_requests_and_answers() {
    let f = fixture("cmcc");
    let set = cmcc::CmccSettings::from_config(&config(Carrier::Cmcc, &f));
    for case in f["cases"].as_array().unwrap() {
        let it = item(Carrier::Cmcc, case["operation"].as_str().unwrap());
        let req =
            cmcc::change_request(&set, &it, case["card_status"].as_str().unwrap(), MSISDN).unwrap();
        assert_eq!(
            case["request"]["method"], "POST",
            "every CMCC call is a POST with a JSON body"
        );
        assert_eq!(
            format!("/v5/ec/{}", req.path),
            case["request"]["path"].as_str().unwrap()
        );
        same_fields(
            case,
            req.fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        );
        for a in case["answers"].as_array().unwrap() {
            assert_eq!(
                outcome(cmcc::parse_change(req.path, &a["body"])),
                a["outcome"],
                "{}: {}",
                case["name"],
                a["name"]
            );
        }
    }
    for o in f["order_info"].as_array().unwrap() {
        let got = match cmcc::parse_order(&o["body"]) {
            Ok(Some(Progress::Pending)) => "pending",
            Ok(Some(Progress::Succeeded)) => "succeeded",
            Ok(Some(Progress::Failed { .. })) => "failed",
            Ok(None) => "gone",
            Err(_) => "refused",
        };
        assert_eq!(got, o["progress"], "{}", o["body"]);
    }
    for s in f["sim_status"].as_array().unwrap() {
        assert_eq!(
            cmcc::parse_card_status(&s["body"]).unwrap(),
            s["card_status"].as_str().unwrap()
        );
    }
}

#[test]
fn cmcc_activation_of_an_activated_card_is_refused_before_any_call() {
    let f = fixture("cmcc");
    let set = cmcc::CmccSettings::from_config(&config(Carrier::Cmcc, &f));
    assert!(cmcc::change_request(&set, &item(Carrier::Cmcc, "activate"), "2", MSISDN).is_err());
}

fn ct_outcome(it: &Item, a: Option<ct::Answer>) -> Value {
    let a = a.expect("a known answer shape");
    let readable = ct::target(it).is_some();
    outcome(if a.ok() || a.code == "-9" {
        Ok(if readable {
            Accepted::pending(a.txn, "card")
        } else {
            Accepted::done(a.txn)
        })
    } else {
        Err(ct::refusal(&a))
    })
}

#[test]
fn ct_requests_and_answers() {
    let f = fixture("ct");
    let set = ct::CtSettings::from_config(&config(Carrier::Ct, &f));
    for case in f["cases"].as_array().unwrap() {
        let it = item(Carrier::Ct, case["operation"].as_str().unwrap());
        let (method, path, fields): (&str, String, BTreeMap<String, String>) =
            if matches!(it.op.kind, Some(O::Rebind(_))) {
                let q = ct::rebind_query(&set, &it, MSISDN);
                (
                    "POST",
                    set.rebind_path.clone(),
                    q.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                )
            } else {
                let r = ct::change_request(&it, MSISDN).unwrap();
                (
                    "GET",
                    r.path.to_owned(),
                    r.query
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            };
        assert_eq!(method, case["request"]["method"], "{}", case["name"]);
        assert_eq!(
            path,
            case["request"]["path"].as_str().unwrap(),
            "{}",
            case["name"]
        );
        same_fields(case, fields);
        for a in case["answers"].as_array().unwrap() {
            let body = match a.get("xml") {
                Some(x) => x.as_str().unwrap().to_owned(),
                None => a["json"].to_string(),
            };
            assert_eq!(
                ct_outcome(&it, ct::parse_answer(&body)),
                a["outcome"],
                "{}: {}",
                case["name"],
                a["name"]
            );
        }
    }
    for c in f["card_status"].as_array().unwrap() {
        let v = &c["json"];
        assert_eq!(
            ct::reached(v, ct::Target::Status("5")),
            c["stopped"].as_bool().unwrap()
        );
        assert_eq!(
            ct::reached(v, ct::Target::Status("4")),
            c["in_use"].as_bool().unwrap()
        );
        assert_eq!(
            ct::reached(v, ct::Target::NetCut(true)),
            c["cut"].as_bool().unwrap()
        );
        assert_eq!(
            ct::reached(v, ct::Target::NetCut(false)),
            !c["cut"].as_bool().unwrap()
        );
    }
}

#[test]
fn cu_requests_and_answers() {
    let f = fixture("cu");
    let set = cu::CuSettings::from_config(&config(Carrier::Cu, &f));
    for case in f["cases"].as_array().unwrap() {
        let it = item(Carrier::Cu, case["operation"].as_str().unwrap());
        let (body, _, _) = cu::edit(&set, &it).expect("an API call");
        assert_eq!(case["request"]["method"], "PUT");
        assert_eq!(
            format!("/rws/api/v1/devices/{}", it.card),
            case["request"]["path"].as_str().unwrap()
        );
        same_fields(
            case,
            body.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect(),
        );
        for a in case["answers"].as_array().unwrap() {
            let status = a["status"].as_u64().unwrap() as u16;
            let r = if status == 200 {
                Ok(Accepted::done(ICCID))
            } else {
                Err(cu::refusal(status, &a["json"]))
            };
            assert_eq!(outcome(r), a["outcome"], "{}: {}", case["name"], a["name"]);
        }
    }
    // Reading the device back: the field each edit sets.
    for d in f["device"].as_array().unwrap() {
        for (op, field) in [
            ("stop", "status"),
            ("speed:512", "communicationPlan"),
            ("threshold:100", "ratePlan"),
        ] {
            let (_, name, want) = cu::edit(&set, &item(Carrier::Cu, op)).unwrap();
            assert_eq!(name, field);
            assert_eq!(d["json"][name].as_str().unwrap(), want, "{op}");
        }
    }
    // Without a plan mapping, a speed tier has no API call.
    let bare = cu::CuSettings::from_config(&AdapterConfig::new(
        Carrier::Cu,
        "http://c",
        "nats://x",
        "http://gw",
        "t",
    ));
    assert!(cu::edit(&bare, &item(Carrier::Cu, "speed:512")).is_none());
}

/// What a card read must show (`read` of a query answer): every field the
/// fixture names, and every other unset.
fn expect_read(name: &str, got: &v1::CardRead, want: &Value) {
    let carrier = |s: &str| match s {
        "cmcc" => v1::Carrier::Cmcc as i32,
        "ct" => v1::Carrier::Ct as i32,
        "cu" => v1::Carrier::Cu as i32,
        _ => v1::Carrier::Unspecified as i32,
    };
    assert_eq!(
        got.sim_status,
        want["sim_status"].as_u64().map(|v| v as u32),
        "{name}: sim_status"
    );
    assert_eq!(
        got.stop_reason,
        want["stop_reason"].as_i64().map(|v| v as i32),
        "{name}: stop_reason"
    );
    assert_eq!(
        got.status_raw,
        want["status_raw"].as_str().unwrap_or(""),
        "{name}: status_raw"
    );
    assert_eq!(
        got.stop_reason_raw,
        want["stop_reason_raw"].as_str().unwrap_or(""),
        "{name}: stop_reason_raw"
    );
    assert_eq!(
        got.real_named,
        want["real_named"].as_bool(),
        "{name}: real_named"
    );
    assert_eq!(got.imei.as_deref(), want["imei"].as_str(), "{name}: imei");
    assert_eq!(got.cut_net, want["cut_net"].as_bool(), "{name}: cut_net");
    assert_eq!(
        got.active_profile,
        carrier(want["active_profile"].as_str().unwrap_or("")),
        "{name}: active_profile"
    );
    assert_eq!(
        got.stop_reason_unreported,
        want["stop_reason_unreported"].as_bool().unwrap_or(false),
        "{name}: stop_reason_unreported"
    );
}

fn refused_code<T: std::fmt::Debug>(name: &str, r: Result<T, CallError>) -> String {
    match r {
        Err(CallError::Refused { carrier_code, .. }) => carrier_code,
        other => panic!("{name}: expected a refusal, got {other:?}"),
    }
}

fn fields_of(pairs: &[(&str, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
            .collect(),
    )
}

/// Every card-sync query of every carrier: the adapter's request for the
/// card is the fixture's, and it reads each answer as the fixture says.
#[test]
fn card_sync_queries_match_the_fixtures() {
    use gsl_adapter::sync;
    // A read at a fixed time, so the billing cycle a fixture names is known.
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-04T02:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let since = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut seen = 0;
    for carrier in ["cmcc", "ct", "cu", "trinet"] {
        let f = fixture(carrier);
        for q in f["queries"].as_array().unwrap() {
            let name = format!("{carrier} {}", q["name"].as_str().unwrap());
            let call = q["call"].as_str().unwrap();
            let req = &q["request"];
            // The request.
            let (path, fields) = match (carrier, call) {
                ("cmcc", "status") => {
                    let (p, f) = sync::cmcc::status_request(ICCID);
                    (format!("/v5/ec/{p}"), fields_of(&f))
                }
                ("cmcc", "stop_reason") => {
                    let (p, f) = sync::cmcc::stop_reason_request(ICCID);
                    (format!("/v5/ec/{p}"), fields_of(&f))
                }
                ("ct", "status") => {
                    let r = ct::status_request(MSISDN);
                    let f: Vec<(&str, String)> = r.query.into_iter().collect();
                    (r.path.to_owned(), fields_of(&f))
                }
                ("cu", "usages") => (
                    format!("/rws/api/v1/{}", sync::cu::usages_path(ICCID)),
                    serde_json::json!({}),
                ),
                ("cu", "changed") => {
                    let (p, f) = sync::cu::changed_request(since, 1);
                    (format!("/rws/api/v1/{p}"), fields_of(&f))
                }
                ("cmcc", "usage") => {
                    let (p, f) = sync::cmcc::usage_request(&[ICCID], "202612");
                    (format!("/v5/ec/{p}"), fields_of(&f))
                }
                ("cmcc", "daily") => {
                    let (p, f) = sync::cmcc::daily_request(&[ICCID], "20261203");
                    (format!("/v5/ec/{p}"), fields_of(&f))
                }
                ("ct", "usage") => (
                    sync::ct::USAGE_PATH.to_owned(),
                    sync::ct::usage_body("C0001", &[MSISDN], None),
                ),
                ("trinet", "usage") => (
                    "/api/v1/usage/query".to_owned(),
                    sync::trinet::usage_body(&[ICCID], now),
                ),
                ("trinet", "card") => (format!("/api/v1/cards/{ICCID}"), serde_json::json!({})),
                ("trinet", "changed") => (
                    "/api/v1/cards".to_owned(),
                    fields_of(&sync::trinet::list_query(Some(since), "")),
                ),
                other => panic!("{name}: no such call {other:?}"),
            };
            assert_eq!(path, req["path"].as_str().unwrap(), "{name}: path");
            assert_eq!(fields, req["fields"], "{name}: fields");
            // Each answer.
            for a in q["answers"].as_array().unwrap() {
                let aname = format!("{name} / {}", a["name"].as_str().unwrap());
                let json = &a["json"];
                let status = a["status"].as_u64().unwrap_or(200) as u16;
                if let Some(want) = a.get("read") {
                    let mut r = sync::read(ICCID, now);
                    let got: Result<v1::CardRead, CallError> = match (carrier, call) {
                        ("cmcc", "status") => sync::cmcc::parse_status(json, &mut r).map(|_| r),
                        ("cmcc", "stop_reason") => {
                            sync::cmcc::parse_stop_reason(json, &mut r, sync::cmcc::STOP_POSITIONS)
                                .map(|_| r)
                        }
                        ("ct", "status") => {
                            sync::ct::parse(json, &mut r);
                            Ok(r)
                        }
                        ("cu", "usages") if status == 200 => {
                            sync::cu::parse_usages(json, &mut r, 27);
                            Ok(r)
                        }
                        ("cu", _) => Err(cu::refusal(status, json)),
                        ("trinet", _) if status == 200 => Ok(sync::trinet::parse_card(json, now)),
                        ("trinet", _) => Err(gsl_adapter::trinet::Trinet::refusal(status, json)),
                        _ => unreachable!(),
                    };
                    match want.get("refused") {
                        Some(code) => assert_eq!(refused_code(&aname, got), code.as_str().unwrap()),
                        None => expect_read(&aname, &got.unwrap(), want),
                    }
                }
                let ct_card_of: std::collections::HashMap<&str, &str> =
                    [(MSISDN, ICCID)].into_iter().collect();
                if let Some(code) = a.get("usage_refused") {
                    let got = match carrier {
                        "cmcc" => sync::cmcc::parse_usage(json, now).map(|_| ()),
                        _ => ct::batch_envelope(json),
                    };
                    assert_eq!(refused_code(&aname, got), code.as_str().unwrap());
                }
                if let Some(code) = a.get("daily_refused") {
                    let got = sync::cmcc::parse_daily(json);
                    assert_eq!(refused_code(&aname, got), code.as_str().unwrap());
                }
                if let Some(want) = a.get("daily") {
                    let got = sync::cmcc::parse_daily(json).unwrap();
                    let want: Vec<(String, f64)> = want
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|w| {
                            (
                                w["card"].as_str().unwrap().to_owned(),
                                w["mb"].as_f64().unwrap(),
                            )
                        })
                        .collect();
                    assert_eq!(got, want, "{aname}");
                }
                if let Some(want) = a.get("usage") {
                    let got = match carrier {
                        "cmcc" => sync::cmcc::parse_usage(json, now).unwrap(),
                        "ct" => {
                            ct::batch_envelope(json).unwrap();
                            sync::ct::parse_usage(json, &ct_card_of, now)
                        }
                        _ => sync::trinet::parse_usage(json, now),
                    };
                    let want = want.as_array().unwrap();
                    assert_eq!(got.len(), want.len(), "{aname}: {got:?}");
                    for (g, w) in got.iter().zip(want) {
                        assert_eq!(g.card, w["card"].as_str().unwrap(), "{aname}");
                        assert_eq!(g.used_mb, w["used_mb"].as_f64(), "{aname}: used_mb");
                        let p = g.usage_period.as_ref().unwrap();
                        assert_eq!(
                            format!("{}/{}", p.first_day, p.last_day),
                            w["usage_period"].as_str().unwrap(),
                            "{aname}: period"
                        );
                        let at = g
                            .usage_as_of
                            .as_ref()
                            .and_then(gsl_proto::convert::from_timestamp)
                            .unwrap();
                        assert_eq!(
                            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            w["usage_as_of"].as_str().unwrap(),
                            "{aname}: as of"
                        );
                    }
                }
                if let Some(want) = a.get("list") {
                    if let Some(code) = want.get("refused") {
                        let got: Result<(), CallError> =
                            Err(gsl_adapter::trinet::Trinet::refusal(status, json));
                        assert_eq!(refused_code(&aname, got), code.as_str().unwrap());
                        continue;
                    }
                    let page = match carrier {
                        "cu" => {
                            let (to_read, listed, more) = sync::cu::parse_changed(json);
                            assert_eq!(listed.len(), to_read.len(), "{aname}: listed");
                            gsl_adapter_kit::reads::ListPage {
                                to_read,
                                listed,
                                next: more.then(|| "2".to_owned()),
                                ..Default::default()
                            }
                        }
                        _ => sync::trinet::parse_list(json, now),
                    };
                    let ids = |v: &Value| -> Vec<String> {
                        v.as_array()
                            .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
                            .unwrap_or_default()
                    };
                    assert_eq!(page.to_read, ids(&want["to_read"]), "{aname}: to_read");
                    let read_ids: Vec<String> = page.reads.iter().map(|r| r.card.clone()).collect();
                    assert_eq!(read_ids, ids(&want["reads"]), "{aname}: reads");
                    assert_eq!(page.next.as_deref(), want["next"].as_str(), "{aname}: next");
                    assert_eq!(
                        page.newest
                            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                        want["newest"].as_str().map(str::to_owned),
                        "{aname}: newest"
                    );
                }
                seen += 1;
            }
        }
    }
    assert!(seen >= 20, "every query answer checked ({seen})");
}
