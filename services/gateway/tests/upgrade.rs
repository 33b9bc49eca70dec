//! The upgrade from the NATS KV registry to the card store: `gsl-gateway
//! migrate` copies 100,000 cards and their batch (counts checked, a second
//! run writes nothing), and a gateway then serves them: an order naming
//! every card is accepted with nothing refused, a card reads back with its
//! tenant, the batch takes a directional order.

mod common;

use async_nats::jetstream::kv;
use common::*;
use gsl_bus::codec::encode;
use gsl_bus::names;
use gsl_gateway::Gateway;
use gsl_gateway::config::GatewayConfig;
use gsl_proto::v1;
use gsl_testkit::NatsServer;

const N: u32 = 100_000;

/// What the pre-card-store gateway left: `gsl_cards` and `gsl_batches`.
async fn legacy_registry(nats: &NatsServer, ids: &[String]) {
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    for b in [names::KV_CARDS, names::KV_BATCHES] {
        js.create_key_value(kv::Config {
            bucket: b.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let at = gsl_proto::convert::timestamp(chrono::Utc::now() - chrono::Duration::days(30));
    let mut acks = Vec::with_capacity(4096);
    for id in ids {
        let mut c = card(id, v1::Carrier::Ct, 13);
        c.tenant = "acme".into();
        c.updated_at = Some(at);
        let ack = js
            .publish(format!("$KV.{}.{id}", names::KV_CARDS), encode(&c))
            .await
            .unwrap();
        acks.push(ack);
        if acks.len() == 4096 {
            for a in acks.drain(..) {
                a.await.unwrap();
            }
        }
    }
    for a in acks.drain(..) {
        a.await.unwrap();
    }
    // A card record that cannot be read is counted and skipped.
    js.publish(
        format!("$KV.{}.GARBAGE1", names::KV_CARDS),
        vec![0xff; 8].into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let batch = v1::PurchaseBatch {
        batch_no: "B-OLD".into(),
        tenant: "acme".into(),
        carrier: v1::Carrier::Ct as i32,
        purchase_type: v1::PurchaseType::NewPurchase as i32,
        directional_data: true,
        ..Default::default()
    };
    js.publish(format!("$KV.{}.B-OLD", names::KV_BATCHES), encode(&batch))
        .await
        .unwrap()
        .await
        .unwrap();
}

fn migrate(nats: &NatsServer) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gsl-gateway"))
        .arg("migrate")
        .env("GSL_NATS_URL", nats.url())
        .env("GSL_DATABASE_URL", nats.database_url())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run gsl-gateway migrate");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "migrate failed: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_registry_of_100k_cards_is_migrated_and_served() {
    let nats = NatsServer::start().await.unwrap();
    let ids: Vec<String> = (0..N).map(|i| ct_iccid(77, i)).collect();
    legacy_registry(&nats, &ids).await;

    let first = migrate(&nats);
    assert!(
        first.contains(&format!(
            "{N} cards seen, {N} written, {N} present, 1 batches seen, 1 written, 1 unreadable"
        )),
        "{first}"
    );
    // Idempotent: a second run finds everything there and writes nothing.
    let again = migrate(&nats);
    assert!(
        again.contains(&format!(
            "{N} cards seen, 0 written, {N} present, 1 batches seen, 0 written"
        )),
        "{again}"
    );

    let mut cfg = GatewayConfig::local(&nats.url(), &nats.database_url(), tokens());
    // As in production: the gateway only checks the schema migrate made.
    cfg.bus.topology = gsl_bus::TopologyMode::Bind;
    let gw = Gateway::start(cfg)
        .await
        .expect("gateway on the migrated store");
    let addr = url(gw.grpc_addr);

    // Every migrated card is found: an activation of all 100,000.
    let resp = orders(&addr)
        .await
        .submit(with_token(
            submit_req("after-upgrade", activate_op(), &ids),
            ACME,
        ))
        .await
        .expect("accepted")
        .into_inner();
    let o = resp.work_order.unwrap();
    assert_eq!(o.total, u64::from(N));
    assert_eq!(o.refused, 0, "no migrated card refused");

    // A card reads back with its tenant; another tenant does not see it.
    let c = registry(&addr)
        .await
        .get_card(with_token(
            v1::GetCardRequest {
                id: ids[4242].clone(),
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((c.tenant.as_str(), c.sim_status), ("acme", 13));
    assert!(
        registry(&addr)
            .await
            .get_card(with_token(
                v1::GetCardRequest {
                    id: ids[4242].clone()
                },
                BETA
            ))
            .await
            .is_err()
    );

    // The migrated batch takes a directional order.
    let mut req = submit_req(
        "dir-after-upgrade",
        directional_add(&["a.example.com"]),
        &[],
    );
    req.batch_no = "B-OLD".into();
    let o = orders(&addr)
        .await
        .submit(with_token(req, ACME))
        .await
        .expect("directional order on the migrated batch")
        .into_inner();
    assert_eq!(o.work_order.unwrap().refused, 0);
    gw.shutdown().await;
}

fn directional_add(entries: &[&str]) -> v1::Operation {
    v1::Operation {
        kind: Some(v1::operation::Kind::DirectionalAdd(v1::DirectionalAdd {
            entries: entries.iter().map(|e| e.to_string()).collect(),
        })),
    }
}
