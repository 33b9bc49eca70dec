//! The simulator over real HTTP, per carrier: authentication, each enforced
//! rule, over-limit answers, idempotent replay, asynchronous completion on the
//! scaled clock, and injected faults.

use base64::Engine as _;
use chrono::Utc;
use gsl_carrier_sim::config::{CompletionMode, Faults, Limit, Limits};
use gsl_carrier_sim::inventory::CardRecord;
use gsl_carrier_sim::{SimConfig, SimServer};
use gsl_domain::calendar::cst;
use gsl_domain::card::{SimStatus, StopReason, TriNetVersion};
use gsl_domain::carrier::Carrier;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

async fn sim(mode: CompletionMode) -> SimServer {
    let mut cfg = SimConfig::unlimited();
    cfg.completion.mode = mode;
    cfg.cards_per_carrier = 1000;
    SimServer::start(cfg).await.unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Put a card in a known state (generated card `serial`, then changed).
async fn card(s: &SimServer, c: Carrier, serial: u64, f: impl Fn(&mut CardRecord)) -> String {
    let inv = s.engine.page(c, serial, 1);
    let mut card = inv[0].clone();
    f(&mut card);
    let id = card.id.clone();
    let r = http()
        .put(format!(
            "{}/admin/{}/cards/{}",
            s.admin_url(),
            c.as_str(),
            id
        ))
        .json(&card)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    id
}

fn in_use(c: &mut CardRecord) {
    c.status = SimStatus::InUse;
    c.stop_reason = StopReason::Normal;
}

async fn truth(s: &SimServer, c: Carrier, card: &str) -> Value {
    http()
        .get(format!(
            "{}/admin/{}/truth/{card}",
            s.admin_url(),
            c.as_str()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn stats(s: &SimServer) -> Value {
    http()
        .get(format!("{}/admin/stats", s.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

// ---------- China Mobile ----------

struct Cmcc<'a> {
    s: &'a SimServer,
    token: String,
    seq: u32,
}

impl<'a> Cmcc<'a> {
    fn transid(&mut self) -> String {
        self.seq += 1;
        format!(
            "gslcmcc{}{:08}",
            Utc::now().with_timezone(&cst()).format("%Y%m%d%H%M%S"),
            self.seq
        )
    }
    async fn login(s: &'a SimServer) -> Cmcc<'a> {
        let mut c = Cmcc {
            s,
            token: String::new(),
            seq: 0,
        };
        let t = c.transid();
        let v = c
            .get(
                "get/token",
                &[
                    ("appid", "gslcmcc"),
                    ("password", "cmcc-secret"),
                    ("transid", &t),
                ],
            )
            .await;
        assert_eq!(v["status"], "0", "{v}");
        c.token = v["result"][0]["token"].as_str().unwrap().to_owned();
        assert!(
            v["result"][0]["ttl"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
        c
    }
    async fn get(&self, op: &str, q: &[(&str, &str)]) -> Value {
        http()
            .get(format!("{}/v5/ec/{op}", self.s.base_url(Carrier::Cmcc)))
            .query(q)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
    async fn call(&mut self, op: &str, q: &[(&str, &str)]) -> Value {
        let t = self.transid();
        self.call_with(op, &t, q).await
    }
    async fn call_with(&self, op: &str, transid: &str, q: &[(&str, &str)]) -> Value {
        let mut all = vec![("transid", transid), ("token", self.token.as_str())];
        all.extend_from_slice(q);
        self.get(op, &all).await
    }
}

#[tokio::test]
async fn cmcc_auth_token_and_transid() {
    let s = sim(CompletionMode::Immediate).await;
    let mut c = Cmcc::login(&s).await;
    let t = c.transid();
    let bad = c
        .get(
            "get/token",
            &[("appid", "gslcmcc"), ("password", "wrong"), ("transid", &t)],
        )
        .await;
    assert_eq!(bad["status"], "12004");
    assert!(bad["result"].is_array());
    let id = card(&s, Carrier::Cmcc, 1, in_use).await;
    let no_token = c
        .get("query/sim-status", &[("transid", &t), ("iccid", &id)])
        .await;
    assert_eq!(no_token["status"], "12021");
    let bad_transid = c
        .call_with("query/sim-status", "nope", &[("iccid", &id)])
        .await;
    assert_eq!(bad_transid["status"], "11000");
    let ok = c.call("query/sim-status", &[("iccid", &id)]).await;
    assert_eq!(ok["status"], "0");
    assert_eq!(ok["result"][0]["cardStatus"], "2");
    // token expiry
    http()
        .post(format!("{}/admin/cmcc/expire-tokens", s.admin_url()))
        .send()
        .await
        .unwrap();
    let expired = c.call("query/sim-status", &[("iccid", &id)]).await;
    assert_eq!(expired["status"], "12021");
}

#[tokio::test]
async fn cmcc_rules_replay_and_codes() {
    let s = sim(CompletionMode::Immediate).await;
    let mut c = Cmcc::login(&s).await;
    let id = card(&s, Carrier::Cmcc, 2, in_use).await;
    let t = c.transid();
    let r1 = c
        .call_with(
            "change/sim-status",
            &t,
            &[("iccid", &id), ("operType", "0")],
        )
        .await;
    assert_eq!(r1["status"], "0", "{r1}");
    let r2 = c
        .call_with(
            "change/sim-status",
            &t,
            &[("iccid", &id), ("operType", "0")],
        )
        .await;
    assert_eq!(
        r1["result"][0]["orderNum"], r2["result"][0]["orderNum"],
        "replay returns the original receipt"
    );
    let tr = truth(&s, Carrier::Cmcc, &id).await;
    assert_eq!(tr["applied"]["stop"], 1);
    assert_eq!(tr["replays"], 1);
    // 3-minute spacing between status changes
    let resume = c
        .call("change/sim-status", &[("iccid", &id), ("operType", "1")])
        .await;
    assert_eq!(resume["status"], "12090", "{resume}");
    // violation stop cannot be resumed; needs a back-office rebind
    let v = card(&s, Carrier::Cmcc, 3, |c| {
        c.status = SimStatus::Stopped;
        c.stop_reason = StopReason::Violation;
    })
    .await;
    assert_eq!(
        c.call("change/sim-status", &[("iccid", &v), ("operType", "1")])
            .await["status"],
        "12098"
    );
    let rb = c.call("backoffice/rebind", &[("iccid", &v)]).await;
    assert_eq!(rb["status"], "0");
    let order = rb["result"][0]["orderNum"].as_str().unwrap().to_owned();
    let q = c.call("query/order-info", &[("orderNum", &order)]).await;
    assert_eq!(q["result"][0]["orderStatus"], "2");
    // region bind: forbidden provinces
    let r = card(&s, Carrier::Cmcc, 4, in_use).await;
    assert_eq!(
        c.call(
            "backoffice/region-bind",
            &[("iccid", &r), ("provinceCode", "991")]
        )
        .await["status"],
        "12091"
    );
    assert_eq!(
        c.call(
            "backoffice/region-bind",
            &[("iccid", &r), ("provinceCode", "240")]
        )
        .await["status"],
        "0"
    );
    // card of another carrier, unknown card, illegal state
    let ct_card = s.engine.page(Carrier::Ct, 0, 1)[0].id.clone();
    assert_eq!(
        c.call("query/sim-status", &[("iccid", &ct_card)]).await["status"],
        "12009"
    );
    assert_eq!(
        c.call("query/sim-status", &[("iccid", "8986009999999999999")])
            .await["status"],
        "12010"
    );
    let st = card(&s, Carrier::Cmcc, 5, |c| c.status = SimStatus::Testable).await;
    assert_eq!(
        c.call("change/sim-status", &[("iccid", &st), ("operType", "0")])
            .await["status"],
        "12089"
    );
    // pooled-only usage cap
    let np = card(&s, Carrier::Cmcc, 6, |c| {
        in_use(c);
        c.pooled = false;
    })
    .await;
    assert_eq!(
        c.call(
            "limit/group-member-data-usage",
            &[("iccid", &np), ("operType", "1"), ("limitValue", "100")]
        )
        .await["status"],
        "12093"
    );
}

#[tokio::test]
async fn cmcc_over_limit_is_answered_and_counted() {
    let s = sim(CompletionMode::Immediate).await;
    let mut c = Cmcc::login(&s).await;
    let id = card(&s, Carrier::Cmcc, 7, in_use).await;
    let limits = Limits {
        change: Limit::OFF,
        query: Limit::per_second(2),
        list: Limit::OFF,
    };
    http()
        .put(format!("{}/admin/cmcc/limits", s.admin_url()))
        .json(&limits)
        .send()
        .await
        .unwrap();
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(
            c.call("query/sim-status", &[("iccid", &id)]).await["status"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(codes, vec!["0", "0", "12006"]);
    assert_eq!(stats(&s).await["cmcc"]["over_limit"]["query"], 1);
}

// ---------- China Telecom ----------

struct Ct<'a> {
    s: &'a SimServer,
    secret: String,
    skew: chrono::Duration,
}

impl Ct<'_> {
    async fn call(&self, method: &str, params: &[(&str, &str)]) -> Value {
        let p: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ts = (Utc::now() + self.skew)
            .with_timezone(&cst())
            .format("%Y%m%d%H%M%S")
            .to_string();
        let sign = gsl_carrier_sim::ct::sign(&p, &self.secret, &ts);
        http()
            .post(format!(
                "{}/5gcmp/openapi/v1/common/{method}",
                self.s.base_url(Carrier::Ct)
            ))
            .header("AppKey", "gslct")
            .header("Timestamp", ts)
            .header("Sign", sign)
            .json(&p)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn ct_signature_and_clock_skew() {
    let s = sim(CompletionMode::Immediate).await;
    let id = card(&s, Carrier::Ct, 1, in_use).await;
    let good = Ct {
        s: &s,
        secret: "ct-secret".into(),
        skew: chrono::Duration::zero(),
    };
    assert_eq!(
        good.call("queryCardMainStatus", &[("iccid", &id)]).await["rspCode"],
        "0000"
    );
    let wrong = Ct {
        s: &s,
        secret: "nope".into(),
        skew: chrono::Duration::zero(),
    };
    assert_eq!(
        wrong.call("queryCardMainStatus", &[("iccid", &id)]).await["rspCode"],
        "-3"
    );
    let skewed = Ct {
        s: &s,
        secret: "ct-secret".into(),
        skew: chrono::Duration::minutes(10),
    };
    assert_eq!(
        skewed.call("queryCardMainStatus", &[("iccid", &id)]).await["rspCode"],
        "-3"
    );
}

#[tokio::test]
async fn ct_rules_and_codes() {
    let s = sim(CompletionMode::Immediate).await;
    let ct = Ct {
        s: &s,
        secret: "ct-secret".into(),
        skew: chrono::Duration::zero(),
    };
    let id = card(&s, Carrier::Ct, 2, in_use).await;
    // 2 rebinds per card per month, then -5
    for (i, want) in ["0000", "0000", "-5"].iter().enumerate() {
        let t = format!("rb{i}");
        let r = ct
            .call(
                "IMEIReRecord",
                &[("iccid", &id), ("bind_type", ""), ("transactionId", &t)],
            )
            .await;
        assert_eq!(r["rspCode"], *want, "rebind {i}: {r}");
    }
    let st = ct.call("queryCardMainStatus", &[("iccid", &id)]).await;
    assert_eq!(st["data"]["imeiBindRemainTimes"], "0");
    // replay of an accepted rebind is not a third rebind
    let again = ct
        .call(
            "IMEIReRecord",
            &[("iccid", &id), ("bind_type", ""), ("transactionId", "rb0")],
        )
        .await;
    assert_eq!(again["rspCode"], "0000");
    assert_eq!(truth(&s, Carrier::Ct, &id).await["applied"]["rebind"], 2);
    // resume of a card awaiting activation -> 100008; forced activation works
    let act = card(&s, Carrier::Ct, 3, |c| c.status = SimStatus::Activatable).await;
    assert_eq!(
        ct.call(
            "disabledNumber",
            &[
                ("iccid", &act),
                ("orderTypeId", "20"),
                ("transactionId", "x1")
            ]
        )
        .await["rspCode"],
        "100008"
    );
    assert_eq!(
        ct.call(
            "requestServActive",
            &[("iccid", &act), ("transactionId", "x2")]
        )
        .await["rspCode"],
        "0000"
    );
    // threshold: add twice -> -9, then modify
    assert_eq!(
        ct.call(
            "offNetAction",
            &[
                ("iccid", &id),
                ("action", "1"),
                ("quota", "100"),
                ("transactionId", "o1")
            ]
        )
        .await["rspCode"],
        "0000"
    );
    assert_eq!(
        ct.call(
            "offNetAction",
            &[
                ("iccid", &id),
                ("action", "1"),
                ("quota", "200"),
                ("transactionId", "o2")
            ]
        )
        .await["rspCode"],
        "-9"
    );
    assert_eq!(
        ct.call(
            "offNetAction",
            &[
                ("iccid", &id),
                ("action", "2"),
                ("quota", "200"),
                ("transactionId", "o3")
            ]
        )
        .await["rspCode"],
        "0000"
    );
    // speed codes
    assert_eq!(
        ct.call(
            "speedLimitAction",
            &[
                ("iccid", &id),
                ("action", "ADD"),
                ("speedValue", "11"),
                ("transactionId", "s1")
            ]
        )
        .await["rspCode"],
        "0000"
    );
    assert_eq!(s.engine.card(Carrier::Ct, &id).unwrap().speed_kbps, 512);
    assert_eq!(
        ct.call(
            "speedLimitAction",
            &[
                ("iccid", &id),
                ("action", "ADD"),
                ("speedValue", "99"),
                ("transactionId", "s2")
            ]
        )
        .await["rspCode"],
        "-2"
    );
    // query by our transaction id
    let q = ct.call("queryOrder", &[("transactionId", "s1")]).await;
    assert_eq!(q["data"]["orderStatus"], "SUCCESS");
    // cut / restore
    assert_eq!(
        ct.call(
            "singleCutNet",
            &[("iccid", &id), ("action", "ADD"), ("transactionId", "c1")]
        )
        .await["rspCode"],
        "0000"
    );
    assert!(s.engine.card(Carrier::Ct, &id).unwrap().cut_net);
}

#[tokio::test]
async fn ct_directional_limits() {
    let s = sim(CompletionMode::Immediate).await;
    let ct = Ct {
        s: &s,
        secret: "ct-secret".into(),
        skew: chrono::Duration::zero(),
    };
    let batch = json!({"batch_no": "B1", "purchase_type": "new_purchase", "directional_data": true, "entries": []});
    http()
        .put(format!("{}/admin/ct/batches/B1", s.admin_url()))
        .json(&batch)
        .send()
        .await
        .unwrap();
    let six_ips = (1..=6)
        .map(|i| format!("10.0.0.{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let r = ct
        .call(
            "dirWhiteListAction",
            &[
                ("batchNo", "B1"),
                ("action", "ADD"),
                ("entries", &six_ips),
                ("transactionId", "d1"),
            ],
        )
        .await;
    assert_eq!(r["rspCode"], "-11", "{r}");
    let five = (1..=5)
        .map(|i| format!("10.0.0.{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let r = ct
        .call(
            "dirWhiteListAction",
            &[
                ("batchNo", "B1"),
                ("action", "ADD"),
                ("entries", &five),
                ("transactionId", "d2"),
            ],
        )
        .await;
    assert_eq!(r["rspCode"], "0000", "{r}");
    let b: Value = http()
        .get(format!("{}/admin/ct/batches/B1", s.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["entries"].as_array().unwrap().len(), 5);
}

// ---------- China Unicom ----------

fn basic(user: &str, key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{key}"))
    )
}

#[tokio::test]
async fn cu_jasper_style() {
    let s = sim(CompletionMode::Immediate).await;
    let base = s.base_url(Carrier::Cu);
    let id = card(&s, Carrier::Cu, 1, |c| {
        in_use(c);
        c.real_named = false;
    })
    .await;
    let auth = basic("gslcu", "cu-secret");
    let r = http()
        .get(format!("{base}/rws/api/v1/devices/{id}"))
        .header("authorization", basic("gslcu", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let dev: Value = http()
        .get(format!("{base}/rws/api/v1/devices/{id}"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dev["status"], "ACTIVATED");
    let put = |body: Value, rid: &str| {
        http()
            .put(format!("{base}/rws/api/v1/devices/{id}"))
            .header("authorization", &auth)
            .header("X-Request-Id", rid)
            .json(&body)
            .send()
    };
    // speed needs real-name verification
    assert_eq!(
        put(json!({"speedTier": 512}), "r0").await.unwrap().status(),
        403
    );
    let a = put(json!({"status": "DEACTIVATED"}), "r1").await.unwrap();
    assert_eq!(a.status(), 202);
    let a: Value = a.json().await.unwrap();
    let b: Value = put(json!({"status": "DEACTIVATED"}), "r1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["requestId"], b["requestId"]);
    let req: Value = http()
        .get(format!("{base}/rws/api/v1/requests"))
        .query(&[("externalId", "r1")])
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(req["status"], "COMPLETED");
    assert_eq!(truth(&s, Carrier::Cu, &id).await["applied"]["stop"], 1);
    // over the limit: 429 with Retry-After
    let limits = Limits {
        change: Limit::per_second(1),
        query: Limit::OFF,
        list: Limit::OFF,
    };
    http()
        .put(format!("{}/admin/cu/limits", s.admin_url()))
        .json(&limits)
        .send()
        .await
        .unwrap();
    let first = put(json!({"status": "ACTIVATED"}), "r2").await.unwrap();
    assert_eq!(first.status(), 202);
    let second = put(json!({"status": "ACTIVATED"}), "r3").await.unwrap();
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "1");
}

// ---------- tri-net ----------

#[tokio::test]
async fn trinet_switch_spacing_and_policies() {
    let s = sim(CompletionMode::Immediate).await;
    let base = s.base_url(Carrier::Trinet);
    let auth = "Bearer trinet-secret";
    let post = |path: String, body: Value| {
        http()
            .post(format!("{base}{path}"))
            .header("authorization", auth)
            .json(&body)
            .send()
    };
    let no_sdk = card(&s, Carrier::Trinet, 1, |c| {
        in_use(c);
        c.trinet_version = Some(TriNetVersion::NoSdk);
    })
    .await;
    let sdk = card(&s, Carrier::Trinet, 2, |c| {
        in_use(c);
        c.trinet_version = Some(TriNetVersion::Sdk);
    })
    .await;
    let unauth = http()
        .get(format!("{base}/api/v1/cards/{no_sdk}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    let sw = |cid: &str, target: &str, rid: &str| {
        post(
            format!("/api/v1/cards/{cid}/switch-network"),
            json!({"target": target, "requestId": rid}),
        )
    };
    assert_eq!(sw(&no_sdk, "ct", "a").await.unwrap().status(), 202);
    let r = sw(&no_sdk, "cmcc", "b").await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "SWITCH_TOO_SOON");
    assert_eq!(sw(&sdk, "ct", "c").await.unwrap().status(), 202);
    assert_eq!(sw(&sdk, "cmcc", "d").await.unwrap().status(), 202);
    assert_eq!(
        s.engine.card(Carrier::Trinet, &sdk).unwrap().active_profile,
        Some(Carrier::Cmcc)
    );
    // policies
    let pol = |id: &str, version: &str, enabled: bool| json!({"id": id, "version": version, "enabled": enabled, "order": ["cu", "cmcc", "ct"]});
    assert_eq!(
        post("/api/v1/policies".into(), pol("p-sdk", "sdk", true))
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        post("/api/v1/policies".into(), pol("p-off", "sdk", false))
            .await
            .unwrap()
            .status(),
        201
    );
    let sp = |cid: &str, p: &str, rid: &str| {
        post(
            format!("/api/v1/cards/{cid}/switch-policy"),
            json!({"policyId": p, "requestId": rid}),
        )
    };
    let disabled = sp(&sdk, "p-off", "e").await.unwrap();
    assert_eq!(
        disabled.json::<Value>().await.unwrap()["code"],
        "POLICY_NOT_USABLE"
    );
    let wrong_version = sp(&no_sdk, "p-sdk", "f").await.unwrap();
    assert_eq!(wrong_version.status(), 409);
    assert_eq!(sp(&sdk, "p-sdk", "g").await.unwrap().status(), 202);
    let change = http()
        .put(format!("{base}/api/v1/policies/p-sdk"))
        .header("authorization", auth)
        .json(&json!({"id": "p-sdk", "version": "sdk", "enabled": true, "order": ["ct", "cu", "cmcc"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(change.status(), 409, "a policy in use is frozen");
    for i in 0..48 {
        assert_eq!(
            post(
                "/api/v1/policies".into(),
                pol(&format!("q{i}"), "no_sdk", true)
            )
            .await
            .unwrap()
            .status(),
            201
        );
    }
    let too_many = post("/api/v1/policies".into(), pol("q-last", "no_sdk", true))
        .await
        .unwrap();
    assert_eq!(
        too_many.json::<Value>().await.unwrap()["code"],
        "TOO_MANY_POLICIES"
    );
}

// ---------- shared behaviour ----------

#[tokio::test]
async fn asynchronous_completion_on_scaled_clock() {
    let mut cfg = SimConfig::unlimited();
    cfg.completion.mode = CompletionMode::Sla;
    // one working day = 0.25 real seconds; start on a Monday 00:00 CST
    cfg.time_scale = Some(86_400.0 * 4.0);
    cfg.clock_start = Some("2026-11-22T16:00:00Z".into());
    let s = SimServer::start(cfg).await.unwrap();
    let id = card(&s, Carrier::Trinet, 5, in_use).await;
    let base = s.base_url(Carrier::Trinet);
    let r: Value = http()
        .post(format!("{base}/api/v1/cards/{id}/lifecycle"))
        .header("authorization", "Bearer trinet-secret")
        .json(&json!({"action": "stop", "requestId": "slow"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = r["ticket"].as_str().unwrap().to_owned();
    let state = || async {
        let v: Value = http()
            .get(format!("{base}/api/v1/tickets/{ticket}"))
            .header("authorization", "Bearer trinet-secret")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["state"].as_str().unwrap().to_owned()
    };
    assert_eq!(state().await, "pending");
    let started = std::time::Instant::now();
    loop {
        if state().await == "done" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "1-2 working days should pass in about 0.5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        s.engine.card(Carrier::Trinet, &id).unwrap().status,
        SimStatus::Stopped
    );
    assert_eq!(truth(&s, Carrier::Trinet, &id).await["applied"]["stop"], 1);
}

#[tokio::test]
async fn faults_on_demand() {
    let s = sim(CompletionMode::Immediate).await;
    let base = s.base_url(Carrier::Cu);
    let auth = basic("gslcu", "cu-secret");
    let id = card(&s, Carrier::Cu, 9, in_use).await;
    let set = |f: Faults| {
        http()
            .put(format!("{}/admin/cu/faults", s.admin_url()))
            .json(&f)
            .send()
    };
    set(Faults {
        error_rate: 1.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let r = http()
        .get(format!("{base}/rws/api/v1/devices/{id}"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    set(Faults {
        busy_rate: 1.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let r = http()
        .get(format!("{base}/rws/api/v1/devices/{id}"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "10000024");
    // dropped after doing the work: the caller sees an error, the change happened
    set(Faults {
        drop_after_rate: 1.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let r = http()
        .put(format!("{base}/rws/api/v1/devices/{id}"))
        .header("authorization", &auth)
        .header("X-Request-Id", "lost-answer")
        .json(&json!({"status": "DEACTIVATED"}))
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "the answer must be lost");
    assert_eq!(truth(&s, Carrier::Cu, &id).await["applied"]["stop"], 1);
    // latency
    set(Faults {
        latency_ms: 200,
        ..Default::default()
    })
    .await
    .unwrap();
    let t = std::time::Instant::now();
    http()
        .get(format!("{base}/rws/api/v1/devices/{id}"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_millis(200));
}
