//! Dead-lettering: a message kept with its reason in the dead-letter stream.

use super::*;
use async_nats::HeaderMap;
use async_nats::jetstream::Message;
use chrono::Utc;
use gsl_bus::codec::encode;
use gsl_bus::names;
use gsl_bus::publish::{Outgoing, publish_one};
use gsl_domain::codes::ErrorCode;
use gsl_proto::{convert, v1};
use std::time::Duration;
use tracing::warn;

impl Worker {
    pub(super) async fn publish_dead_letter(
        &self,
        subject: &str,
        payload: &[u8],
        code: ErrorCode,
        why: &str,
        deliveries: u64,
    ) -> Result<(), gsl_bus::BusError> {
        self.metrics.dead_letters.inc();
        let dl = v1::DeadLetter {
            subject: subject.to_owned(),
            payload: payload.to_vec(),
            problem: Some(convert::problem(code, why)),
            deliveries,
            at: Some(convert::timestamp(Utc::now())),
            consumer: names::adapter_consumer(self.cfg.carrier),
        };
        let mut h = HeaderMap::new();
        h.insert(
            names::headers::DLQ_REASON,
            why.chars().take(200).collect::<String>().as_str(),
        );
        h.insert(names::headers::DLQ_CODE, code.code());
        gsl_telemetry::propagate::inject_nats(&mut h);
        publish_one(
            &self.js,
            Outgoing {
                subject: names::dlq_subject(self.cfg.carrier.as_str()),
                msg_id: None,
                headers: Some(h),
                payload: encode(&dl),
            },
        )
        .await?;
        Ok(())
    }

    /// Dead-letter a message we cannot even read.
    pub async fn dead_letter(&self, msg: &Message, code: ErrorCode, why: &str) -> Disposition {
        warn!(subject = %msg.subject, reason = why, "dead-lettering a malformed message");
        let deliveries = msg.info().map(|i| i.delivered as u64).unwrap_or(1);
        match self
            .publish_dead_letter(&msg.subject, &msg.payload, code, why, deliveries)
            .await
        {
            Ok(()) => Disposition::Term,
            Err(_) => Disposition::Nak(Duration::from_secs(1)),
        }
    }
}
