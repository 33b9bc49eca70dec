//! A scripted carrier ([`FakeCarrier`]) and a Results receiver
//! ([`ResultsSink`]) for deterministic tests of the adapter's state machine.
//!
//! The fake answers each kind of call from its own script, in order, and
//! records every call it gets; an unscripted call answers "transient", so a
//! test that forgets a step sees a retry, never an invented success. The
//! sink is a real gRPC `Results` server on a free loopback port that keeps
//! every outcome it is sent.

use gsl_adapter_kit::carrier::{
    Accepted, BatchKey, BatchProgress, CallCtx, CallError, CallResult, CarrierApi, Item, Lookup,
    Progress,
};
use gsl_domain::Carrier;
use gsl_proto::v1;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Submit { card: String, txn: String },
    Poll { card: String },
    Lookup { card: String },
    SubmitBatch { cards: Vec<String>, txn: String },
    PollBatch { cards: Vec<String> },
}

#[derive(Default)]
struct Script {
    submit: VecDeque<CallResult<Accepted>>,
    poll: VecDeque<CallResult<Progress>>,
    lookup: VecDeque<CallResult<Lookup>>,
    submit_batch: VecDeque<CallResult<Accepted>>,
    poll_batch: VecDeque<CallResult<BatchProgress>>,
}

/// A carrier whose answers a test scripts.
pub struct FakeCarrier {
    carrier: Carrier,
    /// `Some(max)`: every item batches under one key, up to `max` per call.
    batch_max: Option<usize>,
    script: Mutex<Script>,
    calls: Mutex<Vec<Call>>,
    answers: gsl_adapter_kit::http::AnswerPolicy,
}

fn unscripted<T>(what: &str) -> CallResult<T> {
    Err(CallError::transient(format!("unscripted {what}")))
}

impl FakeCarrier {
    pub fn new(carrier: Carrier) -> Arc<FakeCarrier> {
        Arc::new(FakeCarrier {
            carrier,
            batch_max: None,
            script: Mutex::new(Script::default()),
            calls: Mutex::new(Vec::new()),
            answers: Default::default(),
        })
    }

    /// A fake whose answers mean what `answers` says (over-limit codes).
    pub fn with_answers(
        carrier: Carrier,
        answers: gsl_adapter_kit::http::AnswerPolicy,
    ) -> Arc<FakeCarrier> {
        Arc::new(FakeCarrier {
            carrier,
            batch_max: None,
            script: Mutex::new(Script::default()),
            calls: Mutex::new(Vec::new()),
            answers,
        })
    }

    /// A fake whose items share batch calls of up to `max`.
    pub fn batching(carrier: Carrier, max: usize) -> Arc<FakeCarrier> {
        Arc::new(FakeCarrier {
            carrier,
            batch_max: Some(max),
            script: Mutex::new(Script::default()),
            calls: Mutex::new(Vec::new()),
            answers: Default::default(),
        })
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().expect("script lock")
    }

    pub fn on_submit(&self, r: CallResult<Accepted>) -> &Self {
        self.script().submit.push_back(r);
        self
    }

    pub fn on_poll(&self, r: CallResult<Progress>) -> &Self {
        self.script().poll.push_back(r);
        self
    }

    pub fn on_lookup(&self, r: CallResult<Lookup>) -> &Self {
        self.script().lookup.push_back(r);
        self
    }

    pub fn on_submit_batch(&self, r: CallResult<Accepted>) -> &Self {
        self.script().submit_batch.push_back(r);
        self
    }

    pub fn on_poll_batch(&self, r: CallResult<BatchProgress>) -> &Self {
        self.script().poll_batch.push_back(r);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls lock").clone()
    }

    fn record(&self, c: Call) {
        self.calls.lock().expect("calls lock").push(c);
    }
}

#[tonic::async_trait]
impl CarrierApi for FakeCarrier {
    fn carrier(&self) -> Carrier {
        self.carrier
    }

    fn answers(&self) -> &gsl_adapter_kit::http::AnswerPolicy {
        &self.answers
    }

    fn make_txn(&self, item: &Item, now: chrono::DateTime<chrono::Utc>) -> String {
        format!(
            "fake-{}-{}-{}",
            item.work_order_id,
            item.card,
            now.timestamp_nanos_opt().unwrap_or_default()
        )
    }

    async fn submit(&self, ctx: &CallCtx<'_>, item: &Item) -> CallResult<Accepted> {
        self.record(Call::Submit {
            card: item.card.clone(),
            txn: ctx.txn.to_owned(),
        });
        self.script()
            .submit
            .pop_front()
            .unwrap_or_else(|| unscripted("submit"))
    }

    async fn poll(&self, _ctx: &CallCtx<'_>, item: &Item, _a: &Accepted) -> CallResult<Progress> {
        self.record(Call::Poll {
            card: item.card.clone(),
        });
        self.script()
            .poll
            .pop_front()
            .unwrap_or_else(|| unscripted("poll"))
    }

    async fn lookup(
        &self,
        _ctx: &CallCtx<'_>,
        item: &Item,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> CallResult<Lookup> {
        self.record(Call::Lookup {
            card: item.card.clone(),
        });
        self.script()
            .lookup
            .pop_front()
            .unwrap_or_else(|| unscripted("lookup"))
    }

    fn batch_key(&self, _item: &Item) -> Option<BatchKey> {
        self.batch_max.map(|max| BatchKey {
            call: "fake".into(),
            max,
        })
    }

    fn batch_size(&self) -> usize {
        self.batch_max.unwrap_or(0)
    }

    async fn submit_batch(
        &self,
        ctx: &CallCtx<'_>,
        _key: &BatchKey,
        items: &[Item],
    ) -> CallResult<Accepted> {
        ctx.slot(gsl_adapter_kit::carrier::CallClass::Change)
            .await?;
        self.record(Call::SubmitBatch {
            cards: items.iter().map(|i| i.card.clone()).collect(),
            txn: ctx.txn.to_owned(),
        });
        self.script()
            .submit_batch
            .pop_front()
            .unwrap_or_else(|| unscripted("submit_batch"))
    }

    async fn poll_batch(
        &self,
        _ctx: &CallCtx<'_>,
        items: &[Item],
        _a: &Accepted,
    ) -> CallResult<BatchProgress> {
        self.record(Call::PollBatch {
            cards: items.iter().map(|i| i.card.clone()).collect(),
        });
        self.script()
            .poll_batch
            .pop_front()
            .unwrap_or_else(|| unscripted("poll_batch"))
    }

    async fn ping(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A `Results` server that keeps every outcome.
#[derive(Clone, Default)]
pub struct ResultsSink {
    outcomes: Arc<Mutex<Vec<v1::ItemOutcome>>>,
}

#[tonic::async_trait]
impl v1::results_server::Results for ResultsSink {
    async fn report(
        &self,
        r: tonic::Request<v1::ReportRequest>,
    ) -> Result<tonic::Response<v1::ReportResponse>, tonic::Status> {
        if let Some(o) = r.into_inner().outcome {
            self.outcomes.lock().expect("outcomes lock").push(o);
        }
        Ok(tonic::Response::new(v1::ReportResponse {
            duplicate: false,
        }))
    }

    /// Card sync has no store here: reads are taken and dropped.
    async fn report_cards(
        &self,
        r: tonic::Request<v1::ReportCardsRequest>,
    ) -> Result<tonic::Response<v1::ReportCardsResponse>, tonic::Status> {
        Ok(tonic::Response::new(v1::ReportCardsResponse {
            unknown: r.into_inner().reads.len() as u32,
            ..Default::default()
        }))
    }

    /// No cards to sweep.
    async fn sweep_cards(
        &self,
        _r: tonic::Request<v1::SweepCardsRequest>,
    ) -> Result<tonic::Response<v1::SweepCardsResponse>, tonic::Status> {
        Ok(tonic::Response::new(v1::SweepCardsResponse {
            end: true,
            ..Default::default()
        }))
    }
}

impl ResultsSink {
    /// Serve on a free loopback port; returns the sink and its URL.
    pub async fn start() -> std::io::Result<(ResultsSink, String)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sink = ResultsSink::default();
        let svc = v1::results_server::ResultsServer::new(sink.clone());
        tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await;
        });
        Ok((sink, format!("http://{addr}")))
    }

    /// Every outcome so far.
    pub fn outcomes(&self) -> Vec<v1::ItemOutcome> {
        self.outcomes.lock().expect("outcomes lock").clone()
    }

    /// The outcomes of `card` of kind `kind`.
    pub fn of(&self, card: &str, kind: v1::OutcomeKind) -> Vec<v1::ItemOutcome> {
        self.outcomes()
            .into_iter()
            .filter(|o| o.card == card && o.kind == kind as i32)
            .collect()
    }
}
