//! What is pushed, and in which JSON (docs/push.md, "Events"): each body
//! is `{"type", "timestamp", "sequence", "tenant", "data"}`. `sequence` is
//! the event's position in the work-order event stream: it grows with
//! every event, so a receiver orders one card's events (or one order's) by
//! it; gaps are other cards' events. Receivers parse by key: fields may be
//! added, never renamed.
//!
//! | type | when |
//! |---|---|
//! | `order.finished` | an order reached a final status (completed, failed, cancelled, rejected), with its counts when it ran |
//! | `item.failed` | an item failed, with its code and the carrier's |
//! | `item.sla_breached` | the carrier is past its promised completion time for an item |
//! | `backoffice.waiting` | an item waits on the carrier's back office (no public API) |
//! | `backoffice.completed` | the back office finished it (`succeeded` says how) |

use gsl_proto::{convert, v1};
use serde_json::{Value, json};

/// One event to push.
#[derive(Debug, Clone, PartialEq)]
pub struct PushEvent {
    pub kind: &'static str,
    pub body: Vec<u8>,
}

fn time(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref()
        .and_then(convert::from_timestamp)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

fn carrier(c: i32) -> &'static str {
    convert::carrier_from_wire(c)
        .map(|c| c.as_str())
        .unwrap_or("")
}

fn operation(k: i32) -> String {
    v1::OperationKind::try_from(k)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("OPERATION_KIND_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn status(s: i32) -> String {
    v1::WorkOrderStatus::try_from(s)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("WORK_ORDER_STATUS_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn item(o: &v1::ItemOutcome) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("work_order_id".into(), json!(o.work_order_id));
    m.insert("card".into(), json!(o.card));
    m.insert("index".into(), json!(o.index));
    m.insert("carrier".into(), json!(carrier(o.carrier)));
    m.insert("operation".into(), json!(operation(o.operation)));
    m
}

/// The events a work-order event gives (none for most).
pub fn of(ev: &v1::WorkOrderEvent, sequence: u64) -> Vec<PushEvent> {
    use v1::work_order_event::Event as E;
    let mut out = Vec::new();
    let mut push = |kind: &'static str, data: Value| {
        let body = json!({
            "type": kind,
            "timestamp": time(&ev.at),
            "sequence": sequence,
            "tenant": ev.tenant,
            "data": data,
        });
        out.push(PushEvent {
            kind,
            body: serde_json::to_vec(&body).expect("JSON"),
        });
    };
    match &ev.event {
        Some(E::StatusChanged(c)) => {
            let s = status(c.status);
            if matches!(
                s.as_str(),
                "completed" | "failed" | "cancelled" | "rejected"
            ) {
                push(
                    "order.finished",
                    json!({
                        "work_order_id": ev.work_order_id,
                        "status": s,
                        "reason": c.reason,
                        "counts": c.counts.as_ref().map(|n| json!({
                            "total": n.total, "succeeded": n.succeeded, "failed": n.failed,
                        })),
                    }),
                );
            }
        }
        Some(E::Item(o)) => {
            let kind = v1::OutcomeKind::try_from(o.kind).unwrap_or_default();
            let problem = o.problem.clone().unwrap_or_default();
            let back_office_ticket = convert::carrier_from_wire(o.carrier)
                .map(|c| gsl_bus::backoffice::request_id(c.as_str(), o.work_order_id, &o.card))
                .unwrap_or_default();
            let back_office =
                !o.carrier_ticket.is_empty() && o.carrier_ticket == back_office_ticket;
            match kind {
                v1::OutcomeKind::Failed => {
                    let mut m = item(o);
                    m.insert("code".into(), json!(problem.code));
                    m.insert("message".into(), json!(problem.message));
                    m.insert("carrier_code".into(), json!(problem.carrier_code));
                    push("item.failed", Value::Object(m));
                }
                v1::OutcomeKind::SlaBreached => {
                    let mut m = item(o);
                    m.insert("sla_deadline".into(), time(&o.sla_deadline));
                    m.insert("carrier_ticket".into(), json!(o.carrier_ticket));
                    push("item.sla_breached", Value::Object(m));
                }
                v1::OutcomeKind::CarrierAccepted
                    if problem.code == gsl_domain::ErrorCode::BackOfficePending.code() =>
                {
                    let mut m = item(o);
                    m.insert("request".into(), json!(o.carrier_ticket));
                    m.insert("message".into(), json!(problem.message));
                    m.insert("sla_deadline".into(), time(&o.sla_deadline));
                    push("backoffice.waiting", Value::Object(m));
                }
                _ => {}
            }
            if back_office && matches!(kind, v1::OutcomeKind::Succeeded | v1::OutcomeKind::Failed) {
                let mut m = item(o);
                m.insert("request".into(), json!(o.carrier_ticket));
                m.insert(
                    "succeeded".into(),
                    json!(kind == v1::OutcomeKind::Succeeded),
                );
                m.insert("code".into(), json!(problem.code));
                push("backoffice.completed", Value::Object(m));
            }
        }
        _ => {}
    }
    out
}

/// The body of an address test.
pub fn test_body(tenant: &str, address: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": "push.test",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "sequence": 0,
        "tenant": tenant,
        "data": {"address": address},
    }))
    .expect("JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(kind: v1::OutcomeKind, code: &str, ticket: &str) -> v1::WorkOrderEvent {
        v1::WorkOrderEvent {
            work_order_id: 7,
            tenant: "acme".into(),
            at: Some(prost_types::Timestamp {
                seconds: 1_764_806_400,
                nanos: 0,
            }),
            event: Some(v1::work_order_event::Event::Item(v1::ItemOutcome {
                work_order_id: 7,
                card: "8986031234567890123".into(),
                index: 3,
                carrier: v1::Carrier::Ct as i32,
                operation: v1::OperationKind::Stop as i32,
                kind: kind as i32,
                problem: Some(v1::Problem {
                    code: code.into(),
                    message: "m".into(),
                    carrier_code: "-5".into(),
                }),
                carrier_ticket: ticket.into(),
                ..Default::default()
            })),
        }
    }

    fn parsed(e: &PushEvent) -> Value {
        serde_json::from_slice(&e.body).unwrap()
    }

    /// Every body carries what docs/push.md's JSON Schema requires: the
    /// envelope's keys and, per type, the data's (a light check of the
    /// `required` lists and the type names, no schema library).
    #[test]
    fn bodies_carry_what_the_documented_schema_requires() {
        let doc = include_str!("../../../docs/push.md");
        let marker = "### JSON Schema\n\n```json\n";
        let start = doc.find(marker).unwrap() + marker.len();
        let end = start + doc[start..].find("```").unwrap();
        let schema: Value = serde_json::from_str(&doc[start..end]).unwrap();
        let required = |v: &Value| -> Vec<String> {
            v["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect()
        };
        let types: Vec<&str> = schema["properties"]["type"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let req = gsl_bus::backoffice::request_id("ct", 7, "8986031234567890123");
        let mut bodies: Vec<Value> = Vec::new();
        for (k, code, ticket) in [
            (v1::OutcomeKind::Failed, "GSL.00030001", ""),
            (v1::OutcomeKind::SlaBreached, "", "T1"),
            (
                v1::OutcomeKind::CarrierAccepted,
                gsl_domain::ErrorCode::BackOfficePending.code(),
                req.as_str(),
            ),
            (v1::OutcomeKind::Succeeded, "", req.as_str()),
        ] {
            bodies.extend(of(&outcome(k, code, ticket), 1).iter().map(parsed));
        }
        bodies.push(serde_json::from_slice(&test_body("acme", "pa_1")).unwrap());
        let fin = v1::WorkOrderEvent {
            event: Some(v1::work_order_event::Event::StatusChanged(
                v1::StatusChange {
                    status: v1::WorkOrderStatus::Cancelled as i32,
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        bodies.extend(of(&fin, 2).iter().map(parsed));
        let mut seen = std::collections::HashSet::new();
        for b in &bodies {
            for k in required(&schema) {
                assert!(b.get(&k).is_some(), "{k} missing in {b}");
            }
            let t = b["type"].as_str().unwrap();
            assert!(types.contains(&t), "{t} is not documented");
            seen.insert(t.to_owned());
            for rule in schema["allOf"].as_array().unwrap() {
                let cond = &rule["if"]["properties"]["type"];
                let applies = cond["const"] == t
                    || cond["enum"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|x| x == t));
                if applies {
                    for k in required(&rule["then"]["properties"]["data"]) {
                        assert!(b["data"].get(&k).is_some(), "{t}: data.{k} missing in {b}");
                    }
                }
            }
        }
        assert_eq!(
            seen.len(),
            types.len(),
            "every documented type was made: {seen:?}"
        );
    }

    #[test]
    fn each_work_order_event_maps_to_its_push() {
        let failed = of(&outcome(v1::OutcomeKind::Failed, "GSL.00030001", ""), 42);
        assert_eq!(failed.len(), 1);
        let v = parsed(&failed[0]);
        assert_eq!(v["type"], "item.failed");
        assert_eq!(v["sequence"], 42);
        assert_eq!(v["timestamp"], "2025-12-04T00:00:00.000Z");
        assert_eq!(v["data"]["card"], "8986031234567890123");
        assert_eq!(v["data"]["carrier"], "ct");
        assert_eq!(v["data"]["operation"], "stop");
        assert_eq!(v["data"]["code"], "GSL.00030001");
        assert_eq!(v["data"]["carrier_code"], "-5");
        // Success and plain acceptance push nothing.
        assert!(of(&outcome(v1::OutcomeKind::Succeeded, "", "T1"), 1).is_empty());
        assert!(
            of(
                &outcome(
                    v1::OutcomeKind::CarrierAccepted,
                    gsl_domain::ErrorCode::CarrierAccepted.code(),
                    "T1"
                ),
                1
            )
            .is_empty()
        );
        let sla = of(&outcome(v1::OutcomeKind::SlaBreached, "", "T1"), 2);
        assert_eq!(parsed(&sla[0])["type"], "item.sla_breached");
        // The back office: waiting, then completed (its ticket is the
        // request's id).
        let req = gsl_bus::backoffice::request_id("ct", 7, "8986031234567890123");
        let w = of(
            &outcome(
                v1::OutcomeKind::CarrierAccepted,
                gsl_domain::ErrorCode::BackOfficePending.code(),
                &req,
            ),
            3,
        );
        assert_eq!(parsed(&w[0])["type"], "backoffice.waiting");
        assert_eq!(parsed(&w[0])["data"]["request"], req.as_str());
        let done = of(&outcome(v1::OutcomeKind::Succeeded, "", &req), 4);
        assert_eq!(done.len(), 1);
        assert_eq!(parsed(&done[0])["type"], "backoffice.completed");
        assert_eq!(parsed(&done[0])["data"]["succeeded"], true);
        let rejected = of(&outcome(v1::OutcomeKind::Failed, "GSL.00030011", &req), 5);
        let kinds: Vec<&str> = rejected.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec!["item.failed", "backoffice.completed"]);
        // An order's end, with its counts.
        let fin = v1::WorkOrderEvent {
            work_order_id: 7,
            tenant: "acme".into(),
            at: None,
            event: Some(v1::work_order_event::Event::StatusChanged(
                v1::StatusChange {
                    status: v1::WorkOrderStatus::Completed as i32,
                    at: None,
                    reason: "every item has a final outcome".into(),
                    counts: Some(v1::Counts {
                        total: 3,
                        succeeded: 2,
                        failed: 1,
                        processing: 0,
                    }),
                },
            )),
        };
        let v = parsed(&of(&fin, 9)[0]);
        assert_eq!(v["type"], "order.finished");
        assert_eq!(v["data"]["status"], "completed");
        assert_eq!(v["data"]["counts"]["failed"], 1);
        let mut running = fin.clone();
        if let Some(v1::work_order_event::Event::StatusChanged(c)) = &mut running.event {
            c.status = v1::WorkOrderStatus::Processing as i32;
        }
        assert!(of(&running, 10).is_empty());
    }
}
