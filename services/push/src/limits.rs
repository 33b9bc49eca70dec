//! Per-address pacing, enforced (Svix's open-source server stores a rate
//! but does not enforce it): at most `rate` deliveries a second, evenly
//! spaced, and at most `concurrency` at once. A 429 or a timeout slows the
//! address to half its rate for a minute (again halved on each, down to
//! one a second), so a struggling receiver gets air.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Duration, Instant};

const SLOW_FOR: Duration = Duration::from_secs(60);

struct Lane {
    next: Instant,
    slow_until: Instant,
    slow_factor: u32,
    permits: Arc<Semaphore>,
    concurrency: u32,
}

#[derive(Default)]
pub struct Limits {
    lanes: Mutex<HashMap<String, Lane>>,
}

impl Limits {
    /// Wait for the address's turn: a concurrency permit (held while the
    /// attempt runs) and a rate slot.
    pub async fn acquire(&self, key: &str, rate: u32, concurrency: u32) -> OwnedSemaphorePermit {
        let permits = {
            let mut lanes = self.lanes.lock().expect("lanes");
            let lane = lanes.entry(key.to_owned()).or_insert_with(|| Lane {
                next: Instant::now(),
                slow_until: Instant::now(),
                slow_factor: 1,
                permits: Arc::new(Semaphore::new(concurrency.max(1) as usize)),
                concurrency,
            });
            if lane.concurrency != concurrency {
                // A changed setting: a new semaphore (attempts holding the
                // old one finish under it).
                lane.permits = Arc::new(Semaphore::new(concurrency.max(1) as usize));
                lane.concurrency = concurrency;
            }
            lane.permits.clone()
        };
        let permit = permits.acquire_owned().await.expect("never closed");
        let at = {
            let mut lanes = self.lanes.lock().expect("lanes");
            let lane = lanes.get_mut(key).expect("made above");
            let now = Instant::now();
            let factor = if lane.slow_until > now {
                lane.slow_factor
            } else {
                1
            };
            let per_s = (rate.max(1) / factor).max(1);
            let at = lane.next.max(now);
            lane.next = at + Duration::from_secs_f64(1.0 / f64::from(per_s));
            at
        };
        tokio::time::sleep_until(at).await;
        permit
    }

    /// The receiver is struggling (429, timeout): slow down.
    pub fn slow_down(&self, key: &str) {
        if let Some(lane) = self.lanes.lock().expect("lanes").get_mut(key) {
            let now = Instant::now();
            lane.slow_factor = if lane.slow_until > now {
                (lane.slow_factor * 2).min(1024)
            } else {
                2
            };
            lane.slow_until = now + SLOW_FOR;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rate_and_concurrency_hold() {
        let l = Arc::new(Limits::default());
        let t0 = Instant::now();
        let mut held = Vec::new();
        for _ in 0..10 {
            held.push(l.acquire("a", 5, 10).await);
        }
        // Ten slots at 5/s: the tenth at 1.8 s.
        assert_eq!((Instant::now() - t0).as_millis(), 1800);
        // All ten permits held: the eleventh waits for one to go.
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.acquire("a", 5, 10).await });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished());
        held.pop();
        let _p = waiter.await.unwrap();
        // Slowed: half the rate.
        l.slow_down("a");
        let t1 = Instant::now();
        drop(held);
        for _ in 0..3 {
            let _p = l.acquire("a", 5, 10).await;
        }
        assert!(Instant::now() - t1 >= Duration::from_millis(800), "2.5/s");
    }
}
