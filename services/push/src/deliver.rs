//! Delivering: the `push-deliver` consumer on `GSL_PUSH`. Each waiting push
//! is attempted in its address's turn ([`crate::limits`]), signed fresh
//! (Standard Webhooks; the `webhook-id` is the delivery's, the same on
//! every attempt). A 2xx acknowledges it. Anything else is a failed attempt,
//! retried after the schedule's wait (a NAK with that delay: the push stays
//! stored in JetStream meanwhile, so a killed process loses nothing, and
//! JetStream's delivery count is the attempt number). `Retry-After` is
//! honoured (the longer wait wins, at most a day); a 429 or a timeout also
//! slows the address down. At the 4th failed attempt a `failing` notice
//! goes out; when the schedule is used up, an `exhausted` notice with the
//! body (what `ListFailed` and `Resend` read) and the push leaves the
//! queue. A 410 disables the address; so does the configured time with no
//! success.

use crate::addresses::{Address, Addresses};
use crate::config::PushConfig;
use crate::http::{Post, SendError, Sender};
use crate::limits::Limits;
use async_nats::jetstream::consumer::{Consumer, pull};
use async_nats::jetstream::{AckKind, Context, Message};
use chrono::Utc;
use futures::StreamExt;
use gsl_proto::{convert, v1};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prost::Message as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// `gsl_push_attempts_total{result}`: ok, failed, exhausted, dropped.
#[derive(Clone, Default)]
pub struct Metrics {
    pub attempts: Family<Vec<(String, String)>, Counter>,
}

impl Metrics {
    fn count(&self, result: &str) {
        self.attempts
            .get_or_create(&vec![("result".into(), result.into())])
            .inc();
    }
}

pub struct Deliverer {
    pub cfg: Arc<PushConfig>,
    pub js: Context,
    pub addresses: Addresses,
    pub sender: Sender,
    pub limits: Limits,
    pub metrics: Metrics,
    /// When each address's last success was last written to its record
    /// (written at most once a minute per replica).
    written: Mutex<HashMap<String, std::time::Instant>>,
}

/// A failed attempt, as notices tell it.
struct Failure<'a> {
    attempts: u32,
    error: &'a str,
    status: u16,
}

/// How one attempt went.
#[derive(Debug)]
pub enum Attempt {
    Ok(u16),
    Failed {
        status: u16,
        error: String,
        retry_after: Option<u64>,
        slow: bool,
        gone: bool,
    },
}

impl Deliverer {
    pub fn new(cfg: Arc<PushConfig>, js: Context, addresses: Addresses, metrics: Metrics) -> Self {
        Deliverer {
            cfg,
            js,
            addresses,
            sender: Sender::default(),
            limits: Limits::default(),
            metrics,
            written: Mutex::default(),
        }
    }

    /// One signed POST of `body` as `webhook_id` to `a`.
    pub async fn attempt(&self, a: &Address, webhook_id: &str, body: &[u8]) -> Attempt {
        let now = Utc::now();
        let ts = now.timestamp();
        let keys = a.signing_keys(now);
        let headers = vec![
            ("webhook-id", webhook_id.to_owned()),
            ("webhook-timestamp", ts.to_string()),
            (
                "webhook-signature",
                crate::sign::header(&keys, webhook_id, ts, body),
            ),
        ];
        let key = a.pool_key();
        let r = self
            .sender
            .post(
                Post {
                    key: &key,
                    url: &a.url,
                    ca_pem: &a.ca_pem,
                    headers,
                    body: bytes::Bytes::copy_from_slice(body),
                },
                &self.cfg.guard,
                self.cfg.allow_http,
                self.cfg.timeout,
                self.cfg.answer_bytes,
            )
            .await;
        match r {
            Ok(ans) if (200..300).contains(&ans.status) => Attempt::Ok(ans.status),
            Ok(ans) => Attempt::Failed {
                status: ans.status,
                error: format!(
                    "HTTP {}{}",
                    ans.status,
                    if ans.body.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", ans.body.chars().take(200).collect::<String>())
                    }
                ),
                retry_after: ans.retry_after,
                slow: ans.status == 429,
                gone: ans.status == 410,
            },
            Err(e) => Attempt::Failed {
                status: 0,
                slow: matches!(e, SendError::Timeout(_)),
                error: e.to_string(),
                retry_after: None,
                gone: false,
            },
        }
    }

    /// Publish a notice (and wait until JetStream has it).
    async fn notice(
        &self,
        kind: &str,
        d: &v1::PushDelivery,
        attempts: u32,
        error: &str,
        status: u16,
        reason: &str,
    ) {
        let n = v1::PushNotice {
            kind: kind.into(),
            tenant: d.tenant.clone(),
            push: Some(v1::FailedPush {
                webhook_id: d.webhook_id.clone(),
                address_id: d.address_id.clone(),
                r#type: d.r#type.clone(),
                failed_at: Some(convert::timestamp(Utc::now())),
                attempts,
                last_error: error.into(),
                last_status: u32::from(status),
                kind: kind.into(),
                body: if kind == "exhausted" {
                    String::from_utf8_lossy(&d.body).into_owned()
                } else {
                    String::new()
                },
            }),
            reason: reason.into(),
        };
        let subject = gsl_bus::names::push_notice_subject(&d.tenant, &d.address_id, kind);
        for _ in 0..5 {
            if let Ok(ack) = self
                .js
                .publish(subject.clone(), n.encode_to_vec().into())
                .await
                && ack.await.is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::error!(kind, webhook_id = %d.webhook_id, "push notice could not be stored");
    }

    async fn disable(&self, a: &Address, reason: &str) {
        let r = self
            .addresses
            .update(&a.tenant, &a.id, |x| {
                if !x.enabled {
                    return false;
                }
                x.enabled = false;
                x.disabled_reason = reason.into();
                true
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, address = %a.id, "could not disable a push address");
        }
        tracing::warn!(address = %a.id, tenant = %a.tenant, reason, "push address disabled");
    }

    async fn succeeded(&self, a: &Address) {
        let due = {
            let mut w = self.written.lock().expect("written");
            let k = a.key();
            let due = w
                .get(&k)
                .is_none_or(|t| t.elapsed() > Duration::from_secs(60));
            if due {
                w.insert(k, std::time::Instant::now());
            }
            due
        };
        if due {
            let now = Utc::now();
            let _ = self
                .addresses
                .update(&a.tenant, &a.id, |x| {
                    x.last_success_at = Some(now);
                    true
                })
                .await;
        }
    }

    /// The push leaves the queue unsent: an `exhausted` notice (with its
    /// body, for `ListFailed` and `Resend`), counted, acknowledged.
    async fn give_up(&self, msg: &Message, d: &v1::PushDelivery, f: &Failure<'_>, reason: &str) {
        self.notice("exhausted", d, f.attempts, f.error, f.status, reason)
            .await;
        self.metrics.count("exhausted");
        let _ = msg.double_ack().await;
    }

    /// Disable the address (with a `disabled` notice) and give the push up.
    async fn disable_and_give_up(
        &self,
        msg: &Message,
        a: &Address,
        d: &v1::PushDelivery,
        f: &Failure<'_>,
        reason: &str,
    ) {
        self.disable(a, reason).await;
        self.notice("disabled", d, f.attempts, f.error, f.status, reason)
            .await;
        self.give_up(msg, d, f, reason).await;
    }

    /// Handle one waiting push.
    async fn handle(&self, msg: Message) {
        let attempt = msg.info().map(|i| i.delivered.max(1) as u32).unwrap_or(1);
        let Ok(d) = v1::PushDelivery::decode(msg.payload.as_ref()) else {
            tracing::error!(subject = %msg.subject, "an unreadable push delivery: dropped");
            self.metrics.count("dropped");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        };
        let Some(a) = self.addresses.get(&d.tenant, &d.address_id) else {
            tracing::info!(address = %d.address_id, "push for a deleted address: dropped");
            self.metrics.count("dropped");
            let _ = msg.double_ack().await;
            return;
        };
        if !a.enabled {
            let why = format!("the address is disabled ({})", a.disabled_reason);
            let f = Failure {
                attempts: attempt - 1,
                error: &why,
                status: 0,
            };
            self.give_up(&msg, &d, &f, &why).await;
            return;
        }
        // Wait for the address's turn, telling JetStream we are at it.
        let lane = a.pool_key();
        let turn = self.limits.acquire(&lane, a.rate, a.concurrency);
        tokio::pin!(turn);
        let permit = loop {
            tokio::select! {
                p = &mut turn => break p,
                _ = tokio::time::sleep(Duration::from_secs(20)) => {
                    let _ = msg.ack_with(AckKind::Progress).await;
                }
            }
        };
        let result = self.attempt(&a, &d.webhook_id, &d.body).await;
        drop(permit);
        match result {
            Attempt::Ok(_) => {
                self.metrics.count("ok");
                let _ = msg.double_ack().await;
                self.succeeded(&a).await;
            }
            Attempt::Failed {
                status,
                error,
                retry_after,
                slow,
                gone,
            } => {
                tracing::info!(address = %a.id, webhook_id = %d.webhook_id, attempt, %error, "push attempt failed");
                if slow {
                    self.limits.slow_down(&lane);
                }
                let f = Failure {
                    attempts: attempt,
                    error: &error,
                    status,
                };
                if gone {
                    self.disable_and_give_up(&msg, &a, &d, &f, "410 Gone from the receiver")
                        .await;
                    return;
                }
                if attempt == self.cfg.failing_at {
                    self.notice("failing", &d, attempt, &error, status, "")
                        .await;
                }
                let since = a.last_success_at.unwrap_or(a.enabled_at).max(a.enabled_at);
                let quiet = (Utc::now() - since).to_std().unwrap_or_default();
                if quiet > self.cfg.disable_after {
                    let why = format!("no success for {} s", self.cfg.disable_after.as_secs());
                    self.disable_and_give_up(&msg, &a, &d, &f, &why).await;
                    return;
                }
                let Some(wait) = self.cfg.schedule.get(attempt as usize - 1) else {
                    self.give_up(&msg, &d, &f, "retries ran out").await;
                    return;
                };
                self.metrics.count("failed");
                let mut delay = jitter(*wait);
                if let Some(s) = retry_after {
                    delay = delay.max(Duration::from_secs(s.min(86_400)));
                }
                let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
            }
        }
    }
}

/// A wait varied by up to a fifth either way.
fn jitter(d: Duration) -> Duration {
    use rand::Rng;
    let f: f64 = rand::rng().random_range(0.8..1.2);
    d.mul_f64(f)
}

/// Deliver until `stop`.
pub async fn run(
    d: Arc<Deliverer>,
    consumer: Consumer<pull::Config>,
    stop: gsl_telemetry::shutdown::Listener,
) {
    let in_flight = Arc::new(Semaphore::new(d.cfg.in_flight));
    pull(&d, &consumer, &in_flight, stop).await;
    // Let the attempts in hand finish (each ends within its timeout); what
    // is still unacknowledged after that is delivered again.
    let all = d.cfg.in_flight as u32;
    let _ = tokio::time::timeout(
        d.cfg.timeout + Duration::from_secs(2),
        in_flight.acquire_many(all),
    )
    .await;
}

async fn pull(
    d: &Arc<Deliverer>,
    consumer: &Consumer<pull::Config>,
    in_flight: &Arc<Semaphore>,
    stop: gsl_telemetry::shutdown::Listener,
) {
    let stopped = stop.wait();
    tokio::pin!(stopped);
    loop {
        let mut msgs = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "push deliveries: cannot pull; again soon");
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let permit = tokio::select! {
                _ = &mut stopped => return,
                p = in_flight.clone().acquire_owned() => p.expect("never closed"),
            };
            let next = tokio::select! {
                _ = &mut stopped => return,
                m = msgs.next() => m,
            };
            match next {
                Some(Ok(m)) => {
                    let d = d.clone();
                    tokio::spawn(async move {
                        d.handle(m).await;
                        drop(permit);
                    });
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "push deliveries: pull hiccup");
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..1000 {
            let j = jitter(Duration::from_secs(100));
            assert!((80.0..=120.0).contains(&j.as_secs_f64()), "{j:?}");
        }
    }
}
