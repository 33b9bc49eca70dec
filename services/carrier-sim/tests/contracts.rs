//! The simulator against the hand-written contract fixtures in
//! `tests/contracts/` (see its README): each fixture request, sent with real
//! credentials (token, signature, Basic auth) built here by the test's own
//! client code, must get the answer the fixture names. Nothing here calls
//! the adapter.

use base64::Engine as _;
use chrono::Utc;
use gsl_carrier_sim::config::CompletionMode;
use gsl_carrier_sim::{SimConfig, SimServer};
use gsl_domain::calendar::cst;
use gsl_domain::card::{SimStatus, StopReason};
use gsl_domain::carrier::Carrier;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn fixture(name: &str) -> String {
    let p = format!(
        "{}/../../tests/contracts/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

async fn sim() -> SimServer {
    let mut cfg = SimConfig::unlimited();
    cfg.completion.mode = CompletionMode::Immediate;
    cfg.rules.cu_speed_plans.insert("Tier512".into(), 512);
    cfg.rules.cu_cap_plans.insert("Cap100".into(), 100);
    cfg.rules.cu_cap_plans.insert("NoCap".into(), -1);
    SimServer::start(cfg).await.unwrap()
}

/// A card in the fixture's state; returns (iccid, msisdn).
fn card(s: &SimServer, c: Carrier, serial: u64, want: &Value) -> (String, String) {
    let mut card = s.engine.page(c, serial, 1).remove(0);
    let status = want["status"].as_u64().unwrap_or(20) as u16;
    card.status = SimStatus::from_code(status as i64).unwrap();
    card.stop_reason = want["stop_reason"]
        .as_i64()
        .and_then(StopReason::from_code)
        .unwrap_or(StopReason::Normal);
    card.pooled = want["pooled"].as_bool().unwrap_or(false);
    card.threshold_mb = want["threshold_mb"].as_i64().unwrap_or(-1);
    card.cut_net = want["cut_net"].as_bool().unwrap_or(false);
    card.real_named = true;
    card.pending_stop = false;
    card.last_status_change = None;
    let ids = (card.id.clone(), card.msisdn.clone());
    s.engine.put_card(c, card);
    ids
}

/// Same keys (recursively) and, for `exact` paths, the same values.
fn same_shape(got: &Value, want: &Value, path: &str) -> Result<(), String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let gk: Vec<_> = g.keys().collect();
            for k in w.keys() {
                if !g.contains_key(k) {
                    return Err(format!("{path}: missing {k} (has {gk:?})"));
                }
                same_shape(&g[k], &w[k], &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(g), Value::Array(w)) => {
            if g.len() != w.len() {
                return Err(format!("{path}: {} items, want {}", g.len(), w.len()));
            }
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                same_shape(a, b, &format!("{path}.{i}"))?;
            }
            Ok(())
        }
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => {
            Err(format!("{path}: {got} is not shaped like {want}"))
        }
        _ => Ok(()),
    }
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[k],
    })
}

/// An XML `SvcCont` answer as a flat JSON object of its leaf tags.
fn xml_fields(x: &str) -> Value {
    let mut m = serde_json::Map::new();
    for tag in ["RspType", "RspCode", "RspDesc", "GROUP_TRANSACTIONID"] {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        if let (Some(a), Some(b)) = (x.find(&open), x.find(&close)) {
            m.insert(tag.into(), Value::String(x[a + open.len()..b].to_owned()));
        }
    }
    Value::Object(m)
}

/// Check the simulator's answer against the fixture's named answer.
fn check(case: &Value, got_text: &str) {
    let named = case["sim"]["answer"].as_str().unwrap();
    let a = case["answers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == named)
        .unwrap();
    let (got, want) = match a.get("xml") {
        Some(x) => (xml_fields(got_text), xml_fields(x.as_str().unwrap())),
        None => (
            serde_json::from_str::<Value>(got_text)
                .unwrap_or_else(|_| panic!("{}: {got_text}", case["name"])),
            a.get("body").or(a.get("json")).unwrap().clone(),
        ),
    };
    if let Err(e) = same_shape(&got, &want, "") {
        panic!("{}: {e}\n got {got}\nwant {want}", case["name"]);
    }
    for p in case["sim"]["exact"].as_array().unwrap() {
        let p = p.as_str().unwrap();
        assert_eq!(at(&got, p), at(&want, p), "{}: {p} in {got}", case["name"]);
    }
}

fn stamp() -> String {
    Utc::now()
        .with_timezone(&cst())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

fn cases(text: &str, iccid: &str, msisdn: &str) -> Value {
    serde_json::from_str(&text.replace("$ICCID", iccid).replace("$MSISDN", msisdn)).unwrap()
}

#[tokio::test]
async fn cmcc_answers_the_contract() {
    let s = sim().await;
    let base = format!("{}/v5/ec", s.base_url(Carrier::Cmcc));
    let http = reqwest::Client::new();
    let mut seq = 0u32;
    let mut transid = || {
        seq += 1;
        format!("gslcmcc{}{seq:08}", stamp())
    };
    let tok: Value = http
        .post(format!("{base}/get/token"))
        .json(&json!({"appid": "gslcmcc", "password": "cmcc-secret", "transid": transid()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tok["status"], "0", "{tok}");
    let token = tok["result"][0]["token"].as_str().unwrap().to_owned();
    let text = fixture("cmcc");
    let n = serde_json::from_str::<Value>(&text).unwrap()["cases"]
        .as_array()
        .unwrap()
        .len();
    for i in 0..n {
        let raw: Value = serde_json::from_str(&text).unwrap();
        let (iccid, msisdn) = card(&s, Carrier::Cmcc, 100 + i as u64, &raw["cases"][i]["card"]);
        let f = cases(&text, &iccid, &msisdn);
        let case = &f["cases"][i];
        let mut body = case["request"]["fields"].clone();
        body["transid"] = json!(transid());
        body["token"] = json!(token);
        let path = case["request"]["path"]
            .as_str()
            .unwrap()
            .trim_start_matches("/v5/ec");
        let got = http
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        check(case, &got);
    }
    // There is no operType 7, and a token is required.
    let (iccid, _) = card(&s, Carrier::Cmcc, 90, &json!({"status": 20}));
    let v: Value = http
        .post(format!("{base}/change/sim-status"))
        .json(&json!({"transid": transid(), "token": token, "iccid": iccid, "operType": "7"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(v["status"], "0", "{v}");
    let v: Value = http
        .post(format!("{base}/change/sim-status"))
        .json(&json!({"transid": transid(), "token": "expired", "iccid": iccid, "operType": "0"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "12021");
    // No endpoint exists for operations without a public API.
    for path in [
        "backoffice/rebind",
        "backoffice/region-bind",
        "backoffice/directional",
    ] {
        let r = http
            .post(format!("{base}/{path}"))
            .json(&json!({"transid": transid(), "token": token}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    // Each change applied once, none replayed.
    assert_eq!(s.engine.totals(Carrier::Cmcc).1, 0);
}

/// The test's own 5GCMP signature (ct.md).
fn ct_sign(query: &BTreeMap<String, String>, secret: &str, ts: &str) -> String {
    let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    ct_sign_plain(&format!("{}{secret}{ts}", q.join("&")))
}

/// ct.md's Sign of a plain text: lower-case MD5 hex, its ASCII hex-encoded
/// again, upper case.
fn ct_sign_plain(plain: &str) -> String {
    let md5 = hex::encode(Md5::digest(plain.as_bytes()));
    hex::encode_upper(md5.as_bytes())
}

#[tokio::test]
async fn ct_answers_the_contract() {
    let s = sim().await;
    let base = s.base_url(Carrier::Ct);
    let http = reqwest::Client::new();
    let text = fixture("ct");
    let n = serde_json::from_str::<Value>(&text).unwrap()["cases"]
        .as_array()
        .unwrap()
        .len();
    let creds = &s.engine.config.credentials;
    for i in 0..n {
        let raw: Value = serde_json::from_str(&text).unwrap();
        let (iccid, msisdn) = card(&s, Carrier::Ct, 200 + i as u64, &raw["cases"][i]["card"]);
        let f = cases(&text, &iccid, &msisdn);
        let case = &f["cases"][i];
        let mut fields: BTreeMap<String, String> = case["request"]["fields"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let path = case["request"]["path"].as_str().unwrap();
        let got = if case["request"]["method"] == "POST" {
            // DCP: the simulator's own account.
            let (k1, k2, k3) = gsl_desjs::dcp_keys(&creds.ct_dcp_key);
            fields.insert("user_id".into(), creds.ct_dcp_user.clone());
            fields.insert(
                "passWord".into(),
                gsl_desjs::str_enc(&creds.ct_dcp_password, &k1, &k2, &k3),
            );
            let mut vals: [String; 5] = [
                msisdn.clone(),
                creds.ct_dcp_user.clone(),
                creds.ct_dcp_password.clone(),
                "IMEIReRecord".into(),
                "ADD".into(),
            ];
            vals.sort();
            fields.insert(
                "sign".into(),
                gsl_desjs::str_enc(&vals.join(","), &k1, &k2, &k3),
            );
            http.post(format!("{base}{path}"))
                .form(&fields)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        } else {
            let ts = stamp();
            http.get(format!("{base}{path}"))
                .query(&fields)
                .header("AppKey", &creds.ct_app_key)
                .header("Timestamp", &ts)
                .header("Sign", ct_sign(&fields, &creds.ct_secret, &ts))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        };
        check(case, &got);
    }
    // A Sign of the old, wrong length (32 upper-case characters) is refused,
    // and nothing reaches the card.
    let (_, msisdn) = card(&s, Carrier::Ct, 290, &json!({"status": 20}));
    let q: BTreeMap<String, String> = [
        ("access_number", msisdn.as_str()),
        ("acctCd", ""),
        ("orderTypeId", "19"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let ts = stamp();
    let short = ct_sign(&q, &creds.ct_secret, &ts)[..32].to_owned();
    let got = http
        .get(format!(
            "{base}/5gcmp/openapi/v1/common/disabledNumberService"
        ))
        .query(&q)
        .header("AppKey", &creds.ct_app_key)
        .header("Timestamp", &ts)
        .header("Sign", short)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_ne!(xml_fields(&got)["RspCode"], "0000", "{got}");
    // acctCd is required.
    let mut no_acct = q.clone();
    no_acct.remove("acctCd");
    let got = http
        .get(format!(
            "{base}/5gcmp/openapi/v1/common/disabledNumberService"
        ))
        .query(&no_acct)
        .header("AppKey", &creds.ct_app_key)
        .header("Timestamp", &ts)
        .header("Sign", ct_sign(&no_acct, &creds.ct_secret, &ts))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_ne!(xml_fields(&got)["RspCode"], "0000", "{got}");
    assert_eq!(s.engine.totals(Carrier::Ct).1, 0);
}

#[tokio::test]
async fn cu_answers_the_contract() {
    let s = sim().await;
    let base = s.base_url(Carrier::Cu);
    let http = reqwest::Client::new();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("gslcu:cu-secret")
    );
    let text = fixture("cu");
    let n = serde_json::from_str::<Value>(&text).unwrap()["cases"]
        .as_array()
        .unwrap()
        .len();
    for i in 0..n {
        let raw: Value = serde_json::from_str(&text).unwrap();
        let (iccid, msisdn) = card(&s, Carrier::Cu, 300 + i as u64, &raw["cases"][i]["card"]);
        let f = cases(&text, &iccid, &msisdn);
        let case = &f["cases"][i];
        let r = http
            .put(format!(
                "{base}{}",
                case["request"]["path"].as_str().unwrap()
            ))
            .header("authorization", &auth)
            .json(&case["request"]["fields"])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", case["name"]);
        check(case, &r.text().await.unwrap());
        // The device as the contract shows it.
        let dev: Value = http
            .get(format!(
                "{base}{}",
                case["request"]["path"].as_str().unwrap()
            ))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Err(e) = same_shape(&dev, &f["device"][0]["json"], "") {
            panic!("{}: device {e}", case["name"]);
        }
        // Synchronous: the change is made before the answer.
        assert_eq!(
            s.engine
                .truth(Carrier::Cu, &iccid)
                .applied
                .values()
                .sum::<u32>(),
            1,
            "{}",
            case["name"]
        );
    }
    // Documented 401s.
    let r = http
        .get(format!("{base}/rws/api/v1/devices/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let r = http
        .get(format!("{base}/rws/api/v1/devices/1"))
        .header("authorization", "Basic eDp5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "10000001");
    // No invented request resource.
    let r = http
        .get(format!("{base}/rws/api/v1/requests/x"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Every card-sync query of every carrier's fixture, sent to a fresh
/// simulator holding one card in the query's state (a changed-since list
/// then holds that card only), with the test's own credentials: the answer
/// is the one the fixture names.
#[tokio::test]
async fn card_sync_queries_answer_the_contract() {
    let http = reqwest::Client::new();
    let mut checked = 0;
    for (carrier, name) in [
        (Carrier::Cmcc, "cmcc"),
        (Carrier::Ct, "ct"),
        (Carrier::Cu, "cu"),
        (Carrier::Trinet, "trinet"),
    ] {
        let text = fixture(name);
        let n = serde_json::from_str::<Value>(&text).unwrap()["queries"]
            .as_array()
            .unwrap()
            .len();
        for i in 0..n {
            let s = sim().await;
            let creds = s.engine.config.credentials.clone();
            let raw: Value = serde_json::from_str(&text).unwrap();
            let (iccid, msisdn) = card(&s, carrier, 400 + i as u64, &raw["queries"][i]["card"]);
            // Usage queries ask for this CST month.
            let month = Utc::now().with_timezone(&cst());
            let text_now = text
                .replace("$MONTH", &month.format("%Y%m").to_string())
                .replace("$YYYY_MM", &month.format("%Y-%m").to_string())
                .replace(
                    "$YESTERDAY",
                    &(month.date_naive() - chrono::Days::new(1))
                        .format("%Y%m%d")
                        .to_string(),
                );
            let f = cases(&text_now, &iccid, &msisdn);
            let q = &f["queries"][i];
            let base = s.base_url(carrier);
            let path = q["request"]["path"].as_str().unwrap();
            let fields: BTreeMap<String, String> = q["request"]["fields"]
                .as_object()
                .unwrap()
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect();
            let got = match carrier {
                Carrier::Cmcc => {
                    let transid = |n: u32| format!("gslcmcc{}{n:08}", stamp());
                    let tok: Value = http
                        .post(format!("{base}/v5/ec/get/token"))
                        .json(&json!({"appid": creds.cmcc_appid, "password": creds.cmcc_password, "transid": transid(1)}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let mut body = q["request"]["fields"].clone();
                    body["transid"] = json!(transid(2));
                    body["token"] = tok["result"][0]["token"].clone();
                    http.post(format!("{base}{path}")).json(&body).send().await
                }
                Carrier::Ct if q["request"]["method"] == "POST" => {
                    // The doc rule: the raw body signed, no query.
                    let ts = stamp();
                    let body = q["request"]["fields"].to_string();
                    http.post(format!("{base}{path}"))
                        .header("AppKey", &creds.ct_app_key)
                        .header("Timestamp", &ts)
                        .header(
                            "Sign",
                            ct_sign_plain(&format!("{body}{}{ts}", creds.ct_secret)),
                        )
                        .header("Content-Type", "application/json")
                        .body(body)
                        .send()
                        .await
                }
                Carrier::Ct => {
                    let ts = stamp();
                    http.get(format!("{base}{path}"))
                        .query(&fields)
                        .header("AppKey", &creds.ct_app_key)
                        .header("Timestamp", &ts)
                        .header("Sign", ct_sign(&fields, &creds.ct_secret, &ts))
                        .send()
                        .await
                }
                Carrier::Cu => {
                    http.get(format!("{base}{path}"))
                        .query(&fields)
                        .basic_auth(&creds.cu_user, Some(&creds.cu_api_key))
                        .send()
                        .await
                }
                Carrier::Trinet if q["request"]["method"] == "POST" => {
                    http.post(format!("{base}{path}"))
                        .json(&q["request"]["fields"])
                        .bearer_auth(&creds.trinet_api_key)
                        .send()
                        .await
                }
                Carrier::Trinet => {
                    http.get(format!("{base}{path}"))
                        .query(&fields)
                        .bearer_auth(&creds.trinet_api_key)
                        .send()
                        .await
                }
            }
            .unwrap();
            assert_eq!(r_status(&got), 200, "{name} {}", q["name"]);
            check(q, &got.text().await.unwrap());
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked} queries checked");
}

fn r_status(r: &reqwest::Response) -> u16 {
    r.status().as_u16()
}
