//! Streams and buckets: created or updated idempotently by every service at
//! start, so the first service up makes the topology and none depends on a
//! separate provisioning step.

use crate::BusError;
use crate::names::*;
use async_nats::jetstream::Context;
use async_nats::jetstream::kv::{self, Store};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Sizing of the topology.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Replicas for every stream and bucket (3 in production).
    pub replicas: usize,
    /// How long events are kept (domain: one year).
    pub events_max_age: Duration,
    /// The work stream's de-duplication window.
    pub duplicate_window: Duration,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            replicas: 1,
            events_max_age: 365 * DAY,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// Handles on every bucket.
#[derive(Clone)]
pub struct Buckets {
    pub workorders: Store,
    pub items: Store,
    pub quota: Store,
    pub guards: Store,
    pub cards: Store,
    pub batches: Store,
    pub idempotency: Store,
    pub results: Store,
    pub rate: Store,
    pub active: Store,
    pub backoffice: Store,
}

fn stream_config(
    name: &str,
    subjects: &[String],
    retention: RetentionPolicy,
    t: &Topology,
) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects: subjects.to_vec(),
        retention,
        storage: StorageType::File,
        num_replicas: t.replicas,
        duplicate_window: t.duplicate_window,
        discard: DiscardPolicy::Old,
        allow_direct: true,
        ..Default::default()
    }
}

async fn ensure_stream(js: &Context, cfg: stream::Config) -> Result<(), BusError> {
    let name = cfg.name.clone();
    js.create_or_update_stream(cfg)
        .await
        .map(|_| ())
        .map_err(|e| BusError::Topology {
            what: format!("stream {name}"),
            reason: e.to_string(),
        })
}

async fn ensure_bucket(
    js: &Context,
    bucket: &str,
    max_age: Duration,
    t: &Topology,
) -> Result<Store, BusError> {
    let cfg = kv::Config {
        bucket: bucket.to_owned(),
        history: 1,
        max_age,
        storage: StorageType::File,
        num_replicas: t.replicas,
        ..Default::default()
    };
    match js.get_key_value(bucket).await {
        Ok(store) => Ok(store),
        Err(_) => js
            .create_key_value(cfg)
            .await
            .map_err(|e| BusError::Topology {
                what: format!("bucket {bucket}"),
                reason: e.to_string(),
            }),
    }
}

/// Create (or update) every stream and bucket; return the bucket handles.
pub async fn ensure(js: &Context, t: &Topology) -> Result<Buckets, BusError> {
    let mut events = stream_config(
        STREAM_EVENTS,
        &["gsl.evt.>".into()],
        RetentionPolicy::Limits,
        t,
    );
    events.max_age = t.events_max_age;
    let mut dlq = stream_config(
        STREAM_DLQ,
        &["gsl.dlq.>".into()],
        RetentionPolicy::Limits,
        t,
    );
    dlq.max_age = 30 * DAY;
    for cfg in [
        stream_config(
            STREAM_WORK,
            &["gsl.work.>".into()],
            RetentionPolicy::WorkQueue,
            t,
        ),
        events,
        stream_config(
            STREAM_INTAKE,
            &["gsl.intake.>".into()],
            RetentionPolicy::WorkQueue,
            t,
        ),
        stream_config(
            STREAM_FOLLOW,
            &["gsl.follow.>".into()],
            RetentionPolicy::WorkQueue,
            t,
        ),
        dlq,
    ] {
        ensure_stream(js, cfg).await?;
    }
    let year = 366 * DAY;
    Ok(Buckets {
        workorders: ensure_bucket(js, KV_WORKORDERS, year, t).await?,
        items: ensure_bucket(js, KV_ITEMS, year, t).await?,
        quota: ensure_bucket(js, KV_QUOTA, 62 * DAY, t).await?,
        // Guards carry their own expiry in the value; max age only collects garbage.
        guards: ensure_bucket(js, KV_GUARDS, 60 * DAY, t).await?,
        cards: ensure_bucket(js, KV_CARDS, Duration::ZERO, t).await?,
        batches: ensure_bucket(js, KV_BATCHES, Duration::ZERO, t).await?,
        idempotency: ensure_bucket(js, KV_IDEMPOTENCY, year, t).await?,
        results: ensure_bucket(js, KV_RESULTS, year, t).await?,
        rate: ensure_bucket(js, KV_RATE, Duration::from_secs(300), t).await?,
        active: ensure_bucket(js, KV_ACTIVE, Duration::ZERO, t).await?,
        backoffice: ensure_bucket(js, KV_BACKOFFICE, year, t).await?,
    })
}

/// Whether every stream and bucket exists (for `/readyz`).
pub async fn check(js: &Context) -> Result<(), BusError> {
    for s in [
        STREAM_WORK,
        STREAM_EVENTS,
        STREAM_INTAKE,
        STREAM_FOLLOW,
        STREAM_DLQ,
    ] {
        js.get_stream_no_info(s)
            .await
            .map_err(|e| BusError::Topology {
                what: format!("stream {s}"),
                reason: e.to_string(),
            })?;
    }
    for b in [
        KV_WORKORDERS,
        KV_ITEMS,
        KV_QUOTA,
        KV_GUARDS,
        KV_CARDS,
        KV_BATCHES,
        KV_IDEMPOTENCY,
        KV_RESULTS,
        KV_RATE,
        KV_ACTIVE,
        KV_BACKOFFICE,
    ] {
        js.get_key_value(b).await.map_err(|e| BusError::Topology {
            what: format!("bucket {b}"),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}
