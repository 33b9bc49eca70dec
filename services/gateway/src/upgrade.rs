//! The upgrade from the NATS KV registry (`gsl_cards`, `gsl_batches`) to
//! the card store: part of `gsl-gateway migrate`.
//!
//! Every live record of the buckets is read with one ordered consumer
//! (last value per key) and copied in slices of [`SLICE`] with `COPY`. A
//! record overwrites a stored card only when it is newer
//! (`gsl_cardstore::CardStore::copy_legacy`), so the copy is idempotent and
//! resumable: run it again after an interrupted run, or after the rolling
//! upgrade to pick up what old replicas wrote meanwhile. After each slice
//! the store is asked how many of the slice's cards it holds; the totals are
//! reported and a shortfall is an error.

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt;
use gsl_bus::codec::decode;
use gsl_bus::names;
use gsl_cardstore::CardStore;
use gsl_proto::v1;
use std::time::Duration;

/// Cards per `COPY`.
pub const SLICE: usize = 10_000;

/// What one upgrade run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Live card records in `gsl_cards`.
    pub cards_seen: u64,
    /// Cards written (new, or newer than the stored record).
    pub cards_written: u64,
    /// Of the cards seen, how many the store holds afterwards.
    pub cards_present: u64,
    /// Records that could not be decoded (skipped, counted).
    pub unreadable: u64,
    pub batches_seen: u64,
    pub batches_written: u64,
}

/// Why the upgrade stopped.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("reading the KV registry: {0}")]
    Bus(String),
    #[error(transparent)]
    Store(#[from] gsl_cardstore::StoreError),
    #[error("count check failed: {seen} cards in gsl_cards, {present} of them in the card store")]
    Counts { seen: u64, present: u64 },
}

/// The live values of a bucket, a slice at a time.
struct Live {
    bucket: &'static str,
    msgs: Option<async_nats::jetstream::consumer::pull::Ordered>,
}

impl Live {
    async fn open(
        js: &async_nats::jetstream::Context,
        bucket: &'static str,
    ) -> Result<Live, UpgradeError> {
        let bus = |e: &dyn std::fmt::Display| UpgradeError::Bus(format!("{bucket}: {e}"));
        let stream = match js.get_stream(format!("KV_{bucket}")).await {
            Ok(s) => s,
            // No bucket: nothing to copy (a deployment that started on
            // the card store).
            Err(_) => return Ok(Live { bucket, msgs: None }),
        };
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: format!("$KV.{bucket}.>"),
                deliver_policy: DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await
            .map_err(|e| bus(&e))?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(Live { bucket, msgs: None });
        }
        let msgs = consumer.messages().await.map_err(|e| bus(&e))?;
        Ok(Live {
            bucket,
            msgs: Some(msgs),
        })
    }

    /// Up to [`SLICE`] live values; `None` once all were read.
    async fn next_slice(&mut self) -> Result<Option<Vec<bytes::Bytes>>, UpgradeError> {
        let bucket = self.bucket;
        let bus = |e: &dyn std::fmt::Display| UpgradeError::Bus(format!("{bucket}: {e}"));
        let Some(msgs) = self.msgs.as_mut() else {
            return Ok(None);
        };
        let mut slice = Vec::with_capacity(SLICE);
        loop {
            let m = match tokio::time::timeout(Duration::from_secs(30), msgs.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(bus(&e)),
                Ok(None) => {
                    self.msgs = None;
                    break;
                }
                Err(_) => return Err(bus(&"no message for 30 s")),
            };
            let last = m.info().map(|i| i.pending == 0).unwrap_or(true);
            let removed = m
                .headers
                .as_ref()
                .and_then(|h| h.get("KV-Operation"))
                .is_some_and(|v| v.as_str() == "DEL" || v.as_str() == "PURGE");
            if !removed {
                slice.push(m.payload.clone());
            }
            if last {
                self.msgs = None;
                break;
            }
            if slice.len() >= SLICE {
                break;
            }
        }
        Ok(Some(slice))
    }
}

/// Copy the KV registry into the card store.
pub async fn copy_kv_registry(
    js: &async_nats::jetstream::Context,
    store: &CardStore,
) -> Result<Copied, UpgradeError> {
    let mut c = Copied::default();
    let mut cards_in = Live::open(js, names::KV_CARDS).await?;
    while let Some(values) = cards_in.next_slice().await? {
        let mut cards = Vec::with_capacity(values.len());
        for v in &values {
            match decode::<v1::Card>("Card", v) {
                Ok(card) if !card.id.is_empty() && !card.tenant.is_empty() => cards.push(card),
                _ => c.unreadable += 1,
            }
        }
        c.cards_seen += cards.len() as u64;
        c.cards_written += store.copy_legacy(&cards).await?;
        let keys: Vec<&str> = cards.iter().map(|x| x.id.as_str()).collect();
        c.cards_present += store.count_present(&keys).await?;
    }
    let mut batches_in = Live::open(js, names::KV_BATCHES).await?;
    while let Some(values) = batches_in.next_slice().await? {
        for v in &values {
            match decode::<v1::PurchaseBatch>("PurchaseBatch", v) {
                Ok(b) if !b.batch_no.is_empty() => {
                    c.batches_seen += 1;
                    if store.copy_legacy_batch(&b).await? {
                        c.batches_written += 1;
                    }
                }
                _ => c.unreadable += 1,
            }
        }
    }
    if c.cards_present != c.cards_seen {
        return Err(UpgradeError::Counts {
            seen: c.cards_seen,
            present: c.cards_present,
        });
    }
    Ok(c)
}
