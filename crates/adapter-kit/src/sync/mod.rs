//! Card sync: the adapter follows its carrier's cards at the fewest calls
//! its contract allows (`docs/carriers.md`, "Card sync"), and hands what it
//! read to the gateway (`Results.ReportCards`), which writes the card store
//! and publishes drift. Adapters hold no database credential.
//!
//! | file | drives |
//! |---|---|
//! | [`sweep`] | the full sweep, spread evenly over `GSL_SYNC_INTERVAL_SECS`: one read per card of the store (CMCC, CT, CU), or pages of the carrier's list (tri-net); and the usage sweep in the carrier's usage batches (CMCC, tri-net) |
//! | [`changed`] | changed-since passes every `GSL_SYNC_CHANGED_SECS` where the carrier lists changes (CU, tri-net) |
//! | [`refresh`] | on-demand reads the gateway asks for (`Registry.RefreshCards`) |
//!
//! **Shared by replicas, resumed after a restart.** Progress lives in the
//! `gsl_sync` bucket (`<carrier>.sweep`, `<carrier>.changed`). A replica
//! claims the next chunk of a sweep by compare-and-set on the cursor, so no
//! two replicas read the same card in one sweep; a replica killed after
//! claiming loses at most its chunk for that sweep (read again in the
//! next). A pass over a carrier's list is held by a lease; an expired lease
//! is taken over from the pass's start.
//!
//! **Work orders first.** Every sync call waits on [`crate::pacing::Pacer::sync`]:
//! the carrier's one budget, of which sync takes at most its share while
//! work-order calls wait. A card whose order a replica is working on is
//! not read by a sweep: the order's own confirming read counts (the gateway
//! marks it read).

pub mod changed;
pub mod refresh;
pub mod sweep;

use crate::carrier::{CallCtx, CallError, CarrierApi};
use crate::config::AdapterConfig;
use crate::pacing::Pacer;
use crate::reads::SyncCard;
use crate::report::Reporter;
use async_nats::jetstream::kv::Store;
use gsl_proto::v1;
use gsl_telemetry::shutdown::Shutdown;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::time::Duration;

/// Card-sync metrics (on the adapter's admin port).
#[derive(Clone, Default)]
pub struct SyncMetrics {
    /// Cards read, by how (sweep, changed, refresh).
    pub cards_read: Family<crate::metrics::Labels, Counter>,
    /// Reads that failed (the card is read again in the next sweep).
    pub read_errors: Family<crate::metrics::Labels, Counter>,
    /// Seconds since the start of the newest complete sweep (every card was
    /// read at most this long ago), or since this sweep's start before the
    /// first one completes: alert when over the interval and a margin.
    pub sweep_lag_seconds: Family<crate::metrics::Labels, Gauge>,
    /// Seconds since the start of the newest complete changed-since pass.
    pub changed_lag_seconds: Family<crate::metrics::Labels, Gauge>,
    /// Cards of the current sweep done (looked at), and its size.
    pub sweep_done: Family<crate::metrics::Labels, Gauge>,
    pub sweep_total: Family<crate::metrics::Labels, Gauge>,
}

impl SyncMetrics {
    pub fn register(&self, reg: &mut prometheus_client::registry::Registry) {
        reg.register(
            "gsl_sync_cards_read",
            "Cards read from the carrier by card sync, by how (sweep, changed, refresh)",
            self.cards_read.clone(),
        );
        reg.register(
            "gsl_sync_read_errors",
            "Card-sync reads that failed, by how",
            self.read_errors.clone(),
        );
        reg.register(
            "gsl_sync_lag_seconds",
            "Seconds since the start of the newest complete sweep (every card read at most this long ago)",
            self.sweep_lag_seconds.clone(),
        );
        reg.register(
            "gsl_sync_changed_lag_seconds",
            "Seconds since the start of the newest complete changed-since pass",
            self.changed_lag_seconds.clone(),
        );
        reg.register(
            "gsl_sync_sweep_done",
            "Cards of the current sweep looked at",
            self.sweep_done.clone(),
        );
        reg.register(
            "gsl_sync_sweep_total",
            "Cards the current sweep covers",
            self.sweep_total.clone(),
        );
    }
}

/// Everything the sync drivers share.
pub struct Syncer {
    pub api: Arc<dyn CarrierApi>,
    pub pacer: Arc<Pacer>,
    pub reporter: Reporter,
    pub kv: Store,
    pub cfg: AdapterConfig,
    pub metrics: SyncMetrics,
    /// Cards the last changed-since pass read, with what the list showed
    /// of them (this replica's memory; empty after a restart).
    pub recent: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Syncer {
    fn labels(&self, value: &str) -> crate::metrics::Labels {
        crate::metrics::Labels {
            carrier: self.cfg.carrier.as_str().into(),
            value: value.into(),
        }
    }

    fn wire_carrier(&self) -> i32 {
        gsl_proto::convert::carrier_to_wire(self.cfg.carrier) as i32
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.cfg.clock.now()
    }

    /// Read `cards` one by one (behind work orders) and hand the reads to
    /// the gateway. Returns the cards read. A failed read is logged and
    /// counted: the card is read again in the next sweep.
    pub async fn read_and_report(&self, cards: &[SyncCard], how: &str) -> usize {
        if cards.is_empty() {
            return 0;
        }
        let ctx = CallCtx::sync(&self.pacer);
        let clock = self.cfg.clock;
        let now = move || clock.now();
        let results = self.api.read_cards(&ctx, cards, &now).await;
        let mut reads = Vec::with_capacity(results.len());
        for (card, r) in cards.iter().zip(results) {
            match r {
                Ok(read) => reads.push(read),
                Err(e) => {
                    self.metrics
                        .read_errors
                        .get_or_create(&self.labels(how))
                        .inc();
                    match e {
                        CallError::Refused { .. } => {
                            tracing::info!(card = %card.id, error = %e, "card sync: the carrier refused the read")
                        }
                        _ => tracing::warn!(card = %card.id, error = %e, "card sync: read failed"),
                    }
                }
            }
        }
        self.report(reads, how).await
    }

    /// Read the usage of `cards` (one of the carrier's usage batches) and
    /// hand it to the gateway.
    pub async fn usage_and_report(&self, cards: &[SyncCard]) -> usize {
        if cards.is_empty() {
            return 0;
        }
        let ctx = CallCtx::sync(&self.pacer);
        let clock = self.cfg.clock;
        let now = move || clock.now();
        match self.api.read_usage(&ctx, cards, &now).await {
            Ok(reads) => self.report(reads, "usage").await,
            Err(e) => {
                self.metrics
                    .read_errors
                    .get_or_create(&self.labels("usage"))
                    .inc();
                tracing::warn!(error = %e, cards = cards.len(), "card sync: usage batch failed");
                0
            }
        }
    }

    /// Hand reads to the gateway; returns how many it took.
    pub async fn report(&self, reads: Vec<v1::CardRead>, how: &str) -> usize {
        let n = reads.len();
        if n == 0 {
            return 0;
        }
        match self.reporter.report_cards(self.cfg.carrier, reads).await {
            Ok(r) => {
                self.metrics
                    .cards_read
                    .get_or_create(&self.labels(how))
                    .inc_by(n as u64);
                if r.drifted > 0 {
                    tracing::info!(
                        drifted = r.drifted,
                        how,
                        "card sync found cards changed at the carrier"
                    );
                }
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, cards = n, "card sync: the gateway did not take the reads");
                0
            }
        }
    }

    /// Start the drivers this carrier's plan needs.
    pub fn spawn(
        self: Arc<Self>,
        client: async_nats::Client,
        shutdown: &Shutdown,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let plan = self.api.sync_plan();
        let mut out = Vec::new();
        if !self.cfg.sync.enabled || plan == crate::reads::SyncPlan::NONE {
            return out;
        }
        out.push(tokio::spawn(sweep::run(
            self.clone(),
            sweep::Sweep::Cards(plan.sweep),
            shutdown.clone(),
        )));
        if self.api.usage_batch() > 0 {
            out.push(tokio::spawn(sweep::run(
                self.clone(),
                sweep::Sweep::Usage,
                shutdown.clone(),
            )));
        }
        if plan.changed_since {
            out.push(tokio::spawn(changed::run(self.clone(), shutdown.clone())));
        }
        out.push(tokio::spawn(refresh::run(self, client, shutdown.clone())));
        out
    }
}

/// A progress record of `gsl_sync` and its revision (0: none yet); a
/// deleted or unreadable value is a fresh start. `None`: the bucket could
/// not be read.
pub(crate) async fn load_state<T: serde::de::DeserializeOwned + Default>(
    kv: &Store,
    key: &str,
) -> Option<(T, u64)> {
    match kv.entry(key).await {
        Ok(Some(e)) if e.operation == async_nats::jetstream::kv::Operation::Put => Some((
            serde_json::from_slice(&e.value).unwrap_or_default(),
            e.revision,
        )),
        Ok(Some(e)) => Some((T::default(), e.revision)),
        Ok(None) => Some((T::default(), 0)),
        Err(e) => {
            tracing::warn!(error = %e, key, "card sync: cannot read its progress");
            None
        }
    }
}

/// Write a progress record if it is still at `rev`: its new revision, or
/// `None` when another replica wrote first (or the write failed).
pub(crate) async fn store_state<T: serde::Serialize>(
    kv: &Store,
    key: &str,
    value: &T,
    rev: u64,
) -> Option<u64> {
    let v = bytes::Bytes::from(serde_json::to_vec(value).unwrap_or_default());
    match kv.update(key, v, rev).await {
        Ok(r) => Some(r),
        Err(e) if e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => None,
        Err(e) => {
            tracing::warn!(error = %e, key, "card sync: cannot write its progress");
            None
        }
    }
}

/// Milliseconds since the epoch, real time (sweep schedules).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Sleep up to `d`, waking early on shutdown. Returns whether shutdown came.
pub(crate) async fn nap(stop: &Shutdown, d: Duration) -> bool {
    tokio::select! {
        _ = stop.listener().wait() => true,
        _ = tokio::time::sleep(d) => stop.is_triggered(),
    }
}
