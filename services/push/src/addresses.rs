//! Push addresses: one JSON record per address in the `gsl_push` bucket
//! (`addr.<tenant>.<id>`, secrets included: only gsl-push's NATS user may
//! read it), mirrored in memory by a watch with history so every replica
//! sees changes within moments, and written through compare-and-set.

use async_nats::jetstream::kv::{Entry, Operation, Store};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use gsl_bus::kv::{self, Cas};
use gsl_proto::{convert, v1};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// Event types an address may ask for (docs/push.md).
pub const EVENT_TYPES: &[&str] = &[
    "order.finished",
    "item.failed",
    "item.sla_breached",
    "backoffice.waiting",
    "backoffice.completed",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub id: String,
    pub tenant: String,
    pub url: String,
    #[serde(default)]
    pub ca_pem: String,
    #[serde(default)]
    pub events: Vec<String>,
    pub rate: u32,
    pub concurrency: u32,
    pub enabled: bool,
    #[serde(default)]
    pub disabled_reason: String,
    pub created_at: DateTime<Utc>,
    /// When it was (last) enabled: "no success for N days" counts from
    /// here when it never succeeded since.
    pub enabled_at: DateTime<Utc>,
    #[serde(default)]
    pub last_success_at: Option<DateTime<Utc>>,
    pub secret: String,
    #[serde(default)]
    pub previous_secret: Option<String>,
    #[serde(default)]
    pub previous_until: Option<DateTime<Utc>>,
    /// Bumped when the URL or certificate changes: kept connections go.
    #[serde(default)]
    pub version: u64,
}

impl Address {
    pub fn key(&self) -> String {
        key(&self.tenant, &self.id)
    }

    /// Whether it receives events of `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.enabled && (self.events.is_empty() || self.events.iter().any(|e| e == kind))
    }

    /// The keys that sign now: the current secret, and the previous one
    /// until its overlap ends.
    pub fn signing_keys(&self, now: DateTime<Utc>) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = crate::sign::key_of(&self.secret).into_iter().collect();
        if let (Some(p), Some(until)) = (&self.previous_secret, self.previous_until)
            && until > now
            && let Some(k) = crate::sign::key_of(p)
        {
            keys.push(k);
        }
        keys
    }

    /// The connection pool's key: changes with the URL or certificate.
    pub fn pool_key(&self) -> String {
        format!("{}.{}|{}", self.tenant, self.id, self.version)
    }

    /// The API's view (no secret).
    pub fn to_wire(&self) -> v1::PushAddress {
        v1::PushAddress {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            url: self.url.clone(),
            server_ca_pem: self.ca_pem.clone(),
            events: self.events.clone(),
            rate_per_s: self.rate,
            concurrency: self.concurrency,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason.clone(),
            created_at: Some(convert::timestamp(self.created_at)),
            last_success_at: self.last_success_at.map(convert::timestamp),
            previous_secret_until: self.previous_until.map(convert::timestamp),
        }
    }
}

/// `addr.<tenant>.<id>`.
pub fn key(tenant: &str, id: &str) -> String {
    format!("addr.{tenant}.{id}")
}

/// The bucket and its mirror.
#[derive(Clone)]
pub struct Addresses {
    pub store: Store,
    by_key: Arc<RwLock<HashMap<String, Arc<Address>>>>,
    pub ready: tokio::sync::watch::Receiver<bool>,
}

fn decode(e: &Entry) -> Option<Address> {
    (e.operation == Operation::Put)
        .then(|| serde_json::from_slice(&e.value).ok())
        .flatten()
}

impl Addresses {
    /// Mirror the bucket (in the background, for as long as the process).
    pub fn mirror(store: Store) -> Addresses {
        let by_key: Arc<RwLock<HashMap<String, Arc<Address>>>> = Arc::default();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let (a, r) = (by_key.clone(), by_key.clone());
        gsl_bus::kv::spawn_mirror(
            store.clone(),
            "addr.>",
            move |e| {
                let mut m = a.write().expect("addresses");
                match decode(e) {
                    Some(addr) => {
                        m.insert(e.key.clone(), Arc::new(addr));
                    }
                    None => {
                        m.remove(&e.key);
                    }
                }
            },
            move |seen: &HashSet<String>| {
                r.write()
                    .expect("addresses")
                    .retain(|k, _| seen.contains(k));
            },
            tx,
        );
        Addresses {
            store,
            by_key,
            ready: rx,
        }
    }

    pub fn get(&self, tenant: &str, id: &str) -> Option<Arc<Address>> {
        self.by_key
            .read()
            .expect("addresses")
            .get(&key(tenant, id))
            .cloned()
    }

    /// The tenant's addresses, by id.
    pub fn of_tenant(&self, tenant: &str) -> Vec<Arc<Address>> {
        let prefix = format!("addr.{tenant}.");
        let mut v: Vec<Arc<Address>> = self
            .by_key
            .read()
            .expect("addresses")
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, a)| a.clone())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    fn remember(&self, a: Address) {
        self.by_key
            .write()
            .expect("addresses")
            .insert(a.key(), Arc::new(a));
    }

    /// Store a new address (its id is new: a create, never an overwrite).
    pub async fn create(&self, a: Address) -> Result<Address, gsl_bus::BusError> {
        let body = Bytes::from(serde_json::to_vec(&a).expect("JSON"));
        match kv::create(&self.store, &a.key(), body).await? {
            Some(_) => {
                self.remember(a.clone());
                Ok(a)
            }
            None => Err(gsl_bus::BusError::Contended {
                key: a.key(),
                attempts: 1,
            }),
        }
    }

    /// Change an address by compare-and-set: `f` returns false to keep it.
    /// `Ok(None)`: no such address.
    pub async fn update(
        &self,
        tenant: &str,
        id: &str,
        mut f: impl FnMut(&mut Address) -> bool,
    ) -> Result<Option<Address>, gsl_bus::BusError> {
        let out = kv::cas(&self.store, &key(tenant, id), 8, |cur| {
            let Some(mut a) = cur.and_then(|b| serde_json::from_slice::<Address>(b).ok()) else {
                return Cas::Keep(None);
            };
            if !f(&mut a) {
                return Cas::Keep(Some(a));
            }
            Cas::Write(Bytes::from(serde_json::to_vec(&a).expect("JSON")), Some(a))
        })
        .await?;
        if let Some(a) = &out {
            self.remember(a.clone());
        }
        Ok(out)
    }

    pub async fn delete(&self, tenant: &str, id: &str) -> Result<(), gsl_bus::BusError> {
        let k = key(tenant, id);
        self.store
            .delete(&k)
            .await
            .map_err(|e| gsl_bus::BusError::kv("delete", k.clone(), e))?;
        self.by_key.write().expect("addresses").remove(&k);
        Ok(())
    }
}
