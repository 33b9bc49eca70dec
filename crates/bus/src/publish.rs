//! Publishing many messages with many acks in flight.
//!
//! A synchronous publish (send, wait for the ack, send the next) runs at a few
//! thousand per second; keeping thousands of acks in flight runs an order of
//! magnitude faster. [`Pipeline`] sends every message at once and collects the
//! acks, failing on the first that fails: the caller learns that every message
//! is stored, or which one is not.

use crate::BusError;
use async_nats::HeaderMap;
use async_nats::jetstream::Context;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

/// One message to publish.
pub struct Outgoing {
    pub subject: String,
    /// `Nats-Msg-Id`, for de-duplication inside the stream's window.
    pub msg_id: Option<String>,
    pub headers: Option<HeaderMap>,
    pub payload: Bytes,
}

/// Publish and wait for the ack.
pub async fn publish_one(js: &Context, m: Outgoing) -> Result<u64, BusError> {
    let subject = m.subject.clone();
    let fut = send(js, m).await?;
    let ack = fut.await.map_err(|e| BusError::Publish {
        subject,
        reason: e.to_string(),
    })?;
    Ok(ack.sequence)
}

async fn send(js: &Context, m: Outgoing) -> Result<PublishAckFuture, BusError> {
    let mut headers = m.headers.unwrap_or_default();
    if let Some(id) = &m.msg_id {
        headers.insert(crate::names::headers::MSG_ID, id.as_str());
    }
    let msg = PublishMessage::build().payload(m.payload).headers(headers);
    js.send_publish(m.subject.clone(), msg)
        .await
        .map_err(|e| BusError::Publish {
            subject: m.subject,
            reason: match e.kind() {
                PublishErrorKind::MaxPayloadExceeded => format!("message too large: {e}"),
                _ => e.to_string(),
            },
        })
}

/// Pipelined publisher: up to `window` acks outstanding.
pub struct Pipeline<'a> {
    js: &'a Context,
    window: usize,
    inflight: FuturesUnordered<futures::future::BoxFuture<'static, Result<(), BusError>>>,
    sent: u64,
}

impl<'a> Pipeline<'a> {
    pub fn new(js: &'a Context, window: usize) -> Pipeline<'a> {
        Pipeline {
            js,
            window: window.max(1),
            inflight: FuturesUnordered::new(),
            sent: 0,
        }
    }

    /// Send one message; waits for an ack only when the window is full.
    pub async fn push(&mut self, m: Outgoing) -> Result<(), BusError> {
        while self.inflight.len() >= self.window {
            if let Some(r) = self.inflight.next().await {
                r?;
            }
        }
        let subject = m.subject.clone();
        let fut = send(self.js, m).await?;
        self.inflight.push(Box::pin(async move {
            fut.await.map(|_| ()).map_err(|e| BusError::Publish {
                subject,
                reason: e.to_string(),
            })
        }));
        self.sent += 1;
        Ok(())
    }

    /// Wait for every outstanding ack. Returns how many messages were sent.
    pub async fn finish(mut self) -> Result<u64, BusError> {
        while let Some(r) = self.inflight.next().await {
            r?;
        }
        Ok(self.sent)
    }
}
