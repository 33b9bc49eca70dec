//! The ground truth tests referee with, and order look-ups.

use super::*;

impl Engine {
    pub fn order(&self, c: Carrier, order_no: &str) -> Option<Order> {
        self.platform(c)
            .world
            .orders
            .lock()
            .expect("orders lock")
            .by_no
            .get(order_no)
            .cloned()
    }

    pub fn order_by_txn(&self, c: Carrier, txn: &str) -> Option<Order> {
        let orders = self.platform(c).world.orders.lock().expect("orders lock");
        orders
            .by_txn
            .get(txn)
            .and_then(|no| orders.by_no.get(no))
            .cloned()
    }

    /// Ground truth for one card.
    pub fn truth(&self, c: Carrier, card: &str) -> CardTruth {
        self.with_truth(c, |cards| cards.get(card).cloned().unwrap_or_default())
    }

    /// Ground truth for every card of a carrier that saw a change.
    pub fn all_truth(&self, c: Carrier) -> HashMap<String, CardTruth> {
        self.with_truth(c, HashMap::clone)
    }

    /// `f` on a carrier's ground truth, under its lock.
    fn with_truth<T>(&self, c: Carrier, f: impl FnOnce(&HashMap<String, CardTruth>) -> T) -> T {
        f(&self
            .platform(c)
            .world
            .truth
            .lock()
            .expect("truth lock")
            .cards)
    }

    pub fn totals(&self, c: Carrier) -> (u64, u64) {
        let t = self.platform(c).world.truth.lock().expect("truth lock");
        (t.applied_total, t.replays)
    }

    /// Forget ground truth and counters (orders and cards stay).
    pub fn reset_truth(&self) {
        for p in &self.platforms {
            *p.world.truth.lock().expect("truth lock") = Truth::default();
            p.access.limiter.reset_counters();
            p.probes.requests.store(0, Ordering::Relaxed);
        }
    }
}
