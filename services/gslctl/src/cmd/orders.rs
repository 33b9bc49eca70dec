//! Work orders: get, list, items, history, review (cancel, approve,
//! reject) and watch.

use super::{Ctx, Outcome, say};
use crate::authed;
use crate::output::{self, Format};
use crate::{EXIT_INVALID, EXIT_ITEMS_FAILED, EXIT_OK};
use gsl_domain::{Carrier, OperationKind};
use gsl_proto::{convert, v1};
use serde_json::json;

fn parse_status(s: &str) -> Result<i32, String> {
    gsl_domain::workorder::WorkOrderStatus::ALL
        .into_iter()
        .find(|x| x.as_str() == s)
        .map(|x| convert::status_to_wire(x) as i32)
        .ok_or_else(|| format!("--status {s:?}: expected in_review, approved, processing, completed, failed, cancelled or rejected"))
}

pub async fn get(ctx: &mut Ctx, id: u64) -> Outcome {
    let (format, tok) = (ctx.format, ctx.token.clone());
    let orders = &mut ctx.orders;
    let o = orders
        .get(authed(&tok, v1::GetRequest { id }))
        .await?
        .into_inner();
    Ok(show_order(format, &o))
}

pub async fn list(
    ctx: &mut Ctx,
    status: Option<String>,
    operation: Option<String>,
    carrier: Option<String>,
    card: Option<String>,
    limit: u32,
) -> Outcome {
    let (format, tok) = (ctx.format, ctx.token.clone());
    let orders = &mut ctx.orders;
    let status = match status.as_deref().map(parse_status).transpose() {
        Ok(s) => s.unwrap_or(0),
        Err(e) => {
            eprintln!("gslctl: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let operation = match operation
        .as_deref()
        .map(str::parse::<OperationKind>)
        .transpose()
    {
        Ok(k) => k.map(|k| convert::kind_to_wire(k) as i32).unwrap_or(0),
        Err(e) => {
            eprintln!("gslctl: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let carrier = match carrier.as_deref().map(str::parse::<Carrier>).transpose() {
        Ok(c) => c.map(|c| convert::carrier_to_wire(c) as i32).unwrap_or(0),
        Err(e) => {
            eprintln!("gslctl: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let l = orders
        .list(authed(
            &tok,
            v1::ListRequest {
                status,
                operation,
                carrier,
                card: card.unwrap_or_default(),
                page_size: limit,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    say(
        format,
        || output::order_rows(&l.work_orders),
        || json!(l.work_orders.iter().map(output::order).collect::<Vec<_>>()),
    );
    Ok(EXIT_OK)
}

pub async fn items(ctx: &mut Ctx, id: u64, status: Option<String>) -> Outcome {
    let (format, tok) = (ctx.format, ctx.token.clone());
    let orders = &mut ctx.orders;
    let status = match status.as_deref() {
        None => 0,
        Some("processing") => v1::ItemStatus::Processing as i32,
        Some("succeeded") => v1::ItemStatus::Succeeded as i32,
        Some("failed") => v1::ItemStatus::Failed as i32,
        Some(o) => {
            eprintln!("gslctl: --status {o:?}: expected processing, succeeded or failed");
            return Ok(EXIT_INVALID);
        }
    };
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = orders
            .list_items(authed(
                &tok,
                v1::ListItemsRequest {
                    work_order_id: id,
                    status,
                    page_size: 500,
                    page_token: page_token.clone(),
                },
            ))
            .await?
            .into_inner();
        all.extend(r.items);
        if r.next_page_token.is_empty() {
            break;
        }
        page_token = r.next_page_token;
    }
    say(
        format,
        || output::item_rows(&all),
        || json!(all.iter().map(output::item).collect::<Vec<_>>()),
    );
    Ok(EXIT_OK)
}

pub async fn history(ctx: &mut Ctx, card: String) -> Outcome {
    let (format, tok) = (ctx.format, ctx.token.clone());
    let orders = &mut ctx.orders;
    let h = orders
        .card_history(authed(
            &tok,
            v1::CardHistoryRequest {
                card,
                page_size: 500,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    say(
        format,
        || {
            let rows: Vec<Vec<String>> = h
                .entries
                .iter()
                .map(|e| {
                    let j = output::history(e);
                    vec![
                        e.work_order_id.to_string(),
                        j["operation"].as_str().unwrap_or("").into(),
                        j["status"].as_str().unwrap_or("").into(),
                        j["at"].as_str().unwrap_or("").into(),
                    ]
                })
                .collect();
            output::table(&["ORDER", "OPERATION", "STATUS", "AT"], &rows)
        },
        || json!(h.entries.iter().map(output::history).collect::<Vec<_>>()),
    );
    Ok(EXIT_OK)
}

/// A review action on an order held for review.
pub enum Review {
    Cancel,
    Approve,
    Reject(String),
}

pub async fn review(ctx: &mut Ctx, id: u64, action: Review) -> Outcome {
    let (format, tok) = (ctx.format, ctx.token.clone());
    let orders = &mut ctx.orders;
    let o = match action {
        Review::Cancel => orders.cancel(authed(&tok, v1::OrderRef { id })).await?,
        Review::Approve => orders.approve(authed(&tok, v1::OrderRef { id })).await?,
        Review::Reject(reason) => {
            orders
                .reject(authed(&tok, v1::RejectRequest { id, reason }))
                .await?
        }
    }
    .into_inner();
    Ok(show_order(format, &o))
}

pub async fn watch(ctx: &mut Ctx, id: u64) -> Outcome {
    let (format, tok) = (ctx.format, ctx.token.clone());
    let orders = &mut ctx.orders;
    let done = crate::watch::follow(orders, &tok, id, format == Format::Table).await?;
    say(
        format,
        || output::order_rows(std::slice::from_ref(&done)),
        || output::order(&done),
    );
    Ok(if done.failed > 0 {
        EXIT_ITEMS_FAILED
    } else {
        EXIT_OK
    })
}

/// One order, as a table row or JSON.
fn show_order(format: Format, o: &v1::WorkOrder) -> i32 {
    say(
        format,
        || output::order_rows(std::slice::from_ref(o)),
        || output::order(o),
    );
    EXIT_OK
}
