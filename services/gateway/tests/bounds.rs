//! Bounds and authority, tried as an attacker holding one valid credential
//! would: requests bounded by bytes for every principal, services refused
//! to principals they do not serve before any body is decoded, purchase
//! batches and back-office requests checked against the authority that may
//! make them.

mod common;

use bytes::{Buf, BufMut};
use common::*;
use gsl_domain::ErrorCode;
use gsl_gateway::error::code_of;
use gsl_proto::v1;
use std::time::Duration;
use tonic::Code;
use tonic::codec::{DecodeBuf, EncodeBuf};

const OPERATOR: &str = "operator-secret-0001";

/// A codec that sends and receives raw bytes: requests the generated
/// clients would never build.
#[derive(Clone, Default)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let v = src.chunk().to_vec();
        src.advance(v.len());
        Ok(Some(v))
    }
}

/// Send `body` as the request message of `path` with `token`.
async fn raw_call(
    url: &str,
    path: &'static str,
    token: &str,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let ch = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut g = tonic::client::Grpc::new(ch).max_encoding_message_size(usize::MAX);
    g.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let r = g
        .unary(
            with_token(body, token),
            http::uri::PathAndQuery::from_static(path),
            Raw,
        )
        .await?;
    Ok(r.into_inner())
}

/// Not protobuf: decoding it fails, so a refusal that names the credential
/// proves the body was never decoded.
fn garbage(len: usize) -> Vec<u8> {
    vec![0xff; len]
}

fn tokens_with_operator() -> gsl_gateway::auth::StaticTokens {
    tokens().with_operator(Some(OPERATOR.into()))
}

/// A valid credential on a service it may not call is refused from the
/// headers: the body is not decoded (garbage would otherwise fail to decode
/// with INTERNAL). Fails without the per-service check in the interceptor.
#[tokio::test]
async fn a_principal_is_refused_by_service_before_the_body_is_decoded() {
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let gw = gsl_gateway::Gateway::start(gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens_with_operator(),
    ))
    .await
    .unwrap();
    let u = url(gw.grpc_addr);
    let ct_adapter = gsl_testkit::gateway::adapter_token(ADAPTER, "ct");
    let refused: &[(&'static str, &str)] = &[
        ("/gsl.v1.WorkOrders/Submit", &ct_adapter),
        ("/gsl.v1.WorkOrders/Submit", OPERATOR),
        ("/gsl.v1.Registry/ImportCards", &ct_adapter),
        ("/gsl.v1.Results/Report", ACME),
        ("/gsl.v1.Results/Report", OPERATOR),
        ("/gsl.v1.BackOffice/List", ACME),
        ("/gsl.v1.BackOffice/List", &ct_adapter),
    ];
    for (path, token) in refused {
        let e = raw_call(&u, path, token, garbage(1000)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{path}: {e:?}");
        assert_eq!(code_of(&e), Some(ErrorCode::PermissionDenied), "{path}");
    }
    // The same garbage from a principal the service serves is decoded (and
    // fails to decode): the check above is what stopped it.
    let e = raw_call(&u, "/gsl.v1.WorkOrders/Submit", ACME, garbage(1000))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Internal, "{e:?}");
}

/// Each method's cap is enforced from the message header, whoever sends it:
/// a Report over 64 KiB from an adapter, a Submit over 4 MiB from a tenant.
#[tokio::test]
async fn each_method_has_its_own_cap() {
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let gw = gsl_gateway::Gateway::start(gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens_with_operator(),
    ))
    .await
    .unwrap();
    let u = url(gw.grpc_addr);
    let ct_adapter = gsl_testkit::gateway::adapter_token(ADAPTER, "ct");
    for (path, token, len) in [
        ("/gsl.v1.Results/Report", ct_adapter.as_str(), 65 * 1024),
        ("/gsl.v1.WorkOrders/Get", ACME, 65 * 1024),
        ("/gsl.v1.BackOffice/List", OPERATOR, 65 * 1024),
        ("/gsl.v1.WorkOrders/Submit", ACME, 4 * 1024 * 1024 + 1),
        ("/gsl.v1.Registry/ImportCards", ACME, 16 * 1024 * 1024 + 1),
        ("/gsl.v1.Registry/BatchUsage", ACME, 32 * 1024 + 1),
    ] {
        let e = raw_call(&u, path, token, garbage(len)).await.unwrap_err();
        assert_eq!(code_of(&e), Some(ErrorCode::BatchTooLarge), "{path}: {e:?}");
    }
    // Under the cap: decoded (and the garbage refused by the decoder).
    let e = raw_call(&u, "/gsl.v1.WorkOrders/Submit", ACME, garbage(1024 * 1024))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Internal, "{e:?}");
}

/// The purchase-batch squat: a tenant may not register a batch nobody
/// holds (the operator assigns batches), and the refusal is the same for an
/// unknown batch and for another tenant's, so it reveals nothing.
#[tokio::test]
async fn purchase_batches_cannot_be_squatted_or_probed() {
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let mut cfg = gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens_with_operator(),
    );
    cfg.tenant_self_registration = false;
    let gw = gsl_gateway::Gateway::start(cfg).await.unwrap();
    let u = url(gw.grpc_addr);
    let mut reg = registry(&u).await;
    let batch = |no: &str, tenant: &str| v1::PurchaseBatch {
        batch_no: no.into(),
        carrier: v1::Carrier::Cmcc as i32,
        purchase_type: v1::PurchaseType::NewPurchase as i32,
        directional_data: true,
        tenant: tenant.into(),
        ..Default::default()
    };
    // beta squats a batch number nobody holds yet: refused.
    let squat = reg
        .import_batches(with_token(
            v1::ImportBatchesRequest {
                batches: vec![batch("PB-ACME-1", "")],
            },
            BETA,
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&squat), Some(ErrorCode::PermissionDenied));
    // The operator assigns it to acme; acme may then update it.
    reg.import_batches(with_token(
        v1::ImportBatchesRequest {
            batches: vec![batch("PB-ACME-1", "acme")],
        },
        OPERATOR,
    ))
    .await
    .unwrap();
    reg.import_batches(with_token(
        v1::ImportBatchesRequest {
            batches: vec![batch("PB-ACME-1", "")],
        },
        ACME,
    ))
    .await
    .unwrap();
    let got = reg
        .get_batch(with_token(
            v1::GetBatchRequest {
                batch_no: "PB-ACME-1".into(),
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.tenant, "acme");
    // beta probing: acme's batch and an unknown one are refused alike.
    let mut texts = Vec::new();
    for no in ["PB-ACME-1", "PB-NOBODY-9"] {
        let e = reg
            .import_batches(with_token(
                v1::ImportBatchesRequest {
                    batches: vec![batch(no, "")],
                },
                BETA,
            ))
            .await
            .unwrap_err();
        assert_eq!(code_of(&e), Some(ErrorCode::PermissionDenied));
        texts.push((e.code(), e.message().replace(no, "<batch>")));
    }
    assert_eq!(texts[0], texts[1], "the refusals must not differ");
    // An operator import naming no tenant of this gateway is refused.
    let e = reg
        .import_batches(with_token(
            v1::ImportBatchesRequest {
                batches: vec![batch("PB-X", "mallory")],
            },
            OPERATOR,
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(ErrorCode::BadParameter));
}

/// A back-office request forged by the CT adapter's credential (which may
/// write any `ct.` key of `gsl_backoffice`), naming another tenant and its
/// CMCC batch, changes nothing when an operator claims and completes it;
/// nor does a request that names a real order but another item. Without the
/// check against the work order, the claim moved the batch's entries.
#[tokio::test]
async fn forged_back_office_requests_are_not_acted_on() {
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let gw = gsl_gateway::Gateway::start(gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens_with_operator(),
    ))
    .await
    .unwrap();
    let u = url(gw.grpc_addr);
    let mut reg = registry(&u).await;
    reg.import_batches(with_token(
        v1::ImportBatchesRequest {
            batches: vec![v1::PurchaseBatch {
                batch_no: "PB-ACME-CMCC".into(),
                carrier: v1::Carrier::Cmcc as i32,
                purchase_type: v1::PurchaseType::NewPurchase as i32,
                directional_data: true,
                entries: vec![v1::DirectionalEntry {
                    id: "E1".into(),
                    entry: "https://a.example.com".into(),
                    state: v1::EntryState::Effective as i32,
                }],
                ..Default::default()
            }],
        },
        ACME,
    ))
    .await
    .unwrap();
    // beta has a real order with one CT card.
    let beta_card = ct_iccid(77, 1);
    import(&u, BETA, vec![card(&beta_card, v1::Carrier::Ct, 20)]).await;
    let mut c = orders(&u).await;
    let order = c
        .submit(with_token(
            submit_req("beta-stop", stop_op(), std::slice::from_ref(&beta_card)),
            BETA,
        ))
        .await
        .unwrap()
        .into_inner()
        .work_order
        .unwrap();
    let (_, js) = gsl_bus::connect(&gsl_bus::BusConfig::new(nats.url(), "forger"))
        .await
        .unwrap();
    let bucket = js
        .get_key_value(gsl_bus::names::KV_BACKOFFICE)
        .await
        .unwrap();
    let add = v1::Operation {
        kind: Some(v1::operation::Kind::DirectionalAdd(v1::DirectionalAdd {
            entries: vec!["https://evil.example.net".into()],
        })),
    };
    let forged = |wo: u64, card: &str, index: u32| v1::BackOfficeRequest {
        id: gsl_bus::backoffice::request_id("ct", wo, card),
        carrier: v1::Carrier::Ct as i32,
        tenant: "acme".into(),
        work_order_id: wo,
        card: card.into(),
        batch_no: "PB-ACME-CMCC".into(),
        operation: Some(add.clone()),
        kind: v1::BackOfficeKind::NoApi as i32,
        state: v1::BackOfficeState::Open as i32,
        item_index: index,
        ..Default::default()
    };
    let cases = [
        // No such order at all.
        forged(999_999, &beta_card, 0),
        // beta's real order and item, but acme's tenant, batch and a
        // directional operation written in: shown and acted on with the
        // order's own (a stop of beta's card, no batch).
        forged(order.id, &beta_card, 0),
        // A real order, an item that is not there.
        forged(order.id, &ct_iccid(77, 2), 0),
    ];
    let mut bo = v1::back_office_client::BackOfficeClient::connect(u.clone())
        .await
        .unwrap();
    for (i, req) in cases.iter().enumerate() {
        bucket
            .put(req.id.clone(), gsl_bus::codec::encode(req))
            .await
            .unwrap();
        let claim = bo
            .claim(with_token(
                v1::ClaimBackOfficeRequest {
                    id: req.id.clone(),
                    operator: "op".into(),
                },
                OPERATOR,
            ))
            .await;
        if i == 1 {
            // Tied to a real item: the operator works it, but sees and
            // acts on the order's tenant, batch and operation.
            let shown = claim.unwrap().into_inner();
            assert_eq!(shown.tenant, "beta");
            assert_eq!(shown.batch_no, "");
            assert!(
                matches!(
                    shown.operation.and_then(|o| o.kind),
                    Some(v1::operation::Kind::Stop(_))
                ),
                "the order's operation"
            );
            let done = bo
                .complete(with_token(
                    v1::BackOfficeRef { id: req.id.clone() },
                    OPERATOR,
                ))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(done.tenant, "beta");
        } else {
            let e = claim.unwrap_err();
            assert_eq!(code_of(&e), Some(ErrorCode::PermissionDenied), "{e:?}");
        }
    }
    // The list shows only what matches an order, as the order says.
    let listed = bo
        .list(with_token(
            v1::ListBackOfficeRequest {
                include_closed: true,
                ..Default::default()
            },
            OPERATOR,
        ))
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].tenant, "beta");
    // acme's batch is untouched.
    let b = reg
        .get_batch(with_token(
            v1::GetBatchRequest {
                batch_no: "PB-ACME-CMCC".into(),
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.entries.len(), 1, "{:?}", b.entries);
    assert_eq!(b.entries[0].entry, "https://a.example.com");
    assert_eq!(b.entries[0].state, v1::EntryState::Effective as i32);
}

fn vm_hwm_kib(pid: u32) -> u64 {
    field_kib(pid, "VmHWM:")
}

fn vm_rss_kib(pid: u32) -> u64 {
    field_kib(pid, "VmRSS:")
}

fn field_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The largest message each method takes, built to cost the most once
/// decoded: the most items its cap and item limit allow.
fn max_size_request(path: &str) -> Vec<u8> {
    use prost::Message;
    let b = gsl_gateway::bounds::RequestBounds::default();
    let cap = b.cap(path);
    match path {
        "/gsl.v1.WorkOrders/Submit" => {
            // 100,000 cards (the item limit) with ids filling the cap.
            let id_len = cap / 100_000 - 4;
            v1::SubmitRequest {
                idempotency_key: "mem-max".into(),
                operation: Some(stop_op()),
                cards: (0..100_000)
                    .map(|i| v1::CardRef {
                        id: format!("{i:0id_len$}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }
            .encode_to_vec()
        }
        "/gsl.v1.Registry/ImportCards" => {
            // 100,000 cards with seven strings each, filling the cap; the ids
            // are not ICCIDs, so each card is refused and nothing is stored.
            let per = cap / 100_000 - 40;
            v1::ImportCardsRequest {
                cards: (0..100_000)
                    .map(|i| v1::Card {
                        id: format!("x.{i:0w$}", w = per / 2),
                        carrier: 2,
                        sim_status: 20,
                        stop_reason: -1,
                        imei: "1".repeat(per / 8),
                        batch_no: "b".repeat(per / 8),
                        msisdn: "1".repeat(per / 16),
                        imsi: "1".repeat(per / 16),
                        access_number: "1".repeat(per / 16),
                        ..Default::default()
                    })
                    .collect(),
            }
            .encode_to_vec()
        }
        "/gsl.v1.Registry/ImportBatches" => {
            // One batch holding as many empty entries as fit.
            v1::ImportBatchesRequest {
                batches: vec![v1::PurchaseBatch {
                    batch_no: "PB-MEM".into(),
                    entries: vec![v1::DirectionalEntry::default(); cap / 2 - 16],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
        }
        "/gsl.v1.Results/Report" => v1::ReportRequest {
            outcome: Some(v1::ItemOutcome {
                card: "x".repeat(cap - 64),
                ..Default::default()
            }),
        }
        .encode_to_vec(),
        "/gsl.v1.BackOffice/List" => v1::ListBackOfficeRequest {
            tenant: "x".repeat(cap - 64),
            ..Default::default()
        }
        .encode_to_vec(),
        _ => unreachable!(),
    }
}

/// 16 concurrent maximum-size requests per principal (no token, a tenant,
/// an adapter, the operator) on every service, and 30 MiB requests over
/// every cap: the gateway process's peak RSS stays under its pod limit
/// (256 MiB in deploy/k8s). Before the fix a tenant's 16 x 30 MiB Submits
/// took it to 570-670 MiB.
#[tokio::test]
async fn memory_stays_bounded_under_maximum_size_requests() {
    const POD_LIMIT_MIB: u64 = 256;
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let gw = spawn_gateway_with(&nats, &[("GSL_OPERATOR_TOKEN", OPERATOR)]).await;
    let pid = gw.child.id().unwrap();
    // Ready: one small call answered.
    let mut c = orders(&gw.addr).await;
    let _ = c
        .get(with_token(v1::GetRequest { id: 1 }, ACME))
        .await
        .unwrap_err();
    let start_rss = vm_rss_kib(pid);
    let ct_adapter = gsl_testkit::gateway::adapter_token(ADAPTER, "ct");
    let paths = [
        "/gsl.v1.WorkOrders/Submit",
        "/gsl.v1.Registry/ImportCards",
        "/gsl.v1.Registry/ImportBatches",
        "/gsl.v1.Results/Report",
        "/gsl.v1.BackOffice/List",
    ];
    let bodies: Vec<(&'static str, std::sync::Arc<Vec<u8>>)> = paths
        .iter()
        .map(|p| (*p, std::sync::Arc::new(max_size_request(p))))
        .collect();
    let mut figures = Vec::new();
    for (who, token) in [
        ("no token", ""),
        ("tenant", ACME),
        ("adapter", ct_adapter.as_str()),
        ("operator", OPERATOR),
    ] {
        let t0 = std::time::Instant::now();
        let mut calls = Vec::new();
        for (path, body) in &bodies {
            for _ in 0..16 {
                let (u, t, b, p) = (gw.addr.clone(), token.to_owned(), body.clone(), *path);
                calls.push(tokio::spawn(async move {
                    raw_call(&u, p, &t, (*b).clone()).await.map(|_| ())
                }));
            }
        }
        let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
        for c in calls {
            let r = tokio::time::timeout(Duration::from_secs(120), c)
                .await
                .expect("every call answered")
                .unwrap();
            let k = match r {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("{:?}", e.code()),
            };
            *outcomes.entry(k).or_default() += 1;
        }
        figures.push(format!(
            "{who}: peak RSS {} MiB after 80 calls in {:.1} s {outcomes:?}",
            vm_hwm_kib(pid) / 1024,
            t0.elapsed().as_secs_f64()
        ));
    }
    // The original attack: 16 concurrent 30 MiB Submits with a tenant's
    // token, refused from their headers.
    let over = std::sync::Arc::new(garbage(30 * 1024 * 1024));
    let mut calls = Vec::new();
    for _ in 0..16 {
        let (u, b) = (gw.addr.clone(), over.clone());
        calls.push(tokio::spawn(async move {
            raw_call(&u, "/gsl.v1.WorkOrders/Submit", ACME, (*b).clone()).await
        }));
    }
    for c in calls {
        let e = c.await.unwrap().unwrap_err();
        assert!(
            matches!(
                code_of(&e),
                Some(ErrorCode::BatchTooLarge | ErrorCode::PermissionDenied)
            ),
            "{e:?}"
        );
    }
    let peak = vm_hwm_kib(pid) / 1024;
    println!(
        "gateway RSS at start {} MiB; {}; after 16 x 30 MiB Submits: peak {peak} MiB (pod limit {POD_LIMIT_MIB} MiB)",
        start_rss / 1024,
        figures.join("; ")
    );
    assert!(
        peak < POD_LIMIT_MIB,
        "gateway peak RSS {peak} MiB is over the pod limit: {figures:?}"
    );
}

/// Entries of directional adds still waiting in the back office count
/// against the carrier's limits: a second add is refused while the first is
/// open (both completed used to leave a CU batch with 11 entries, limit 10),
/// and completing re-checks the limits against the batch as it is then.
#[tokio::test]
async fn pending_directional_entries_count_against_the_limits() {
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let gw = gsl_gateway::Gateway::start(gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens_with_operator(),
    ))
    .await
    .unwrap();
    let u = url(gw.grpc_addr);
    let mut reg = registry(&u).await;
    let entries = |n: usize, from: usize| -> Vec<v1::DirectionalEntry> {
        (from..from + n)
            .map(|i| v1::DirectionalEntry {
                id: format!("E{i}"),
                entry: format!("https://h{i}.example.com"),
                state: v1::EntryState::Effective as i32,
            })
            .collect()
    };
    let batch = |es: Vec<v1::DirectionalEntry>| v1::PurchaseBatch {
        batch_no: "PB-CU-8".into(),
        carrier: v1::Carrier::Cu as i32,
        purchase_type: v1::PurchaseType::NewPurchase as i32,
        directional_data: true,
        entries: es,
        tenant: "acme".into(),
    };
    reg.import_batches(with_token(
        v1::ImportBatchesRequest {
            batches: vec![batch(entries(8, 1))],
        },
        OPERATOR,
    ))
    .await
    .unwrap();
    let add = |key: &str, hosts: &[&str]| v1::SubmitRequest {
        idempotency_key: key.into(),
        operation: Some(v1::Operation {
            kind: Some(v1::operation::Kind::DirectionalAdd(v1::DirectionalAdd {
                entries: hosts.iter().map(|h| format!("https://{h}")).collect(),
            })),
        }),
        batch_no: "PB-CU-8".into(),
        ..Default::default()
    };
    let mut c = orders(&u).await;
    let first = c
        .submit(with_token(
            add("add-1", &["a.example.org", "b.example.org"]),
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.refused, 0, "{first:?}");
    let wo = first.work_order.unwrap().id;
    // The CU adapter files its back-office request (no API for directional).
    let (_, js) = gsl_bus::connect(&gsl_bus::BusConfig::new(nats.url(), "adapter-cu"))
        .await
        .unwrap();
    let bucket = js
        .get_key_value(gsl_bus::names::KV_BACKOFFICE)
        .await
        .unwrap();
    let req = v1::BackOfficeRequest {
        id: gsl_bus::backoffice::request_id("cu", wo, "PB-CU-8"),
        carrier: v1::Carrier::Cu as i32,
        tenant: "acme".into(),
        work_order_id: wo,
        card: "PB-CU-8".into(),
        batch_no: "PB-CU-8".into(),
        kind: v1::BackOfficeKind::NoApi as i32,
        state: v1::BackOfficeState::Open as i32,
        item_index: 0,
        ..Default::default()
    };
    bucket
        .put(req.id.clone(), gsl_bus::codec::encode(&req))
        .await
        .unwrap();
    // 8 in the batch + 2 pending + 2 more: over CU's 10.
    let second = c
        .submit(with_token(
            add("add-2", &["c.example.org", "d.example.org"]),
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.refused, 1, "{second:?}");
    assert_eq!(
        second.refusals[0].problem.as_ref().unwrap().code,
        ErrorCode::DirectionalLimit.code()
    );
    // The operator claims the first; meanwhile the batch fills up from
    // elsewhere: completing it now would break the limit, so it is refused.
    let mut bo = v1::back_office_client::BackOfficeClient::connect(u.clone())
        .await
        .unwrap();
    bo.claim(with_token(
        v1::ClaimBackOfficeRequest {
            id: req.id.clone(),
            operator: "op".into(),
        },
        OPERATOR,
    ))
    .await
    .unwrap();
    let mut b = reg
        .get_batch(with_token(
            v1::GetBatchRequest {
                batch_no: "PB-CU-8".into(),
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    b.entries.extend(entries(1, 9));
    reg.import_batches(with_token(
        v1::ImportBatchesRequest { batches: vec![b] },
        OPERATOR,
    ))
    .await
    .unwrap();
    let e = bo
        .complete(with_token(
            v1::BackOfficeRef { id: req.id.clone() },
            OPERATOR,
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(ErrorCode::DirectionalLimit), "{e:?}");
}
