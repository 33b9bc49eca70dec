//! Pushes end to end: a real NATS, a real gateway (the PushAddresses API),
//! gsl-push (in process, or as a process where it is killed) and a real
//! HTTPS receiver with the test CA's certificate registered on the address.
//! Signatures are checked here with HMAC-SHA256 directly, not with
//! gsl-push's own signer.

use base64::Engine;
use gsl_domain::ErrorCode;
use gsl_proto::v1;
use gsl_testkit::NatsServer;
use gsl_testkit::receiver::{Receiver, ca_pem};
use hmac::{Hmac, KeyInit, Mac};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tonic::Request;
use tonic::transport::Channel;

const ACME: &str = "tok-acme-0001";

struct Env {
    nats: NatsServer,
    gw: gsl_gateway::Gateway,
    js: async_nats::jetstream::Context,
    client: async_nats::Client,
}

async fn env() -> Env {
    let nats = NatsServer::start().await.unwrap();
    let tokens = gsl_gateway::auth::StaticTokens::new(
        HashMap::from([(ACME.to_string(), "acme".to_string())]),
        None,
    );
    let gw = gsl_gateway::Gateway::start(gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens,
    ))
    .await
    .unwrap();
    let (client, js) = gsl_bus::connect(&gsl_bus::BusConfig::new(nats.url(), "test"))
        .await
        .unwrap();
    Env {
        nats,
        gw,
        js,
        client,
    }
}

impl Env {
    async fn api(&self) -> v1::push_addresses_client::PushAddressesClient<Channel> {
        let ch = Channel::from_shared(format!("http://{}", self.gw.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        v1::push_addresses_client::PushAddressesClient::new(ch)
    }

    /// Register `url` (trusting the test CA); the secret.
    async fn address(&self, url: &str) -> (String, String) {
        let a = self
            .api()
            .await
            .create(authed(v1::CreatePushAddressRequest {
                url: url.into(),
                server_ca_pem: ca_pem(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        (a.address.unwrap().id, a.secret)
    }

    /// An item of order `wo` failing on card `n`: one `item.failed` push.
    async fn failed_item(&self, wo: u64, n: u32) {
        let card = format!("89860312345678{n:05}");
        let ev = v1::WorkOrderEvent {
            work_order_id: wo,
            tenant: "acme".into(),
            at: Some(gsl_proto::convert::timestamp(chrono::Utc::now())),
            event: Some(v1::work_order_event::Event::Item(v1::ItemOutcome {
                work_order_id: wo,
                card: card.clone(),
                index: n,
                carrier: v1::Carrier::Ct as i32,
                operation: v1::OperationKind::Stop as i32,
                kind: v1::OutcomeKind::Failed as i32,
                problem: Some(gsl_proto::convert::problem(
                    ErrorCode::CarrierRejected,
                    "refused",
                )),
                ..Default::default()
            })),
        };
        self.js
            .publish(
                gsl_bus::names::event_subject("acme", wo, &card),
                ev.encode_to_vec().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

fn authed<T>(m: T) -> Request<T> {
    gsl_testkit::gateway::bearer(ACME, m)
}

fn local_push(nats: &NatsServer) -> gsl_push::config::PushConfig {
    let mut c = gsl_push::config::PushConfig::local(&nats.url());
    c.schedule = vec![Duration::from_millis(300); 4];
    c
}

/// Every received push verifies under `secret` (checked here, with HMAC
/// directly); the webhook-ids received, each once.
fn verified_ids(r: &Receiver, secret: &str) -> HashSet<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut ids = HashSet::new();
    for p in r.received() {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{}.{}.", p.id, p.timestamp).as_bytes());
        mac.update(&p.body);
        let want = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert!(
            p.signature.split(' ').any(|s| s == want),
            "{}: signature {} does not verify",
            p.id,
            p.signature
        );
        let ts: i64 = p.timestamp.parse().unwrap();
        assert!(
            (chrono::Utc::now().timestamp() - ts).abs() < 60,
            "a fresh timestamp"
        );
        let body: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(body["type"], "item.failed");
        ids.insert(p.id);
    }
    ids
}

async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gsl-push process.
fn spawn_push(nats: &NatsServer) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_gsl-push"));
    c.env("GSL_NATS_URL", nats.url())
        .env("GSL_ADMIN_LISTEN", "127.0.0.1:0")
        .env("GSL_PUSH_ALLOW_NETS", "127.0.0.0/8")
        .env("GSL_PUSH_RETRY_SCHEDULE", "500ms,500ms,1s,1s,1s,1s,1s,1s")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Wait until a gsl-push process says where its admin port is, then until
/// it is ready.
async fn ready(child: &mut tokio::process::Child) {
    use tokio::io::AsyncBufReadExt;
    let out = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(out).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if let Some(a) = l.strip_prefix("listening on ") {
                return a.to_owned();
            }
        }
        panic!("gsl-push ended")
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gsl-push never ready");
}

/// Work-order events reach a verifying HTTPS receiver; a receiver down for a
/// while gets every push once it is back; a SIGKILL of gsl-push in the
/// middle of retries loses none. At least once, one webhook-id per event.
#[tokio::test]
async fn pushes_survive_an_outage_and_a_sigkill() {
    let e = env().await;
    let mut push = spawn_push(&e.nats).spawn().unwrap();
    ready(&mut push).await;
    let mut r = Receiver::start(true).await;
    let (id, secret) = e.address(&r.url()).await;
    let t = e
        .api()
        .await
        .test(authed(v1::PushAddressRef { id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert!(t.ok && t.http_status == 200, "{t:?}");
    r.state.got.lock().unwrap().clear();

    for n in 0..20 {
        e.failed_item(1, n).await;
    }
    until("the first 20 pushes", Duration::from_secs(20), || {
        r.received().len() >= 20
    })
    .await;
    assert_eq!(verified_ids(&r, &secret).len(), 20);

    // Down: connections refused. Twenty more, retried meanwhile.
    r.stop();
    for n in 20..40 {
        e.failed_item(1, n).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Killed in the middle of its retries, started again.
    push.start_kill().unwrap();
    push.wait().await.unwrap();
    let mut push2 = spawn_push(&e.nats).spawn().unwrap();
    ready(&mut push2).await;
    for n in 40..50 {
        e.failed_item(2, n).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.restart().await;
    until(
        "every push after the outage",
        Duration::from_secs(60),
        || {
            r.received()
                .iter()
                .map(|p| p.id.clone())
                .collect::<HashSet<_>>()
                .len()
                >= 50
        },
    )
    .await;
    let ids = verified_ids(&r, &secret);
    assert_eq!(ids.len(), 50, "one webhook-id per event");
    let dups = r.received().len() - ids.len();
    eprintln!("duplicates after the kill: {dups}");
    drop(push2);
}

/// A receiver that never comes back: the retries run out, one `failing`
/// and one `exhausted` notice go on the bus, `ListFailed` shows the push
/// with its body, and `Resend` delivers it (same webhook-id) once the
/// receiver is fixed. A 410 disables the address.
#[tokio::test]
async fn exhausted_pushes_are_noticed_listed_and_resent_and_410_disables() {
    let e = env().await;
    let push = gsl_push::Push::start(local_push(&e.nats)).await.unwrap();
    let mut notices = e.client.subscribe("gsl.push.notice.acme.>").await.unwrap();
    let r = Receiver::start(true).await;
    r.state
        .status
        .store(503, std::sync::atomic::Ordering::Relaxed);
    let (id, secret) = e.address(&r.url()).await;
    e.failed_item(7, 1).await;
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    use futures::StreamExt;
    while !kinds.contains(&"exhausted".to_string()) {
        let m = tokio::time::timeout_at(deadline, notices.next())
            .await
            .expect("an exhausted notice")
            .unwrap();
        let n = v1::PushNotice::decode(m.payload.as_ref()).unwrap();
        kinds.push(n.kind.clone());
        if n.kind == "exhausted" {
            let p = n.push.unwrap();
            assert_eq!(p.attempts, 5, "the first attempt and four retries");
            assert_eq!(p.last_status, 503);
            assert!(p.body.contains("item.failed"), "{}", p.body);
        }
    }
    assert_eq!(kinds, vec!["failing", "exhausted"]);
    // Nothing more comes: one exhausted notice.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), notices.next())
            .await
            .is_err()
    );
    assert_eq!(
        r.state.requests.load(std::sync::atomic::Ordering::Relaxed),
        5
    );
    let failed = e
        .api()
        .await
        .list_failed(authed(v1::ListFailedPushesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .failed;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].address_id, id);
    assert_eq!(failed[0].kind, "exhausted");
    // With the failing notices: the same push noticed at its 4th attempt too.
    let both = e
        .api()
        .await
        .list_failed(authed(v1::ListFailedPushesRequest {
            include_failing: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .failed;
    let kinds: Vec<&str> = both.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, vec!["failing", "exhausted"]);
    assert!(both.iter().all(|f| f.webhook_id == failed[0].webhook_id));
    // Fixed: resend it.
    r.state
        .status
        .store(200, std::sync::atomic::Ordering::Relaxed);
    let n = e
        .api()
        .await
        .resend(authed(v1::ResendPushesRequest {
            address_id: id.clone(),
            webhook_id: failed[0].webhook_id.clone(),
            since: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.resent, 1);
    until("the resent push", Duration::from_secs(10), || {
        !r.received().is_empty()
    })
    .await;
    let ids = verified_ids(&r, &secret);
    assert_eq!(ids, HashSet::from([failed[0].webhook_id.clone()]));

    // 410: the address is disabled at once.
    r.state
        .status
        .store(410, std::sync::atomic::Ordering::Relaxed);
    e.failed_item(8, 2).await;
    let mut api = e.api().await;
    let mut disabled = None;
    for _ in 0..100 {
        let l = api
            .list(authed(v1::ListPushAddressesRequest {}))
            .await
            .unwrap()
            .into_inner();
        if !l.addresses[0].enabled {
            disabled = Some(l.addresses[0].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = disabled.expect("disabled by the 410");
    assert!(a.disabled_reason.contains("410"), "{a:?}");
    assert_eq!(
        r.state.requests.load(std::sync::atomic::Ordering::Relaxed),
        7,
        "one attempt after the 410, none more"
    );
    push.shutdown().await;
}

/// Without `GSL_PUSH_ALLOW_NETS`, an address on loopback (or any private
/// range) is refused at registration; plain http too.
#[tokio::test]
async fn private_addresses_are_refused_without_the_allowance() {
    let e = env().await;
    let mut cfg = local_push(&e.nats);
    cfg.guard = gsl_push::netguard::NetGuard::default();
    let push = gsl_push::Push::start(cfg).await.unwrap();
    let r = Receiver::start(true).await;
    let mut api = e.api().await;
    for url in [
        r.url(),
        "https://localhost:9/hook".to_string(),
        "https://169.254.169.254/latest/meta-data".to_string(),
        "https://10.0.0.1/x".to_string(),
        "http://93.184.216.34/x".to_string(),
    ] {
        let err = api
            .create(authed(v1::CreatePushAddressRequest {
                url: url.clone(),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(
            gsl_gateway::error::code_of(&err),
            Some(ErrorCode::BadParameter),
            "{url}: {err:?}"
        );
    }
    assert!(
        api.list(authed(v1::ListPushAddressesRequest {}))
            .await
            .unwrap()
            .into_inner()
            .addresses
            .is_empty()
    );
    push.shutdown().await;
}
