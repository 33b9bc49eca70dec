//! The card list's paging against a real PostgreSQL: page numbers through
//! the anchors agree with a plain scan at every depth and in both
//! directions, stay right after imports that add or move cards, and the
//! cursor walks a fleet exactly once. (Every search, filter and sort is
//! tried through the API in the gateway's `tests/cards.rs`.)

use gsl_cardstore::list::{ANCHOR_EVERY, CardQuery, ListRefused, MAX_SKIP, Page, Sort};
use gsl_cardstore::{CardStore, Claim, StoreConfig};
use gsl_proto::v1;

async fn store() -> CardStore {
    let s = CardStore::connect(&gsl_testkit::pg::fresh_database(), &StoreConfig::default())
        .expect("pool");
    s.migrate(None).await.expect("migrate");
    s
}

fn card(id: String) -> v1::Card {
    v1::Card {
        id,
        carrier: v1::Carrier::Ct as i32,
        sim_status: 20,
        stop_reason: -1,
        threshold_mb: -1,
        ..Default::default()
    }
}

/// Keys in a mixed order (so key order is not import order).
fn keys(n: usize, salt: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("K{:09}", (i * 7919 + salt) % 1_000_000_007))
        .collect()
}

fn all(tenant: &str) -> CardQuery {
    CardQuery {
        tenant: tenant.into(),
        ..Default::default()
    }
}

async fn page(s: &CardStore, q: &CardQuery, limit: i64, number: i64) -> Vec<String> {
    s.list_cards(q, &Page::Number { limit, number })
        .await
        .unwrap()
        .unwrap()
        .cards
        .into_iter()
        .map(|c| c.id)
        .collect()
}

#[tokio::test]
async fn deep_pages_through_anchors_match_a_scan_in_both_directions() {
    let s = store().await;
    let n = (2 * ANCHOR_EVERY + 1234) as usize;
    let cards: Vec<v1::Card> = keys(n, 3).into_iter().map(card).collect();
    s.import("acme", &cards, Claim::NewOrOwn).await.unwrap();
    s.import("beta", &[card("K-beta".into())], Claim::NewOrOwn)
        .await
        .unwrap();
    let mut expected: Vec<String> = cards.iter().map(|c| c.id.clone()).collect();
    expected.sort();
    let q = all("acme");
    let first = s
        .list_cards(
            &q,
            &Page::Number {
                limit: 10,
                number: 1,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.count, n as u64);
    assert!(!first.count_estimated);
    // Pages around and across every anchor, and the last (partial) page.
    let limit = 100;
    let last_page = (n as i64 + limit - 1) / limit;
    for number in [1, 2, 100, 101, 199, 200, 201, 212, last_page, last_page + 1] {
        let from = ((number - 1) * limit) as usize;
        let want: Vec<String> = expected
            .iter()
            .skip(from)
            .take(limit as usize)
            .cloned()
            .collect();
        assert_eq!(page(&s, &q, limit, number).await, want, "asc page {number}");
        let desc = CardQuery {
            desc: true,
            ..all("acme")
        };
        let want: Vec<String> = expected
            .iter()
            .rev()
            .skip(from)
            .take(limit as usize)
            .cloned()
            .collect();
        assert_eq!(
            page(&s, &desc, limit, number).await,
            want,
            "desc page {number}"
        );
    }
    // New cards (and the operator moving one away) make the anchors
    // stale: the same pages follow the new membership.
    let more: Vec<v1::Card> = keys(777, 11).into_iter().map(card).collect();
    s.import("acme", &more, Claim::NewOrOwn).await.unwrap();
    s.import("beta", &[card(expected[5].clone())], Claim::Any)
        .await
        .unwrap();
    let mut now: Vec<String> = expected
        .iter()
        .chain(more.iter().map(|c| &c.id))
        .cloned()
        .collect();
    now.retain(|k| *k != expected[5]);
    now.sort();
    now.dedup();
    for number in [1, 150, 205] {
        let from = ((number - 1) * limit) as usize;
        let want: Vec<String> = now
            .iter()
            .skip(from)
            .take(limit as usize)
            .cloned()
            .collect();
        assert_eq!(
            page(&s, &q, limit, number).await,
            want,
            "after import, page {number}"
        );
    }
    let counted = s
        .list_cards(
            &q,
            &Page::Number {
                limit: 10,
                number: 1,
            },
        )
        .await
        .unwrap()
        .unwrap()
        .count;
    assert_eq!(counted, now.len() as u64);
    let beta = s
        .list_cards(
            &all("beta"),
            &Page::Number {
                limit: 10,
                number: 1,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(beta.count, 2, "beta holds its card and the one moved to it");
}

#[tokio::test]
async fn the_cursor_walks_a_fleet_once_and_belongs_to_its_query() {
    let s = store().await;
    let cards: Vec<v1::Card> = keys(2_345, 5).into_iter().map(card).collect();
    s.import("acme", &cards, Claim::NewOrOwn).await.unwrap();
    // Usage on some cards, ties on others: the walk by used data is exact.
    let usage: Vec<(String, f64)> = cards
        .iter()
        .enumerate()
        .filter(|(i, _)| !i.is_multiple_of(3))
        .map(|(i, c)| (c.id.clone(), (i % 17) as f64))
        .collect();
    s.record_usage(&usage, chrono::Utc::now()).await.unwrap();
    for (sort, desc) in [
        (Sort::Cid, false),
        (Sort::FlowUsed, true),
        (Sort::FlowUsed, false),
    ] {
        let q = CardQuery {
            sort,
            desc,
            ..all("acme")
        };
        let mut seen = Vec::new();
        let mut p = Page::Number {
            limit: 500,
            number: 1,
        };
        loop {
            let got = s.list_cards(&q, &p).await.unwrap().unwrap();
            seen.extend(
                got.cards
                    .iter()
                    .map(|c| (c.flow_used_mb.unwrap_or(f64::NEG_INFINITY), c.id.clone())),
            );
            if got.next_token.is_empty() {
                break;
            }
            p = Page::After {
                limit: 500,
                token: got.next_token,
            };
        }
        assert_eq!(seen.len(), cards.len(), "{sort:?} {desc}: every card once");
        let mut want = seen.clone();
        if sort == Sort::Cid {
            want.sort_by(|a, b| a.1.cmp(&b.1));
        } else {
            want.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        }
        if desc {
            want.reverse();
        }
        assert!(seen == want, "{sort:?} {desc}: out of order");
    }
    // A cursor of one query is refused by another (and by another tenant).
    let q = all("acme");
    let token = s
        .list_cards(
            &q,
            &Page::Number {
                limit: 10,
                number: 1,
            },
        )
        .await
        .unwrap()
        .unwrap()
        .next_token;
    let other = CardQuery {
        sim_status: vec![20],
        ..all("acme")
    };
    for q in [other, all("beta")] {
        let r = s
            .list_cards(
                &q,
                &Page::After {
                    limit: 10,
                    token: token.clone(),
                },
            )
            .await
            .unwrap();
        assert_eq!(r.unwrap_err(), ListRefused::BadToken);
    }
    let r = s
        .list_cards(
            &q,
            &Page::After {
                limit: 10,
                token: "not-a-cursor".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.unwrap_err(), ListRefused::BadToken);
    // A filtered list is paged by number only down to MAX_SKIP.
    let filtered = CardQuery {
        sim_status: vec![20],
        ..all("acme")
    };
    let deep = MAX_SKIP / 10 + 2;
    let r = s
        .list_cards(
            &filtered,
            &Page::Number {
                limit: 10,
                number: deep,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.unwrap_err(), ListRefused::TooDeep);
}

#[tokio::test]
async fn a_filtered_count_past_the_exact_limit_is_an_estimate_and_says_so() {
    use gsl_cardstore::list::EXACT_COUNT_MAX;
    let s = store().await;
    let n = EXACT_COUNT_MAX as usize + 500;
    let cards: Vec<v1::Card> = keys(n, 1).into_iter().map(card).collect();
    s.import("acme", &cards, Claim::NewOrOwn).await.unwrap();
    let matching_all = CardQuery {
        sim_status: vec![20],
        ..all("acme")
    };
    let p = s
        .list_cards(
            &matching_all,
            &Page::Number {
                limit: 10,
                number: 1,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(p.count_estimated);
    assert!(
        p.count > EXACT_COUNT_MAX as u64 && p.count < 2 * n as u64,
        "an estimate near {n}: {}",
        p.count
    );
    // Unfiltered: exact, from the anchors.
    let p = s
        .list_cards(
            &all("acme"),
            &Page::Number {
                limit: 10,
                number: 1,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p.count, p.count_estimated), (n as u64, false));
    // A small match is exact.
    let none = CardQuery {
        sim_status: vec![14],
        ..all("acme")
    };
    let p = s
        .list_cards(
            &none,
            &Page::Number {
                limit: 10,
                number: 1,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p.count, p.count_estimated), (0, false));
}

#[tokio::test]
async fn lists_at_once_after_an_import_all_answer_and_agree() {
    let s = store().await;
    let cards: Vec<v1::Card> = keys(30_000, 9).into_iter().map(card).collect();
    s.import("acme", &cards, Claim::NewOrOwn).await.unwrap();
    for round in 0..3 {
        // Each round makes the anchors stale, then asks eight times at once.
        let more: Vec<v1::Card> = keys(100, 100 + round).into_iter().map(card).collect();
        s.import("acme", &more, Claim::NewOrOwn).await.unwrap();
        let q = all("acme");
        let asks = (0..8).map(|i| {
            let (s, q) = (s.clone(), q.clone());
            async move {
                s.list_cards(
                    &q,
                    &Page::Number {
                        limit: 100,
                        number: 1 + i * 37,
                    },
                )
                .await
            }
        });
        let answers = futures::future::join_all(asks).await;
        let counts: Vec<u64> = answers
            .into_iter()
            .map(|a| a.expect("no list fails").expect("served").count)
            .collect();
        assert!(counts.windows(2).all(|w| w[0] == w[1]), "{counts:?}");
    }
}
