//! Cooldowns and quotas from the domain tables, kept in KV so every replica
//! sees the same ones.
//!
//! * A cooldown guard is a key in `gsl_guards` (`<carrier>.<rule>.<card>[.<op>]`)
//!   holding who took it and until when (virtual time). It is taken with an
//!   atomic `create`; an expired one is replaced by compare-and-set on its
//!   revision. The same item taking it again (a redelivery) is not refused.
//! * A quota ledger in `gsl_quota` (`ct.rebind.<card>.<yyyymm CST>`) holds
//!   the set of item ids that consumed it, changed only by compare-and-set:
//!   exact under any number of replicas. A failed change releases its entry.

use crate::carrier::Item;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use gsl_bus::kv::{self, Cas};
use gsl_domain::OperationKind;
use gsl_domain::clock::Clock;
use gsl_domain::codes::ErrorCode;
use gsl_domain::cooldown::{self, CooldownRule, Hold};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Guard {
    /// Virtual unix milliseconds.
    until_ms: i64,
    item: String,
}

/// A guard this item holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub key: String,
    pub release_on_failure: bool,
    pub until_complete: bool,
}

/// A cooldown or quota refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

pub struct Guards {
    pub guards: async_nats::jetstream::kv::Store,
    pub quota: async_nats::jetstream::kv::Store,
    pub clock: Clock,
    pub disabled: BTreeSet<String>,
    /// Holds overridden by rule name (`GSL_COOLDOWN_HOLDS`).
    pub holds: std::collections::BTreeMap<String, std::time::Duration>,
}

impl Guards {
    fn rules(&self, item: &Item, no_sdk: bool, op: OperationKind) -> Vec<&'static CooldownRule> {
        cooldown::rules_for(item.carrier, no_sdk, op)
            .filter(|r| !self.disabled.contains(r.name))
            .collect()
    }

    async fn live_guard(&self, key: &str) -> Result<Option<(Guard, u64)>, gsl_bus::BusError> {
        let e = kv::read(&self.guards, key).await?;
        Ok(e.as_ref()
            .filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put)
            .and_then(|e| {
                serde_json::from_slice::<Guard>(&e.value)
                    .ok()
                    .map(|g| (g, e.revision))
            }))
    }

    /// Check and take every cooldown guard of an operation. On refusal,
    /// guards taken so far are released.
    pub async fn acquire(
        &self,
        item: &Item,
        item_id: &str,
        no_sdk: bool,
        op: OperationKind,
        until_complete_for: Duration,
    ) -> Result<Result<Vec<Held>, Refusal>, gsl_bus::BusError> {
        let now = self.clock.now();
        let mut held = Vec::new();
        for rule in self.rules(item, no_sdk, op) {
            let key = gsl_bus::names::guard_key(item.carrier, &rule.key(&item.card, op));
            let takes = rule.taken_by.contains(op);
            let hold = match self.holds.get(rule.name) {
                Some(d) => Hold::For(Duration::from_std(*d).unwrap_or(Duration::MAX)),
                None => rule.hold,
            };
            let until = match hold {
                Hold::For(d) => now
                    .checked_add_signed(d)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
                Hold::UntilComplete => now + until_complete_for,
            };
            let refused = Refusal {
                code: rule.code,
                message: rule.note.to_owned(),
            };
            let ok = if takes {
                self.take(&key, item_id, now, until).await?
            } else {
                match self.live_guard(&key).await? {
                    Some((g, _)) => g.item == item_id || g.until_ms <= now.timestamp_millis(),
                    None => true,
                }
            };
            if !ok {
                self.release(item_id, &held).await;
                return Ok(Err(refused));
            }
            if takes {
                held.push(Held {
                    key,
                    release_on_failure: rule.release_on_failure,
                    until_complete: rule.hold == Hold::UntilComplete,
                });
            }
        }
        Ok(Ok(held))
    }

    async fn take(
        &self,
        key: &str,
        item_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, gsl_bus::BusError> {
        let value = Bytes::from(
            serde_json::to_vec(&Guard {
                until_ms: until.timestamp_millis(),
                item: item_id.to_owned(),
            })
            .expect("serialises"),
        );
        for _ in 0..20 {
            if kv::create(&self.guards, key, value.clone())
                .await?
                .is_some()
            {
                return Ok(true);
            }
            match self.live_guard(key).await? {
                None => continue, // deleted in between: create again
                Some((g, _)) if g.item == item_id => return Ok(true),
                Some((g, rev)) if g.until_ms <= now.timestamp_millis() => {
                    match self.guards.update(key, value.clone(), rev).await {
                        Ok(_) => return Ok(true),
                        Err(_) => continue, // someone else replaced it: look again
                    }
                }
                Some(_) => return Ok(false),
            }
        }
        Err(gsl_bus::BusError::Contended {
            key: key.to_owned(),
            attempts: 20,
        })
    }

    /// Release guards this item holds (only if it still holds them).
    pub async fn release(&self, item_id: &str, held: &[Held]) {
        for h in held {
            if let Ok(Some((g, rev))) = self.live_guard(&h.key).await
                && g.item == item_id
            {
                let _ = self.guards.delete_expect_revision(&h.key, Some(rev)).await;
            }
        }
    }

    /// After a failed change: release what a failure releases.
    pub async fn release_on_failure(&self, item_id: &str, held: &[Held]) {
        let v: Vec<Held> = held
            .iter()
            .filter(|h| h.release_on_failure || h.until_complete)
            .cloned()
            .collect();
        self.release(item_id, &v).await;
    }

    /// After a completed change: release the guards held until completion.
    pub async fn release_on_completion(&self, item_id: &str, held: &[Held]) {
        let v: Vec<Held> = held.iter().filter(|h| h.until_complete).cloned().collect();
        self.release(item_id, &v).await;
    }

    /// Reserve one unit of the operation's quota, if it has one. Returns the
    /// ledger key to release on failure.
    pub async fn reserve_quota(
        &self,
        item: &Item,
        item_id: &str,
        op: OperationKind,
    ) -> Result<Result<Option<String>, Refusal>, gsl_bus::BusError> {
        let Some(q) = cooldown::quota_for(item.carrier, op) else {
            return Ok(Ok(None));
        };
        let key = q.ledger_key(&item.card, self.clock.now());
        let ok = kv::cas(&self.quota, &key, 200, |cur| {
            let mut ids: Vec<String> = cur
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            if ids.iter().any(|i| i == item_id) {
                return Cas::Keep(true);
            }
            if ids.len() as u32 >= q.limit {
                return Cas::Keep(false);
            }
            ids.push(item_id.to_owned());
            Cas::Write(
                Bytes::from(serde_json::to_vec(&ids).expect("serialises")),
                true,
            )
        })
        .await?;
        Ok(if ok {
            Ok(Some(key))
        } else {
            Err(Refusal {
                code: q.code,
                message: q.note.to_owned(),
            })
        })
    }

    /// Give back a reservation (the change failed or was refused).
    pub async fn release_quota(&self, key: &str, item_id: &str) {
        let _ = kv::cas(&self.quota, key, 200, |cur| {
            let mut ids: Vec<String> = cur
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            let before = ids.len();
            ids.retain(|i| i != item_id);
            if ids.len() == before {
                Cas::Keep(())
            } else {
                Cas::Write(
                    Bytes::from(serde_json::to_vec(&ids).expect("serialises")),
                    (),
                )
            }
        })
        .await;
    }
}
