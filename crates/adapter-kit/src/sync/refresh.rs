//! On-demand reads (`Registry.RefreshCards`): the gateway publishes the
//! cards on `gsl.sync.<carrier>.refresh`; one replica (queue group) reads
//! them behind work orders and reports them; the gateway answers its
//! caller once the store shows them read.

use super::Syncer;
use crate::reads::SyncCard;
use futures::StreamExt;
use gsl_proto::v1;
use gsl_telemetry::shutdown::Shutdown;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;

/// Most cards one refresh message may name (the API's cap).
pub const MAX_REFRESH: usize = 500;

/// Serve refreshes until shutdown.
pub async fn run(s: Arc<Syncer>, client: async_nats::Client, stop: Shutdown) {
    let c = s.cfg.carrier.as_str();
    let subject = gsl_bus::names::sync_refresh_subject(c);
    loop {
        let mut sub = match client
            .queue_subscribe(subject.clone(), format!("sync-{c}"))
            .await
        {
            Ok(sub) => sub,
            Err(e) => {
                tracing::warn!(error = %e, "card sync: cannot subscribe to refreshes; retrying");
                if super::nap(&stop, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                _ = stop.listener().wait() => return,
                m = sub.next() => m,
            };
            let Some(msg) = msg else { break };
            let req = match v1::SyncRefresh::decode(msg.payload.as_ref()) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "card sync: a refresh request that is not a SyncRefresh; ignored");
                    continue;
                }
            };
            let cards: Vec<SyncCard> = req
                .cards
                .into_iter()
                .take(MAX_REFRESH)
                .map(SyncCard::from)
                .collect();
            let s = s.clone();
            // Refreshes run side by side; the budget paces their calls.
            tokio::spawn(async move {
                for chunk in cards.chunks(s.cfg.sync.chunk.max(1)) {
                    s.read_and_report(chunk, "refresh").await;
                }
            });
        }
    }
}
