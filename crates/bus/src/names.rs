//! Names of streams, subjects, buckets and headers, and the subject builders.
//!
//! Card keys and tenant names are validated before they reach a subject (see
//! [`gsl_domain::ids::CardId::key`], [`valid_tenant`]), so a subject built here
//! always has the number of tokens its filter expects.

use gsl_domain::carrier::Carrier;
use gsl_domain::operation::OperationKind;

/// Work items, one message per (work order, card). Work-queue retention.
pub const STREAM_WORK: &str = "GSL_WORK";
/// Item outcomes and order status changes: the audit trail. Limits, 1 year.
pub const STREAM_EVENTS: &str = "GSL_EVENTS";
/// Work orders published by other services.
pub const STREAM_INTAKE: &str = "GSL_INTAKE";
/// Follow-up timers: carrier work accepted and not yet complete. Work queue.
pub const STREAM_FOLLOW: &str = "GSL_FOLLOW";
/// Messages that could not be processed, with the reason.
pub const STREAM_DLQ: &str = "GSL_DLQ";

/// Work-order summaries (gateway).
pub const KV_WORKORDERS: &str = "gsl_workorders";
/// Per-item execution records (adapters).
pub const KV_ITEMS: &str = "gsl_items";
/// Quota ledgers (adapters), compare-and-set only.
pub const KV_QUOTA: &str = "gsl_quota";
/// Per-card cooldown guards (adapters), atomic create.
pub const KV_GUARDS: &str = "gsl_guards";
/// The card registry before the card store (legacy: no service uses it;
/// `gsl-gateway migrate` copies it into PostgreSQL).
pub const KV_CARDS: &str = "gsl_cards";
/// Purchase batches before the card store (legacy, as [`KV_CARDS`]).
pub const KV_BATCHES: &str = "gsl_batches";
/// Idempotency keys -> work-order ids (gateway).
pub const KV_IDEMPOTENCY: &str = "gsl_idempotency";
/// Per-item results as the gateway recorded them (gateway).
pub const KV_RESULTS: &str = "gsl_results";
/// Work orders not yet terminal (gateway): what a restart must finish.
pub const KV_ACTIVE: &str = "gsl_active";
/// Shared carrier rate budgets (adapters).
pub const KV_RATE: &str = "gsl_rate";
/// Back-office requests `<carrier>.<work order>.<card>` (`v1.BackOfficeRequest`).
pub const KV_BACKOFFICE: &str = "gsl_backoffice";
/// Card-sync progress per carrier (adapters): `<carrier>.sweep`,
/// `<carrier>.changed`, shared by the carrier's adapter replicas.
pub const KV_SYNC: &str = "gsl_sync";

/// Pushes waiting for delivery, one per event and address (`gsl-push`).
/// Work queue: a delivery leaves when it succeeded or its retries ran out.
pub const STREAM_PUSH: &str = "GSL_PUSH";
/// Push-failure notices (`failing`, `exhausted` with the body, `disabled`),
/// kept 14 days: what `ListFailed` and `Resend` read.
pub const STREAM_PUSH_NOTICES: &str = "GSL_PUSH_NOTICES";
/// Push addresses `addr.<tenant>.<id>` with their secrets (`gsl-push` only).
pub const KV_PUSH: &str = "gsl_push";
/// The push API (`v1.PushApiRequest`, request-reply): the gateway relays a
/// tenant's `PushAddresses` calls; `gsl-push` answers (queue group).
pub const PUSH_API_SUBJECT: &str = "gsl.push.api";
/// `gsl-push`'s consumer of work-order events, and of its deliveries.
pub const PUSH_FANOUT_CONSUMER: &str = "push-fanout";
pub const PUSH_DELIVER_CONSUMER: &str = "push-deliver";

/// `gsl.push.deliver.<tenant>.<address>`: one waiting push.
pub fn push_deliver_subject(tenant: &str, address: &str) -> String {
    format!("gsl.push.deliver.{tenant}.{address}")
}

/// `gsl.push.notice.<tenant>.<address>.<kind>`: a push-failure notice.
pub fn push_notice_subject(tenant: &str, address: &str, kind: &str) -> String {
    format!("gsl.push.notice.{tenant}.{address}.{kind}")
}

/// `gsl.sync.<carrier>.refresh`: the gateway asks the carrier's adapters
/// (one replica, by queue group) to read cards now (`v1.SyncRefresh`).
pub fn sync_refresh_subject(carrier: &str) -> String {
    format!("gsl.sync.{carrier}.refresh")
}

/// Headers.
pub mod headers {
    pub const MSG_ID: &str = "Nats-Msg-Id";
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
    pub const TENANT: &str = "Gsl-Tenant";
    pub const CONTENT_TYPE: &str = "Content-Type";
    pub const DLQ_REASON: &str = "Gsl-Dlq-Reason";
    pub const DLQ_CODE: &str = "Gsl-Dlq-Code";
    /// On a work message that is a `WorkBundle`: how many items it holds.
    pub const BUNDLE: &str = "Gsl-Bundle";
    /// `application/x-protobuf` (default) or `application/json` (intake).
    pub const PROTOBUF: &str = "application/x-protobuf";
    pub const JSON: &str = "application/json";
}

/// `gsl.work.<carrier>.<op>`
pub fn work_subject(carrier: Carrier, op: OperationKind) -> String {
    format!("gsl.work.{}.{}", carrier.as_str(), op.as_str())
}

/// `gsl.work.<carrier>.>`: one adapter's durable consumer filter.
pub fn work_filter(carrier: Carrier) -> String {
    format!("gsl.work.{}.>", carrier.as_str())
}

/// The de-duplication id of a work item: `<work_order_id>:<card>`.
pub fn work_msg_id(work_order_id: u64, card: &str) -> String {
    format!("{work_order_id}:{card}")
}

/// `Nats-Msg-Id` of bundle `k` of an order for one carrier.
pub fn bundle_msg_id(work_order_id: u64, k: usize, carrier: Carrier) -> String {
    format!("{work_order_id}:b{k}.{}", carrier.as_str())
}

/// The work items a work message carries: one (a `WorkItem`), or several
/// (a `WorkBundle`, marked by the [`headers::BUNDLE`] header).
pub fn work_items(
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
) -> Result<Vec<gsl_proto::v1::WorkItem>, crate::codec::CodecError> {
    if headers.and_then(|h| h.get(headers::BUNDLE)).is_some() {
        Ok(crate::codec::decode::<gsl_proto::v1::WorkBundle>("WorkBundle", payload)?.items)
    } else {
        Ok(vec![crate::codec::decode("WorkItem", payload)?])
    }
}

/// The item id used in KV keys: `<carrier>.<work_order_id>.<card>` (the
/// carrier first, so each adapter's NATS user may write only its own).
pub fn item_key(carrier: Carrier, work_order_id: u64, card: &str) -> String {
    format!("{}.{work_order_id}.{card}", carrier.as_str())
}

/// A cooldown guard's key in `gsl_guards`: the carrier, then the rule's own
/// key (`<rule>.<card>[.<op>]`), so each adapter's NATS user may write only
/// its own carrier's guards.
pub fn guard_key(carrier: Carrier, rule_key: &str) -> String {
    format!("{}.{rule_key}", carrier.as_str())
}

/// `gsl.evt.<tenant>.<work_order_id>.<card>`: an item's events.
pub fn event_subject(tenant: &str, work_order_id: u64, card: &str) -> String {
    format!("gsl.evt.{tenant}.{work_order_id}.{card}")
}

/// `gsl.evt.<tenant>.<work_order_id>._`: order-level events (status, counts).
/// `_` is never a card key.
pub fn order_event_subject(tenant: &str, work_order_id: u64) -> String {
    format!("gsl.evt.{tenant}.{work_order_id}._")
}

/// Every event of one order.
pub fn order_events_filter(tenant: &str, work_order_id: u64) -> String {
    format!("gsl.evt.{tenant}.{work_order_id}.>")
}

/// Every event of a tenant (work orders and intake results).
pub fn tenant_events_filter(tenant: &str) -> String {
    format!("gsl.evt.{tenant}.>")
}

/// Every event about one card, across orders (card history).
pub fn card_events_filter(tenant: &str, card: &str) -> String {
    format!("gsl.evt.{tenant}.*.{card}")
}

/// `gsl.intake.<tenant>`: where other services publish work orders.
pub fn intake_subject(tenant: &str) -> String {
    format!("gsl.intake.{tenant}")
}

/// `gsl.evt.<tenant>.intake.<n>`: the acceptance or refusal of an intake order
/// (`<n>` is the intake message's stream sequence).
pub fn intake_result_subject(tenant: &str, seq: u64) -> String {
    format!("gsl.evt.{tenant}.intake.{seq}")
}

/// Header a publisher on the intake sets to hear the gateway's answer there
/// (JetStream answers the publisher's own reply subject with its PubAck).
pub const INTAKE_REPLY_HEADER: &str = "Gsl-Reply-To";

/// `gsl.follow.<carrier>`: follow-up of accepted carrier work.
pub fn follow_subject(carrier: Carrier) -> String {
    format!("gsl.follow.{}", carrier.as_str())
}

/// `gsl.dlq.<source>`: dead letters of a consumer (`cmcc`, `ct`, ..., `intake`).
pub fn dlq_subject(source: &str) -> String {
    format!("gsl.dlq.{source}")
}

/// Durable consumer names.
pub fn adapter_consumer(carrier: Carrier) -> String {
    format!("adapter-{}", carrier.as_str())
}
pub fn follow_consumer(carrier: Carrier) -> String {
    format!("follow-{}", carrier.as_str())
}
pub const INTAKE_CONSUMER: &str = "gateway-intake";

/// Tenant names go into subjects: lower-case letters, digits, `-`, `_`; 1-64.
pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert_eq!(
            work_subject(Carrier::Ct, OperationKind::Rebind),
            "gsl.work.ct.rebind"
        );
        assert_eq!(work_filter(Carrier::Trinet), "gsl.work.trinet.>");
        assert_eq!(work_msg_id(42, "8986"), "42:8986");
        assert_eq!(event_subject("acme", 42, "8986"), "gsl.evt.acme.42.8986");
        assert_eq!(order_event_subject("acme", 42), "gsl.evt.acme.42._");
        assert_eq!(card_events_filter("acme", "8986"), "gsl.evt.acme.*.8986");
        assert_eq!(intake_result_subject("acme", 7), "gsl.evt.acme.intake.7");
        assert_eq!(intake_subject("acme"), "gsl.intake.acme");
        assert!(valid_tenant("acme-iot_2"));
        assert!(!valid_tenant("Acme"));
        assert!(!valid_tenant("a.b"));
        assert!(!valid_tenant(""));
        assert!(!valid_tenant("a>"));
    }
}
