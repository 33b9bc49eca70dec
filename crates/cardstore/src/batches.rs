//! Purchase batches (directional config): one row per batch, the record a
//! protobuf `gsl.v1.PurchaseBatch`. Claimed like cards (ownership by the
//! primary key, one conditional statement); changed read-modify-write
//! under the row's lock ([`CardStore::update_batch`]), so two changes to
//! one batch's entries never lose each other.

use crate::{CardStore, Claim, StoreError};
use gsl_proto::v1;
use prost::Message;

fn decode(key: &str, bytes: &[u8]) -> Result<v1::PurchaseBatch, StoreError> {
    v1::PurchaseBatch::decode(bytes).map_err(|e| StoreError::Corrupt {
        what: "purchase batch",
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

impl CardStore {
    /// A batch, whoever holds it (`None`: unknown).
    pub async fn batch(&self, batch_no: &str) -> Result<Option<v1::PurchaseBatch>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT record FROM batches WHERE batch_no = $1",
                &[&batch_no],
            )
            .await
            .map_err(StoreError::query("batch"))?;
        row.map(|r| decode(batch_no, r.get::<_, &[u8]>(0)))
            .transpose()
    }

    /// Store `b` for `b.tenant` with the authority of `claim`: whether it
    /// was taken (false: another tenant holds it, or `OwnOnly` and nobody
    /// does).
    pub async fn claim_batch(
        &self,
        b: &v1::PurchaseBatch,
        claim: Claim,
    ) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let record = b.encode_to_vec();
        let sql = match claim {
            Claim::Any => {
                "INSERT INTO batches (batch_no, tenant, record) VALUES ($1, $2, $3)
                 ON CONFLICT (batch_no) DO UPDATE SET tenant = EXCLUDED.tenant, record = EXCLUDED.record, updated_at = now()"
            }
            Claim::NewOrOwn => {
                "INSERT INTO batches (batch_no, tenant, record) VALUES ($1, $2, $3)
                 ON CONFLICT (batch_no) DO UPDATE SET record = EXCLUDED.record, updated_at = now()
                 WHERE batches.tenant = EXCLUDED.tenant"
            }
            Claim::OwnOnly => {
                "UPDATE batches SET record = $3, updated_at = now() WHERE batch_no = $1 AND tenant = $2"
            }
        };
        let n = c
            .execute(sql, &[&b.batch_no, &b.tenant, &record])
            .await
            .map_err(StoreError::query("claim batch"))?;
        Ok(n == 1)
    }

    /// Change a batch under its row lock: `f` edits the record and says
    /// whether it changed it. `Ok(false)`: unknown batch, or no change.
    pub async fn update_batch<F>(&self, batch_no: &str, f: F) -> Result<bool, StoreError>
    where
        F: FnOnce(&mut v1::PurchaseBatch) -> bool,
    {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(StoreError::query("begin"))?;
        let Some(row) = tx
            .query_opt(
                "SELECT record FROM batches WHERE batch_no = $1 FOR UPDATE",
                &[&batch_no],
            )
            .await
            .map_err(StoreError::query("batch for update"))?
        else {
            return Ok(false);
        };
        let mut b = decode(batch_no, row.get::<_, &[u8]>(0))?;
        if !f(&mut b) {
            return Ok(false);
        }
        tx.execute(
            "UPDATE batches SET record = $2, updated_at = now() WHERE batch_no = $1",
            &[&batch_no, &b.encode_to_vec()],
        )
        .await
        .map_err(StoreError::query("update batch"))?;
        tx.commit().await.map_err(StoreError::query("commit"))?;
        Ok(true)
    }

    /// Copy a batch as it is unless one is stored under its number (the
    /// upgrade from the NATS KV registry). Whether it was written.
    pub async fn copy_legacy_batch(&self, b: &v1::PurchaseBatch) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO batches (batch_no, tenant, record) VALUES ($1, $2, $3) ON CONFLICT (batch_no) DO NOTHING",
                &[&b.batch_no, &b.tenant, &b.encode_to_vec()],
            )
            .await
            .map_err(StoreError::query("copy legacy batch"))?;
        Ok(n == 1)
    }
}
