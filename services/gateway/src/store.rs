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
//!
//! Two things keep the round trips per report low without weakening any of
//! the above:
//!
//! - **Beliefs.** The store remembers the value and revision of what it last
//!   wrote ([`kv::Known`]) and starts the next compare-and-set from there
//!   instead of reading first. A stale belief (another replica wrote) loses
//!   the race and reads; it can never overwrite.
//! - **Group commit.** Final reports for one progress record are queued, and
//!   one writer task per record applies everything queued in one
//!   compare-and-set. 256 concurrent reports into the same 1,000-item chunk
//!   cost a handful of writes instead of hundreds of lost races.

use crate::error::ApiError;
use bytes::Bytes;
use gsl_bus::Buckets;
use gsl_bus::codec::{decode, encode};
use gsl_bus::kv::Known;
use gsl_bus::kv::{self, Cas};
use gsl_proto::v1;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

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

/// One queued final report: flip byte `pos` to `state`, answer on `done`.
struct Flip {
    pos: usize,
    state: u8,
    done: oneshot::Sender<Result<(bool, bool), ApiError>>,
}

/// Storage of orders, with a cache of immutable item chunks.
#[derive(Clone)]
pub struct Store {
    pub b: Buckets,
    chunks: Arc<Mutex<ChunkCache>>,
    /// Last value and revision written, per key (`r:` prefix: results bucket).
    known: Arc<Mutex<HashMap<String, Known>>>,
    /// Final reports waiting for their progress record's writer, per key.
    flips: Arc<Mutex<HashMap<String, Vec<Flip>>>>,
}

/// Entries kept in the chunk cache before it is cleared (about 1,000 items each).
const CHUNK_CACHE: usize = 256;
/// Beliefs kept before the map is cleared (a cleared belief costs one read).
const KNOWN_CACHE: usize = 20_000;

impl Store {
    pub fn new(b: Buckets) -> Store {
        Store {
            b,
            chunks: Arc::default(),
            known: Arc::default(),
            flips: Arc::default(),
        }
    }

    fn recall(&self, key: &str) -> Option<Known> {
        self.known.lock().expect("beliefs").get(key).cloned()
    }

    /// Remember what was written at `key` (or forget it with `None`).
    pub fn remember(&self, key: &str, k: Option<Known>) {
        let mut m = self.known.lock().expect("beliefs");
        match k {
            Some(k) => {
                if m.len() >= KNOWN_CACHE {
                    m.clear();
                }
                m.insert(key.to_owned(), k);
            }
            None => {
                m.remove(key);
            }
        }
    }

    /// Keep an item chunk written at submit, so reports need not read it.
    pub fn cache_chunk(&self, id: u64, c: usize, chunk: Arc<v1::ItemChunk>) {
        let mut cache = self.chunks.lock().expect("chunk cache");
        if cache.len() >= CHUNK_CACHE {
            cache.clear();
        }
        cache.insert((id, c), chunk);
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
        let key = order_key(id);
        let r = kv::cas_from(&self.b.workorders, &key, 100, self.recall(&key), |cur| {
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
        .await;
        self.settle_belief(&key, r)
    }

    /// Keep what a compare-and-set wrote; after an error believe nothing.
    fn settle_belief<T>(
        &self,
        key: &str,
        r: Result<(T, Option<Known>), gsl_bus::BusError>,
    ) -> Result<T, ApiError> {
        match r {
            Ok((t, written)) => {
                if written.is_some() {
                    self.remember(key, written);
                }
                Ok(t)
            }
            Err(e) => {
                self.remember(key, None);
                Err(e.into())
            }
        }
    }

    pub async fn put_order(&self, rec: &v1::OrderRecord) -> Result<(), ApiError> {
        let id = rec.order.as_ref().map(|o| o.id).unwrap_or_default();
        self.put(order_key(id), encode(rec)).await
    }

    /// Create a key of `gsl_workorders` unless it exists (then nothing is
    /// written and `false` is returned): the first submit of an order wins,
    /// a concurrent retry never overwrites what it wrote.
    pub async fn create(&self, key: String, value: Bytes) -> Result<bool, ApiError> {
        match kv::create(&self.b.workorders, &key, value.clone()).await? {
            Some(revision) => {
                self.remember(
                    &key,
                    Some(Known {
                        value: Some(value),
                        revision,
                    }),
                );
                Ok(true)
            }
            None => {
                self.remember(&key, None);
                Ok(false)
            }
        }
    }

    /// Write a key of `gsl_workorders` and remember it.
    pub async fn put(&self, key: String, value: Bytes) -> Result<(), ApiError> {
        match self.b.workorders.put(&key, value.clone()).await {
            Ok(revision) => {
                self.remember(
                    &key,
                    Some(Known {
                        value: Some(value),
                        revision,
                    }),
                );
                Ok(())
            }
            Err(e) => {
                self.remember(&key, None);
                Err(ApiError::busy(e))
            }
        }
    }

    pub async fn chunk(&self, id: u64, c: usize) -> Result<Arc<v1::ItemChunk>, ApiError> {
        if let Some(ch) = self.chunks.lock().expect("chunk cache").get(&(id, c)) {
            return Ok(ch.clone());
        }
        let e = kv::read(&self.b.workorders, &chunk_key(id, c)).await?;
        let bytes = kv::live(&e)
            .ok_or_else(|| ApiError::busy(format!("chunk {c} of order {id} missing")))?;
        let ch = Arc::new(decode::<v1::ItemChunk>("ItemChunk", bytes).map_err(ApiError::busy)?);
        self.cache_chunk(id, c, ch.clone());
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
        Ok(Self::sum(total, all))
    }

    /// Exact counts of an order whose chunks are all final. A remembered
    /// progress record with every byte final is exact (final bytes never
    /// change), so only the others are read.
    pub async fn final_counts(
        &self,
        id: u64,
        total: u64,
        chunks: usize,
    ) -> Result<Counts, ApiError> {
        let reads = (0..chunks).map(|c| async move {
            let key = progress_key(id, c);
            match self.recall(&key).and_then(|k| k.value) {
                Some(v) if v.iter().all(|b| *b != PROCESSING) => Ok(v.to_vec()),
                _ => self.progress(id, c).await,
            }
        });
        let all = futures::future::try_join_all(reads).await?;
        Ok(Self::sum(total, all))
    }

    fn sum(total: u64, all: Vec<Vec<u8>>) -> Counts {
        let mut counts = Counts {
            total,
            ..Default::default()
        };
        for p in all {
            counts.add_progress(&p);
        }
        counts
    }

    /// Set one item's final state. Returns whether this call set it (false:
    /// a repeated report) and whether the item's chunk is now all final.
    ///
    /// Queued behind the record's writer (group commit, see the module doc).
    pub async fn set_final(
        &self,
        id: u64,
        index: usize,
        state: u8,
    ) -> Result<(bool, bool), ApiError> {
        let key = progress_key(id, index / CHUNK);
        let (done, answer) = oneshot::channel();
        let flip = Flip {
            pos: index % CHUNK,
            state,
            done,
        };
        let lead = {
            let mut m = self.flips.lock().expect("flip queue");
            match m.get_mut(&key) {
                Some(q) => {
                    q.push(flip);
                    false
                }
                None => {
                    m.insert(key.clone(), vec![flip]);
                    true
                }
            }
        };
        if lead {
            // Its own task: a cancelled request must not leave a queue without a writer.
            let store = self.clone();
            tokio::spawn(async move { store.write_flips(key).await });
        }
        answer
            .await
            .map_err(|_| ApiError::busy("progress writer stopped; retry"))?
    }

    /// The writer of one progress record: apply what is queued, one
    /// compare-and-set per batch, until the queue is empty.
    async fn write_flips(&self, key: String) {
        loop {
            let batch = {
                let mut m = self.flips.lock().expect("flip queue");
                match m.get_mut(&key) {
                    Some(q) if !q.is_empty() => std::mem::take(q),
                    _ => {
                        m.remove(&key);
                        return;
                    }
                }
            };
            let wanted: Vec<(usize, u8)> = batch.iter().map(|f| (f.pos, f.state)).collect();
            let r = kv::cas_from(&self.b.workorders, &key, 1000, self.recall(&key), |cur| {
                apply_flips(cur, &wanted)
            })
            .await;
            match self.settle_belief(&key, r) {
                Ok(results) => {
                    for (f, r) in batch.into_iter().zip(results) {
                        let _ = f.done.send(Ok(r));
                    }
                }
                Err(e) => {
                    for f in batch {
                        let _ = f.done.send(Err(e.clone()));
                    }
                }
            }
        }
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
        let key = done_key(id);
        let r = kv::cas_from(&self.b.workorders, &key, 1000, self.recall(&key), |cur| {
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
        .await;
        self.settle_belief(&key, r)
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
        let key = result_key(id, card);
        let belief_key = format!("r:{key}");
        // Not remembered: most likely never written (an item's first report).
        let start = self.recall(&belief_key).unwrap_or(Known {
            value: None,
            revision: 0,
        });
        let r = kv::cas_from(&self.b.results, &key, 100, Some(start), |cur| {
            let mut item = cur
                .and_then(|b| decode::<v1::Item>("Item", b).ok())
                .unwrap_or_default();
            if f(&mut item) {
                Cas::Write(encode(&item), true)
            } else {
                Cas::Keep(false)
            }
        })
        .await;
        self.settle_belief(&belief_key, r)
    }
}

/// Apply queued flips to a progress record: per flip (set by it, chunk all
/// final afterwards). A byte already final is a repeated report.
fn apply_flips(cur: Option<&Bytes>, wanted: &[(usize, u8)]) -> Cas<Vec<(bool, bool)>> {
    let Some(p) = cur else {
        return Cas::Keep(vec![(false, false); wanted.len()]);
    };
    let mut next = p.to_vec();
    let set: Vec<bool> = wanted
        .iter()
        .map(|&(pos, state)| {
            let fresh = pos < next.len() && next[pos] == PROCESSING;
            if fresh {
                next[pos] = state;
            }
            fresh
        })
        .collect();
    let complete = next.iter().all(|b| *b != PROCESSING);
    let results = set.iter().map(|s| (*s, complete)).collect();
    if set.iter().any(|s| *s) {
        Cas::Write(Bytes::from(next), results)
    } else {
        Cas::Keep(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_apply_once_and_report_completion() {
        let cur = Bytes::from(vec![PROCESSING, PROCESSING, FAILED]);
        // The same item twice in one batch: only the first sets it.
        let Cas::Write(next, r) = apply_flips(Some(&cur), &[(0, SUCCEEDED), (0, FAILED), (9, 1)])
        else {
            panic!("expected a write");
        };
        assert_eq!(&next[..], &[SUCCEEDED, PROCESSING, FAILED]);
        assert_eq!(r, vec![(true, false), (false, false), (false, false)]);
        let Cas::Write(next, r) = apply_flips(Some(&next), &[(1, FAILED)]) else {
            panic!("expected a write");
        };
        assert_eq!(&next[..], &[SUCCEEDED, FAILED, FAILED]);
        assert_eq!(r, vec![(true, true)]);
        // Everything already final: nothing to write, the chunk is complete.
        assert!(
            matches!(apply_flips(Some(&next), &[(1, SUCCEEDED)]), Cas::Keep(r) if r == vec![(false, true)])
        );
        assert!(
            matches!(apply_flips(None, &[(0, SUCCEEDED)]), Cas::Keep(r) if r == vec![(false, false)])
        );
    }

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
