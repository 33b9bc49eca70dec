//! The card list at fleet size (part of the `cards` group, run on the
//! store the `cards` benchmark filled). Figures:
//!
//! - `cards_list_p99_ms`: p99 over rounds of a fixed mix of searches,
//!   filters, sorts and pages through the gateway (`Registry.ListCards`
//!   over gRPC); baseline: the same queries run by `gsl-cardstore` in this
//!   process straight against PostgreSQL (no gateway, no gRPC), same run.
//! - `cards_list_deep_page_ms`: page 100,000 of 100 (the unfiltered list;
//!   median of rounds), next to page 1.
//! - `cards_export_per_s`: a walk through the cursor, 500 a page, of the
//!   first `BENCH_EXPORT_MAX` cards (default 1,000,000), next to the same
//!   walk through `gsl-cardstore` directly.
//!
//! 1 % of the cards get a month's usage first (written as card sync will
//! write it) so the usage sorts and filters have something to order.

use crate::common::{Kind, Mode, emit, median};
use gsl_cardstore::list::Page;
use gsl_cardstore::{CardStore, StoreConfig};
use gsl_proto::v1;
use serde_json::json;
use std::time::Instant;

type Registry = v1::registry_client::RegistryClient<tonic::transport::Channel>;

fn authed<T>(m: T) -> tonic::Request<T> {
    gsl_testkit::gateway::bearer(crate::cards::TOKEN, m)
}

fn p99(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64) * 0.99).ceil() as usize;
    v.get(i.saturating_sub(1)).copied().unwrap_or(f64::NAN)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// The mix: what a console and scripts ask most (named for the breakdown).
fn mix(cid: &str) -> Vec<(&'static str, v1::ListCardsRequest)> {
    let r = v1::ListCardsRequest::default;
    vec![
        ("first_page", r()),
        (
            "first_page_desc",
            v1::ListCardsRequest {
                order: "desc".into(),
                ..r()
            },
        ),
        (
            "page_50_of_100",
            v1::ListCardsRequest {
                limit: 100,
                offset: 50,
                ..r()
            },
        ),
        (
            "search_cid",
            v1::ListCardsRequest {
                main_search_type: 1,
                main_search_key: cid.into(),
                ..r()
            },
        ),
        (
            "search_batch",
            v1::ListCardsRequest {
                main_search_type: 2,
                main_search_key: "PB-42".into(),
                ..r()
            },
        ),
        (
            "search_batch_page_20",
            v1::ListCardsRequest {
                main_search_type: 2,
                main_search_key: "PB-42".into(),
                offset: 20,
                limit: 50,
                ..r()
            },
        ),
        (
            "status_13",
            v1::ListCardsRequest {
                sim_status: vec![13],
                ..r()
            },
        ),
        (
            "plan_and_attribute",
            v1::ListCardsRequest {
                price_plan_ids: vec!["P3".into()],
                customer_attribute1: Some("north".into()),
                ..r()
            },
        ),
        (
            "expiring_first",
            v1::ListCardsRequest {
                sort: "expire_time".into(),
                ..r()
            },
        ),
        (
            "latest_activated",
            v1::ListCardsRequest {
                sort: "act_date".into(),
                order: "desc".into(),
                ..r()
            },
        ),
        (
            "most_used",
            v1::ListCardsRequest {
                sort: "flow_used".into(),
                order: "desc".into(),
                limit: 50,
                ..r()
            },
        ),
        (
            "least_left_over_100",
            v1::ListCardsRequest {
                sort: "flow_left".into(),
                min_used_flow: Some(100.0),
                ..r()
            },
        ),
        (
            "used_range",
            v1::ListCardsRequest {
                min_used_flow: Some(200.0),
                max_used_flow: Some(210.0),
                ..r()
            },
        ),
    ]
}

async fn via_store(store: &CardStore, r: &v1::ListCardsRequest) -> Result<u64, String> {
    let (q, page) = gsl_gateway::cardlist::query("bench".into(), r).map_err(|e| e.message)?;
    let p = store
        .list_cards(&q, &page)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(p.cards.len() as u64)
}

pub async fn run(mode: &Mode, grpc: &str, db: &str, cards: u32) -> Result<(), String> {
    let (rounds, export_max) = match mode.kind {
        Kind::Smoke => (2, 5_000u32),
        Kind::Full => (
            15,
            std::env::var("BENCH_EXPORT_MAX")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1_000_000),
        ),
    };
    // 1 % of the cards with usage (as card sync will write it).
    let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let t = Instant::now();
    let used = client
        .execute(
            "UPDATE cards SET flow_used_mb = (abs(hashtext(id)) % 500)::float8, flow_used_at = now()
             WHERE tenant = 'bench' AND substr(id, 14, 2) = '07'",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    client
        .batch_execute("VACUUM ANALYZE cards")
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "cards list: usage on {used} cards, vacuum and analyze in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let store = CardStore::connect(db, &StoreConfig::default()).map_err(|e| e.to_string())?;
    let channel = tonic::transport::Endpoint::from_shared(grpc.to_owned())
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut reg: Registry =
        v1::registry_client::RegistryClient::new(channel).max_decoding_message_size(64 << 20);
    // The first unfiltered list builds the anchors (once per membership
    // change): timed on its own.
    let t = Instant::now();
    let first = reg
        .list_cards(authed(v1::ListCardsRequest::default()))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let anchors_ms = ms(t);
    let cid = first
        .sim_cards
        .get(3)
        .map(|c| c.id.clone())
        .unwrap_or_default();

    let queries = mix(&cid);
    let (mut api, mut direct) = (Vec::new(), Vec::new());
    let mut per_query: Vec<Vec<f64>> = vec![Vec::new(); queries.len()];
    for _ in 0..rounds {
        for (i, (_, q)) in queries.iter().enumerate() {
            let t = Instant::now();
            reg.list_cards(authed(q.clone()))
                .await
                .map_err(|e| format!("{}: {e}", queries[i].0))?;
            let d = ms(t);
            api.push(d);
            per_query[i].push(d);
            let t = Instant::now();
            via_store(&store, q).await?;
            direct.push(ms(t));
        }
    }
    let breakdown: serde_json::Map<String, serde_json::Value> = queries
        .iter()
        .zip(&per_query)
        .map(|((name, _), v)| {
            (
                name.to_string(),
                json!((median(v.clone()) * 10.0).round() / 10.0),
            )
        })
        .collect();
    let p99_api = p99(api);
    let p99_direct = p99(direct);
    emit(
        "cards_list_p99_ms",
        p99_api,
        "ms",
        json!({"cards": cards, "queries": queries.len(), "rounds": rounds, "goal": "<= 200", "baseline_store_p99_ms": ((p99_direct * 10.0).round() / 10.0), "median_ms_by_query": breakdown, "anchor_build_ms": anchors_ms.round()}),
    );

    // Page 100,000 of 100 (or the deepest page there is).
    let deep_page = (cards / 100).clamp(1, 100_000);
    let deep = v1::ListCardsRequest {
        limit: 100,
        offset: deep_page,
        ..Default::default()
    };
    let (mut deep_ms, mut first_ms) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let got = reg
            .list_cards(authed(deep.clone()))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        deep_ms.push(ms(t));
        if got.sim_cards.is_empty() {
            return Err(format!("page {deep_page} of 100 came back empty"));
        }
        let t = Instant::now();
        reg.list_cards(authed(v1::ListCardsRequest {
            limit: 100,
            ..Default::default()
        }))
        .await
        .map_err(|e| e.to_string())?;
        first_ms.push(ms(t));
    }
    emit(
        "cards_list_deep_page_ms",
        median(deep_ms),
        "ms",
        json!({"cards": cards, "page": deep_page, "limit": 100, "baseline_first_page_ms": ((median(first_ms) * 10.0).round() / 10.0)}),
    );

    // Export through the cursor: the API, then the store directly.
    let walk_api = async |reg: &mut Registry| -> Result<(u64, f64), String> {
        let t = Instant::now();
        let (mut n, mut token) = (0u64, String::new());
        while n < u64::from(export_max) {
            let r = reg
                .list_cards(authed(v1::ListCardsRequest {
                    limit: 500,
                    page_token: token.clone(),
                    ..Default::default()
                }))
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            n += r.sim_cards.len() as u64;
            if r.next_page_token.is_empty() {
                break;
            }
            token = r.next_page_token;
        }
        Ok((n, t.elapsed().as_secs_f64()))
    };
    let (n_api, s_api) = walk_api(&mut reg).await?;
    let t = Instant::now();
    let (q, _) = gsl_gateway::cardlist::query("bench".into(), &v1::ListCardsRequest::default())
        .map_err(|e| e.message)?;
    let (mut n_direct, mut page) = (
        0u64,
        Page::Number {
            limit: 500,
            number: 1,
        },
    );
    while n_direct < u64::from(export_max) {
        let p = store
            .list_cards(&q, &page)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        n_direct += p.cards.len() as u64;
        if p.next_token.is_empty() {
            break;
        }
        page = Page::After {
            limit: 500,
            token: p.next_token,
        };
    }
    let s_direct = t.elapsed().as_secs_f64();
    emit(
        "cards_export_per_s",
        n_api as f64 / s_api,
        "cards/s",
        json!({"cards": n_api, "page": 500, "baseline_store_per_s": ((n_direct as f64 / s_direct).round()), "fleet": cards}),
    );
    Ok(())
}
