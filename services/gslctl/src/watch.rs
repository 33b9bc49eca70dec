//! Follow an order to its end with a progress bar (succeeded / failed /
//! processing, rate, ETA). A dropped connection is resumed from the last
//! event's sequence, so no event is missed or counted twice.

use gsl_proto::convert::status_is_terminal;
use gsl_proto::v1;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;
use tonic::transport::Channel;

type Client = v1::work_orders_client::WorkOrdersClient<Channel>;

/// Watch until the order is terminal; returns its final state.
pub async fn follow(
    client: &mut Client,
    token: &str,
    id: u64,
    show_bar: bool,
) -> Result<v1::WorkOrder, tonic::Status> {
    let req = |m| crate::authed(token, m);
    let watch_req = |m| crate::authed(token, m);
    let mut order = client.get(req(v1::GetRequest { id })).await?.into_inner();
    let pb = if show_bar {
        ProgressBar::new(order.total)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}  {per_sec}  ETA {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let show = |pb: &ProgressBar, s: u64, f: u64, p: u64| {
        pb.set_position(s + f);
        pb.set_message(format!("{s} succeeded, {f} failed, {p} processing"));
    };
    show(&pb, order.succeeded, order.failed, order.processing);
    let mut after = 0u64;
    let mut failures = 0;
    while !status_is_terminal(order.status) {
        let stream = client
            .watch(watch_req(v1::WatchRequest {
                work_order_id: id,
                after_sequence: after,
            }))
            .await;
        let mut stream = match stream {
            Ok(s) => s.into_inner(),
            Err(e) if e.code() == tonic::Code::Unavailable && failures < 60 => {
                failures += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        loop {
            match stream.message().await {
                Ok(Some(ev)) => {
                    failures = 0;
                    after = ev.sequence;
                    match ev.event.and_then(|e| e.event) {
                        Some(v1::work_order_event::Event::Counts(c)) => {
                            show(&pb, c.succeeded, c.failed, c.processing)
                        }
                        Some(v1::work_order_event::Event::StatusChanged(sc))
                            if status_is_terminal(sc.status) =>
                        {
                            order = client.get(req(v1::GetRequest { id })).await?.into_inner();
                            break;
                        }
                        _ => {}
                    }
                }
                // The stream ended or broke: reconnect after the last event seen.
                Ok(None) | Err(_) => {
                    pb.println("connection lost; resuming");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    order = client.get(req(v1::GetRequest { id })).await?.into_inner();
                    break;
                }
            }
        }
    }
    show(&pb, order.succeeded, order.failed, order.processing);
    pb.finish();
    Ok(order)
}
