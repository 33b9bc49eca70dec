//! Carriers change cards on their own: over-use and threshold stops,
//! device-separation stops, plan expiry, a new IMEI in the card's device,
//! real-name verification. The admin API makes one on demand
//! (`POST /admin/{carrier}/cards/{id}/drift`); with `drift_per_hour` set, a
//! seeded background process makes them at random. Each is stamped
//! (`updated_at`, so changed-since lists show it) and counted in the
//! ground truth, which tests and benchmarks referee card sync with.

use super::*;
use gsl_domain::card::{SimStatus, StopReason};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A change the carrier makes by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Drift {
    /// Stopped for going over its plan (stop reason 1).
    OverUseStop,
    /// Stopped at the customer's usage threshold (stop reason 2).
    ThresholdStop,
    /// Stopped: the card left its bound device (stop reason 7).
    SeparationStop,
    /// Stopped: the plan expired (stop reason 4).
    PlanExpiry,
    /// Seen in another device.
    Imei { imei: String },
    /// Real-name verification done (or withdrawn).
    RealName { named: bool },
    /// Anything set in the carrier's console.
    Console {
        status: SimStatus,
        stop_reason: StopReason,
    },
}

impl Drift {
    fn apply(&self, c: &mut CardRecord) {
        let stop = |c: &mut CardRecord, r: StopReason| {
            c.status = SimStatus::Stopped;
            c.stop_reason = r;
        };
        match self {
            Drift::OverUseStop => stop(c, StopReason::OverPlanQuota),
            Drift::ThresholdStop => stop(c, StopReason::OverThreshold),
            Drift::SeparationStop => stop(c, StopReason::DeviceSeparation),
            Drift::PlanExpiry => stop(c, StopReason::PlanExpired),
            Drift::Imei { imei } => c.imei = Some(imei.clone()),
            Drift::RealName { named } => c.real_named = *named,
            Drift::Console {
                status,
                stop_reason,
            } => {
                c.status = *status;
                c.stop_reason = *stop_reason;
            }
        }
    }
}

impl Engine {
    /// Make `d` happen to a card; the card as it is now (`None`: unknown card).
    pub fn drift(&self, c: Carrier, card: &str, d: &Drift) -> Option<CardRecord> {
        let p = self.platform(c);
        let now = self.now();
        let out = {
            let mut inv = p.world.inv.lock().expect("inventory lock");
            let rec = inv.get_mut(card)?;
            d.apply(rec);
            rec.updated_at = Some(now);
            rec.clone()
        };
        let mut t = p.world.truth.lock().expect("truth lock");
        let e = t.cards.entry(card.to_owned()).or_default();
        e.drifts += 1;
        e.last_drift = Some(now);
        t.drifts_total += 1;
        Some(out)
    }

    /// Random drift at `per_hour` cards per carrier per (virtual) hour,
    /// from `seed`, until the engine is dropped. Returns the task.
    pub fn spawn_drift(self: &Arc<Self>, per_hour: f64, seed: u64) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut owed = [0f64; 4];
            let mut last = None;
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
            loop {
                tick.tick().await;
                let Some(e) = weak.upgrade() else { return };
                let now = e.now();
                let elapsed = last.map_or(0.0, |l: DateTime<Utc>| {
                    (now - l).num_milliseconds().max(0) as f64 / 3_600_000.0
                });
                last = Some(now);
                for (i, c) in Carrier::ALL.into_iter().enumerate() {
                    owed[i] += per_hour * elapsed;
                    while owed[i] >= 1.0 {
                        owed[i] -= 1.0;
                        let serial = rng.random_range(0..e.config.cards_per_carrier.max(1));
                        let id = e
                            .platform(c)
                            .world
                            .inv
                            .lock()
                            .expect("inventory lock")
                            .generator_id(serial);
                        let d = random_drift(&mut rng, c);
                        e.drift(c, &id, &d);
                    }
                }
            }
        })
    }
}

/// One of the drifts a carrier makes, at random (a tri-net card's stops
/// come with their domain reasons; an IMEI is valid).
fn random_drift(rng: &mut impl Rng, _c: Carrier) -> Drift {
    match rng.random_range(0..6) {
        0 => Drift::OverUseStop,
        1 => Drift::ThresholdStop,
        2 => Drift::SeparationStop,
        3 => Drift::PlanExpiry,
        4 => {
            let payload = format!("86{:012}", rng.random_range(0..1_000_000_000_000u64));
            Drift::Imei {
                imei: gsl_domain::ids::Imei::from_payload(&payload)
                    .map(|i| i.as_str().to_owned())
                    .unwrap_or_default(),
            }
        }
        _ => Drift::RealName {
            named: rng.random_bool(0.5),
        },
    }
}
