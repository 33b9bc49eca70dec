//! Driving a running gateway over gRPC, as every cross-service test does:
//! the same requests whether the gateway runs in the test process or as a
//! child process.

use gsl_proto::convert::status_is_terminal;
use gsl_proto::v1;
use std::time::Duration;
use tonic::Request;
use tonic::transport::Channel;

pub type OrdersClient = v1::work_orders_client::WorkOrdersClient<Channel>;

/// `m` with `authorization: Bearer <token>`.
pub fn bearer<T>(token: &str, m: T) -> Request<T> {
    let mut r = Request::new(m);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    r
}

/// A submit of `op` for `cards` (by id) under idempotency `key`: the
/// request every test builds.
pub fn submit_request(key: &str, op: v1::operation::Kind, cards: &[String]) -> v1::SubmitRequest {
    v1::SubmitRequest {
        idempotency_key: key.to_owned(),
        operation: Some(v1::Operation { kind: Some(op) }),
        cards: cards
            .iter()
            .map(|id| v1::CardRef {
                id: id.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A WorkOrders client for the gateway at `grpc` (`http://host:port`).
pub async fn orders(grpc: &str) -> Result<OrdersClient, tonic::transport::Error> {
    Ok(OrdersClient::connect(grpc.to_owned())
        .await?
        .max_encoding_message_size(64 << 20))
}

/// Poll order `id` until it is terminal; panics with the last answer (or
/// error: the gateway may be restarting in a fault test) after `within`.
pub async fn settled(grpc: &str, token: &str, id: u64, within: Duration) -> v1::WorkOrder {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let last = match orders(grpc).await {
            Ok(mut c) => match c.get(bearer(token, v1::GetRequest { id })).await {
                Ok(r) => {
                    let o = r.into_inner();
                    if status_is_terminal(o.status) {
                        return o;
                    }
                    format!("{o:?}")
                }
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} not settled within {within:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every item of order `id`, page by page.
pub async fn items(grpc: &str, token: &str, id: u64) -> Vec<v1::Item> {
    let mut c = orders(grpc).await.expect("gateway");
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = c
            .list_items(bearer(
                token,
                v1::ListItemsRequest {
                    work_order_id: id,
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list items")
            .into_inner();
        out.extend(r.items);
        if r.next_page_token.is_empty() {
            return out;
        }
        page_token = r.next_page_token;
    }
}

/// The test credential of carrier `carrier`'s adapter, derived from a test
/// rig's base token (each adapter has its own; the gateway knows all four).
pub fn adapter_token(base: &str, carrier: &str) -> String {
    format!("{base}-{carrier}")
}

/// `GSL_ADAPTER_TOKENS` for a gateway whose adapters use [`adapter_token`].
pub fn adapter_tokens_env(base: &str) -> String {
    gsl_domain::Carrier::ALL
        .iter()
        .map(|c| format!("{c}={}", adapter_token(base, c.as_str())))
        .collect::<Vec<_>>()
        .join(",")
}
