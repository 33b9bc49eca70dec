//! Parking: an item that must wait out the carrier's repeat window before
//! its card can be read conclusively waits on a follow-up message, not on
//! deliveries of its work message.
//!
//! A work message has a delivery limit (after it, the item gives up); a
//! wait of the repeat window (China Mobile: 3 or 30 minutes, on the clock
//! the services share) is not a failure and must not spend it. So the
//! record takes `parked_until`, a follow-up message of its own is published
//! (follow-ups have no delivery limit), and the work message is acked. The
//! follow-up naks itself until the time has come (real time: the virtual
//! wait divided by the time scale), then goes on exactly as a redelivered
//! work message would: look the card up, and call only if it shows the
//! change was not made.

use super::step::{Delivery, Held, IfNotMade, Next, StepError};
use super::*;
use async_nats::HeaderMap;
use gsl_bus::codec::encode;
use gsl_bus::names;
use gsl_bus::publish::{Outgoing, publish_one};

impl Worker {
    /// Park the item until `wait` (virtual) from now has passed.
    pub(super) async fn park(
        &self,
        d: &Delivery<'_>,
        h: Held,
        wait: chrono::Duration,
    ) -> Result<Next, StepError> {
        let (item, key) = (d.item, d.key);
        let Held { mut rec, rev } = h;
        let until = self.now() + wait;
        rec.parked_until = Some(until);
        if self.records.update(key, &rec, rev).await?.is_none() {
            return Ok(Next::Reread);
        }
        let mut h = HeaderMap::new();
        gsl_telemetry::propagate::inject_nats(&mut h);
        publish_one(
            &self.js,
            Outgoing {
                subject: names::follow_subject(item.carrier),
                // One follow-up per parking (a redelivered work message that
                // parks the same intent again is de-duplicated).
                msg_id: Some(format!("park:{key}:{}", rec.started_at.timestamp_micros())),
                headers: Some(h),
                payload: encode(&self.work_item(item)),
            },
        )
        .await?;
        tracing::info!(work_order_id = item.work_order_id, card = %item.card, %until, "parked until the carrier's repeat window has passed");
        Ok(Next::Done(Disposition::Ack))
    }

    /// A follow-up that finds the item still in intent: a parked item whose
    /// time has come goes on as a redelivered work message would (never as
    /// its last delivery: a parked item never gives up on a wait); one whose
    /// time has not, waits; an item that is not parked belongs to its work
    /// message.
    pub(super) async fn unpark(&self, d: &Delivery<'_>, h: Held) -> Result<Next, StepError> {
        let Some(until) = h.rec.parked_until else {
            return Ok(Next::Done(Disposition::Ack));
        };
        if self.now() < until {
            let wait = self.cfg.clock.real_until(until) + Duration::from_millis(20);
            return Ok(Next::Done(Disposition::Nak(wait)));
        }
        if h.rec.batch.is_some() {
            self.resume_member(d, h).await
        } else {
            Ok(Next::Lookup(h, IfNotMade::Call))
        }
    }
}
