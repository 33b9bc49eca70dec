//! The NATS intake: other services publish work orders on
//! `gsl.intake.<tenant>` (protobuf `IntakeRequest`, or JSON: see
//! `docs/intake.md`). The gateway consumes them durably, applies the same
//! validation as the gRPC API, answers on the subject named by the
//! `Gsl-Reply-To` header when there is one, and publishes the acceptance or
//! refusal on `gsl.evt.<tenant>.intake.<seq>`. A message that cannot be
//! decoded, or names an unknown tenant, is dead-lettered on `gsl.dlq.intake`
//! with the reason and never retried.

use crate::core::Core;
use crate::error::ApiError;
use async_nats::jetstream::AckKind;
use futures::StreamExt;
use gsl_bus::codec::{decode, encode};
use gsl_bus::names;
use gsl_bus::publish::{Outgoing, publish_one};
use gsl_domain::ErrorCode;
use gsl_domain::workorder::OrderSource;
use gsl_proto::{convert, v1};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tracing::{Instrument, info_span, warn};

/// The JSON form of an intake order (documented in docs/intake.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonOrder {
    pub idempotency_key: String,
    /// `{"<operation>": {<parameters>}}`, e.g. `{"stop": {}}` or
    /// `{"speed_limit": {"kbps": 512}}`.
    pub operation: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub cards: Vec<JsonCard>,
    #[serde(default)]
    pub batch_no: String,
    #[serde(default)]
    pub hold_for_review: bool,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonCard {
    pub id: String,
    #[serde(default)]
    pub imei: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub bind_type: Option<String>,
}

impl JsonOrder {
    /// Into the protobuf request the gRPC API takes.
    pub fn into_request(self) -> Result<v1::SubmitRequest, String> {
        if self.operation.len() != 1 {
            return Err("operation must have exactly one key, the operation name".into());
        }
        let (name, params) = self.operation.into_iter().next().expect("one entry");
        let p: gsl_proto::ops::OpParams =
            serde_json::from_value(params).map_err(|e| format!("operation.{name}: {e}"))?;
        let kind: gsl_domain::OperationKind = name
            .parse()
            .map_err(|_| format!("{UNKNOWN_OPERATION} {name:?}"))?;
        let op = gsl_proto::ops::build(kind, &p).map_err(|e| match e.reason.as_str() {
            "is required" => format!("{}.{} is required", e.kind, e.param),
            _ => format!("{}.{}: {}", e.kind, e.param, e.reason),
        })?;
        let cards = self
            .cards
            .into_iter()
            .map(|c| {
                Ok(v1::CardRef {
                    id: c.id,
                    imei: c.imei,
                    region: c.region,
                    bind_type: c
                        .bind_type
                        .as_deref()
                        .map(|b| {
                            gsl_proto::ops::bind_type(b).ok_or_else(|| {
                                format!("bind_type {b:?}: expected normal or fixed_imei")
                            })
                        })
                        .transpose()?
                        .map(|b| b as i32),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(v1::SubmitRequest {
            idempotency_key: self.idempotency_key,
            operation: Some(op),
            cards,
            batch_no: self.batch_no,
            hold_for_review: self.hold_for_review,
            note: self.note,
        })
    }
}

const UNKNOWN_OPERATION: &str = "unknown operation";

/// Why an intake payload cannot be read: a code and a reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct IntakeError {
    pub code: ErrorCode,
    pub reason: String,
}

/// Decode an intake payload: JSON when the content type says so or the
/// payload starts with `{`, protobuf otherwise. An operation the gateway does
/// not know is `UnknownOperation`; anything else unreadable is
/// `MalformedMessage`.
pub fn decode_intake(
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
) -> Result<v1::SubmitRequest, IntakeError> {
    decode_payload(headers, payload).map_err(|reason| IntakeError {
        code: if reason.starts_with(UNKNOWN_OPERATION) {
            ErrorCode::UnknownOperation
        } else {
            ErrorCode::MalformedMessage
        },
        reason,
    })
}

fn decode_payload(
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
) -> Result<v1::SubmitRequest, String> {
    let ct = headers
        .and_then(|h| h.get(names::headers::CONTENT_TYPE))
        .map(|v| v.as_str().to_ascii_lowercase());
    let json = match ct.as_deref() {
        Some(c) if c.contains("json") => true,
        Some(c) if c.contains("protobuf") => false,
        _ => payload.first() == Some(&b'{'),
    };
    if json {
        let o: JsonOrder = serde_json::from_slice(payload).map_err(|e| format!("JSON: {e}"))?;
        o.into_request()
    } else {
        let r: v1::IntakeRequest = decode("IntakeRequest", payload).map_err(|e| e.to_string())?;
        r.request
            .ok_or_else(|| "IntakeRequest.request is missing".into())
    }
}

/// Whether this is the consumer's last delivery of `m`.
fn last_delivery(m: &async_nats::jetstream::Message) -> bool {
    m.info()
        .map(|i| i.delivered >= gsl_bus::topology::intake_consumer().max_deliver)
        .unwrap_or(false)
}

/// Consume the intake until the gateway stops.
pub async fn run(core: Arc<Core>, stop: gsl_telemetry::shutdown::Listener) -> Result<(), ApiError> {
    let consumer = gsl_bus::topology::open_consumer(
        &core.js,
        core.cfg.bus.topology,
        names::STREAM_INTAKE,
        gsl_bus::topology::intake_consumer(),
    )
    .await?;
    let mut msgs = consumer.messages().await.map_err(ApiError::busy)?;
    let stopped = stop.wait();
    tokio::pin!(stopped);
    loop {
        let m = tokio::select! {
            _ = &mut stopped => return Ok(()),
            m = msgs.next() => m,
        };
        let Some(m) = m else { return Ok(()) };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "intake consumer error");
                continue;
            }
        };
        let core = core.clone();
        // One at a time keeps intake orders in publish order per gateway.
        handle(&core, m).await;
    }
}

async fn handle(core: &Arc<Core>, m: async_nats::jetstream::Message) {
    let seq = m.info().map(|i| i.stream_sequence).unwrap_or_default();
    let span = info_span!(
        "intake",
        subject = %m.subject,
        messaging.system = "nats",
        messaging.message.id = seq,
        trace_id = tracing::field::Empty
    );
    gsl_telemetry::propagate::set_parent_from_nats(&span, m.headers.as_ref());
    gsl_telemetry::record_trace_id(&span);
    async {
        let tenant = m
            .subject
            .strip_prefix("gsl.intake.")
            .unwrap_or("")
            .to_owned();
        if !names::valid_tenant(&tenant) || !core.tenants.contains(&tenant) {
            dead_letter(
                core,
                &m,
                ErrorCode::PermissionDenied,
                &format!("unknown tenant {tenant:?}"),
            )
            .await;
            return;
        }
        let req = match decode_intake(m.headers.as_ref(), &m.payload) {
            Ok(r) => r,
            Err(e) => {
                // Kept with the reason, and its publisher is told.
                let reply = v1::IntakeReply {
                    result: Some(v1::intake_reply::Result::Refused(convert::problem(
                        e.code,
                        e.reason.clone(),
                    ))),
                    idempotency_key: String::new(),
                };
                if answer(core, &m, &tenant, seq, &reply).await.is_err() {
                    let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(2)))).await;
                    return;
                }
                dead_letter(core, &m, e.code, &e.reason).await;
                return;
            }
        };
        let key = req.idempotency_key.clone();
        let reply = match crate::submit::submit(core, &tenant, req, OrderSource::BusIntake).await {
            Ok(resp) => v1::IntakeReply {
                result: Some(v1::intake_reply::Result::Accepted(resp)),
                idempotency_key: key,
            },
            Err(e) if e.code == ErrorCode::Busy && !last_delivery(&m) => {
                // Transient: let JetStream redeliver.
                warn!(error = %e, "intake order could not be stored; will be redelivered");
                let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(2)))).await;
                return;
            }
            Err(e) if e.code == ErrorCode::Busy => {
                // The last delivery: kept with its reason, never dropped.
                let why = format!(
                    "could not be stored after {} deliveries: {e}",
                    gsl_bus::topology::intake_consumer().max_deliver
                );
                let reply = v1::IntakeReply {
                    result: Some(v1::intake_reply::Result::Refused(convert::problem(
                        ErrorCode::MaxDeliveries,
                        why.clone(),
                    ))),
                    idempotency_key: key,
                };
                let _ = answer(core, &m, &tenant, seq, &reply).await;
                dead_letter(core, &m, ErrorCode::MaxDeliveries, &why).await;
                return;
            }
            Err(e) => v1::IntakeReply {
                result: Some(v1::intake_reply::Result::Refused(convert::problem(
                    e.code, e.message,
                ))),
                idempotency_key: key,
            },
        };
        if answer(core, &m, &tenant, seq, &reply).await.is_err() {
            let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(2)))).await;
            return;
        }
        let _ = m.ack().await;
    }
    .instrument(span)
    .await
}

/// Tell the publisher: on its `Gsl-Reply-To` subject if it named one under
/// its tenant's intake inbox (`_INBOX_INTAKE.<tenant>.`; any other subject is
/// ignored: the gateway never publishes with its own rights where a
/// publisher points it), and durably on `gsl.evt.<tenant>.intake.<seq>`.
async fn answer(
    core: &Core,
    m: &async_nats::jetstream::Message,
    tenant: &str,
    seq: u64,
    reply: &v1::IntakeReply,
) -> Result<(), ()> {
    let payload = encode(reply);
    if let Some(to) = m
        .headers
        .as_ref()
        .and_then(|h| h.get(names::INTAKE_REPLY_HEADER))
    {
        let inbox = format!("{}.", gsl_bus::permissions::intake_inbox(tenant));
        if to.as_str().starts_with(&inbox) {
            let _ = core
                .client
                .publish(to.as_str().to_owned(), payload.clone())
                .await;
        } else {
            warn!(
                reply_to = to.as_str(),
                "Gsl-Reply-To outside the tenant's intake inbox: not answered there"
            );
        }
    }
    publish_one(
        &core.js,
        Outgoing {
            subject: names::intake_result_subject(tenant, seq),
            msg_id: Some(format!("intake:{seq}")),
            headers: None,
            payload,
        },
    )
    .await
    .map(|_| ())
    .map_err(|e| warn!(error = %e, "could not publish the intake result; will be redelivered"))
}

async fn dead_letter(core: &Core, m: &async_nats::jetstream::Message, code: ErrorCode, why: &str) {
    warn!(subject = %m.subject, reason = why, "intake message dead-lettered");
    core.metrics.intake_dead_letters.inc();
    let dl = v1::DeadLetter {
        subject: m.subject.to_string(),
        payload: m.payload.to_vec(),
        problem: Some(convert::problem(code, why)),
        deliveries: m.info().map(|i| i.delivered as u64).unwrap_or_default(),
        at: Some(convert::timestamp(chrono::Utc::now())),
        consumer: names::INTAKE_CONSUMER.into(),
    };
    let mut h = async_nats::HeaderMap::new();
    h.insert(
        names::headers::DLQ_REASON,
        why.chars().take(200).collect::<String>().as_str(),
    );
    h.insert(names::headers::DLQ_CODE, code.code());
    let r = publish_one(
        &core.js,
        Outgoing {
            subject: names::dlq_subject("intake"),
            msg_id: None,
            headers: Some(h),
            payload: encode(&dl),
        },
    )
    .await;
    match r {
        Ok(_) => {
            let _ = m.ack_with(AckKind::Term).await;
        }
        Err(e) => {
            warn!(error = %e, "dead-letter publish failed; will be redelivered");
            let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(2)))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// Whatever another service publishes, decoding answers Ok or Err.
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_intake(None, &bytes);
            let mut h = async_nats::HeaderMap::new();
            h.insert(names::headers::CONTENT_TYPE, names::headers::JSON);
            let _ = decode_intake(Some(&h), &bytes);
        }

        /// JSON that is almost right: random operation names, fields and values.
        #[test]
        fn json_shapes_never_panic(
            op in "[a-z_]{0,24}",
            field in "[a-z_]{0,12}",
            v in prop_oneof![
                Just(serde_json::json!(1)),
                Just(serde_json::json!(-1)),
                Just(serde_json::json!("x")),
                Just(serde_json::json!(null)),
                Just(serde_json::json!([1, "a"])),
                Just(serde_json::json!({"k": 1}))
            ],
            cards in proptest::collection::vec("[0-9A-Za-z ._-]{0,24}", 0..4),
        ) {
            let j = serde_json::json!({
                "idempotency_key": "k",
                "operation": {op: {field: v}},
                "cards": cards.iter().map(|c| serde_json::json!({"id": c})).collect::<Vec<_>>(),
            });
            let _ = decode_intake(None, j.to_string().as_bytes());
        }
    }

    #[test]
    fn json_orders() {
        let j = br#"{"idempotency_key":"k1","operation":{"speed_limit":{"kbps":512}},"cards":[{"id":"x"}]}"#;
        let r = decode_intake(None, j).unwrap();
        assert!(matches!(
            r.operation.unwrap().kind,
            Some(v1::operation::Kind::SpeedLimit(v1::SpeedLimit {
                kbps: 512
            }))
        ));
        let j = br#"{"idempotency_key":"k1","operation":{"rebind":{"bind_type":"fixed_imei"}},"cards":[{"id":"x","imei":"490154203237518"}]}"#;
        assert!(decode_intake(None, j).is_ok());
        for bad in [
            &br#"{"idempotency_key":"k1","operation":{"teleport":{}}}"#[..],
            br#"{"idempotency_key":"k1","operation":{"stop":{},"resume":{}}}"#,
            br#"{"idempotency_key":"k1","operation":{"speed_limit":{}}}"#,
            br#"{"idempotency_key":"k1","operation":{"stop":{"kbps":"x"}}}"#,
            br#"{"operation":{"stop":{}}}"#,
            br#"{"idempotency_key":"k1","operation":{"stop":{}},"extra":1}"#,
            br#"{not json"#,
        ] {
            assert!(
                decode_intake(None, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // protobuf
        let req = v1::IntakeRequest {
            request: Some(v1::SubmitRequest {
                idempotency_key: "p".into(),
                ..Default::default()
            }),
        };
        assert_eq!(
            decode_intake(None, &encode(&req)).unwrap().idempotency_key,
            "p"
        );
        assert!(decode_intake(None, &[0xff, 0xff]).is_err());
    }

    #[test]
    fn errors_carry_their_code() {
        let unknown = br#"{"idempotency_key":"k1","operation":{"teleport":{}},"cards":[]}"#;
        assert_eq!(
            decode_intake(None, unknown).unwrap_err().code,
            ErrorCode::UnknownOperation
        );
        for bad in [
            &b"{not json"[..],
            &[0xff, 0xff][..],
            br#"{"operation":{"stop":{}}}"#,
        ] {
            assert_eq!(
                decode_intake(None, bad).unwrap_err().code,
                ErrorCode::MalformedMessage,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
