//! Tables for people, JSON for scripts.

use gsl_proto::{convert, v1};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// A protobuf enum value's name without its prefix, in lower case (the
/// number when it is not a known value).
fn short_name(name: Option<&str>, prefix: &str, raw: i32) -> String {
    name.map(|n| n.trim_start_matches(prefix).to_ascii_lowercase())
        .unwrap_or_else(|| raw.to_string())
}

fn status(s: i32) -> String {
    let name = v1::WorkOrderStatus::try_from(s)
        .ok()
        .map(|v| v.as_str_name());
    short_name(name, "WORK_ORDER_STATUS_", s)
}

fn item_status(s: i32) -> String {
    let name = v1::ItemStatus::try_from(s).ok().map(|v| v.as_str_name());
    short_name(name, "ITEM_STATUS_", s)
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

/// What a card field no source gave shows.
pub const NOT_REPORTED: &str = "not reported";

/// A time as RFC 3339 (empty when unset).
pub fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(convert::from_timestamp)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// MB with two decimals, or "-" when not reported (tables).
pub fn mb(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

/// A value source's name.
pub fn source(s: i32) -> String {
    let name = v1::CardSource::try_from(s).ok().map(|v| v.as_str_name());
    short_name(name, "CARD_SOURCE_", s)
}

/// A card with the reference's field names; a field no source gave is
/// "not reported", never a made-up default.
pub fn card(c: &v1::Card) -> Value {
    let known = |s: String| {
        if s.is_empty() {
            Value::String(NOT_REPORTED.into())
        } else {
            Value::String(s)
        }
    };
    let num = |v: Option<f64>| v.map(|v| json!(v)).unwrap_or(json!(NOT_REPORTED));
    let mut attrs = serde_json::Map::new();
    for i in 0..6 {
        attrs.insert(
            format!("customer_attribute{}", i + 1),
            json!(c.customer_attributes.get(i).cloned().unwrap_or_default()),
        );
    }
    let mut v = json!({
        "cid": c.id,
        "carrier": carrier(c.carrier),
        "sim_status": c.sim_status,
        // 0: the carrier stopped the card and reports no reason (CT, CU).
        "operator_status": if c.stop_reason == 0 { json!(NOT_REPORTED) } else { json!(c.stop_reason) },
        "operator_status_raw": known(c.stop_reason_raw.clone()),
        "synced_at": known(time(&c.synced_at)),
        "imei": known(c.imei.clone()),
        "msisdn": known(c.msisdn.clone()),
        "imsi": known(c.imsi.clone()),
        "access_number": c.access_number,
        "order_id": c.batch_no,
        "price_plan_id": c.plan_id,
        "price_plan_name": known(c.plan_name.clone()),
        "sim_type": c.sim_type,
        "act_date": known(time(&c.act_date)),
        "expire_time": known(time(&c.expire_time)),
        "allowance_mb": num(c.allowance_mb),
        "flow_used": num(c.flow_used_mb),
        "flow_used_as_of": known(time(&c.flow_used_at)),
        "flow_left": num(c.flow_left_mb),
        "real_named": c.real_named,
        "pooled": c.pooled,
        "speed_value": c.speed_kbps,
        "exceed_cut_net_quota": c.threshold_mb,
        "imei_bind_remain_times": c.imei_bind_remain_times.map(|v| json!(v)).unwrap_or(json!(NOT_REPORTED)),
        "keep_number": c.keep_number,
        "cut_net_flag": c.cut_net_flag.map(|v| json!(v)).unwrap_or(json!(NOT_REPORTED)),
        "exceed_cut_net_flag": c.exceed_cut_net_flag,
        "sources": c.sources.iter().map(|s| json!({"fields": s.field, "from": source(s.source), "as_of": time(&s.at)})).collect::<Vec<_>>(),
    });
    if let Value::Object(m) = &mut v {
        m.extend(attrs);
    }
    v
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
