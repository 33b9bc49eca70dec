//! Graceful shutdown: one signal, many listeners.

use tokio::sync::watch;

/// Resolves on SIGTERM or Ctrl-C.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// A shutdown switch: `trigger` once, every `Listener` wakes.
#[derive(Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

/// Waits for the shutdown switch.
#[derive(Clone)]
pub struct Listener {
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (tx, _) = watch::channel(false);
        Shutdown { tx }
    }

    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }

    pub fn listener(&self) -> Listener {
        Listener {
            rx: self.tx.subscribe(),
        }
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }
}

impl Listener {
    /// Resolves once shutdown is triggered (at once if it already was).
    pub async fn wait(mut self) {
        let _ = self.rx.wait_for(|v| *v).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Run `f` every `period` until shutdown: the first time at once when
    /// `at_once`, else after one period; a late run delays the next (no
    /// bursts to catch up), and a run in progress finishes.
    pub async fn every<F, Fut>(self, period: std::time::Duration, at_once: bool, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if !at_once {
            tick.tick().await;
        }
        let stopped = self.wait();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = tick.tick() => {}
            }
            f().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_runs_on_its_period_until_shutdown() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::time::Duration;
        let s = Shutdown::new();
        let (now, later) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        for (at_once, n) in [(true, now.clone()), (false, later.clone())] {
            tokio::spawn(
                s.listener()
                    .every(Duration::from_secs(10), at_once, move || {
                        let n = n.clone();
                        async move {
                            n.fetch_add(1, Ordering::SeqCst);
                        }
                    }),
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            (now.load(Ordering::SeqCst), later.load(Ordering::SeqCst)),
            (1, 0)
        );
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(
            (now.load(Ordering::SeqCst), later.load(Ordering::SeqCst)),
            (3, 2)
        );
        s.trigger();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(
            (now.load(Ordering::SeqCst), later.load(Ordering::SeqCst)),
            (3, 2)
        );
    }

    #[tokio::test]
    async fn listeners_wake() {
        let s = Shutdown::new();
        let l1 = s.listener();
        let l2 = s.listener();
        assert!(!l1.is_triggered());
        let h = tokio::spawn(l1.wait());
        s.trigger();
        h.await.unwrap();
        l2.wait().await;
        // a listener created after the trigger resolves at once
        s.listener().wait().await;
        assert!(s.is_triggered());
    }
}
