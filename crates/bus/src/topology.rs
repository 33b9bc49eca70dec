//! Streams, buckets and durable consumers: created or updated idempotently
//! by [`ensure`] and [`ensure_consumers`], either by every service at start
//! (`GSL_TOPOLOGY=ensure`, the default: development and tests) or once by the
//! setup step `gsl-gateway migrate` (`GSL_TOPOLOGY=bind` for the services,
//! whose NATS users may then not administer JetStream: [`bind`] only looks
//! the handles up). Consumer settings are defined here once, so a changed
//! setting (`GSL_MAX_DELIVER`) reaches an existing consumer on the next
//! migrate or ensuring start.

use crate::BusError;
use crate::names::*;
use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::{AckPolicy, Consumer, pull};
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
    /// Byte limits of every stream and bucket: storage is bounded, so one
    /// tenant's junk cannot fill the volume for everybody.
    pub limits: StoreLimits,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            replicas: 1,
            events_max_age: 365 * DAY,
            duplicate_window: Duration::from_secs(120),
            limits: StoreLimits::default(),
        }
    }
}

/// Byte limits (settings of `gsl-gateway migrate`: `GSL_LIMIT_<NAME>_BYTES`).
/// Events, dead letters and the follow-up stream drop their oldest messages
/// at the limit; the work and intake queues refuse new messages (a submit
/// then fails as busy); buckets refuse new keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    pub events: i64,
    pub work: i64,
    pub intake: i64,
    pub follow: i64,
    pub dlq: i64,
    /// Each bucket.
    pub bucket: i64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        const MIB: i64 = 1024 * 1024;
        StoreLimits {
            events: 1024 * MIB,
            work: 512 * MIB,
            intake: 256 * MIB,
            follow: 256 * MIB,
            dlq: 256 * MIB,
            bucket: 256 * MIB,
        }
    }
}

impl StoreLimits {
    /// Defaults overridden by `GSL_LIMIT_{EVENTS,WORK,INTAKE,FOLLOW,DLQ,BUCKET}_BYTES`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<StoreLimits, String> {
        let mut l = StoreLimits::default();
        for (name, field) in [
            ("EVENTS", &mut l.events),
            ("WORK", &mut l.work),
            ("INTAKE", &mut l.intake),
            ("FOLLOW", &mut l.follow),
            ("DLQ", &mut l.dlq),
            ("BUCKET", &mut l.bucket),
        ] {
            let key = format!("GSL_LIMIT_{name}_BYTES");
            if let Some(v) = get(&key).filter(|v| !v.is_empty()) {
                *field = v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{key} must be a positive number of bytes"))?;
            }
        }
        Ok(l)
    }
}

/// Handles on every bucket.
#[derive(Clone)]
pub struct Buckets {
    pub workorders: Store,
    pub items: Store,
    pub quota: Store,
    pub guards: Store,
    pub idempotency: Store,
    pub results: Store,
    pub rate: Store,
    pub active: Store,
    pub backoffice: Store,
    pub sync: Store,
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
        max_bytes: t.limits.bucket,
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

/// `GSL_PUSH`: waiting pushes (a work queue; full: refuse new, never drop
/// what waits).
fn push_stream(t: &Topology) -> stream::Config {
    let mut c = stream_config(
        STREAM_PUSH,
        &["gsl.push.deliver.>".into()],
        RetentionPolicy::WorkQueue,
        t,
    );
    c.max_bytes = t.limits.work;
    c.discard = DiscardPolicy::New;
    c
}

/// `GSL_PUSH_NOTICES`: 14 days of push-failure notices (replay's window).
fn push_notices_stream(t: &Topology) -> stream::Config {
    let mut c = stream_config(
        STREAM_PUSH_NOTICES,
        &["gsl.push.notice.>".into()],
        RetentionPolicy::Limits,
        t,
    );
    c.max_age = 14 * DAY;
    c.max_bytes = t.limits.dlq;
    c
}

/// `gsl-push`'s consumer of work-order events: from the moment it is first
/// created (the history before is not pushed), one delivery per event.
pub fn push_fanout_consumer() -> pull::Config {
    pull::Config {
        durable_name: Some(PUSH_FANOUT_CONSUMER.into()),
        filter_subject: "gsl.evt.>".into(),
        deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_deliver: -1,
        max_ack_pending: 10_000,
        ..Default::default()
    }
}

/// `gsl-push`'s consumer of waiting pushes: retries are its own (a NAK
/// with the backoff as delay), so no delivery limit here.
pub fn push_deliver_consumer() -> pull::Config {
    pull::Config {
        durable_name: Some(PUSH_DELIVER_CONSUMER.into()),
        filter_subject: "gsl.push.deliver.>".into(),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(60),
        max_deliver: -1,
        max_ack_pending: 20_000,
        ..Default::default()
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
    events.max_bytes = t.limits.events;
    let mut dlq = stream_config(
        STREAM_DLQ,
        &["gsl.dlq.>".into()],
        RetentionPolicy::Limits,
        t,
    );
    dlq.max_age = 30 * DAY;
    dlq.max_bytes = t.limits.dlq;
    let queue = |name: &str, subject: &str, max_bytes: i64, discard: DiscardPolicy| {
        let mut c = stream_config(name, &[subject.into()], RetentionPolicy::WorkQueue, t);
        c.max_bytes = max_bytes;
        c.discard = discard;
        c
    };
    for cfg in [
        // Full queues refuse new work rather than drop work in hand.
        queue(STREAM_WORK, "gsl.work.>", t.limits.work, DiscardPolicy::New),
        events,
        queue(
            STREAM_INTAKE,
            "gsl.intake.>",
            t.limits.intake,
            DiscardPolicy::New,
        ),
        queue(
            STREAM_FOLLOW,
            "gsl.follow.>",
            t.limits.follow,
            DiscardPolicy::New,
        ),
        dlq,
        push_stream(t),
        push_notices_stream(t),
    ] {
        ensure_stream(js, cfg).await?;
    }
    ensure_bucket(js, KV_PUSH, Duration::ZERO, t).await?;
    let year = 366 * DAY;
    Ok(Buckets {
        workorders: ensure_bucket(js, KV_WORKORDERS, year, t).await?,
        items: ensure_bucket(js, KV_ITEMS, year, t).await?,
        quota: ensure_bucket(js, KV_QUOTA, 62 * DAY, t).await?,
        // Guards carry their own expiry in the value; max age only collects garbage.
        guards: ensure_bucket(js, KV_GUARDS, 60 * DAY, t).await?,
        idempotency: ensure_bucket(js, KV_IDEMPOTENCY, year, t).await?,
        results: ensure_bucket(js, KV_RESULTS, year, t).await?,
        rate: ensure_bucket(js, KV_RATE, Duration::from_secs(300), t).await?,
        active: ensure_bucket(js, KV_ACTIVE, Duration::ZERO, t).await?,
        backoffice: ensure_bucket(js, KV_BACKOFFICE, year, t).await?,
        sync: ensure_bucket(js, KV_SYNC, year, t).await?,
    })
}

/// Handles on every bucket, without creating anything (`GSL_TOPOLOGY=bind`).
pub async fn bind(js: &Context) -> Result<Buckets, BusError> {
    let get = |b: &'static str| async move {
        js.get_key_value(b).await.map_err(|e| BusError::Topology {
            what: format!("bucket {b} (run `gsl-gateway migrate` first)"),
            reason: e.to_string(),
        })
    };
    Ok(Buckets {
        workorders: get(KV_WORKORDERS).await?,
        items: get(KV_ITEMS).await?,
        quota: get(KV_QUOTA).await?,
        guards: get(KV_GUARDS).await?,
        idempotency: get(KV_IDEMPOTENCY).await?,
        results: get(KV_RESULTS).await?,
        rate: get(KV_RATE).await?,
        active: get(KV_ACTIVE).await?,
        backoffice: get(KV_BACKOFFICE).await?,
        sync: get(KV_SYNC).await?,
    })
}

/// Ensure or bind, as the service's settings say.
pub async fn open(
    js: &Context,
    mode: crate::TopologyMode,
    t: &Topology,
) -> Result<Buckets, BusError> {
    match mode {
        crate::TopologyMode::Ensure => ensure(js, t).await,
        crate::TopologyMode::Bind => bind(js).await,
    }
}

/// Delivery settings of an adapter's durable consumers (one default, here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Deliveries of one item before the adapter dead-letters it.
    pub max_deliver: i64,
    pub ack_wait: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            max_deliver: 8,
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// The work consumer of carrier `c`'s adapters.
pub fn work_consumer(c: gsl_domain::Carrier, d: Delivery) -> pull::Config {
    pull::Config {
        durable_name: Some(adapter_consumer(c)),
        filter_subject: work_filter(c),
        ack_policy: AckPolicy::Explicit,
        ack_wait: d.ack_wait,
        // One more than the adapter's own limit, so the last delivery is
        // always handled (dead-lettered with its reason) by the adapter.
        max_deliver: d.max_deliver + 1,
        max_ack_pending: 20_000,
        ..Default::default()
    }
}

/// The follow-up consumer of carrier `c`'s adapters.
pub fn follow_consumer_config(c: gsl_domain::Carrier, d: Delivery) -> pull::Config {
    pull::Config {
        durable_name: Some(follow_consumer(c)),
        filter_subject: follow_subject(c),
        ack_policy: AckPolicy::Explicit,
        ack_wait: d.ack_wait,
        max_deliver: -1,
        max_ack_pending: 100_000,
        ..Default::default()
    }
}

/// The gateway's intake consumer.
pub fn intake_consumer() -> pull::Config {
    pull::Config {
        durable_name: Some(INTAKE_CONSUMER.into()),
        filter_subject: "gsl.intake.>".into(),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(60),
        max_deliver: 10,
        ..Default::default()
    }
}

/// Create or update a durable consumer (a changed setting is applied).
pub async fn ensure_consumer(
    js: &Context,
    stream: &str,
    cfg: pull::Config,
) -> Result<Consumer<pull::Config>, BusError> {
    let name = cfg.durable_name.clone().unwrap_or_default();
    let s = js
        .get_stream(stream)
        .await
        .map_err(|e| BusError::Topology {
            what: format!("stream {stream}"),
            reason: e.to_string(),
        })?;
    s.create_consumer(cfg)
        .await
        .map_err(|e| BusError::Topology {
            what: format!("consumer {stream}/{name}"),
            reason: e.to_string(),
        })
}

/// A durable consumer: created or updated (`ensure`), or looked up (`bind`).
pub async fn open_consumer(
    js: &Context,
    mode: crate::TopologyMode,
    stream: &str,
    cfg: pull::Config,
) -> Result<Consumer<pull::Config>, BusError> {
    match mode {
        crate::TopologyMode::Ensure => ensure_consumer(js, stream, cfg).await,
        crate::TopologyMode::Bind => {
            let name = cfg.durable_name.clone().unwrap_or_default();
            js.get_consumer_from_stream(&name, stream)
                .await
                .map_err(|e| BusError::Topology {
                    what: format!("consumer {stream}/{name} (run `gsl-gateway migrate` first)"),
                    reason: e.to_string(),
                })
        }
    }
}

/// Every durable consumer, for the setup step.
/// (See also [`migrate_keys`], which the setup step runs after it.)
pub async fn ensure_consumers(js: &Context, d: Delivery) -> Result<(), BusError> {
    for c in gsl_domain::Carrier::ALL {
        ensure_consumer(js, STREAM_WORK, work_consumer(c, d)).await?;
        ensure_consumer(js, STREAM_FOLLOW, follow_consumer_config(c, d)).await?;
    }
    ensure_consumer(js, STREAM_INTAKE, intake_consumer()).await?;
    ensure_consumer(js, STREAM_EVENTS, push_fanout_consumer()).await?;
    ensure_consumer(js, STREAM_PUSH, push_deliver_consumer()).await?;
    Ok(())
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
        KV_IDEMPOTENCY,
        KV_RESULTS,
        KV_RATE,
        KV_ACTIVE,
        KV_BACKOFFICE,
        KV_SYNC,
    ] {
        js.get_key_value(b).await.map_err(|e| BusError::Topology {
            what: format!("bucket {b}"),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// Keys written before execution records and guards carried their carrier
/// (`<wo>.<card>`, `<rule>.<card>[.<op>]`) are moved under it
/// (`<carrier>.` first), so the adapters' per-carrier permissions find them.
/// The carrier comes from the card's record in the legacy KV registry
/// (`gsl_cards`, when the deployment still has it), else from the ICCID's
/// issuer prefix; a key whose card names no carrier is left as it is.
/// Returns how many keys were moved.
pub async fn migrate_keys(js: &Context, b: &Buckets) -> Result<u64, BusError> {
    let legacy_cards = js.get_key_value(KV_CARDS).await.ok();
    let carriers: Vec<&str> = gsl_domain::Carrier::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    let mut moved = 0;
    for (store, card_at) in [(&b.items, 1usize), (&b.guards, 1usize)] {
        let keys = crate::kv::keys(store).await?;
        for key in keys {
            let parts: Vec<&str> = key.split('.').collect();
            if parts.first().is_some_and(|p| carriers.contains(p)) {
                continue;
            }
            let Some(card) = parts.get(card_at) else {
                continue;
            };
            let record = match &legacy_cards {
                Some(cards) => crate::kv::read(cards, card).await?,
                None => None,
            };
            let from_registry = crate::kv::live(&record)
                .and_then(|v| crate::codec::decode::<gsl_proto::v1::Card>("Card", v).ok())
                .and_then(|c| gsl_proto::convert::carrier_from_wire(c.carrier).ok());
            let carrier = from_registry.or_else(|| {
                gsl_domain::ids::Iccid::parse(card)
                    .ok()
                    .and_then(|i| i.carrier())
            });
            let Some(carrier) = carrier else { continue };
            let Some(value) = crate::kv::read(store, &key)
                .await?
                .filter(|e| e.operation == kv::Operation::Put)
                .map(|e| e.value)
            else {
                continue;
            };
            let new = format!("{}.{key}", carrier.as_str());
            // Never overwrite a record written under the new key meanwhile.
            let _ = crate::kv::create(store, &new, value).await?;
            store
                .delete(&key)
                .await
                .map_err(|e| BusError::kv("delete", key.clone(), e))?;
            moved += 1;
        }
    }
    Ok(moved)
}
