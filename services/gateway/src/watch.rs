//! `Watch`: a server stream of a tenant's events, straight from `GSL_EVENTS`
//! through an ordered consumer. Every event carries its stream sequence; a
//! client that reconnects with `after_sequence` gets exactly the events after
//! it, so nothing between a snapshot and the live stream is missed.
//!
//! One order: every event of that order from its start (or after the given
//! sequence). All orders: live events from now (or after the given sequence).

use crate::core::Core;
use crate::error::ApiError;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt;
use gsl_bus::codec::decode;
use gsl_bus::names;
use gsl_proto::v1;
use std::pin::Pin;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

pub type WatchStream = Pin<Box<dyn futures::Stream<Item = Result<v1::WatchEvent, Status>> + Send>>;

pub async fn watch(
    core: &Core,
    tenant: &str,
    req: v1::WatchRequest,
) -> Result<WatchStream, ApiError> {
    let filter = if req.work_order_id > 0 {
        core.order_of(tenant, req.work_order_id).await?;
        names::order_events_filter(tenant, req.work_order_id)
    } else {
        format!("gsl.evt.{tenant}.*.*")
    };
    let deliver_policy = match (req.after_sequence, req.work_order_id) {
        (0, 0) => DeliverPolicy::New,
        (0, _) => DeliverPolicy::All,
        (seq, _) => DeliverPolicy::ByStartSequence {
            start_sequence: seq + 1,
        },
    };
    let stream = core
        .js
        .get_stream(names::STREAM_EVENTS)
        .await
        .map_err(ApiError::busy)?;
    // An ephemeral consumer under a name only Watch uses, deleted when the
    // client goes away (and by the server after `WATCH_INACTIVE` if this
    // gateway dies first): no consumer outlives its client.
    let name = format!("{WATCH_PREFIX}{:016x}", rand::random::<u64>());
    let consumer = stream
        .create_consumer(pull::Config {
            name: Some(name.clone()),
            filter_subject: filter,
            deliver_policy,
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            inactive_threshold: WATCH_INACTIVE,
            ..Default::default()
        })
        .await
        .map_err(ApiError::busy)?;
    let mut msgs = consumer.messages().await.map_err(ApiError::busy)?;
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let tenant = tenant.to_owned();
    tokio::spawn(async move {
        forward(&mut msgs, &tx, &tenant).await;
        drop(msgs);
        let _ = stream.delete_consumer(&name).await;
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// Names of Watch's consumers on `GSL_EVENTS`.
pub const WATCH_PREFIX: &str = "gw-watch-";
/// A Watch consumer nobody pulls from is removed by the server after this.
pub const WATCH_INACTIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// Events to the client until it goes away (noticed even on a quiet stream)
/// or the stream fails.
async fn forward(
    msgs: &mut async_nats::jetstream::consumer::pull::Stream,
    tx: &tokio::sync::mpsc::Sender<Result<v1::WatchEvent, Status>>,
    tenant: &str,
) {
    loop {
        let next = tokio::select! {
            _ = tx.closed() => return,
            m = msgs.next() => m,
        };
        let Some(m) = next else { return };
        {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    let _ = tx
                        .send(Err(Status::unavailable(format!(
                            "event stream interrupted: {e}; resume with after_sequence"
                        ))))
                        .await;
                    return;
                }
            };
            let Ok(info) = m.info() else { continue };
            let sequence = info.stream_sequence;
            let Ok(event) = decode::<v1::WorkOrderEvent>("WorkOrderEvent", &m.payload) else {
                continue;
            };
            if event.tenant != tenant {
                continue;
            }
            let span = tracing::info_span!(
                "watch_event",
                work_order_id = event.work_order_id,
                messaging.system = "nats",
                messaging.message.id = sequence
            );
            gsl_telemetry::propagate::set_parent_from_nats(&span, m.headers.as_ref());
            drop(span.enter());
            if tx
                .send(Ok(v1::WatchEvent {
                    sequence,
                    event: Some(event),
                }))
                .await
                .is_err()
            {
                return; // the client went away
            }
        }
    }
}
