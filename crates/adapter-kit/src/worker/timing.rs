//! Timing: every carrier call is a span and a metric, and its result is
//! read through the carrier's answer policy (an over-limit code is "slow
//! down", not a refusal).

use super::*;
use crate::carrier::CallError;
use tracing::{Instrument, info_span};

impl Worker {
    pub(super) async fn timed<T>(
        &self,
        call: &'static str,
        f: impl std::future::Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        let span = info_span!("carrier_call", call, carrier = %self.cfg.carrier, outcome = tracing::field::Empty, error_code = tracing::field::Empty);
        let t = std::time::Instant::now();
        let r = self.api.answers().reclass(f.instrument(span.clone()).await);
        let result = match &r {
            Ok(_) => "ok",
            Err(CallError::Refused { .. }) => "refused",
            Err(CallError::Transient { .. }) => "transient",
            Err(CallError::Unknown { .. }) => "unknown",
            Err(CallError::Superseded) => "superseded",
        };
        span.record("outcome", result);
        if let Err(CallError::Refused { code, .. }) = &r {
            span.record("error_code", code.code());
        }
        self.metrics.call(call, result, t.elapsed().as_secs_f64());
        r
    }
}
