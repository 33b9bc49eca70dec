//! Gathering items into batch calls.
//!
//! Items that may share a call (same [`BatchKey`]) join an open batch. The
//! first to join *leads* it: it waits for the window (or until the batch is
//! full), takes every member, runs the one call for all of them, and hands
//! each member its result. The others only wait for theirs. No task is
//! spawned: the leader is an item's own delivery, kept alive by in-progress
//! acks like any slow item, and a batch never outlives the window by more
//! than its call.
//!
//! Items of different orders and tenants share a batch: the key is the
//! carrier account (one adapter), the call and its starting state.

use crate::carrier::BatchKey;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;

/// A member and where its result goes.
pub type Slot<M, R> = (M, oneshot::Sender<R>);

struct Open<M, R> {
    id: u64,
    members: Vec<Slot<M, R>>,
    /// The leader's channel: a joiner that fills the batch sends it the
    /// members at once.
    lead: Option<oneshot::Sender<Vec<Slot<M, R>>>>,
}

/// What joining gives: the members to run (for the leader only) and the
/// joiner's own result, to await after that.
pub struct Joined<M, R> {
    pub lead: Option<Vec<Slot<M, R>>>,
    pub result: oneshot::Receiver<R>,
}

pub struct Batcher<M, R> {
    window: Duration,
    open: Mutex<HashMap<String, Open<M, R>>>,
    seq: AtomicU64,
}

impl<M, R> Batcher<M, R> {
    pub fn new(window: Duration) -> Batcher<M, R> {
        Batcher {
            window,
            open: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
        }
    }

    /// Join the open batch of `key` (or open one and lead it).
    pub async fn join(&self, key: &BatchKey, m: M) -> Joined<M, R> {
        let (tx, result) = oneshot::channel();
        let max = key.max.max(1);
        let lead_rx = {
            let mut open = self.open.lock().expect("batcher lock");
            match open.get_mut(&key.call) {
                Some(o) => {
                    o.members.push((m, tx));
                    if o.members.len() >= max
                        && let Some(mut full) = open.remove(&key.call)
                        && let Some(lead) = full.lead.take()
                    {
                        // The leader may have timed out meanwhile and be
                        // taking the batch from the map: it finds it gone
                        // and waits on this channel instead.
                        let _ = lead.send(full.members);
                    }
                    None
                }
                None if max == 1 => {
                    return Joined {
                        lead: Some(vec![(m, tx)]),
                        result,
                    };
                }
                None => {
                    let id = self.seq.fetch_add(1, Ordering::Relaxed);
                    let (lead, lead_rx) = oneshot::channel();
                    open.insert(
                        key.call.clone(),
                        Open {
                            id,
                            members: vec![(m, tx)],
                            lead: Some(lead),
                        },
                    );
                    Some((id, lead_rx))
                }
            }
        };
        let Some((id, mut lead_rx)) = lead_rx else {
            return Joined { lead: None, result };
        };
        let members = tokio::select! {
            full = &mut lead_rx => full.ok(),
            _ = tokio::time::sleep(self.window) => None,
        };
        let members = match members {
            Some(m) => m,
            None => {
                let taken = {
                    let mut open = self.open.lock().expect("batcher lock");
                    if open.get(&key.call).is_some_and(|o| o.id == id) {
                        open.remove(&key.call).map(|o| o.members)
                    } else {
                        None
                    }
                };
                match taken {
                    Some(m) => m,
                    // Filled just as the window ended: the filler sent it.
                    None => lead_rx.await.unwrap_or_default(),
                }
            }
        };
        Joined {
            lead: Some(members),
            result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(max: usize) -> BatchKey {
        BatchKey {
            call: "stop".into(),
            max,
        }
    }

    /// Members that arrive inside the window share one batch, led by the
    /// first; a full batch is run at once, before the window ends.
    #[tokio::test]
    async fn members_inside_the_window_share_a_batch_and_a_full_one_goes_at_once() {
        let b: Arc<Batcher<u32, u32>> = Arc::new(Batcher::new(Duration::from_secs(30)));
        let t = std::time::Instant::now();
        let mut tasks = Vec::new();
        for i in 0..5u32 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                let j = b.join(&key(5), i).await;
                let led = j.lead.as_ref().map(|m| m.len());
                if let Some(members) = j.lead {
                    for (m, tx) in members {
                        let _ = tx.send(m * 10);
                    }
                }
                (led, j.result.await.unwrap())
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut led = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            let (l, r) = t.await.unwrap();
            assert_eq!(r, i as u32 * 10);
            led.extend(l);
        }
        assert_eq!(led, vec![5], "one leader ran all five");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the full batch waited for the window"
        );
    }

    /// A lone member runs alone once the window has passed.
    #[tokio::test]
    async fn a_lone_member_runs_after_the_window() {
        let b: Batcher<u32, u32> = Batcher::new(Duration::from_millis(50));
        let t = std::time::Instant::now();
        let j = b.join(&key(100), 7).await;
        assert!(t.elapsed() >= Duration::from_millis(50));
        let members = j.lead.expect("led");
        assert_eq!(members.len(), 1);
        // After a batch is taken, the next member opens a new one.
        let j2 = tokio::time::timeout(Duration::from_secs(5), b.join(&key(100), 8))
            .await
            .unwrap();
        assert_eq!(j2.lead.map(|m| m.len()), Some(1));
    }
}
