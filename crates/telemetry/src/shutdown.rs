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
}

#[cfg(test)]
mod tests {
    use super::*;

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
