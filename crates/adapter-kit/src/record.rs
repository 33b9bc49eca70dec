//! The execution record of an item, in `gsl_items` under `<carrier>.<wo>.<card>`.
//!
//! Written *before* the carrier is called (intent, with the transaction id),
//! then updated with the receipt (accepted) and the outcome (done). It, not
//! the bus, is what makes a redelivered item safe: an item whose record says
//! the carrier may have been called is looked up at the carrier, never
//! called again blindly; an item whose record is done is only reported again.

use crate::guards::Held;
use chrono::{DateTime, Utc};
use gsl_bus::kv;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The carrier may have been called under `txn`.
    Intent,
    /// The carrier accepted; followed to completion from GSL_FOLLOW.
    Accepted,
    /// Final.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Final {
    pub succeeded: bool,
    pub code: String,
    pub carrier_code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRecord {
    pub state: State,
    pub txn: String,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub poll_ref: Option<String>,
    #[serde(default)]
    pub accepted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
    #[serde(default)]
    pub sla_reported: bool,
    #[serde(default)]
    pub outcome: Option<Final>,
    /// The final outcome needs no more reporting: the gateway refused it and
    /// the item was dead-lettered. (An acknowledged report is not written
    /// back; reporting it again after a redelivery is harmless.)
    #[serde(default)]
    pub reported: bool,
    #[serde(default)]
    pub guards: Vec<Held>,
    #[serde(default)]
    pub quota: Option<String>,
    #[serde(default)]
    pub owner: String,
    /// The batch call this item is part of (its [`BatchRecord`] key in
    /// `gsl_items`): `txn` is then the batch's transaction id.
    #[serde(default)]
    pub batch: Option<String>,
    /// Parked until then (the services' clock): the item waits out the
    /// carrier's repeat window on a follow-up message, not on deliveries of
    /// its work message (see `worker::park`).
    #[serde(default)]
    pub parked_until: Option<DateTime<Utc>>,
}

/// Where a batch call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// The carrier may have been called under `txn`.
    Intent,
    /// Nothing reached the carrier (or it refused the whole batch): the
    /// members may be batched again at once.
    NotSent,
    /// The carrier accepted; followed from GSL_FOLLOW.
    Accepted,
    /// Every member has its final outcome.
    Done,
}

/// One member of a batch, with what the follow-up needs to report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMember {
    /// The member's execution record key.
    pub key: String,
    /// The member's `WorkItem`, protobuf, hex.
    pub work: String,
    #[serde(default)]
    pub msisdn: String,
    #[serde(default)]
    pub access_number: String,
}

/// A batch call, in `gsl_items` under `<carrier>.batch.<id>`: written before
/// the call, with the members' records pointing at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub state: BatchState,
    pub txn: String,
    /// The module's [`crate::carrier::BatchKey::call`].
    pub call: String,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub poll_ref: Option<String>,
    #[serde(default)]
    pub accepted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
    #[serde(default)]
    pub sla_reported: bool,
    pub members: Vec<BatchMember>,
}

/// A batch record's key.
pub fn batch_key(carrier: gsl_domain::Carrier, id: &str) -> String {
    format!("{}.batch.{id}", carrier.as_str())
}

impl Records {
    pub async fn get_batch(
        &self,
        key: &str,
    ) -> Result<Option<(BatchRecord, u64)>, gsl_bus::BusError> {
        self.get_json(key).await
    }

    pub async fn create_batch(
        &self,
        key: &str,
        r: &BatchRecord,
    ) -> Result<Option<u64>, gsl_bus::BusError> {
        self.create_json(key, r).await
    }

    pub async fn update_batch(
        &self,
        key: &str,
        r: &BatchRecord,
        revision: u64,
    ) -> Result<Option<u64>, gsl_bus::BusError> {
        self.put_rev(key, serde_json::to_vec(r).expect("serialises"), revision)
            .await
    }
}

impl ExecRecord {
    /// A record in `state` with nothing from the carrier yet.
    pub fn new(
        state: State,
        txn: String,
        started_at: DateTime<Utc>,
        guards: Vec<Held>,
        quota: Option<String>,
        owner: String,
    ) -> ExecRecord {
        ExecRecord {
            state,
            txn,
            started_at,
            ticket: None,
            poll_ref: None,
            accepted_at: None,
            deadline: None,
            sla_reported: false,
            outcome: None,
            reported: false,
            guards,
            quota,
            owner,
            batch: None,
            parked_until: None,
        }
    }
}

pub struct Records {
    pub kv: async_nats::jetstream::kv::Store,
}

impl Records {
    pub async fn get(&self, key: &str) -> Result<Option<(ExecRecord, u64)>, gsl_bus::BusError> {
        self.get_json(key).await
    }

    /// Create; `Ok(None)` if a record exists already.
    pub async fn create(
        &self,
        key: &str,
        r: &ExecRecord,
    ) -> Result<Option<u64>, gsl_bus::BusError> {
        self.create_json(key, r).await
    }

    /// A JSON record and its revision (`None`: none, deleted or unreadable).
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, u64)>, gsl_bus::BusError> {
        let e = kv::read(&self.kv, key).await?;
        Ok(
            e.filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put)
                .and_then(|e| {
                    serde_json::from_slice(&e.value)
                        .ok()
                        .map(|r| (r, e.revision))
                }),
        )
    }

    async fn create_json<T: Serialize>(
        &self,
        key: &str,
        r: &T,
    ) -> Result<Option<u64>, gsl_bus::BusError> {
        kv::create(
            &self.kv,
            key,
            serde_json::to_vec(r).expect("serialises").into(),
        )
        .await
    }

    /// Update on a revision; `Ok(None)` if someone else changed it first.
    pub async fn update(
        &self,
        key: &str,
        r: &ExecRecord,
        revision: u64,
    ) -> Result<Option<u64>, gsl_bus::BusError> {
        self.put_rev(key, serde_json::to_vec(r).expect("serialises"), revision)
            .await
    }

    async fn put_rev(
        &self,
        key: &str,
        value: Vec<u8>,
        revision: u64,
    ) -> Result<Option<u64>, gsl_bus::BusError> {
        match self.kv.update(key, value.into(), revision).await {
            Ok(rev) => Ok(Some(rev)),
            Err(e) if e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => {
                Ok(None)
            }
            Err(e) => Err(gsl_bus::BusError::kv("update", key, e)),
        }
    }
}
