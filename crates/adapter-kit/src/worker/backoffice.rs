//! Back-office requests for operations with no public API.

use super::step::{Delivery, Held, Next, StepError};
use super::*;
use crate::carrier::Accepted;
use gsl_domain::sla;
use gsl_proto::{convert, v1};

/// `poll_ref` of an item followed through the back-office queue.
pub const BACK_OFFICE_REF: &str = "backoffice:";

impl Worker {
    /// File (or find) the item's back-office request and follow it.
    pub(super) async fn file_back_office(
        &self,
        d: &Delivery<'_>,
        h: Held,
        kind: v1::BackOfficeKind,
        instructions: String,
    ) -> Result<Next, StepError> {
        let item = d.item;
        let now = self.now();
        let op = item.kind().expect("checked when decoded");
        let id =
            gsl_bus::backoffice::request_id(item.carrier.as_str(), item.work_order_id, &item.card);
        let req = v1::BackOfficeRequest {
            id: id.clone(),
            carrier: convert::carrier_to_wire(item.carrier) as i32,
            tenant: item.tenant.clone(),
            work_order_id: item.work_order_id,
            card: item.card.clone(),
            batch_no: item.batch_no.clone(),
            operation: Some(item.op.clone()),
            kind: kind as i32,
            state: v1::BackOfficeState::Open as i32,
            instructions,
            created_at: Some(convert::timestamp(now)),
            updated_at: Some(convert::timestamp(now)),
            sla_deadline: sla::deadline(&self.calendar, op, item.carrier, now)
                .map(convert::timestamp),
            msisdn: item.msisdn.clone(),
            item_index: item.index,
            ..Default::default()
        };
        let filed = gsl_bus::backoffice::file(&self.backoffice, req).await?;
        self.metrics.item("back_office");
        tracing::info!(request = %filed.id, work_order_id = item.work_order_id, card = %item.card, "back-office request filed");
        Ok(Next::Accepted(
            h,
            Accepted::pending(filed.id.clone(), format!("{BACK_OFFICE_REF}{}", filed.id)),
        ))
    }
}
