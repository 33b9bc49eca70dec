//! Where work orders live, and how counts stay exact.
//!
//! Bucket `gsl_workorders`:
//!
//! | key | value | written |
//! |---|---|---|
//! | `wo.<id>` | [`v1::OrderRecord`] | at submit, then by compare-and-set only |
//! | `it.<id>.<c>` | [`v1::ItemChunk`]: items `c*CHUNK ..` | once, before the order record |
//! | `pg.<id>.<c>` | one byte per item: 0 processing, 1 succeeded, 2 failed | compare-and-set per final report |
//! | `dn.<id>` | one bit per chunk whose items are all final | compare-and-set |
//!
//! A final report flips one byte of its chunk's progress record by
//! compare-and-set: a repeated report finds the byte already set and changes
//! nothing, so counts are exact under concurrent reports, redelivery and
//! gateway restarts, and contention is spread over the chunks of an order.
//! The order's id is the revision of its idempotency record (see `submit`).
//!
//! Bucket `gsl_results`: `<id>.<card>` -> [`v1::Item`], the detail of an item
//! (problem, ticket, SLA deadline). Bucket `gsl_active`: `<id>` while an order
//! is not terminal.

use crate::error::ApiError;
use bytes::Bytes;
use gsl_bus::Buckets;
use gsl_bus::codec::{decode, encode};
use gsl_bus::kv::{self, Cas};
use gsl_proto::v1;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Items per chunk.
pub const CHUNK: usize = 1000;

pub const PROCESSING: u8 = 0;
pub const SUCCEEDED: u8 = 1;
pub const FAILED: u8 = 2;

pub fn order_key(id: u64) -> String {
    format!("wo.{id}")
}
pub fn chunk_key(id: u64, c: usize) -> String {
    format!("it.{id}.{c}")
}
pub fn progress_key(id: u64, c: usize) -> String {
    format!("pg.{id}.{c}")
}
pub fn done_key(id: u64) -> String {
    format!("dn.{id}")
}
pub fn result_key(id: u64, card: &str) -> String {
    format!("{id}.{card}")
}

pub fn chunks_for(total: usize) -> usize {
    total.div_ceil(CHUNK)
}

/// Exact counts of an order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
}

impl Counts {
    pub fn processing(&self) -> u64 {
        self.total - self.succeeded - self.failed
    }

    pub fn add_progress(&mut self, p: &[u8]) {
        for b in p {
            match *b {
                SUCCEEDED => self.succeeded += 1,
                FAILED => self.failed += 1,
                _ => {}
            }
        }
    }

    pub fn to_wire(self) -> v1::Counts {
        v1::Counts {
            total: self.total,
            succeeded: self.succeeded,
            failed: self.failed,
            processing: self.processing(),
        }
    }
}

/// Item chunks never change once written: cached by (order, chunk).
type ChunkCache = HashMap<(u64, usize), Arc<v1::ItemChunk>>;

/// Storage of orders, with a cache of immutable item chunks.
#[derive(Clone)]
pub struct Store {
    pub b: Buckets,
    chunks: Arc<Mutex<ChunkCache>>,
}

/// Entries kept in the chunk cache before it is cleared (about 1,000 items each).
const CHUNK_CACHE: usize = 256;

impl Store {
    pub fn new(b: Buckets) -> Store {
        Store {
            b,
            chunks: Arc::default(),
        }
    }

    pub async fn order(&self, id: u64) -> Result<Option<v1::OrderRecord>, ApiError> {
        let e = kv::read(&self.b.workorders, &order_key(id)).await?;
        match kv::live(&e) {
            None => Ok(None),
            Some(v) => Ok(Some(decode("OrderRecord", v).map_err(ApiError::busy)?)),
        }
    }

    /// Change an order by compare-and-set. `f` returns `None` to leave it.
    pub async fn update_order<T>(
        &self,
        id: u64,
        mut f: impl FnMut(&mut v1::OrderRecord) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        let r = kv::cas(&self.b.workorders, &order_key(id), 100, |cur| {
            let Some(bytes) = cur else {
                return Cas::Keep(None);
            };
            let Ok(mut rec) = decode::<v1::OrderRecord>("OrderRecord", bytes) else {
                return Cas::Keep(None);
            };
            match f(&mut rec) {
                Some(t) => Cas::Write(encode(&rec), Some(t)),
                None => Cas::Keep(None),
            }
        })
        .await?;
        Ok(r)
    }

    pub async fn put_order(&self, rec: &v1::OrderRecord) -> Result<(), ApiError> {
        let id = rec.order.as_ref().map(|o| o.id).unwrap_or_default();
        self.b
            .workorders
            .put(order_key(id), encode(rec))
            .await
            .map_err(ApiError::busy)?;
        Ok(())
    }

    pub async fn chunk(&self, id: u64, c: usize) -> Result<Arc<v1::ItemChunk>, ApiError> {
        if let Some(ch) = self.chunks.lock().expect("chunk cache").get(&(id, c)) {
            return Ok(ch.clone());
        }
        let e = kv::read(&self.b.workorders, &chunk_key(id, c)).await?;
        let bytes = kv::live(&e)
            .ok_or_else(|| ApiError::busy(format!("chunk {c} of order {id} missing")))?;
        let ch = Arc::new(decode::<v1::ItemChunk>("ItemChunk", bytes).map_err(ApiError::busy)?);
        let mut cache = self.chunks.lock().expect("chunk cache");
        if cache.len() >= CHUNK_CACHE {
            cache.clear();
        }
        cache.insert((id, c), ch.clone());
        Ok(ch)
    }

    pub async fn progress(&self, id: u64, c: usize) -> Result<Vec<u8>, ApiError> {
        let e = kv::read(&self.b.workorders, &progress_key(id, c)).await?;
        Ok(kv::live(&e).map(|b| b.to_vec()).unwrap_or_default())
    }

    /// Exact counts, reading every chunk's progress (pipelined).
    pub async fn counts(&self, id: u64, total: u64, chunks: usize) -> Result<Counts, ApiError> {
        let reads = (0..chunks).map(|c| self.progress(id, c));
        let all = futures::future::try_join_all(reads).await?;
        let mut counts = Counts {
            total,
            ..Default::default()
        };
        for p in all {
            counts.add_progress(&p);
        }
        Ok(counts)
    }

    /// Set one item's final state. Returns whether this call set it (false:
    /// a repeated report) and whether the item's chunk is now all final.
    pub async fn set_final(
        &self,
        id: u64,
        index: usize,
        state: u8,
    ) -> Result<(bool, bool), ApiError> {
        let c = index / CHUNK;
        let pos = index % CHUNK;
        let r = kv::cas(&self.b.workorders, &progress_key(id, c), 1000, |cur| {
            let Some(p) = cur else {
                return Cas::Keep((false, false));
            };
            let complete = |v: &[u8]| v.iter().all(|b| *b != PROCESSING);
            if pos >= p.len() || p[pos] != PROCESSING {
                return Cas::Keep((false, complete(p)));
            }
            let mut next = p.to_vec();
            next[pos] = state;
            let done = complete(&next);
            Cas::Write(Bytes::from(next), (true, done))
        })
        .await?;
        Ok(r)
    }

    /// Mark a chunk done (idempotent); returns whether every chunk is done.
    pub async fn mark_chunk_done(
        &self,
        id: u64,
        c: usize,
        chunks: usize,
    ) -> Result<bool, ApiError> {
        let bytes = chunks.div_ceil(8);
        let all = |bits: &[u8]| (0..chunks).all(|i| bits[i / 8] & (1 << (i % 8)) != 0);
        let r = kv::cas(&self.b.workorders, &done_key(id), 1000, |cur| {
            let mut bits = cur.map(|b| b.to_vec()).unwrap_or_default();
            if bits.len() < bytes {
                bits.resize(bytes, 0);
            }
            if bits[c / 8] & (1 << (c % 8)) != 0 {
                return Cas::Keep(all(&bits));
            }
            bits[c / 8] |= 1 << (c % 8);
            let done = all(&bits);
            Cas::Write(Bytes::from(bits), done)
        })
        .await?;
        Ok(r)
    }

    pub async fn result(&self, id: u64, card: &str) -> Result<Option<v1::Item>, ApiError> {
        let e = kv::read(&self.b.results, &result_key(id, card)).await?;
        match kv::live(&e) {
            None => Ok(None),
            Some(b) => Ok(Some(decode("Item", b).map_err(ApiError::busy)?)),
        }
    }

    /// Merge into an item's detail by compare-and-set; `f` returns whether it
    /// changed anything.
    pub async fn update_result(
        &self,
        id: u64,
        card: &str,
        mut f: impl FnMut(&mut v1::Item) -> bool,
    ) -> Result<bool, ApiError> {
        let r = kv::cas(&self.b.results, &result_key(id, card), 100, |cur| {
            let mut item = cur
                .and_then(|b| decode::<v1::Item>("Item", b).ok())
                .unwrap_or_default();
            if f(&mut item) {
                Cas::Write(encode(&item), true)
            } else {
                Cas::Keep(false)
            }
        })
        .await?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_progress() {
        let mut c = Counts {
            total: 5,
            ..Default::default()
        };
        c.add_progress(&[0, 1, 2, 1, 0]);
        assert_eq!((c.succeeded, c.failed, c.processing()), (2, 1, 2));
        assert_eq!(chunks_for(0), 0);
        assert_eq!(chunks_for(1), 1);
        assert_eq!(chunks_for(1000), 1);
        assert_eq!(chunks_for(100_000), 100);
        assert_eq!(chunks_for(100_001), 101);
    }
}
