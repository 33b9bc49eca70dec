//! The simulator over real HTTP, per carrier: authentication, each enforced
//! rule, over-limit answers, idempotent replay, asynchronous completion on the
//! scaled clock, and injected faults.

use base64::Engine as _;

use gsl_carrier_sim::config::{CompletionMode, Faults};
use gsl_carrier_sim::inventory::CardRecord;
use gsl_carrier_sim::{SimConfig, SimServer};

use gsl_domain::card::{SimStatus, StopReason, TriNetVersion};
use gsl_domain::carrier::Carrier;
use serde_json::{Value, json};

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

fn basic(user: &str, key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{key}"))
    )
}
