//! Tables for people, JSON for scripts.

use gsl_proto::{convert, v1};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

fn status(s: i32) -> String {
    v1::WorkOrderStatus::try_from(s)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("WORK_ORDER_STATUS_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| s.to_string())
}

fn item_status(s: i32) -> String {
    v1::ItemStatus::try_from(s)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("ITEM_STATUS_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| s.to_string())
}

fn op(k: i32) -> String {
    convert::kind_from_wire(k)
        .map(|k| k.as_str().to_owned())
        .unwrap_or_else(|_| k.to_string())
}

fn carrier(c: i32) -> String {
    convert::carrier_from_wire(c)
        .map(|c| c.as_str().to_owned())
        .unwrap_or_default()
}

pub fn problem(p: &Option<v1::Problem>) -> Value {
    match p {
        None => Value::Null,
        Some(p) => json!({"code": p.code, "message": p.message, "carrier_code": p.carrier_code}),
    }
}

pub fn order(o: &v1::WorkOrder) -> Value {
    json!({
        "id": o.id,
        "status": status(o.status),
        "operation": op(o.kind),
        "carriers": o.carriers.iter().map(|c| carrier(*c)).collect::<Vec<_>>(),
        "total": o.total,
        "succeeded": o.succeeded,
        "failed": o.failed,
        "processing": o.processing,
        "refused": o.refused,
        "source": o.source,
        "created_at": o.created_at.as_ref().and_then(convert::from_timestamp).map(|t| t.to_rfc3339()),
        "idempotency_key": o.idempotency_key,
        "batch_no": o.batch_no,
        "traceparent": o.traceparent,
        "history": o.history.iter().map(|h| json!({
            "status": status(h.status),
            "at": h.at.as_ref().and_then(convert::from_timestamp).map(|t| t.to_rfc3339()),
            "reason": h.reason,
        })).collect::<Vec<_>>(),
    })
}

pub fn item(i: &v1::Item) -> Value {
    json!({
        "index": i.index,
        "card": i.card,
        "carrier": carrier(i.carrier),
        "status": item_status(i.status),
        "problem": problem(&i.problem),
        "carrier_ticket": i.carrier_ticket,
        "sla_deadline": i.sla_deadline.as_ref().and_then(convert::from_timestamp).map(|t| t.to_rfc3339()),
        "sla_breached": i.sla_breached,
    })
}

pub fn history(e: &v1::CardHistoryEntry) -> Value {
    json!({
        "work_order_id": e.work_order_id,
        "operation": op(e.operation),
        "status": item_status(e.status),
        "problem": problem(&e.problem),
        "at": e.at.as_ref().and_then(convert::from_timestamp).map(|t| t.to_rfc3339()),
    })
}

pub fn submitted(r: &v1::SubmitResponse) -> Value {
    json!({
        "work_order": r.work_order.as_ref().map(order),
        "replayed": r.replayed,
        "refused": r.refused,
        "refused_by_code": r.refused_by_code,
        "refusals": r.refusals.iter().map(|x| json!({"index": x.index, "card": x.card, "problem": problem(&x.problem)})).collect::<Vec<_>>(),
    })
}

/// A plain aligned table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.clone()));
        out.push('\n');
    }
    out
}

pub fn order_rows(orders: &[v1::WorkOrder]) -> String {
    let rows: Vec<Vec<String>> = orders
        .iter()
        .map(|o| {
            vec![
                o.id.to_string(),
                op(o.kind),
                status(o.status),
                o.carriers
                    .iter()
                    .map(|c| carrier(*c))
                    .collect::<Vec<_>>()
                    .join(","),
                o.total.to_string(),
                o.succeeded.to_string(),
                o.failed.to_string(),
                o.processing.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "OPERATION",
            "STATUS",
            "CARRIERS",
            "TOTAL",
            "SUCCEEDED",
            "FAILED",
            "PROCESSING",
        ],
        &rows,
    )
}

pub fn item_rows(items: &[v1::Item]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                i.index.to_string(),
                i.card.clone(),
                carrier(i.carrier),
                item_status(i.status),
                i.problem
                    .as_ref()
                    .map(|p| format!("{} {}", p.code, p.message))
                    .unwrap_or_default(),
                if i.sla_breached {
                    "SLA breached".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    table(&["#", "CARD", "CARRIER", "STATUS", "PROBLEM", ""], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(&["A", "LONG"], &[vec!["xx".into(), "y".into()]]);
        assert_eq!(t, "A   LONG\nxx  y\n");
    }

    #[test]
    fn json_names() {
        let o = v1::WorkOrder {
            id: 7,
            status: v1::WorkOrderStatus::InReview as i32,
            kind: v1::OperationKind::Stop as i32,
            ..Default::default()
        };
        let j = order(&o);
        assert_eq!(j["status"], "in_review");
        assert_eq!(j["operation"], "stop");
    }
}
