//! The card store against a real PostgreSQL (one server per test binary,
//! a fresh database per test): every query the services use.

use chrono::{Duration, Utc};
use gsl_cardstore::cards::Change;
use gsl_cardstore::orders::{IndexEntry, OrderFilter, OrderRow};
use gsl_cardstore::{CardStore, Claim, StoreConfig, StoreError};
use gsl_proto::v1;

async fn store() -> CardStore {
    let s = CardStore::connect(&gsl_testkit::pg::fresh_database(), &StoreConfig::default())
        .expect("pool");
    s.migrate(None).await.expect("migrate");
    s
}

fn card(id: &str, status: u32) -> v1::Card {
    v1::Card {
        id: id.into(),
        carrier: v1::Carrier::Ct as i32,
        sim_status: status,
        stop_reason: -1,
        threshold_mb: -1,
        msisdn: format!("m{id}"),
        access_number: format!("a{id}"),
        ..Default::default()
    }
}

fn ids(n: usize, from: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("C{i:08}")).collect()
}

#[tokio::test]
async fn migrations_apply_once_and_the_schema_check_follows_them() {
    let url = gsl_testkit::pg::fresh_database();
    let s = CardStore::connect(&url, &StoreConfig::default()).unwrap();
    assert_eq!(s.schema_version().await.unwrap(), 0);
    assert!(matches!(
        s.check_schema().await,
        Err(StoreError::Schema { found: 0, .. })
    ));
    assert_eq!(s.migrate(None).await.unwrap(), vec![1, 2, 3, 4]);
    assert_eq!(
        s.migrate(None).await.unwrap(),
        Vec::<i32>::new(),
        "idempotent"
    );
    s.check_schema().await.unwrap();
    // Two migrate runs at once: the lock keeps them apart, both succeed.
    let url2 = gsl_testkit::pg::fresh_database();
    let a = CardStore::connect(&url2, &StoreConfig::default()).unwrap();
    let b = a.clone();
    let (x, y) = tokio::join!(a.migrate(None), b.migrate(None));
    let mut applied = x.unwrap();
    applied.extend(y.unwrap());
    // Either run may apply either migration; each is applied once.
    applied.sort_unstable();
    assert_eq!(applied, vec![1, 2, 3, 4], "applied exactly once");
}

/// The service role `migrate` grants to can read and write the tables and
/// stage an import, and nothing else: it cannot change the schema.
#[tokio::test]
async fn the_service_role_reads_and_writes_and_changes_no_schema() {
    let pg = gsl_testkit::pg::shared();
    let db = pg.create_database_named().unwrap();
    let role = format!("app_{db}");
    pg.psql(
        &db,
        &format!("CREATE ROLE {role} LOGIN; REVOKE ALL ON DATABASE {db} FROM PUBLIC; REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
    )
    .unwrap();
    let owner = CardStore::connect(&pg.url(&db), &StoreConfig::default()).unwrap();
    owner.migrate(Some(&role)).await.unwrap();
    let app = CardStore::connect(&pg.url_as(&role, &db), &StoreConfig::default()).unwrap();
    app.check_schema().await.unwrap();
    let taken = app
        .import("acme", &[card("P1", 20)], Claim::NewOrOwn)
        .await
        .expect("import as the service role");
    assert_eq!(taken, vec!["P1".to_string()]);
    assert_eq!(app.lookup("acme", &["P1"]).await.unwrap().len(), 1);
    // What the role may not do.
    let (client, conn) = tokio_postgres::connect(&pg.url_as(&role, &db), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for ddl in [
        "CREATE TABLE sneaky (x int)",
        "DROP TABLE cards",
        "ALTER TABLE cards ADD COLUMN x int",
        "DELETE FROM gsl_schema",
    ] {
        let e = client.batch_execute(ddl).await.expect_err(ddl);
        assert_eq!(
            e.as_db_error().map(|d| d.code().code()),
            Some("42501"),
            "{ddl}: {e:?}"
        );
    }
    // And a role nobody granted anything cannot read the cards at all.
    pg.psql(&db, "CREATE ROLE outsider LOGIN").ok();
    let outsider =
        CardStore::connect(&pg.url_as("outsider", &db), &StoreConfig::default()).unwrap();
    assert!(outsider.lookup("acme", &["P1"]).await.is_err());
}

#[tokio::test]
async fn a_bad_url_or_a_dead_server_is_a_typed_error_that_shows_no_password() {
    assert!(matches!(
        CardStore::connect("not a url at all", &StoreConfig::default()),
        Err(StoreError::BadUrl(_))
    ));
    let port = gsl_testkit::free_port().unwrap();
    let s = CardStore::connect(
        &format!("postgres://gsl:hunter2-secret@127.0.0.1:{port}/x"),
        &StoreConfig {
            pool_size: 1,
            wait: std::time::Duration::from_millis(500),
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let e = s.ping().await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    assert!(!format!("{e} {e:?} {s:?}").contains("hunter2"));
}

#[tokio::test]
async fn lookups_are_per_tenant_and_set_based() {
    let s = store().await;
    let a = ids(25_000, 0);
    let cards: Vec<v1::Card> = a.iter().map(|i| card(i, 20)).collect();
    let taken = s.import("acme", &cards, Claim::NewOrOwn).await.unwrap();
    assert_eq!(taken.len(), 25_000);
    let other = s
        .import("globex", &[card("G1", 14)], Claim::NewOrOwn)
        .await
        .unwrap();
    assert_eq!(other, vec!["G1".to_string()]);
    // 25,000 keys (three slices), one unknown, one of another tenant.
    let mut keys: Vec<&str> = a.iter().map(String::as_str).collect();
    keys.push("NOPE");
    keys.push("G1");
    let found = s.lookup("acme", &keys).await.unwrap();
    assert_eq!(found.len(), 25_000);
    let c = &found["C00012345"];
    assert_eq!(c.sim_status, 20);
    assert_eq!(c.carrier, v1::Carrier::Ct as i32);
    assert_eq!(c.msisdn, "mC00012345");
    assert_eq!(c.access_number, "aC00012345");
    assert!(
        !found.contains_key("G1"),
        "another tenant's card is not found"
    );
    assert_eq!(s.lookup("globex", &["G1"]).await.unwrap().len(), 1);
    assert!(s.lookup("acme", &[]).await.unwrap().is_empty());
    assert_eq!(s.count_cards().await.unwrap(), 25_001);
    let one = s.card("acme", "C00000007").await.unwrap().expect("card");
    assert_eq!(one.tenant, "acme");
    assert_eq!(one.threshold_mb, -1);
    assert!(one.updated_at.is_some());
    assert!(s.card("globex", "C00000007").await.unwrap().is_none());
}

/// Both ways of reading a slice give exactly the asked cards: neighbours
/// read by a range are not returned, scattered keys (a range too full)
/// are looked up one by one, another tenant's cards in between never show.
#[tokio::test]
async fn lookups_return_exactly_the_asked_cards_dense_or_scattered() {
    let s = store().await;
    let all = ids(30_000, 0);
    // Every third card is another tenant's.
    let (mine, theirs): (Vec<_>, Vec<_>) = all.iter().enumerate().partition(|(i, _)| i % 3 != 0);
    let mine: Vec<v1::Card> = mine.iter().map(|(_, k)| card(k, 20)).collect();
    let theirs: Vec<v1::Card> = theirs.iter().map(|(_, k)| card(k, 20)).collect();
    s.import("acme", &mine, Claim::NewOrOwn).await.unwrap();
    s.import("globex", &theirs, Claim::NewOrOwn).await.unwrap();
    let check = |asked: Vec<&str>, found: std::collections::HashMap<String, v1::CardSnapshot>| {
        let want: std::collections::BTreeSet<&str> = asked
            .iter()
            .copied()
            .filter(|k| mine.iter().any(|c| c.id == *k))
            .collect();
        let got: std::collections::BTreeSet<&str> = found.keys().map(String::as_str).collect();
        assert_eq!(got, want);
    };
    // Dense: a run of neighbours (the range path), asked in reverse order,
    // one key twice.
    let mut dense: Vec<&str> = all[1000..13_000].iter().map(String::as_str).rev().collect();
    dense.push(all[1001].as_str());
    check(dense.clone(), s.lookup("acme", &dense).await.unwrap());
    // Scattered: every 13th card of the whole fleet (each slice's range
    // holds far more than twice its keys: the key-by-key path).
    let scattered: Vec<&str> = all.iter().step_by(13).map(String::as_str).collect();
    check(
        scattered.clone(),
        s.lookup("acme", &scattered).await.unwrap(),
    );
    // Mixed, with unknown keys at both ends.
    let mut mixed: Vec<&str> = all[20_000..20_500].iter().map(String::as_str).collect();
    mixed.extend(all.iter().step_by(997).map(String::as_str));
    mixed.extend(["A-unknown", "Z-unknown"]);
    check(mixed.clone(), s.lookup("acme", &mixed).await.unwrap());
}

#[tokio::test]
async fn claims_follow_the_authority() {
    let s = store().await;
    s.import("acme", &[card("A1", 20), card("A2", 20)], Claim::NewOrOwn)
        .await
        .unwrap();
    // Another tenant cannot take them, nor register them as its own.
    let t = s
        .import("globex", &[card("A1", 14), card("B1", 20)], Claim::NewOrOwn)
        .await
        .unwrap();
    assert_eq!(t, vec!["B1".to_string()]);
    assert_eq!(s.card("acme", "A1").await.unwrap().unwrap().sim_status, 20);
    // Own-only: updates its own cards, registers nothing new.
    let t = s
        .import("acme", &[card("A2", 14), card("A9", 20)], Claim::OwnOnly)
        .await
        .unwrap();
    assert_eq!(t, vec!["A2".to_string()]);
    assert_eq!(s.card("acme", "A2").await.unwrap().unwrap().sim_status, 14);
    assert!(s.card("acme", "A9").await.unwrap().is_none());
    // The operator assigns whoever held it.
    let t = s
        .import("globex", &[card("A1", 20)], Claim::Any)
        .await
        .unwrap();
    assert_eq!(t, vec!["A1".to_string()]);
    assert!(s.card("acme", "A1").await.unwrap().is_none());
    assert!(s.card("globex", "A1").await.unwrap().is_some());
    // A card named twice is stored as its last mention.
    let t = s
        .import("acme", &[card("D1", 20), card("D1", 11)], Claim::NewOrOwn)
        .await
        .unwrap();
    assert_eq!(t, vec!["D1".to_string()]);
    assert_eq!(s.card("acme", "D1").await.unwrap().unwrap().sim_status, 11);
}

#[tokio::test]
async fn two_tenants_racing_for_the_same_cards_never_both_win() {
    let s = store().await;
    let shared = ids(2_000, 500_000);
    let cards: Vec<v1::Card> = shared.iter().map(|i| card(i, 20)).collect();
    for round in 0..5 {
        let ids_round: Vec<v1::Card> = cards
            .iter()
            .map(|c| v1::Card {
                id: format!("{}-{round}", c.id),
                ..c.clone()
            })
            .collect();
        let (a, b) = tokio::join!(
            s.import("acme", &ids_round, Claim::NewOrOwn),
            s.import("globex", &ids_round, Claim::NewOrOwn)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.len() + b.len(), 2_000, "every card taken exactly once");
        let a: std::collections::HashSet<_> = a.into_iter().collect();
        assert!(b.iter().all(|k| !a.contains(k)), "no card taken twice");
    }
}

#[tokio::test]
async fn outcomes_are_newest_wins() {
    let s = store().await;
    s.import("acme", &[card("X1", 20)], Claim::NewOrOwn)
        .await
        .unwrap();
    let now = Utc::now();
    let stop = Change::Status {
        sim_status: 14,
        stop_reason: Some(5),
    };
    assert!(
        s.apply("X1", &stop, now + Duration::seconds(5))
            .await
            .unwrap()
    );
    // An older resume, arriving late, changes nothing.
    let resume = Change::Status {
        sim_status: 20,
        stop_reason: Some(-1),
    };
    assert!(
        !s.apply("X1", &resume, now + Duration::seconds(1))
            .await
            .unwrap()
    );
    let c = s.card("acme", "X1").await.unwrap().unwrap();
    assert_eq!((c.sim_status, c.stop_reason), (14, 5));
    // The same report again applies (same time) and leaves the same card.
    assert!(
        s.apply("X1", &stop, now + Duration::seconds(5))
            .await
            .unwrap()
    );
    // Every kind of change.
    let t = now + Duration::seconds(10);
    s.apply("X1", &Change::SpeedKbps(512), t).await.unwrap();
    s.apply("X1", &Change::ThresholdMb(2048), t).await.unwrap();
    s.apply("X1", &Change::ActiveProfile(v1::Carrier::Cu as i32), t)
        .await
        .unwrap();
    assert_eq!(
        s.card("acme", "X1").await.unwrap().unwrap().cut_net_flag,
        None,
        "not reported before any cutoff"
    );
    s.apply("X1", &Change::CutNet(true), t).await.unwrap();
    let c = s.card("acme", "X1").await.unwrap().unwrap();
    assert_eq!(c.speed_kbps, 512);
    assert_eq!(c.threshold_mb, 2048);
    assert_eq!(c.active_profile, v1::Carrier::Cu as i32);
    assert_eq!(c.cut_net_flag, Some(true));
    // Where each value came from: the changes above from an order, at
    // their time; the rest from the import.
    let from = |f: &str| {
        c.sources
            .iter()
            .find(|x| x.field == f)
            .map(|x| (x.source, x.at.as_ref().map(|a| a.seconds)))
    };
    let at = Some(t.timestamp());
    for f in ["speed", "threshold", "profile", "network"] {
        assert_eq!(from(f), Some((v1::CardSource::Order as i32, at)), "{f}");
    }
    assert_eq!(
        from("numbers").map(|x| x.0),
        Some(v1::CardSource::Import as i32)
    );
    // A rebind resumes only a card of the named carrier.
    let rebind = Change::Imei {
        imei: "861234567890123".into(),
        resumes_on: Some(v1::Carrier::Cmcc as i32),
    };
    s.apply("X1", &rebind, t).await.unwrap();
    let c = s.card("acme", "X1").await.unwrap().unwrap();
    assert_eq!(c.imei, "861234567890123");
    assert_eq!(c.sim_status, 14, "a CT card stays stopped");
    let mut m = card("M1", 14);
    m.carrier = v1::Carrier::Cmcc as i32;
    s.import("acme", &[m], Claim::NewOrOwn).await.unwrap();
    s.apply("M1", &rebind, t + Duration::seconds(60))
        .await
        .unwrap();
    let c = s.card("acme", "M1").await.unwrap().unwrap();
    assert_eq!((c.sim_status, c.stop_reason), (20, -1));
    assert!(!s.apply("NOPE", &stop, t).await.unwrap(), "unknown card");
}

#[tokio::test]
async fn batches_are_claimed_like_cards_and_changed_under_a_lock() {
    let s = store().await;
    let b = |tenant: &str| v1::PurchaseBatch {
        batch_no: "B-1".into(),
        tenant: tenant.into(),
        carrier: v1::Carrier::Ct as i32,
        ..Default::default()
    };
    assert!(!s.claim_batch(&b("acme"), Claim::OwnOnly).await.unwrap());
    assert!(s.claim_batch(&b("acme"), Claim::NewOrOwn).await.unwrap());
    assert!(!s.claim_batch(&b("globex"), Claim::NewOrOwn).await.unwrap());
    assert!(s.claim_batch(&b("acme"), Claim::OwnOnly).await.unwrap());
    assert_eq!(s.batch("B-1").await.unwrap().unwrap().tenant, "acme");
    // 50 concurrent additions: none lost.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.update_batch("B-1", |b| {
                b.entries.push(v1::DirectionalEntry {
                    id: format!("E{i}"),
                    entry: format!("h{i}.example"),
                    state: v1::EntryState::Effective as i32,
                });
                true
            })
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(s.batch("B-1").await.unwrap().unwrap().entries.len(), 50);
    assert!(
        !s.update_batch("B-1", |_| false).await.unwrap(),
        "no change"
    );
    assert!(!s.update_batch("NOPE", |_| true).await.unwrap(), "no batch");
    assert!(s.claim_batch(&b("globex"), Claim::Any).await.unwrap());
    assert_eq!(s.batch("B-1").await.unwrap().unwrap().tenant, "globex");
}

#[tokio::test]
async fn the_order_index_filters_pages_and_lets_the_newest_revision_win() {
    let s = store().await;
    let t0 = Utc::now() - Duration::hours(1);
    let row = |id: u64, tenant: &str, status: i32, kind: i32, carriers: Vec<i32>| OrderRow {
        id,
        tenant: tenant.into(),
        kind,
        carriers,
        status,
        created_at: t0 + Duration::seconds(id as i64),
        fanout_done: id.is_multiple_of(2),
    };
    for id in 1..=30u64 {
        let status = if id <= 10 { 3 } else { 4 };
        let kind = if id % 3 == 0 { 2 } else { 1 };
        s.index_order(&row(id, "acme", status, kind, vec![1, 2]), id * 10)
            .await
            .unwrap();
    }
    s.index_order(&row(31, "globex", 3, 1, vec![3]), 310)
        .await
        .unwrap();
    let f = |limit| OrderFilter {
        tenant: "acme".into(),
        limit,
        ..Default::default()
    };
    assert_eq!(s.newest_orders(&f(3)).await.unwrap(), vec![30, 29, 28]);
    let page2 = OrderFilter {
        below: Some(28),
        ..f(3)
    };
    assert_eq!(s.newest_orders(&page2).await.unwrap(), vec![27, 26, 25]);
    let processing = OrderFilter {
        status: Some(3),
        ..f(100)
    };
    assert_eq!(s.newest_orders(&processing).await.unwrap().len(), 10);
    let kind2 = OrderFilter {
        kind: Some(2),
        ..f(100)
    };
    assert_eq!(s.newest_orders(&kind2).await.unwrap().len(), 10);
    let carrier3 = OrderFilter {
        carrier: Some(3),
        ..f(100)
    };
    assert!(s.newest_orders(&carrier3).await.unwrap().is_empty());
    let window = OrderFilter {
        created_after: Some(t0 + Duration::seconds(5)),
        created_before: Some(t0 + Duration::seconds(8)),
        ..f(100)
    };
    assert_eq!(s.newest_orders(&window).await.unwrap(), vec![7, 6, 5]);
    let some = OrderFilter {
        ids: Some(vec![2, 4, 31]),
        ..f(100)
    };
    assert_eq!(s.newest_orders(&some).await.unwrap(), vec![4, 2]);
    assert_eq!(s.count_orders("acme", &[1, 2, 3]).await.unwrap(), 10);
    assert_eq!(s.count_orders("globex", &[3]).await.unwrap(), 1);
    // An older revision never overwrites; a newer one does; a note
    // (revision 0) never overwrites anything.
    s.index_order(&row(5, "acme", 6, 1, vec![1]), 1)
        .await
        .unwrap();
    s.index_order(&row(5, "acme", 6, 1, vec![1]), 0)
        .await
        .unwrap();
    assert_eq!(s.count_orders("acme", &[6]).await.unwrap(), 0);
    s.index_order(&row(5, "acme", 6, 1, vec![1]), 51)
        .await
        .unwrap();
    assert_eq!(s.count_orders("acme", &[6]).await.unwrap(), 1);
    // Unfinished fan-outs: odd ids, processing, created before the cut.
    let open = s
        .unfinished_fanouts(3, t0 + Duration::seconds(8))
        .await
        .unwrap();
    assert_eq!(open, vec![1, 3, 7]);
    // A removal older than the recorded revision changes nothing.
    s.index_orders(&[IndexEntry::Remove(7, 69)], 69)
        .await
        .unwrap();
    assert!(s.newest_orders(&some).await.unwrap().contains(&4));
    // A run: a newer removal, an older put (ignored), a newer put.
    s.index_orders(
        &[
            IndexEntry::Remove(7, 71),
            IndexEntry::Put(row(5, "acme", 3, 1, vec![1]), 50),
            IndexEntry::Put(row(2, "acme", 6, 1, vec![1, 2]), 72),
        ],
        72,
    )
    .await
    .unwrap();
    assert_eq!(s.count_orders("acme", &[6]).await.unwrap(), 2);
    let by_carrier = OrderFilter {
        carrier: Some(2),
        ids: Some(vec![2, 5]),
        ..f(100)
    };
    assert_eq!(s.newest_orders(&by_carrier).await.unwrap(), vec![2]);
    assert_eq!(
        s.unfinished_fanouts(3, t0 + Duration::seconds(8))
            .await
            .unwrap(),
        vec![1, 3]
    );
    // The position only moves forward.
    assert_eq!(s.index_position().await.unwrap(), 72);
    s.index_orders(&[], 30).await.unwrap();
    assert_eq!(s.index_position().await.unwrap(), 72);
}

#[tokio::test]
async fn the_legacy_copy_keeps_tenants_and_times_and_never_overwrites_newer() {
    let s = store().await;
    let at = |secs: i64| {
        Some(gsl_proto::convert::timestamp(
            Utc::now() + Duration::seconds(secs),
        ))
    };
    let mut old = card("L1", 20);
    old.tenant = "acme".into();
    old.updated_at = at(-3600);
    let mut other = card("L2", 14);
    other.tenant = "globex".into();
    other.updated_at = at(-3600);
    assert_eq!(s.copy_legacy(&[old.clone(), other]).await.unwrap(), 2);
    assert_eq!(
        s.copy_legacy(&[old.clone()]).await.unwrap(),
        0,
        "idempotent"
    );
    assert_eq!(
        s.card("globex", "L2").await.unwrap().unwrap().sim_status,
        14
    );
    // A newer change made in the store survives a second run.
    s.apply(
        "L1",
        &Change::Status {
            sim_status: 14,
            stop_reason: Some(5),
        },
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(s.copy_legacy(&[old.clone()]).await.unwrap(), 0);
    assert_eq!(s.card("acme", "L1").await.unwrap().unwrap().sim_status, 14);
    // A newer KV record (an old replica wrote it during the upgrade) wins.
    old.sim_status = 30;
    old.updated_at = at(60);
    assert_eq!(s.copy_legacy(&[old]).await.unwrap(), 1);
    assert_eq!(s.card("acme", "L1").await.unwrap().unwrap().sim_status, 30);
    assert_eq!(s.count_present(&["L1", "L2", "L3"]).await.unwrap(), 2);
    let b = v1::PurchaseBatch {
        batch_no: "LB".into(),
        tenant: "acme".into(),
        ..Default::default()
    };
    assert!(s.copy_legacy_batch(&b).await.unwrap());
    assert!(!s.copy_legacy_batch(&b).await.unwrap());
}

/// TLS: with `sslmode=require` and the CA, the store talks TLS to the
/// server (the server says so); a server certificate the CA did not sign
/// is refused; with `sslmode=disable` nothing is encrypted.
#[tokio::test]
async fn tls_is_used_and_the_certificate_checked() {
    let pg = gsl_testkit::pg::PgServer::start_tls().expect("PostgreSQL with TLS");
    let db = pg.create_database_named().unwrap();
    let (ca, _, _) = gsl_testkit::tls_files();
    let cfg = StoreConfig {
        ca_cert: Some(ca.clone()),
        ..StoreConfig::default()
    };
    let url = format!("{}?sslmode=require", pg.url(&db));
    let s = CardStore::connect(&url, &cfg).unwrap();
    s.migrate(None).await.unwrap();
    s.import("acme", &[card("T1", 20)], Claim::NewOrOwn)
        .await
        .unwrap();
    // The server's own view of our connections: every one encrypted.
    let (client, conn) = tokio_postgres::connect(&pg.url(&db), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE ssl), count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'gsl'",
            &[],
        )
        .await
        .unwrap();
    let (tls, all): (i64, i64) = (row.get(0), row.get(1));
    assert!(all >= 1 && tls == all, "{tls} of {all} connections use TLS");
    // A CA that did not sign the server's certificate: refused.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, include_str!("other-ca.pem")).unwrap();
    let wrong = CardStore::connect(
        &url,
        &StoreConfig {
            ca_cert: Some(other),
            wait: std::time::Duration::from_secs(2),
            ..StoreConfig::default()
        },
    )
    .unwrap();
    assert!(matches!(
        wrong.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    // A CA file that is not one: a typed error at once.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    assert!(matches!(
        CardStore::connect(
            &url,
            &StoreConfig {
                ca_cert: Some(junk),
                ..StoreConfig::default()
            }
        ),
        Err(StoreError::Tls(_))
    ));
}

/// Card sync's writes: a read that differs changes the card (fields from
/// the carrier) and says so; an agreeing read only marks the card read; a
/// read older than the card's newest change, or of a held card, changes no
/// field; a sweep passes over cards read since it started.
#[tokio::test]
async fn carrier_reads_are_applied_newest_wins() {
    use gsl_cardstore::sync::{Read, newest_reads};
    use std::collections::HashSet;
    let s = store().await;
    let cards: Vec<v1::Card> = ["S1", "S2", "S3", "S4"]
        .iter()
        .map(|id| card(id, 20))
        .collect();
    s.import("acme", &cards, Claim::NewOrOwn).await.unwrap();
    let ct = v1::Carrier::Ct as i32;
    let t0 = Utc::now() + Duration::seconds(5);
    let read = |id: &str, status: u32, at| Read {
        card: id.into(),
        read_at: at,
        sim_status: Some(status),
        stop_reason_unreported: true,
        ..Read::default()
    };
    // S1 stopped at the carrier; S2 agrees; S3 stopped but held (an order
    // of ours is on it); S4 stopped, read twice (the newer read wins).
    let reads = newest_reads(vec![
        read("S1", 14, t0),
        read("S2", 20, t0),
        read("S3", 14, t0),
        read("S4", 14, t0 - Duration::seconds(1)),
        read("S4", 20, t0),
        read("unknown", 14, t0),
    ]);
    let diffs = s.compare_reads(ct, &reads).await.unwrap();
    assert_eq!(diffs.len(), 4, "the unknown card is left out");
    let d1 = diffs.iter().find(|d| d.card == "S1").unwrap();
    assert_eq!(d1.kinds, ["status", "stop_reason"]);
    assert_eq!((d1.old.sim_status, d1.new.sim_status), (20, 14));
    assert_eq!(
        d1.new.stop_reason,
        gsl_cardstore::sync::STOP_REASON_NOT_REPORTED
    );
    assert!(
        diffs
            .iter()
            .find(|d| d.card == "S2")
            .unwrap()
            .kinds
            .is_empty()
    );
    assert!(
        diffs
            .iter()
            .find(|d| d.card == "S4")
            .unwrap()
            .kinds
            .is_empty(),
        "the newer read"
    );
    let hold: HashSet<String> = ["S3".to_string()].into();
    let changed = s.apply_reads(ct, &reads, &diffs, &hold).await.unwrap();
    assert_eq!(changed, ["S1"]);
    let c1 = s.card("acme", "S1").await.unwrap().unwrap();
    assert_eq!((c1.sim_status, c1.stop_reason), (14, 0));
    let status = c1.sources.iter().find(|f| f.field == "status").unwrap();
    assert_eq!(status.source, v1::CardSource::Carrier as i32);
    let c3 = s.card("acme", "S3").await.unwrap().unwrap();
    assert_eq!(c3.sim_status, 20, "held: the order's outcome decides");
    for id in ["S1", "S2", "S3", "S4"] {
        assert!(
            s.card("acme", id)
                .await
                .unwrap()
                .unwrap()
                .synced_at
                .is_some(),
            "{id} read"
        );
    }
    // A read older than the card's newest change changes nothing.
    let old = vec![read("S1", 20, t0 - Duration::seconds(60))];
    let diffs = s.compare_reads(ct, &old).await.unwrap();
    assert!(diffs[0].stale);
    assert!(
        s.apply_reads(ct, &old, &diffs, &HashSet::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.card("acme", "S1").await.unwrap().unwrap().sim_status, 14);
    // A sweep started before the reads passes over the cards read since.
    let page = s
        .sweep_cards(ct, "", Some(t0 - Duration::seconds(2)), 10)
        .await
        .unwrap();
    assert!(page.cards.is_empty(), "{page:?}");
    assert_eq!((page.last.as_str(), page.end), ("S4", true));
    let page = s.sweep_cards(ct, "S2", None, 1).await.unwrap();
    assert_eq!(page.cards.len(), 1);
    assert_eq!((page.cards[0].0.as_str(), page.end), ("S3", false));
    assert_eq!(s.count_carrier(ct).await.unwrap(), 4);
    assert_eq!(s.count_carrier(v1::Carrier::Cu as i32).await.unwrap(), 0);
}

/// Daily rows: a day is derived from the snapshot before it (same day or
/// the day before, same period, or a period begun that day), never after
/// a gap; the carrier's own figure replaces a derived one and is never
/// replaced by one; months past retention are deleted.
#[tokio::test]
async fn daily_usage_is_derived_from_snapshots_and_the_carriers_figure_wins() {
    use chrono::NaiveDate;
    use gsl_cardstore::usage::{DayRow, UsageRow};
    let s = store().await;
    s.import("acme", &[card("U1", 20), card("U2", 20)], Claim::NewOrOwn)
        .await
        .unwrap();
    let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
    let nov = (
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
    );
    let dec = (day(1), day(31));
    // Midnight CST of a December day (16:00 UTC the day before).
    let midnight = |d: u32| day(d).and_hms_opt(0, 0, 0).unwrap().and_utc() - Duration::hours(8);
    let snap = |id: &str, mb: f64, at, period| UsageRow {
        id: id.into(),
        mb,
        as_of: at,
        period: Some(period),
    };
    let figures = |keys: Vec<&'static str>| {
        let s = &s;
        async move {
            let mut v: Vec<(String, NaiveDate, f64, bool)> = s
                .daily_usage(&keys, day(1) - chrono::Days::new(40), day(31))
                .await
                .unwrap()
                .into_iter()
                .map(|((k, d), f)| (k, d, f.mb, f.derived))
                .collect();
            v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            v
        }
    };
    // Nov 30 (to Dec 1 00:00 CST): a first snapshot, nothing to derive.
    s.record_usage_rows(&[snap("U1", 900.0, midnight(1), nov)])
        .await
        .unwrap();
    assert!(
        figures(vec!["U1"]).await.is_empty(),
        "no snapshot before it"
    );
    // To Dec 2 00:00: a new period begun on Dec 1: all of it is Dec 1's.
    s.record_usage_rows(&[snap("U1", 12.5, midnight(2), dec)])
        .await
        .unwrap();
    // To Dec 3 00:00: Dec 2 is the growth; a replay changes nothing.
    for _ in 0..2 {
        s.record_usage_rows(&[snap("U1", 20.0, midnight(3), dec)])
            .await
            .unwrap();
    }
    // Two snapshots on Dec 3 add up to the day's growth.
    s.record_usage_rows(&[snap("U1", 21.0, midnight(3) + Duration::hours(8), dec)])
        .await
        .unwrap();
    s.record_usage_rows(&[snap("U1", 24.0, midnight(4), dec)])
        .await
        .unwrap();
    // A gap: nothing on Dec 4-5, a snapshot to Dec 7 00:00 (Dec 6): the
    // growth spans three days, so no row.
    s.record_usage_rows(&[snap("U1", 40.0, midnight(7), dec)])
        .await
        .unwrap();
    assert_eq!(
        figures(vec!["U1"]).await,
        vec![
            ("U1".into(), day(1), 12.5, true),
            ("U1".into(), day(2), 7.5, true),
            ("U1".into(), day(3), 4.0, true),
        ]
    );
    // The carrier's figure for Dec 2 replaces the derived one; a derived
    // growth landing on a carrier's day later leaves it.
    s.record_daily(&[DayRow {
        id: "U1".into(),
        day: day(2),
        mb: 7.25,
    }])
    .await
    .unwrap();
    s.record_daily(&[DayRow {
        id: "U2".into(),
        day: day(7),
        mb: 3.0,
    }])
    .await
    .unwrap();
    s.record_usage_rows(&[snap("U2", 1.0, midnight(7), dec)])
        .await
        .unwrap();
    s.record_usage_rows(&[snap("U2", 5.0, midnight(8), dec)])
        .await
        .unwrap();
    assert_eq!(
        figures(vec!["U1", "U2"]).await,
        vec![
            ("U1".into(), day(1), 12.5, true),
            ("U1".into(), day(2), 7.25, false),
            ("U1".into(), day(3), 4.0, true),
            ("U2".into(), day(7), 3.0, false),
        ]
    );
    // A backfill: two days of one card's month in one call.
    let nov = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let put = |id: &str, d, mb| DayRow {
        id: id.into(),
        day: d,
        mb,
    };
    s.record_daily(&[
        put("U1", nov(15), 1.5),
        put("U1", nov(16), 2.5),
        put("U2", nov(30), 0.0),
    ])
    .await
    .unwrap();
    let all = figures(vec!["U1", "U2"]).await;
    assert_eq!(
        all[..2],
        [
            ("U1".into(), nov(15), 1.5, false),
            ("U1".into(), nov(16), 2.5, false),
        ]
    );
    assert!(all.contains(&("U2".into(), nov(30), 0.0, false)), "{all:?}");
    // Retention keeps whole months: November goes, in chunks smaller than
    // the work.
    assert_eq!(s.prune_daily(day(3), 1).await.unwrap(), 2);
    assert_eq!(
        figures(vec!["U1", "U2"]).await,
        vec![
            ("U1".into(), day(1), 12.5, true),
            ("U1".into(), day(2), 7.25, false),
            ("U1".into(), day(3), 4.0, true),
            ("U2".into(), day(7), 3.0, false),
        ]
    );
}
