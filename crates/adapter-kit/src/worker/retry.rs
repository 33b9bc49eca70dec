//! Retry: backoff between deliveries, and giving up on the last one.

use super::step::{Delivery, Held, Next, StepError};
use super::*;
use crate::record::Final;
use gsl_bus::codec::encode;
use gsl_bus::names;
use gsl_domain::codes::ErrorCode;
use std::time::Duration;

/// Between deliveries of an item: 1 s, 2 s, 4 s ... 60 s, plus up to 20 %.
const DELIVERY_BACKOFF: gsl_backoff::Backoff =
    gsl_backoff::Backoff::new_const(Duration::from_secs(1), Duration::from_secs(60), 0.2);

pub(super) fn backoff(delivered: i64) -> Duration {
    DELIVERY_BACKOFF.delay(delivered.clamp(1, 64) as u32)
}

impl Worker {
    /// The last delivery failed: dead-letter it and fail the item.
    pub(super) async fn give_up(
        &self,
        d: &Delivery<'_>,
        h: Held,
        reason: &str,
    ) -> Result<Next, StepError> {
        let item = d.item;
        self.metrics.item("dead_lettered");
        let fin = Final {
            succeeded: false,
            code: ErrorCode::CarrierUnavailable.code().into(),
            carrier_code: String::new(),
            message: format!(
                "gave up after {} deliveries: {reason}",
                self.cfg.max_deliver
            ),
        };
        self.publish_dead_letter(
            &names::work_subject(item.carrier, item.kind().expect("checked")),
            &encode(&self.work_item(item)),
            ErrorCode::MaxDeliveries,
            reason,
            self.cfg.max_deliver as u64,
        )
        .await?;
        Ok(Next::Complete(h, fin, Some(Disposition::Term)))
    }
}
