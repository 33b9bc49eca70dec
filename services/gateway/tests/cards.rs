//! The reference card list, card detail and card updates through the API,
//! against a real gateway, NATS and PostgreSQL. Every search, filter and
//! sort is checked against an expectation computed here from the imported
//! cards (not by the store's code), every page of every case by page number
//! and by cursor; paging edges; tenant isolation; updates and their audit.

mod common;

use common::*;
use gsl_domain::ErrorCode;
use gsl_gateway::error::code_of;
use gsl_proto::v1;
use prost_types::Timestamp;
use std::cmp::Ordering;
use tonic::Code;

const OPERATOR: &str = "operator-secret-0001";
const N: u32 = 240;
const STATUSES: [u32; 6] = [10, 11, 13, 14, 20, 30];

fn ts(secs: i64) -> Timestamp {
    Timestamp {
        seconds: secs,
        nanos: 0,
    }
}

/// Card `i` of acme: every field varies with `i` (some left unreported).
fn acme_card(i: u32) -> v1::Card {
    let status = STATUSES[(i % 6) as usize];
    let attrs: Vec<String> = (0..6)
        .map(|a| {
            if (i + a).is_multiple_of(4) {
                String::new()
            } else {
                format!("a{a}-{}", (i + a) % 3)
            }
        })
        .collect();
    v1::Card {
        id: ct_iccid(7, (i * 7919) % 100_000),
        carrier: v1::Carrier::Ct as i32,
        sim_status: status,
        stop_reason: if status == 14 { 5 } else { -1 },
        threshold_mb: -1,
        real_named: i.is_multiple_of(3),
        imei: if i.is_multiple_of(5) {
            String::new()
        } else {
            format!("86{:013}", i % 40)
        },
        batch_no: format!("PB-{}", i % 4),
        msisdn: format!("1410{:09}", i % 50),
        sim_type: 1 + i % 3,
        keep_number: status == 14 && i.is_multiple_of(2),
        act_date: (!i.is_multiple_of(7))
            .then(|| ts(1_700_000_000 + i64::from((i * 37) % 101) * 86_400)),
        expire_time: (!i.is_multiple_of(6))
            .then(|| ts(1_800_000_000 + i64::from((i * 53) % 97) * 86_400)),
        plan_id: format!("P{}", i % 5),
        plan_name: format!("plan {}", i % 5),
        allowance_mb: (!i.is_multiple_of(4)).then(|| f64::from(100 * (1 + i % 3))),
        customer_attributes: attrs,
        ..Default::default()
    }
}

/// Data used by card `i` (some cards not reported).
fn used(i: u32) -> Option<f64> {
    (!i.is_multiple_of(8)).then(|| f64::from((i * 31) % 350) + 0.5)
}

/// A card as the test models it.
#[derive(Clone, Debug)]
struct Model {
    card: v1::Card,
    used: Option<f64>,
}

impl Model {
    fn left(&self) -> Option<f64> {
        Some(self.card.allowance_mb? - self.used?)
    }
    fn attr(&self, a: usize) -> &str {
        self.card
            .customer_attributes
            .get(a)
            .map(String::as_str)
            .unwrap_or("")
    }
}

fn secs(t: &Option<Timestamp>) -> f64 {
    t.as_ref()
        .map(|t| t.seconds as f64)
        .unwrap_or(f64::NEG_INFINITY)
}

/// The expected list for `r`: filter, then sort (a missing figure below
/// every figure, ties by card key).
fn expected(all: &[Model], r: &v1::ListCardsRequest) -> Vec<String> {
    let key = r.main_search_key.as_str();
    let mut v: Vec<&Model> = all
        .iter()
        .filter(|m| {
            let c = &m.card;
            let attrs = [
                &r.customer_attribute1,
                &r.customer_attribute2,
                &r.customer_attribute3,
                &r.customer_attribute4,
                &r.customer_attribute5,
                &r.customer_attribute6,
            ];
            (match r.main_search_type {
                1 => c.id == key,
                2 => c.batch_no == key,
                3 => !c.imei.is_empty() && c.imei == key,
                _ => true,
            }) && (r.msisdn.is_empty() || c.msisdn == r.msisdn)
                && (r.sim_status.is_empty() || r.sim_status.contains(&c.sim_status))
                && r.real_named.is_none_or(|x| c.real_named == x)
                && r.min_used_flow
                    .is_none_or(|x| m.used.is_some_and(|u| u >= x))
                && r.max_used_flow
                    .is_none_or(|x| m.used.is_some_and(|u| u <= x))
                && r.min_left_flow
                    .is_none_or(|x| m.left().is_some_and(|l| l >= x))
                && r.max_left_flow
                    .is_none_or(|x| m.left().is_some_and(|l| l <= x))
                && attrs
                    .iter()
                    .enumerate()
                    .all(|(i, a)| a.as_ref().is_none_or(|a| m.attr(i) == a))
                && (r.order_ids.is_empty() || r.order_ids.contains(&c.batch_no))
                && (r.price_plan_ids.is_empty() || r.price_plan_ids.contains(&c.plan_id))
                && (r.sim_type == 0 || c.sim_type == r.sim_type)
                && (!r.filter_downtime_period || !c.keep_number)
        })
        .collect();
    let value = |m: &Model| -> f64 {
        match r.sort.as_str() {
            "flow_used" => m.used.unwrap_or(f64::NEG_INFINITY),
            "flow_left" => m.left().unwrap_or(f64::NEG_INFINITY),
            "act_date" => secs(&m.card.act_date),
            "expire_time" => secs(&m.card.expire_time),
            _ => 0.0,
        }
    };
    v.sort_by(|a, b| {
        value(a)
            .partial_cmp(&value(b))
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.card.id.as_bytes().cmp(b.card.id.as_bytes()))
    });
    if r.order == "desc" {
        v.reverse();
    }
    v.into_iter().map(|m| m.card.id.clone()).collect()
}

async fn list(
    reg: &mut v1::registry_client::RegistryClient<tonic::transport::Channel>,
    token: &str,
    r: v1::ListCardsRequest,
) -> Result<v1::ListCardsResponse, tonic::Status> {
    reg.list_cards(with_token(r, token))
        .await
        .map(|a| a.into_inner())
}

/// Every page of `r` by page number and by cursor, checked against the
/// model; the count too.
async fn check(
    reg: &mut v1::registry_client::RegistryClient<tonic::transport::Channel>,
    all: &[Model],
    what: &str,
    r: v1::ListCardsRequest,
) {
    let want = expected(all, &r);
    let limit = 10usize;
    let mut by_number = Vec::new();
    for page in 1..=(want.len() / limit + 1) {
        let got = list(
            reg,
            ACME,
            v1::ListCardsRequest {
                limit: limit as u32,
                offset: page as u32,
                ..r.clone()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(got.count, want.len() as u64, "{what}: count");
        assert!(!got.count_estimated, "{what}");
        by_number.extend(got.sim_cards.into_iter().map(|c| c.id));
    }
    assert_eq!(by_number, want, "{what}: pages by number");
    let mut by_cursor = Vec::new();
    let mut token = String::new();
    loop {
        let got = list(
            reg,
            ACME,
            v1::ListCardsRequest {
                limit: 25,
                page_token: token.clone(),
                ..r.clone()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        by_cursor.extend(got.sim_cards.into_iter().map(|c| c.id));
        if got.next_page_token.is_empty() {
            break;
        }
        token = got.next_page_token;
    }
    assert_eq!(by_cursor, want, "{what}: pages by cursor");
}

fn bad_parameter(e: &tonic::Status, param: &str) {
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(code_of(e), Some(ErrorCode::BadParameter), "{e:?}");
    assert!(e.message().contains(param), "{param}: {e:?}");
}

#[tokio::test]
async fn the_card_list_searches_filters_sorts_and_pages_as_the_reference() {
    let nats = gsl_testkit::NatsServer::start().await.unwrap();
    let gw = gsl_gateway::Gateway::start(gsl_gateway::config::GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        tokens().with_operator(Some(OPERATOR.into())),
    ))
    .await
    .unwrap();
    let u = url(gw.grpc_addr);
    let mut reg = registry(&u).await;
    let cards: Vec<v1::Card> = (0..N).map(acme_card).collect();
    let imported = import(&u, ACME, cards.clone()).await;
    assert_eq!(imported.imported, u64::from(N), "{:?}", imported.refused);
    let beta: Vec<v1::Card> = (0..30)
        .map(|i| card(&ct_iccid(8, i), v1::Carrier::Ct, 20))
        .collect();
    assert_eq!(import(&u, BETA, beta.clone()).await.imported, 30);
    // Usage as card sync will record it (straight into the store).
    let store = gsl_cardstore::CardStore::connect(
        &nats.database_url(),
        &gsl_cardstore::StoreConfig::default(),
    )
    .unwrap();
    let usage: Vec<(String, f64)> = (0..N)
        .filter_map(|i| used(i).map(|u| (cards[i as usize].id.clone(), u)))
        .collect();
    store
        .record_usage(&usage, chrono::Utc::now())
        .await
        .unwrap();
    let all: Vec<Model> = (0..N)
        .map(|i| Model {
            card: cards[i as usize].clone(),
            used: used(i),
        })
        .collect();

    let base = v1::ListCardsRequest::default();
    check(&mut reg, &all, "everything", base.clone()).await;
    for sort in ["cid", "flow_used", "flow_left", "act_date", "expire_time"] {
        for order in ["asc", "desc"] {
            let r = v1::ListCardsRequest {
                sort: sort.into(),
                order: order.into(),
                ..base.clone()
            };
            check(&mut reg, &all, &format!("sort {sort} {order}"), r).await;
        }
    }
    let c = &cards[17];
    let cases: Vec<(&str, v1::ListCardsRequest)> = vec![
        (
            "search cid",
            v1::ListCardsRequest {
                main_search_type: 1,
                main_search_key: c.id.clone(),
                ..base.clone()
            },
        ),
        (
            "search batch",
            v1::ListCardsRequest {
                main_search_type: 2,
                main_search_key: "PB-2".into(),
                ..base.clone()
            },
        ),
        (
            "search imei",
            v1::ListCardsRequest {
                main_search_type: 3,
                main_search_key: c.imei.clone(),
                ..base.clone()
            },
        ),
        (
            "msisdn",
            v1::ListCardsRequest {
                msisdn: c.msisdn.clone(),
                ..base.clone()
            },
        ),
        (
            "sim_status",
            v1::ListCardsRequest {
                sim_status: vec![14, 20],
                ..base.clone()
            },
        ),
        (
            "real_named",
            v1::ListCardsRequest {
                real_named: Some(true),
                ..base.clone()
            },
        ),
        (
            "not real_named",
            v1::ListCardsRequest {
                real_named: Some(false),
                ..base.clone()
            },
        ),
        (
            "used range",
            v1::ListCardsRequest {
                min_used_flow: Some(50.0),
                max_used_flow: Some(200.5),
                ..base.clone()
            },
        ),
        (
            "left range",
            v1::ListCardsRequest {
                min_left_flow: Some(-100.0),
                max_left_flow: Some(150.0),
                ..base.clone()
            },
        ),
        (
            "attribute 1",
            v1::ListCardsRequest {
                customer_attribute1: Some("a0-1".into()),
                ..base.clone()
            },
        ),
        (
            "attribute 2",
            v1::ListCardsRequest {
                customer_attribute2: Some("a1-2".into()),
                ..base.clone()
            },
        ),
        (
            "attribute 3",
            v1::ListCardsRequest {
                customer_attribute3: Some("a2-0".into()),
                ..base.clone()
            },
        ),
        (
            "attribute 4",
            v1::ListCardsRequest {
                customer_attribute4: Some("a3-1".into()),
                ..base.clone()
            },
        ),
        (
            "attribute 5",
            v1::ListCardsRequest {
                customer_attribute5: Some("a4-2".into()),
                ..base.clone()
            },
        ),
        (
            "attribute 6",
            v1::ListCardsRequest {
                customer_attribute6: Some("a5-0".into()),
                ..base.clone()
            },
        ),
        (
            "purchase orders",
            v1::ListCardsRequest {
                order_ids: vec!["PB-1".into(), "PB-3".into()],
                ..base.clone()
            },
        ),
        (
            "plans",
            v1::ListCardsRequest {
                price_plan_ids: vec!["P0".into(), "P4".into()],
                ..base.clone()
            },
        ),
        (
            "sim type",
            v1::ListCardsRequest {
                sim_type: 2,
                ..base.clone()
            },
        ),
        (
            "hide stopped to keep the number",
            v1::ListCardsRequest {
                filter_downtime_period: true,
                ..base.clone()
            },
        ),
        (
            "used range, by used data descending",
            v1::ListCardsRequest {
                min_used_flow: Some(50.0),
                sort: "flow_used".into(),
                order: "desc".into(),
                ..base.clone()
            },
        ),
        (
            "left range, by left data",
            v1::ListCardsRequest {
                max_left_flow: Some(120.0),
                sort: "flow_left".into(),
                ..base.clone()
            },
        ),
        (
            "everything at once, by left data descending",
            v1::ListCardsRequest {
                sim_status: vec![10, 13, 20],
                real_named: Some(false),
                order_ids: vec!["PB-1".into(), "PB-2".into()],
                min_used_flow: Some(1.0),
                sort: "flow_left".into(),
                order: "desc".into(),
                ..base.clone()
            },
        ),
    ];
    for (what, r) in cases {
        assert!(
            !expected(&all, &r).is_empty(),
            "{what}: a case that selects nothing proves little"
        );
        check(&mut reg, &all, what, r).await;
    }

    // Paging edges.
    for limit in [9, 501] {
        let e = list(
            &mut reg,
            ACME,
            v1::ListCardsRequest {
                limit,
                ..base.clone()
            },
        )
        .await
        .unwrap_err();
        bad_parameter(&e, "limit");
    }
    let e = list(
        &mut reg,
        ACME,
        v1::ListCardsRequest {
            offset: 1_000_001,
            ..base.clone()
        },
    )
    .await
    .unwrap_err();
    bad_parameter(&e, "offset");
    let past = list(
        &mut reg,
        ACME,
        v1::ListCardsRequest {
            limit: 500,
            offset: 2,
            ..base.clone()
        },
    )
    .await
    .unwrap();
    assert!(past.sim_cards.is_empty());
    assert_eq!(
        past.count,
        u64::from(N),
        "the count stays exact past the end"
    );
    let default = list(&mut reg, ACME, base.clone()).await.unwrap();
    assert_eq!(
        (default.limit, default.offset, default.sim_cards.len()),
        (10, 1, 10)
    );
    for (r, param) in [
        (
            v1::ListCardsRequest {
                sort: "price".into(),
                ..base.clone()
            },
            "sort",
        ),
        (
            v1::ListCardsRequest {
                order: "up".into(),
                ..base.clone()
            },
            "order",
        ),
        (
            v1::ListCardsRequest {
                sim_status: vec![12],
                ..base.clone()
            },
            "sim_status",
        ),
        (
            v1::ListCardsRequest {
                main_search_type: 4,
                main_search_key: "x".into(),
                ..base.clone()
            },
            "main_search_type",
        ),
        (
            v1::ListCardsRequest {
                main_search_type: 1,
                main_search_key: "8986;03".into(),
                ..base.clone()
            },
            "main_search_key",
        ),
        (
            v1::ListCardsRequest {
                sim_type: 4,
                ..base.clone()
            },
            "sim_type",
        ),
        (
            v1::ListCardsRequest {
                price_plan_ids: (0..31).map(|i| i.to_string()).collect(),
                ..base.clone()
            },
            "price_plan_ids",
        ),
        (
            v1::ListCardsRequest {
                min_used_flow: Some(5.0),
                max_used_flow: Some(1.0),
                ..base.clone()
            },
            "min_used_flow",
        ),
        (
            v1::ListCardsRequest {
                customer_attribute3: Some("x".repeat(129)),
                ..base.clone()
            },
            "customer_attribute3",
        ),
        (
            v1::ListCardsRequest {
                page_token: "garbage".into(),
                ..base.clone()
            },
            "page_token",
        ),
    ] {
        let e = list(&mut reg, ACME, r).await.unwrap_err();
        bad_parameter(&e, param);
    }

    // Tenant isolation: beta sees its own cards only, finds none of acme's
    // by any search, and cannot ask for acme's list or detail.
    let theirs = list(
        &mut reg,
        BETA,
        v1::ListCardsRequest {
            limit: 500,
            ..base.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(theirs.count, 30);
    let mut ids: Vec<String> = theirs.sim_cards.iter().map(|c| c.id.clone()).collect();
    ids.sort();
    let mut want: Vec<String> = beta.iter().map(|c| c.id.clone()).collect();
    want.sort();
    assert_eq!(ids, want);
    for r in [
        v1::ListCardsRequest {
            main_search_type: 1,
            main_search_key: c.id.clone(),
            ..base.clone()
        },
        v1::ListCardsRequest {
            main_search_type: 2,
            main_search_key: "PB-2".into(),
            ..base.clone()
        },
        v1::ListCardsRequest {
            msisdn: c.msisdn.clone(),
            ..base.clone()
        },
    ] {
        let got = list(&mut reg, BETA, r).await.unwrap();
        assert_eq!((got.count, got.sim_cards.len()), (0, 0));
    }
    let e = list(
        &mut reg,
        BETA,
        v1::ListCardsRequest {
            tenant: "acme".into(),
            ..base.clone()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(code_of(&e), Some(ErrorCode::PermissionDenied), "{e:?}");
    let acme_token = list(&mut reg, ACME, base.clone())
        .await
        .unwrap()
        .next_page_token;
    let e = list(
        &mut reg,
        BETA,
        v1::ListCardsRequest {
            page_token: acme_token,
            ..base.clone()
        },
    )
    .await
    .unwrap_err();
    bad_parameter(&e, "page_token");
    let unknown = reg
        .get_card(with_token(v1::GetCardRequest { id: ct_iccid(9, 1) }, BETA))
        .await
        .unwrap_err();
    let acmes = reg
        .get_card(with_token(v1::GetCardRequest { id: c.id.clone() }, BETA))
        .await
        .unwrap_err();
    assert_eq!(
        (acmes.code(), acmes.message()),
        (unknown.code(), unknown.message())
    );
    // The operator lists a named tenant's cards.
    let op = list(
        &mut reg,
        OPERATOR,
        v1::ListCardsRequest {
            tenant: "beta".into(),
            ..base.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(op.count, 30);
    let e = list(&mut reg, OPERATOR, base.clone()).await.unwrap_err();
    bad_parameter(&e, "tenant");
}

#[tokio::test]
async fn card_detail_says_where_each_value_came_from_and_updates_are_audited() {
    use futures::StreamExt;
    let env = start().await;
    let u = url(env.gw.grpc_addr);
    let mut reg = registry(&u).await;
    let id = ct_iccid(3, 1);
    let bare = card(&id, v1::Carrier::Ct, 20);
    assert_eq!(import(&u, ACME, vec![bare]).await.imported, 1);
    assert_eq!(
        import(&u, BETA, vec![card(&ct_iccid(3, 2), v1::Carrier::Ct, 20)])
            .await
            .imported,
        1
    );
    let got = reg
        .get_card(with_token(v1::GetCardRequest { id: id.clone() }, ACME))
        .await
        .unwrap()
        .into_inner();
    let source = |c: &v1::Card, f: &str| {
        c.sources
            .iter()
            .find(|s| s.field == f)
            .map(|s| v1::CardSource::try_from(s.source).unwrap())
    };
    assert_eq!(source(&got, "status"), Some(v1::CardSource::Import));
    assert_eq!(source(&got, "usage"), None, "no usage reported yet");
    assert_eq!(got.flow_used_mb, None, "not reported, not zero");
    assert_eq!(got.flow_left_mb, None);
    assert_eq!(got.act_date, None);
    // China Telecom: 2 rebinds a month, from the ledger.
    assert_eq!(got.imei_bind_remain_times, Some(2));
    assert_eq!(source(&got, "rebinds"), Some(v1::CardSource::Ledger));
    let ledger = gsl_domain::cooldown::quota_for(
        gsl_domain::Carrier::Ct,
        gsl_domain::operation::OperationKind::Rebind,
    )
    .unwrap()
    .ledger_key(&id, chrono::Utc::now());
    env.gw
        .core
        .store
        .b
        .quota
        .put(ledger, "[\"item-1\"]".into())
        .await
        .unwrap();

    // Watch the audit trail.
    let js = async_nats::jetstream::new(async_nats::connect(env.nats.url()).await.unwrap());
    let consumer = js
        .get_stream(gsl_bus::names::STREAM_EVENTS)
        .await
        .unwrap()
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: "gsl.evt.acme.0._".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut events = consumer.messages().await.unwrap();

    let answer = reg
        .update_cards(with_token(
            v1::UpdateCardsRequest {
                cards: vec![
                    v1::CardUpdate {
                        id: id.clone(),
                        customer_attributes: vec!["fleet-7".into(), "".into(), "north".into()],
                        plan_name: Some("IoT 500".into()),
                        allowance_mb: Some(500.0),
                        expire_time: Some(ts(1_900_000_000)),
                        ..Default::default()
                    },
                    v1::CardUpdate {
                        id: id.clone(),
                        customer_attributes: vec!["x".repeat(129)],
                        ..Default::default()
                    },
                    v1::CardUpdate {
                        id: ct_iccid(3, 2),
                        customer_attributes: vec!["mine now".into()],
                        ..Default::default()
                    },
                    v1::CardUpdate {
                        id: "8986".into(),
                        ..Default::default()
                    },
                ],
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.updated, 1);
    assert_eq!(answer.refused_total, 3);
    let refused: Vec<(u32, String)> = answer
        .refused
        .iter()
        .map(|r| {
            (
                r.index,
                r.problem
                    .as_ref()
                    .map(|p| p.code.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let bad = ErrorCode::BadParameter.code().to_string();
    assert!(refused.contains(&(1, bad.clone())), "{refused:?}");
    assert!(
        refused.contains(&(2, ErrorCode::CardNotFound.code().to_string())),
        "beta's card: {refused:?}"
    );
    assert!(
        refused.iter().any(|r| r.0 == 3),
        "a bad card id: {refused:?}"
    );
    let got = reg
        .get_card(with_token(v1::GetCardRequest { id: id.clone() }, ACME))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.customer_attributes, vec!["fleet-7", "", "north"]);
    assert_eq!(got.plan_name, "IoT 500");
    assert_eq!(got.allowance_mb, Some(500.0));
    assert_eq!(source(&got, "attributes"), Some(v1::CardSource::Customer));
    assert_eq!(source(&got, "plan"), Some(v1::CardSource::Customer));
    assert_eq!(source(&got, "status"), Some(v1::CardSource::Import));
    assert_eq!(
        got.imei_bind_remain_times,
        Some(1),
        "one rebind reserved this month"
    );
    let beta_card = reg
        .get_card(with_token(v1::GetCardRequest { id: ct_iccid(3, 2) }, BETA))
        .await
        .unwrap()
        .into_inner();
    assert!(
        beta_card.customer_attributes.is_empty(),
        "acme changed beta's card"
    );
    let ev = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
        .await
        .expect("the update is audited")
        .unwrap()
        .unwrap();
    let ev: v1::WorkOrderEvent = prost::Message::decode(ev.payload.as_ref()).unwrap();
    let Some(v1::work_order_event::Event::CardsUpdated(u)) = ev.event else {
        panic!("{ev:?}");
    };
    assert_eq!(
        (u.event.as_str(), u.resource.as_str(), u.cards),
        ("updateSimCards", "sim-card", 1)
    );
    assert_eq!(u.sample, vec![id.clone()]);
    assert!(u.fields.contains(&"customer_attribute1".to_string()));
    assert!(u.fields.contains(&"allowance_mb".to_string()));
}

/// `BatchUsage` as another tenant would try it: a card of beta's, asked
/// for by acme, is "not found" like a card nobody holds, and none of its
/// figures shows; acme's own card answers its figures, carrier and derived
/// told apart, and a day without one answers none.
#[tokio::test]
async fn batch_usage_answers_only_the_callers_cards() {
    let Env { nats, gw } = start().await;
    let u = url(gw.grpc_addr);
    let mine = ct_iccid(9, 1);
    let theirs = ct_iccid(9, 2);
    let nobodys = ct_iccid(9, 3);
    import(&u, ACME, vec![card(&mine, v1::Carrier::Ct, 20)]).await;
    import(&u, BETA, vec![card(&theirs, v1::Carrier::Ct, 20)]).await;
    let store = gsl_cardstore::CardStore::connect(
        &nats.database_url(),
        &gsl_cardstore::StoreConfig::default(),
    )
    .unwrap();
    let today = gsl_domain::calendar::cst_date(chrono::Utc::now());
    let day = today.pred_opt().unwrap();
    let row = |id: &str, mb| gsl_cardstore::usage::DayRow {
        id: id.into(),
        day,
        mb,
    };
    store
        .record_daily(&[row(&mine, 4.5), row(&theirs, 9.0)])
        .await
        .unwrap();
    let date = day.format("%Y%m%d").to_string();
    let r = registry(&u)
        .await
        .batch_usage(with_token(
            v1::BatchUsageRequest {
                date: date.clone(),
                cards: vec![theirs.clone(), mine.clone(), nobodys.clone()],
                ..Default::default()
            },
            ACME,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.days.len(), 1);
    assert_eq!(
        r.days[0].sim_flow,
        vec![v1::CardFlow {
            iccid: mine.clone(),
            sim_card_id: mine.clone(),
            flow: Some(4.5),
            derived: false,
        }],
        "only the caller's card, with its carrier figure"
    );
    let refused: Vec<(u32, String, String)> = r
        .refused
        .iter()
        .map(|f| {
            let p = f.problem.as_ref().unwrap();
            (f.index, f.card.clone(), p.code.clone() + ": " + &p.message)
        })
        .collect();
    let not_found = format!("{}: card not found", ErrorCode::CardNotFound.code());
    assert_eq!(
        refused,
        vec![(0, theirs, not_found.clone()), (2, nobodys, not_found)],
        "another tenant's card looks like nobody's"
    );
    // Over the card limit: refused whole, before any look-up.
    let many: Vec<String> = (0..501).map(|i| ct_iccid(10, i)).collect();
    let e = registry(&u)
        .await
        .batch_usage(with_token(
            v1::BatchUsageRequest {
                date,
                cards: many,
                ..Default::default()
            },
            ACME,
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(ErrorCode::BatchTooLarge), "{e:?}");
}
