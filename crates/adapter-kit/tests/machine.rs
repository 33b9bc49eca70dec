//! The item (and batch) state machine, branch by branch, against a scripted
//! carrier ([`gsl_testkit::fake_carrier::FakeCarrier`]), a real NATS server
//! and a real gRPC Results receiver. Each test drives deliveries one at a
//! time through `Worker::handle`, so nothing depends on timing: where time
//! matters (an SLA deadline, the wait before a batch's first poll) a manual
//! clock is moved by the test.

use gsl_adapter_kit::carrier::{Accepted, BatchProgress, CallError, Lookup, Progress};
use gsl_adapter_kit::config::{AdapterConfig, Rate};
use gsl_adapter_kit::record::{BatchState, ExecRecord, State};
use gsl_adapter_kit::worker::{Disposition, Worker};
use gsl_bus::names;
use gsl_domain::Carrier;
use gsl_domain::codes::ErrorCode;
use gsl_proto::v1;
use gsl_testkit::NatsServer;
use gsl_testkit::fake_carrier::{Call, FakeCarrier, ResultsSink};
use std::sync::Arc;
use std::time::Duration;
use v1::OutcomeKind as K;

struct Env {
    _nats: NatsServer,
    sink: ResultsSink,
    worker: Arc<Worker>,
    fake: Arc<FakeCarrier>,
    js: async_nats::jetstream::Context,
    /// Cards "in the store": the gateway would put their facts on the item.
    cards: std::sync::Mutex<std::collections::HashMap<String, v1::CardSnapshot>>,
}

async fn env(fake: Arc<FakeCarrier>, f: impl FnOnce(&mut AdapterConfig)) -> Env {
    let nats = NatsServer::start().await.expect("nats");
    let (sink, url) = ResultsSink::start().await.expect("sink");
    let carrier = gsl_adapter_kit::carrier::CarrierApi::carrier(fake.as_ref());
    let mut cfg = AdapterConfig::new(carrier, "http://127.0.0.1:9", &nats.url(), &url, "t");
    cfg.rate_change = Rate::OFF;
    cfg.rate_query = Rate::OFF;
    cfg.inline_poll = false;
    cfg.poll_interval = Duration::from_millis(10);
    cfg.batch_window = Duration::from_millis(300);
    cfg.max_deliver = 3;
    // Follow-ups read at once (the learned wait has its own test).
    cfg.first_poll_max = Duration::ZERO;
    cfg.report_give_up = Duration::from_secs(5);
    cfg.cooldowns_disabled = [
        "same",
        "pending_stop",
        "status",
        "toggle",
        "switch",
        "reset",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    f(&mut cfg);
    let o = Worker::open(&cfg, fake.clone()).await.expect("worker");
    Env {
        _nats: nats,
        sink,
        worker: o.worker,
        fake,
        js: o.js,
        cards: Default::default(),
    }
}

fn card(n: u32) -> String {
    format!("8986110000{n:010}")
}

fn op(kind: v1::operation::Kind) -> v1::Operation {
    v1::Operation { kind: Some(kind) }
}

fn stop() -> v1::Operation {
    op(v1::operation::Kind::Stop(v1::Stop {}))
}

impl Env {
    /// The card in the card store, in use: its items carry its facts.
    async fn register(&self, card: &str) {
        let c = v1::CardSnapshot {
            carrier: gsl_proto::convert::carrier_to_wire(self.worker.config().carrier) as i32,
            sim_status: 20,
            stop_reason: -1,
            ..Default::default()
        };
        self.cards.lock().unwrap().insert(card.to_owned(), c);
    }

    fn item(&self, wo: u64, card: &str, op: v1::Operation) -> v1::WorkItem {
        v1::WorkItem {
            work_order_id: wo,
            card: card.to_owned(),
            index: 0,
            tenant: "acme".into(),
            carrier: gsl_proto::convert::carrier_to_wire(self.worker.config().carrier) as i32,
            operation: Some(op),
            submitted_at: None,
            batch_no: String::new(),
            card_facts: self.cards.lock().unwrap().get(card).cloned(),
        }
    }

    async fn record(&self, wo: u64, card: &str) -> ExecRecord {
        self.worker
            .record(&names::item_key(self.worker.config().carrier, wo, card))
            .await
            .unwrap()
            .expect("a record")
            .0
    }

    async fn handle(&self, wi: &v1::WorkItem, delivered: i64) -> Disposition {
        self.worker.handle(wi.clone(), delivered).await.unwrap()
    }

    fn finals(&self, card: &str) -> Vec<v1::ItemOutcome> {
        let mut v = self.sink.of(card, K::Succeeded);
        v.extend(self.sink.of(card, K::Failed));
        v
    }
}

fn submits(calls: &[Call]) -> usize {
    calls
        .iter()
        .filter(|c| matches!(c, Call::Submit { .. }))
        .count()
}

fn code(o: &v1::ItemOutcome) -> String {
    o.problem
        .as_ref()
        .map(|p| p.code.clone())
        .unwrap_or_default()
}

/// The answer was lost; on the next delivery the lookup finds the change
/// made, so the item is followed, never called again.
#[tokio::test]
async fn intent_found_at_lookup_is_followed_not_called_again() {
    let e = env(FakeCarrier::new(Carrier::Ct), |_| {}).await;
    let c = card(1);
    e.register(&c).await;
    e.fake
        .on_submit(Err(CallError::Unknown {
            reason: "timeout after sending".into(),
        }))
        .on_lookup(Ok(Lookup::Made(Accepted::pending("T1", "T1"))))
        .on_poll(Ok(Progress::Succeeded));
    let wi = e.item(1, &c, stop());
    assert!(matches!(e.handle(&wi, 1).await, Disposition::Nak(_)));
    assert_eq!(e.record(1, &c).await.state, State::Intent);
    assert_eq!(e.handle(&wi, 2).await, Disposition::Ack);
    assert_eq!(e.record(1, &c).await.state, State::Accepted);
    assert_eq!(
        e.worker.handle_follow(wi.clone()).await.unwrap(),
        Disposition::Ack
    );
    let rec = e.record(1, &c).await;
    assert_eq!(rec.state, State::Done);
    assert!(rec.outcome.unwrap().succeeded);
    assert_eq!(submits(&e.fake.calls()), 1, "{:?}", e.fake.calls());
    assert_eq!(e.finals(&c).len(), 1);
    assert_eq!(e.sink.of(&c, K::Succeeded)[0].carrier_ticket, "T1");
}

/// The lookup finds the change already final: done without a follow-up.
#[tokio::test]
async fn intent_found_done_at_lookup_completes_at_once() {
    let e = env(FakeCarrier::new(Carrier::Ct), |_| {}).await;
    let c = card(2);
    e.register(&c).await;
    e.fake
        .on_submit(Err(CallError::Unknown {
            reason: "connection dropped".into(),
        }))
        .on_lookup(Ok(Lookup::Done(Progress::Succeeded)));
    let wi = e.item(1, &c, stop());
    e.handle(&wi, 1).await;
    assert_eq!(e.handle(&wi, 2).await, Disposition::Ack);
    assert_eq!(e.record(1, &c).await.state, State::Done);
    assert_eq!(submits(&e.fake.calls()), 1);
    assert_eq!(e.sink.of(&c, K::Succeeded).len(), 1);
}

/// On the last delivery an unknown outcome gets one last look; nothing
/// found: the item fails as unavailable and is dead-lettered, once.
#[tokio::test]
async fn outcome_unknown_on_the_last_delivery_gives_up_once() {
    let e = env(FakeCarrier::new(Carrier::Ct), |c| c.max_deliver = 2).await;
    let c = card(3);
    e.register(&c).await;
    e.fake
        .on_submit(Err(CallError::transient("503")))
        .on_submit(Err(CallError::Unknown {
            reason: "timeout after sending".into(),
        }))
        .on_lookup(Ok(Lookup::NotMade));
    let wi = e.item(1, &c, stop());
    assert!(matches!(e.handle(&wi, 1).await, Disposition::Nak(_)));
    // The record still says intent (a transient error sent nothing), so the
    // second, last, delivery looks it up first: not made, call again.
    e.fake.on_lookup(Ok(Lookup::NotMade));
    assert_eq!(e.handle(&wi, 2).await, Disposition::Term);
    let rec = e.record(1, &c).await;
    assert_eq!(rec.state, State::Done);
    assert_eq!(
        rec.outcome.as_ref().unwrap().code,
        ErrorCode::CarrierUnavailable.code()
    );
    let fails = e.sink.of(&c, K::Failed);
    assert_eq!(fails.len(), 1);
    assert_eq!(code(&fails[0]), ErrorCode::CarrierUnavailable.code());
    let mut s = e.js.get_stream(names::STREAM_DLQ).await.unwrap();
    let dlq = s.info().await.unwrap().state.messages;
    assert_eq!(dlq, 1, "dead-lettered once");
    // Redelivered once more (the consumer's extra delivery): reported, not called.
    let before = e.fake.calls().len();
    e.handle(&wi, 3).await;
    assert_eq!(e.fake.calls().len(), before);
}

/// A carrier refusal is final and gives back the quota it reserved: China
/// Telecom allows 2 rebinds per card per month, so after one refused rebind
/// two more go through and only the fourth is refused by the quota.
#[tokio::test]
async fn a_refusal_releases_its_quota() {
    let e = env(FakeCarrier::new(Carrier::Ct), |_| {}).await;
    let c = card(4);
    e.register(&c).await;
    let rebind = || op(v1::operation::Kind::Rebind(v1::Rebind::default()));
    e.fake
        .on_submit(Err(CallError::refused(
            ErrorCode::CarrierRejected,
            "-5",
            "refused",
        )))
        .on_submit(Ok(Accepted::done("R2")))
        .on_submit(Ok(Accepted::done("R3")));
    for wo in 1..=3 {
        assert_eq!(
            e.handle(&e.item(wo, &c, rebind()), 1).await,
            Disposition::Ack
        );
    }
    assert_eq!(
        e.handle(&e.item(4, &c, rebind()), 1).await,
        Disposition::Ack
    );
    let mut outs: Vec<(u64, bool, String)> = e
        .finals(&c)
        .iter()
        .map(|o| (o.work_order_id, o.kind == K::Succeeded as i32, code(o)))
        .collect();
    outs.sort();
    assert_eq!(
        outs[0],
        (1, false, ErrorCode::CarrierRejected.code().into())
    );
    assert!(outs[1].1);
    assert!(outs[2].1);
    assert_eq!(outs[3].0, 4);
    assert!(!outs[3].1);
    assert_ne!(
        outs[3].2,
        ErrorCode::CarrierRejected.code(),
        "refused by the quota, not the carrier"
    );
    assert_eq!(
        submits(&e.fake.calls()),
        3,
        "the fourth never reached the carrier"
    );
}

/// A pending change past its SLA deadline is reported breached once, however
/// many polls follow, then completes.
#[tokio::test]
async fn an_sla_breach_is_reported_once() {
    // A manual clock: the SLA passes when the test says so.
    let (clock, hand) = gsl_domain::clock::Clock::manual(chrono::Utc::now());
    let e = env(FakeCarrier::new(Carrier::Ct), |c| c.clock = clock).await;
    let c = card(5);
    e.register(&c).await;
    e.fake.on_submit(Ok(Accepted::pending("T5", "T5")));
    let wi = e.item(1, &c, stop());
    assert_eq!(e.handle(&wi, 1).await, Disposition::Ack);
    let deadline = e.record(1, &c).await.deadline.expect("a deadline");
    hand.advance(deadline - e.worker.config().clock.now() + chrono::Duration::seconds(1));
    for _ in 0..3 {
        e.fake.on_poll(Ok(Progress::Pending));
        assert!(matches!(
            e.worker.handle_follow(wi.clone()).await.unwrap(),
            Disposition::Nak(_)
        ));
    }
    assert_eq!(e.sink.of(&c, K::SlaBreached).len(), 1);
    e.fake.on_poll(Ok(Progress::Succeeded));
    assert_eq!(e.worker.handle_follow(wi).await.unwrap(), Disposition::Ack);
    assert_eq!(e.sink.of(&c, K::SlaBreached).len(), 1);
    assert_eq!(e.sink.of(&c, K::Succeeded).len(), 1);
}

/// Deliver `cards` at once (they gather into batches); their dispositions.
async fn deliver_all(e: &Env, wo: u64, cards: &[String]) -> Vec<Disposition> {
    let tasks: Vec<_> = cards
        .iter()
        .map(|c| {
            let (w, wi) = (e.worker.clone(), e.item(wo, c, stop()));
            tokio::spawn(async move { w.handle(wi, 1).await.unwrap() })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn batch_polls(calls: &[Call]) -> usize {
    calls
        .iter()
        .filter(|c| matches!(c, Call::PollBatch { .. }))
        .count()
}

fn batch_calls(calls: &[Call]) -> Vec<Vec<String>> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::SubmitBatch { cards, .. } => Some(cards.clone()),
            _ => None,
        })
        .collect()
}

/// The carrier refuses a whole batch: it is split in two and each half goes
/// again under its own transaction id; a lone member refused is final.
#[tokio::test]
async fn a_whole_batch_refusal_splits_the_batch() {
    let e = env(FakeCarrier::batching(Carrier::Cmcc, 4), |_| {}).await;
    let cards: Vec<String> = (10..14).map(card).collect();
    for c in &cards {
        e.register(c).await;
    }
    let refused = || {
        Err(CallError::refused(
            ErrorCode::CarrierRejected,
            "12090",
            "a member inside the window",
        ))
    };
    e.fake
        .on_submit_batch(refused())
        .on_submit_batch(Ok(Accepted::pending("J1", "J1")))
        .on_submit_batch(refused())
        .on_submit_batch(refused())
        .on_submit_batch(Ok(Accepted::pending("J2", "J2")));
    let ds = deliver_all(&e, 1, &cards).await;
    assert!(ds.iter().all(|d| *d == Disposition::Ack), "{ds:?}");
    let calls = batch_calls(&e.fake.calls());
    assert_eq!(calls.len(), 5, "{calls:?}");
    assert_eq!(calls[0].len(), 4);
    assert_eq!(calls[1].len(), 2);
    assert_eq!((calls[2].len(), calls[3].len(), calls[4].len()), (2, 1, 1));
    let txns: std::collections::HashSet<String> = e
        .fake
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::SubmitBatch { txn, .. } => Some(txn.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(txns.len(), 5, "a new transaction id per call");
    // The member refused alone failed with the carrier's code.
    let alone = &calls[3][0];
    let f = e.sink.of(alone, K::Failed);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].problem.as_ref().unwrap().carrier_code, "12090");
    assert_eq!(e.record(1, alone).await.state, State::Done);
    // The others are accepted under their batch and followed by it.
    for c in calls[1].iter().chain(&calls[4]) {
        let rec = e.record(1, c).await;
        assert_eq!(rec.state, State::Intent);
        let b = e
            .worker
            .batch_record(rec.batch.as_ref().unwrap())
            .await
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(b.state, BatchState::Accepted);
        assert_eq!(e.sink.of(c, K::CarrierAccepted).len(), 1);
    }
}

/// A finished batch: members named in the results take their outcome; a
/// member the results do not name is read back, never assumed.
#[tokio::test]
async fn a_finished_batch_settles_every_member_and_reads_back_the_missing() {
    let (clock, hand) = gsl_domain::clock::Clock::manual(chrono::Utc::now());
    let e = env(FakeCarrier::batching(Carrier::Cmcc, 3), |c| c.clock = clock).await;
    let cards: Vec<String> = (20..23).map(card).collect();
    for c in &cards {
        e.register(c).await;
    }
    e.fake.on_submit_batch(Ok(Accepted::pending("J", "J")));
    let ds = deliver_all(&e, 1, &cards).await;
    assert!(ds.iter().all(|d| *d == Disposition::Ack));
    let order = batch_calls(&e.fake.calls()).remove(0);
    let bkey = e.record(1, &order[0]).await.batch.unwrap();
    e.fake
        .on_poll_batch(Ok(BatchProgress::Pending))
        .on_poll_batch(Ok(BatchProgress::Finished(vec![
            Some(Progress::Succeeded),
            Some(Progress::Failed {
                carrier_code: "12089".into(),
                message: "state".into(),
            }),
            None,
        ])))
        // The missing member's card reads as unchanged.
        .on_poll(Ok(Progress::Pending));
    // The first poll waits one poll interval after the acceptance.
    hand.advance(chrono::Duration::from_std(e.worker.config().poll_interval).unwrap());
    assert!(matches!(
        e.worker.process_batch_follow(&bkey).await,
        Disposition::Nak(_)
    ));
    assert_eq!(
        batch_polls(&e.fake.calls()),
        1,
        "the pending job was polled once"
    );
    assert_eq!(e.worker.process_batch_follow(&bkey).await, Disposition::Ack);
    assert_eq!(e.sink.of(&order[0], K::Succeeded).len(), 1);
    let f1 = e.sink.of(&order[1], K::Failed);
    assert_eq!(f1[0].problem.as_ref().unwrap().carrier_code, "12089");
    let f2 = e.sink.of(&order[2], K::Failed);
    assert_eq!(f2.len(), 1);
    assert!(
        f2[0]
            .problem
            .as_ref()
            .unwrap()
            .message
            .contains("not in the finished batch"),
        "{f2:?}"
    );
    assert!(
        e.fake.calls().contains(&Call::Poll {
            card: order[2].clone()
        }),
        "the missing member was read back"
    );
    let b = e.worker.batch_record(&bkey).await.unwrap().unwrap().0;
    assert_eq!(b.state, BatchState::Done);
    // A duplicate follow-up changes nothing.
    assert_eq!(e.worker.process_batch_follow(&bkey).await, Disposition::Ack);
    for c in &order {
        assert_eq!(e.finals(c).len(), 1, "{c}: one final outcome");
    }
}

/// A batch whose answer was lost: its members, redelivered, read their cards
/// (the lookup) instead of calling again; the changed ones are done and only
/// the unchanged one joins a new batch.
#[tokio::test]
async fn a_lost_batch_answer_rebatches_only_unchanged_cards() {
    let e = env(FakeCarrier::batching(Carrier::Cmcc, 3), |_| {}).await;
    let cards: Vec<String> = (30..33).map(card).collect();
    for c in &cards {
        e.register(c).await;
    }
    e.fake.on_submit_batch(Err(CallError::Unknown {
        reason: "answer lost".into(),
    }));
    let ds = deliver_all(&e, 1, &cards).await;
    assert!(
        ds.iter().all(|d| matches!(d, Disposition::Nak(_))),
        "{ds:?}"
    );
    let first = batch_calls(&e.fake.calls()).remove(0);
    // Redelivery: two cards read as changed, one as not (its window passed).
    e.fake
        .on_lookup(Ok(Lookup::Done(Progress::Succeeded)))
        .on_lookup(Ok(Lookup::Done(Progress::Succeeded)))
        .on_lookup(Ok(Lookup::NotMade))
        .on_submit_batch(Ok(Accepted::pending("J2", "J2")));
    let mut ds = Vec::new();
    for c in &first {
        ds.push(e.handle(&e.item(1, c, stop()), 2).await);
    }
    assert!(ds.iter().all(|d| *d == Disposition::Ack), "{ds:?}");
    let calls = batch_calls(&e.fake.calls());
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[1],
        vec![first[2].clone()],
        "only the unchanged card again"
    );
    assert_eq!(e.sink.of(&first[0], K::Succeeded).len(), 1);
    assert_eq!(e.sink.of(&first[1], K::Succeeded).len(), 1);
    assert_eq!(submits(&e.fake.calls()), 0, "never a single-card call");
}

/// A bundle: each item runs on its own; a malformed item is dead-lettered
/// alone; the message is nak'd (soonest delay) while any item waits, and a
/// redelivery answers the settled items from their records without calling.
#[tokio::test]
async fn a_bundle_settles_item_by_item() {
    let e = env(FakeCarrier::new(Carrier::Ct), |_| {}).await;
    let (a, b) = (card(40), card(41));
    e.register(&a).await;
    e.register(&b).await;
    let mut bad = e.item(1, "not a card!", stop());
    bad.index = 2;
    e.fake
        .on_submit(Ok(Accepted::done("A")))
        .on_submit(Err(CallError::transient("503")));
    let items = vec![e.item(1, &a, stop()), e.item(1, &b, stop()), bad];
    let d = e
        .worker
        .handle_bundle("gsl.work.ct.stop", items.clone(), 1)
        .await;
    assert!(matches!(d, Disposition::Nak(_)), "{d:?}");
    let mut s = e.js.get_stream(names::STREAM_DLQ).await.unwrap();
    assert_eq!(
        s.info().await.unwrap().state.messages,
        1,
        "the malformed item alone"
    );
    // Redelivered: the settled item answers from its record, the other calls.
    let submits_before = submits(&e.fake.calls());
    // (Its record says intent: it is looked up first, then called.)
    e.fake
        .on_lookup(Ok(Lookup::NotMade))
        .on_submit(Ok(Accepted::done("B")));
    let d = e
        .worker
        .handle_bundle("gsl.work.ct.stop", items[..2].to_vec(), 2)
        .await;
    assert_eq!(d, Disposition::Ack);
    assert_eq!(submits(&e.fake.calls()), submits_before + 1);
    assert_eq!(e.record(1, &a).await.state, State::Done);
    assert_eq!(e.record(1, &b).await.state, State::Done);
    assert_eq!(e.sink.of(&b, K::Succeeded).len(), 1);
}

fn lookups(calls: &[Call]) -> usize {
    calls
        .iter()
        .filter(|c| matches!(c, Call::Lookup { .. }))
        .count()
}

/// A lookup that fails (the carrier refuses the read, or is over its
/// limit) is no answer: the item reads again later and never calls the
/// change on it. Before, a refused lookup was taken as "not made" and a
/// second change call followed without the card having been read.
#[tokio::test]
async fn a_failed_lookup_is_read_again_never_called_on() {
    let e = env(FakeCarrier::new(Carrier::Cmcc), |c| c.max_deliver = 6).await;
    let c = card(31);
    e.register(&c).await;
    e.fake
        .on_submit(Err(CallError::Unknown {
            reason: "HTTP 500 to a change".into(),
        }))
        .on_lookup(Err(CallError::refused(
            ErrorCode::CarrierRejected,
            "12006",
            "over the limit",
        )))
        .on_lookup(Err(CallError::transient("timeout")))
        .on_lookup(Ok(Lookup::Done(Progress::Succeeded)));
    let wi = e.item(31, &c, stop());
    assert!(matches!(e.handle(&wi, 1).await, Disposition::Nak(_)));
    assert!(
        matches!(e.handle(&wi, 2).await, Disposition::Nak(_)),
        "refused read: read again"
    );
    assert!(
        matches!(e.handle(&wi, 3).await, Disposition::Nak(_)),
        "failed read: read again"
    );
    assert_eq!(e.handle(&wi, 4).await, Disposition::Ack);
    let calls = e.fake.calls();
    assert_eq!(submits(&calls), 1, "one change call in all: {calls:?}");
    assert_eq!(lookups(&calls), 3, "{calls:?}");
    assert_eq!(e.finals(&c).len(), 1);
    assert!(e.record(31, &c).await.outcome.unwrap().succeeded);
}

/// An answer carrying the carrier's over-limit code is "slow down and try
/// again", never a final refusal (CU's `40000029`).
#[tokio::test]
async fn an_over_limit_answer_is_retried_not_final() {
    let answers = gsl_adapter_kit::http::AnswerPolicy {
        over_limit_codes: vec!["40000029".into()],
        ..Default::default()
    };
    let e = env(FakeCarrier::with_answers(Carrier::Cu, answers), |_| {}).await;
    let c = card(32);
    e.register(&c).await;
    e.fake
        .on_submit(Err(CallError::refused(
            ErrorCode::CarrierRejected,
            "40000029",
            "超出资费限制",
        )))
        .on_lookup(Ok(Lookup::NotMade))
        .on_submit(Ok(Accepted::done("ok")));
    let wi = e.item(32, &c, stop());
    assert!(matches!(e.handle(&wi, 1).await, Disposition::Nak(_)));
    assert!(
        e.finals(&c).is_empty(),
        "no final outcome from an over-limit answer"
    );
    assert_eq!(e.handle(&wi, 2).await, Disposition::Ack);
    let f = e.finals(&c);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, K::Succeeded as i32);
}

/// Waiting out the repeat window parks the item on a follow-up: the work
/// message is acked (its deliveries are not spent), and the follow-up goes
/// on once the wait has passed.
#[tokio::test]
async fn waiting_out_the_repeat_window_spends_no_deliveries() {
    let (clock, hand) = gsl_domain::clock::Clock::manual(chrono::Utc::now());
    let e = env(FakeCarrier::new(Carrier::Cmcc), |c| {
        c.max_deliver = 2;
        c.clock = clock;
    })
    .await;
    let c = card(33);
    e.register(&c).await;
    e.fake
        .on_submit(Err(CallError::Unknown {
            reason: "answer lost".into(),
        }))
        .on_lookup(Ok(Lookup::Wait(Duration::from_millis(300))))
        .on_lookup(Ok(Lookup::NotMade))
        .on_submit(Ok(Accepted::done("ok")));
    let wi = e.item(33, &c, stop());
    assert!(matches!(e.handle(&wi, 1).await, Disposition::Nak(_)));
    // The last delivery: the wait parks it instead of giving up.
    assert_eq!(e.handle(&wi, 2).await, Disposition::Ack);
    let rec = e.record(33, &c).await;
    assert!(rec.parked_until.is_some(), "{rec:?}");
    assert!(e.finals(&c).is_empty());
    // Before its time the follow-up waits; after it, it reads and calls.
    assert!(matches!(
        e.worker.handle_follow(wi.clone()).await.unwrap(),
        Disposition::Nak(_)
    ));
    hand.advance(chrono::Duration::milliseconds(400));
    assert_eq!(
        e.worker.handle_follow(wi.clone()).await.unwrap(),
        Disposition::Ack
    );
    let f = e.finals(&c);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].kind, K::Succeeded as i32);
    assert_eq!(submits(&e.fake.calls()), 2);
}

/// The first read of an accepted change waits for what the carrier takes
/// (no samples yet: one poll interval), so it is not spent on a change that
/// cannot be done yet; once a completion was seen, the wait is learned.
#[tokio::test]
async fn the_first_read_waits_for_what_the_carrier_takes() {
    let (clock, hand) = gsl_domain::clock::Clock::manual(chrono::Utc::now());
    let e = env(FakeCarrier::new(Carrier::Ct), |c| {
        c.clock = clock;
        c.first_poll_max = Duration::from_secs(60);
        c.poll_interval = Duration::from_millis(300);
    })
    .await;
    let c = card(41);
    e.register(&c).await;
    e.fake
        .on_submit(Ok(Accepted::pending("T41", "T41")))
        .on_poll(Ok(Progress::Succeeded));
    let wi = e.item(41, &c, stop());
    assert_eq!(e.handle(&wi, 1).await, Disposition::Ack);
    // Right after acceptance: no read, a wait of about one poll interval.
    match e.worker.handle_follow(wi.clone()).await.unwrap() {
        Disposition::Nak(d) => assert!(d > Duration::from_millis(100), "{d:?}"),
        other => panic!("{other:?}"),
    }
    let polls = |calls: &[Call]| {
        calls
            .iter()
            .filter(|c| matches!(c, Call::Poll { .. }))
            .count()
    };
    assert_eq!(polls(&e.fake.calls()), 0, "no read before its time");
    hand.advance(chrono::Duration::milliseconds(350));
    assert_eq!(
        e.worker.handle_follow(wi.clone()).await.unwrap(),
        Disposition::Ack
    );
    assert_eq!(polls(&e.fake.calls()), 1, "one read, and it found it done");
    assert!(e.worker.first_read(gsl_domain::OperationKind::Stop) >= Duration::from_millis(300));
}
