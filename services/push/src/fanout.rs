//! From work-order events to waiting pushes: the `push-fanout` consumer on
//! `GSL_EVENTS`. For each event that maps to a push ([`crate::events`]),
//! one `PushDelivery` per enabled address of the tenant that asks for its
//! type is stored in `GSL_PUSH` (JetStream acknowledges it, de-duplicated
//! by `<sequence>.<address>.<type>`) before the event is acknowledged: a
//! kill between the two redelivers the event, and the duplicate window
//! drops the second copy of a push already stored.

use crate::addresses::Addresses;
use async_nats::jetstream::consumer::{Consumer, pull};
use async_nats::jetstream::{AckKind, Context, Message};
use futures::StreamExt;
use gsl_proto::v1;
use prost::Message as _;
use std::time::Duration;

/// The `webhook-id` of event `sequence`'s push of `kind` (the same on
/// every attempt and resend).
pub fn webhook_id(sequence: u64, kind: &str) -> String {
    format!("msg_{sequence}_{}", kind.replace('.', "_"))
}

/// Store the pushes of one event; `Err`: not all stored (the event is
/// then delivered again).
pub async fn fan_out(
    js: &Context,
    addresses: &Addresses,
    ev: &v1::WorkOrderEvent,
    sequence: u64,
) -> Result<usize, String> {
    let pushes = crate::events::of(ev, sequence);
    if pushes.is_empty() {
        return Ok(0);
    }
    let mut acks = Vec::new();
    for p in &pushes {
        for a in addresses.of_tenant(&ev.tenant) {
            if !a.wants(p.kind) {
                continue;
            }
            let d = v1::PushDelivery {
                webhook_id: webhook_id(sequence, p.kind),
                tenant: ev.tenant.clone(),
                address_id: a.id.clone(),
                r#type: p.kind.into(),
                body: p.body.clone(),
                created_at: ev.at,
            };
            let mut h = async_nats::HeaderMap::new();
            h.insert(
                gsl_bus::names::headers::MSG_ID,
                format!("{sequence}.{}.{}", a.id, p.kind).as_str(),
            );
            let ack = js
                .publish_with_headers(
                    gsl_bus::names::push_deliver_subject(&ev.tenant, &a.id),
                    h,
                    d.encode_to_vec().into(),
                )
                .await
                .map_err(|e| e.to_string())?;
            acks.push(ack);
        }
    }
    let n = acks.len();
    for ack in acks {
        ack.await.map_err(|e| e.to_string())?;
    }
    Ok(n)
}

/// Whether a subject of the event stream carries a work-order event
/// (`gsl.evt.<tenant>.<wo>.<card>`); intake answers
/// (`gsl.evt.<tenant>.intake.<seq>`) are another message.
fn is_work_order_event(subject: &str) -> bool {
    subject.split('.').nth(3).is_some_and(|t| t != "intake")
}

async fn handle(js: &Context, addresses: &Addresses, msg: Message) {
    let Ok(info) = msg.info().map(|i| i.stream_sequence) else {
        let _ = msg.ack_with(AckKind::Term).await;
        return;
    };
    if !is_work_order_event(&msg.subject) {
        let _ = msg.ack().await;
        return;
    }
    let Ok(ev) = v1::WorkOrderEvent::decode(msg.payload.as_ref()) else {
        // Not ours to judge (the gateway wrote it): nothing to push.
        let _ = msg.ack().await;
        return;
    };
    match fan_out(js, addresses, &ev, info).await {
        Ok(_) => {
            let _ = msg.double_ack().await;
        }
        Err(e) => {
            tracing::warn!(error = %e, sequence = info, "pushes not stored; the event comes again");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}

/// Fan out until `stop`, up to `parallel` events at once, only while the
/// address mirror is current (an event handled against a stale list could
/// miss an address).
pub async fn run(
    js: Context,
    addresses: Addresses,
    consumer: Consumer<pull::Config>,
    parallel: usize,
    stop: gsl_telemetry::shutdown::Listener,
) {
    let stopped = stop.wait();
    tokio::pin!(stopped);
    loop {
        let mut ready = addresses.ready.clone();
        tokio::select! {
            _ = &mut stopped => return,
            r = ready.wait_for(|r| *r) => { if r.is_err() { return; } }
        }
        let msgs = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "push fan-out: cannot pull; again soon");
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let work = msgs
            .take_while(|_| {
                let current = *addresses.ready.borrow();
                async move { current }
            })
            .for_each_concurrent(parallel, |m| {
                let (js, addresses) = (js.clone(), addresses.clone());
                async move {
                    if let Ok(m) = m {
                        handle(&js, &addresses, m).await;
                    }
                }
            });
        tokio::select! {
            _ = &mut stopped => return,
            _ = work => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intake_answers_are_not_work_order_events() {
        assert!(is_work_order_event(&gsl_bus::names::event_subject(
            "acme", 42, "8986"
        )));
        assert!(is_work_order_event(&gsl_bus::names::order_event_subject(
            "acme", 42
        )));
        assert!(!is_work_order_event(
            &gsl_bus::names::intake_result_subject("acme", 7)
        ));
        assert_eq!(webhook_id(9, "item.failed"), "msg_9_item_failed");
    }
}
