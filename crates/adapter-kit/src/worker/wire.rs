//! Wire conversion: bus messages to items and back, outcomes for the gateway.

use super::*;
use crate::carrier::Item;
use crate::record::ExecRecord;
use gsl_domain::codes::ErrorCode;
use gsl_proto::{convert, v1};

/// Why a message is malformed (dead-lettered at once).
pub(super) fn item_from(wi: v1::WorkItem, carrier: gsl_domain::Carrier) -> Result<Item, String> {
    let c = convert::carrier_from_wire(wi.carrier).map_err(|e| e.to_string())?;
    if c != carrier {
        return Err(format!("item for {c} delivered to the {carrier} adapter"));
    }
    if wi.card.is_empty()
        || wi.card.starts_with('_')
        || !wi
            .card
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("card {:?} is not a card key", wi.card));
    }
    let op = wi.operation.ok_or("operation missing")?;
    if convert::operation_kind(&op).is_none() {
        return Err("operation empty".into());
    }
    if wi.work_order_id == 0 {
        return Err("work_order_id missing".into());
    }
    Ok(Item {
        work_order_id: wi.work_order_id,
        card: wi.card,
        index: wi.index,
        tenant: wi.tenant,
        carrier: c,
        op,
        batch_no: wi.batch_no,
        msisdn: wi
            .card_facts
            .as_ref()
            .map(|c| c.msisdn.clone())
            .unwrap_or_default(),
        access_number: wi
            .card_facts
            .as_ref()
            .map(|c| c.access_number.clone())
            .unwrap_or_default(),
        facts: wi.card_facts,
    })
}

impl Worker {
    pub(super) fn outcome(&self, item: &Item, kind: v1::OutcomeKind) -> v1::ItemOutcome {
        v1::ItemOutcome {
            work_order_id: item.work_order_id,
            card: item.card.clone(),
            index: item.index,
            tenant: item.tenant.clone(),
            carrier: convert::carrier_to_wire(item.carrier) as i32,
            operation: item
                .kind()
                .map(|k| convert::kind_to_wire(k) as i32)
                .unwrap_or_default(),
            kind: kind as i32,
            at: Some(convert::timestamp(self.now())),
            reporter: self.cfg.instance.clone(),
            ..Default::default()
        }
    }

    pub(super) fn accepted_outcome(&self, item: &Item, rec: &ExecRecord) -> v1::ItemOutcome {
        let mut o = self.outcome(item, v1::OutcomeKind::CarrierAccepted);
        o.carrier_ticket = rec.ticket.clone().unwrap_or_default();
        o.sla_deadline = rec.deadline.map(convert::timestamp);
        let back_office = rec
            .poll_ref
            .as_deref()
            .is_some_and(|r| r.starts_with(BACK_OFFICE_REF));
        o.problem = Some(if back_office {
            convert::problem(
                ErrorCode::BackOfficePending,
                "waiting on the carrier's back office (no public API): an operator carries it out",
            )
        } else {
            convert::problem(ErrorCode::CarrierAccepted, "carrier accepted the change")
        });
        o
    }

    /// The item as a bus message again (follow-ups, dead letters).
    pub(super) fn work_item(&self, item: &Item) -> v1::WorkItem {
        v1::WorkItem {
            work_order_id: item.work_order_id,
            card: item.card.clone(),
            index: item.index,
            tenant: item.tenant.clone(),
            carrier: convert::carrier_to_wire(item.carrier) as i32,
            operation: Some(item.op.clone()),
            submitted_at: None,
            batch_no: item.batch_no.clone(),
            card_facts: item.facts.clone(),
        }
    }

    /// The item and the card as the gateway read it when it validated the
    /// order (carried by the work item: adapters read no card store).
    pub(super) fn with_card(&self, item: Item) -> (Item, Option<v1::CardSnapshot>) {
        let card = item.facts.clone();
        (item, card)
    }

    /// The item of a single-item message, with its card; a malformed one is
    /// dead-lettered and its disposition returned instead.
    pub(super) async fn read_item(
        &self,
        msg: &async_nats::jetstream::Message,
    ) -> Result<(Item, Option<v1::CardSnapshot>), Disposition> {
        let wi = match gsl_bus::codec::decode::<v1::WorkItem>("WorkItem", &msg.payload) {
            Ok(w) => w,
            Err(e) => {
                return Err(self
                    .dead_letter(msg, ErrorCode::MalformedMessage, &e.to_string())
                    .await);
            }
        };
        match item_from(wi, self.cfg.carrier) {
            Ok(i) => Ok(self.with_card(i)),
            Err(why) => Err(self
                .dead_letter(msg, ErrorCode::MalformedMessage, &why)
                .await),
        }
    }
}
