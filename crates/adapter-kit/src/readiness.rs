//! `/readyz`'s carrier check: at most one paced call per interval.
//!
//! Kubernetes probes every few seconds on every replica; a probe that called
//! the carrier each time would spend its budget (China Unicom allows 5 calls
//! per second in all). So the answer is kept for [`Readiness::ttl`], and the
//! one call behind it waits for a query slot like any other query. Modules'
//! `ping` answers "reachable" to an over-the-limit answer: a 429 means the
//! carrier is there, and must not take the replica out of service.

use crate::carrier::CarrierApi;
use crate::pacing::Pacer;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Readiness {
    api: Arc<dyn CarrierApi>,
    pacer: Arc<Pacer>,
    pub ttl: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    pub fn new(api: Arc<dyn CarrierApi>, pacer: Arc<Pacer>, ttl: Duration) -> Readiness {
        Readiness {
            api,
            pacer,
            ttl,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The carrier's reachability, from the cache or one paced call.
    pub async fn check(&self) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some((at, r)) = last.as_ref()
            && at.elapsed() < self.ttl
        {
            return r.clone();
        }
        self.pacer.query().await;
        let r = self.api.ping().await;
        *last = Some((Instant::now(), r.clone()));
        r
    }
}
