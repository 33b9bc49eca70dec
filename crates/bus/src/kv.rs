//! Compare-and-set on JetStream KV: the only way quotas, guards, counts and
//! idempotency records change. Never read-modify-write in memory.

use crate::BusError;
use async_nats::jetstream::kv::{self, Entry, Operation, Store};
use bytes::Bytes;

/// Atomic create: `Ok(Some(revision))` if this call created the key,
/// `Ok(None)` if it already existed (and was not deleted).
pub async fn create(store: &Store, key: &str, value: Bytes) -> Result<Option<u64>, BusError> {
    match store.create(key, value).await {
        Ok(rev) => Ok(Some(rev)),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(BusError::kv("create", key, e)),
    }
}

/// The live value of a key (deleted and purged keys read as absent), with
/// the revision to update it on. `Ok(None)` for a key never written.
pub async fn read(store: &Store, key: &str) -> Result<Option<Entry>, BusError> {
    store
        .entry(key)
        .await
        .map_err(|e| BusError::kv("get", key, e))
}

/// `Some(value)` unless absent or deleted.
pub fn live(entry: &Option<Entry>) -> Option<&Bytes> {
    entry
        .as_ref()
        .filter(|e| e.operation == Operation::Put)
        .map(|e| &e.value)
}

/// What a compare-and-set step decided.
pub enum Cas<T> {
    /// Write this value (expecting the revision that was read) and return `T`.
    Write(Bytes, T),
    /// Leave the key as it is and return `T`.
    Keep(T),
}

/// Read, decide, write on the revision read; on a lost race read again.
/// `decide` sees the live value (`None` when absent or deleted).
pub async fn cas<T>(
    store: &Store,
    key: &str,
    max_attempts: u32,
    decide: impl FnMut(Option<&Bytes>) -> Cas<T>,
) -> Result<T, BusError> {
    Ok(cas_from(store, key, max_attempts, None, decide).await?.0)
}

/// A value and the revision it was read or written at, as a caller
/// remembers it. Revision 0 with no value means "believed absent".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub value: Option<Bytes>,
    pub revision: u64,
}

/// [`cas`], starting from a value the caller believes current (skipping the
/// first read) and returning what was written. A stale belief costs one lost
/// race and a read, never a wrong write: the update is still conditional on
/// the revision. Returns `(result, Some(written))`, or `(result, None)` when
/// `decide` kept the key (then the value seen is not returned: it may be a
/// stale belief).
pub async fn cas_from<T>(
    store: &Store,
    key: &str,
    max_attempts: u32,
    mut start: Option<Known>,
    mut decide: impl FnMut(Option<&Bytes>) -> Cas<T>,
) -> Result<(T, Option<Known>), BusError> {
    for _ in 0..max_attempts {
        let (value, revision, believed) = match start.take() {
            Some(k) => (k.value, k.revision, true),
            None => {
                let entry = read(store, key).await?;
                let revision = entry.as_ref().map(|e| e.revision).unwrap_or(0);
                (live(&entry).cloned(), revision, false)
            }
        };
        match decide(value.as_ref()) {
            // A belief may be stale: "nothing to do" is only trusted once read.
            Cas::Keep(_) if believed => continue,
            Cas::Keep(t) => return Ok((t, None)),
            Cas::Write(value, t) => match store.update(key, value.clone(), revision).await {
                Ok(rev) => {
                    return Ok((
                        t,
                        Some(Known {
                            value: Some(value),
                            revision: rev,
                        }),
                    ));
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(BusError::kv("update", key, e)),
            },
        }
    }
    Err(BusError::Contended {
        key: key.to_owned(),
        attempts: max_attempts,
    })
}

/// Every live key of a bucket.
pub async fn keys(store: &Store) -> Result<Vec<String>, BusError> {
    use futures::TryStreamExt;
    match store.keys().await {
        Ok(k) => k
            .try_collect()
            .await
            .map_err(|e| BusError::kv("keys", "*", e)),
        Err(e) => Err(BusError::kv("keys", "*", e)),
    }
}

/// Keep an in-memory mirror of a bucket's keys under `filter`, forever: a
/// watch with history that is started again (with history, so nothing
/// written meanwhile is missed) whenever it fails or ends. `ready` is true
/// only while the mirror is current: false from the start until the watch
/// has caught up, and again from a failure until the new watch has caught up.
/// After a restart has caught up, `retain` gets the keys that pass saw, so
/// the mirror can drop keys removed while it was not watching.
pub fn spawn_mirror<A, R>(
    store: Store,
    filter: &'static str,
    mut apply: A,
    mut retain: R,
    ready: tokio::sync::watch::Sender<bool>,
) -> tokio::task::JoinHandle<()>
where
    A: FnMut(&Entry) + Send + 'static,
    R: FnMut(&std::collections::HashSet<String>) + Send + 'static,
{
    use futures::StreamExt;
    tokio::spawn(async move {
        let mut restarts = 0u32;
        loop {
            let mut seen = std::collections::HashSet::new();
            let empty = store
                .status()
                .await
                .map(|s| s.values() == 0)
                .unwrap_or(false);
            match store.watch_with_history(filter).await {
                Ok(mut w) => {
                    if empty {
                        let _ = ready.send(true);
                    }
                    while let Some(e) = w.next().await {
                        let Ok(e) = e else { break };
                        apply(&e);
                        seen.insert(e.key.clone());
                        if e.seen_current || e.delta == 0 {
                            if restarts > 0 && !*ready.borrow() {
                                retain(&seen);
                            }
                            let _ = ready.send(true);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(bucket = %store.name, error = %e, "mirror watch could not start")
                }
            }
            // The watch failed or ended: stale until the next one catches up.
            let _ = ready.send(false);
            restarts += 1;
            tracing::warn!(bucket = %store.name, filter, "mirror watch ended; starting it again");
            tokio::time::sleep(std::time::Duration::from_millis(
                200 * u64::from(restarts.min(10)),
            ))
            .await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Topology, ensure};
    use gsl_testkit::NatsServer;

    /// A fresh server and its quota bucket (kept alive by the returned server
    /// and client).
    async fn quota_store() -> (NatsServer, async_nats::Client, Store) {
        let nats = NatsServer::start().await.unwrap();
        let (c, js) = crate::connect(&crate::BusConfig::new(nats.url(), "test"))
            .await
            .unwrap();
        let b = ensure(&js, &Topology::default()).await.unwrap();
        (nats, c, b.quota.clone())
    }

    #[tokio::test]
    async fn cas_counts_exactly_under_contention() {
        let (_nats, _c, store) = quota_store().await;
        // 40 concurrent increments with a cap of 25: exactly 25 win.
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                cas(&s, "counter", 200, |cur| {
                    let n: u32 = cur
                        .map(|b| String::from_utf8_lossy(b).parse().unwrap())
                        .unwrap_or(0);
                    if n >= 25 {
                        Cas::Keep(false)
                    } else {
                        Cas::Write(Bytes::from((n + 1).to_string()), true)
                    }
                })
                .await
                .unwrap()
            }));
        }
        let mut won = 0;
        for t in tasks {
            if t.await.unwrap() {
                won += 1;
            }
        }
        assert_eq!(won, 25);
        let v = live(&read(&store, "counter").await.unwrap())
            .cloned()
            .unwrap();
        assert_eq!(&v[..], b"25");
        // create is atomic, and works again after a delete
        assert!(
            create(&store, "g", Bytes::from_static(b"1"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            create(&store, "g", Bytes::from_static(b"2"))
                .await
                .unwrap()
                .is_none()
        );
        store.delete("g").await.unwrap();
        assert!(live(&read(&store, "g").await.unwrap()).is_none());
        assert!(
            create(&store, "g", Bytes::from_static(b"3"))
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn cas_from_a_stale_belief_rereads_and_never_overwrites() {
        let (_nats, _c, store) = quota_store().await;
        let append = |cur: Option<&Bytes>| {
            let mut v = cur.map(|b| b.to_vec()).unwrap_or_default();
            v.push(b'x');
            Cas::Write(Bytes::from(v), ())
        };
        // Believed absent and really absent: one write.
        let ((), k1) = cas_from(
            &store,
            "k",
            5,
            Some(Known {
                value: None,
                revision: 0,
            }),
            append,
        )
        .await
        .unwrap();
        let k1 = k1.unwrap();
        assert_eq!(k1.value.as_deref(), Some(&b"x"[..]));
        // Someone else writes; our belief (k1) is now stale.
        store.put("k", Bytes::from_static(b"yy")).await.unwrap();
        let ((), k2) = cas_from(&store, "k", 5, Some(k1.clone()), append)
            .await
            .unwrap();
        assert_eq!(k2.unwrap().value.as_deref(), Some(&b"yyx"[..]));
        // A stale belief that says "nothing to do" is checked against the store.
        let ((), kept) = cas_from(&store, "k", 5, Some(k1), |cur| {
            if cur.map(|b| b.len()) == Some(1) {
                Cas::Keep(())
            } else {
                Cas::Write(Bytes::from_static(b"z"), ())
            }
        })
        .await
        .unwrap();
        assert!(kept.is_some(), "the stale belief must not decide");
        let v = live(&read(&store, "k").await.unwrap()).cloned().unwrap();
        assert_eq!(&v[..], b"z");
    }
}
