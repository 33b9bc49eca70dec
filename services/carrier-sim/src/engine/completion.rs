//! Asynchronous completion on the scaled clock: due orders are applied to
//! their cards and recorded in the ground truth.

use super::*;

impl Engine {
    /// Complete every order due by now (called by the ticker).
    pub fn complete_due(&self) -> usize {
        let now = self.now();
        let mut done = 0;
        for p in &self.platforms {
            let due: Vec<String> = {
                let mut orders = p.world.orders.lock().expect("orders lock");
                let mut v = Vec::new();
                while let Some(Reverse((t, seq))) = orders.due.peek().copied() {
                    if t > now {
                        break;
                    }
                    orders.due.pop();
                    if let Some(no) = orders.due_no.remove(&seq) {
                        v.push(no);
                    }
                }
                v
            };
            if due.is_empty() {
                continue;
            }
            let mut inv = p.world.inv.lock().expect("inventory lock");
            for no in due {
                self.complete_locked(p, &mut inv, &no, now);
                done += 1;
            }
        }
        done
    }

    pub(super) fn complete_locked(
        &self,
        p: &Platform,
        inv: &mut Inventory,
        order_no: &str,
        now: DateTime<Utc>,
    ) {
        let mut orders = p.world.orders.lock().expect("orders lock");
        let Some(order) = orders.by_no.get_mut(order_no) else {
            return;
        };
        if order.state != OrderState::Pending {
            return;
        }
        order.completed_at = Some(now);
        let change = order.change.clone();
        let card_id = order.card.clone();
        if order.fail {
            order.state = OrderState::Failed;
            let month = order.rebind_month;
            drop(orders);
            if let Some(card) = inv.get_mut(&card_id) {
                if let Some(m) = month
                    && let Some(n) = card.rebinds.get_mut(&m)
                {
                    *n = n.saturating_sub(1);
                }
                if matches!(change, Change::Stop) {
                    card.pending_stop = false;
                }
            }
            return;
        }
        order.state = OrderState::Succeeded;
        drop(orders);
        self.apply(p, inv, &card_id, &change, now);
        let mut t = p.world.truth.lock().expect("truth lock");
        t.applied_total += 1;
        *t.cards
            .entry(card_id)
            .or_default()
            .applied
            .entry(change.op().as_str().to_owned())
            .or_insert(0) += 1;
    }

    pub(super) fn apply(
        &self,
        p: &Platform,
        inv: &mut Inventory,
        card_id: &str,
        change: &Change,
        now: DateTime<Utc>,
    ) {
        if let Change::Directional { batch, plan } = change {
            let mut batches = p.world.batches.lock().expect("batches lock");
            if let Some(b) = batches.get_mut(batch) {
                apply_directional(b, plan, now);
            }
            return;
        }
        if let Change::SwitchPolicy { policy } = change
            && let Some(pol) = p
                .world
                .policies
                .lock()
                .expect("policies lock")
                .get_mut(policy)
        {
            pol.used = true;
        }
        let Some(card) = inv.get_mut(card_id) else {
            return;
        };
        // What the card reads show changed, and when.
        if !matches!(
            change,
            Change::Speed { .. }
                | Change::ThresholdAdd { .. }
                | Change::ThresholdModify { .. }
                | Change::ThresholdCancel
                | Change::RegionBind { .. }
                | Change::SwitchPolicy { .. }
        ) {
            card.updated_at = Some(now);
        }
        match change {
            Change::Activate | Change::Resume => {
                card.status = SimStatus::InUse;
                card.stop_reason = StopReason::Normal;
            }
            Change::Stop => {
                card.status = SimStatus::Stopped;
                card.stop_reason = StopReason::OnRequest;
                card.pending_stop = false;
            }
            Change::Close => card.status = SimStatus::Closed,
            Change::Rebind { imei, .. } => {
                card.imei = imei.clone();
                if p.carrier == Carrier::Cmcc {
                    card.status = SimStatus::InUse;
                    card.stop_reason = StopReason::Normal;
                }
            }
            Change::Speed { kbps } => card.speed_kbps = *kbps,
            Change::CutNet => card.cut_net = true,
            Change::RestoreNet => card.cut_net = false,
            Change::ThresholdAdd { mb } | Change::ThresholdModify { mb } => card.threshold_mb = *mb,
            Change::ThresholdCancel => card.threshold_mb = -1,
            Change::RegionBind { code } => card.region = Some(*code),
            Change::SwitchNetwork { target } => card.active_profile = Some(*target),
            Change::SwitchPolicy { policy } => card.policy = Some(policy.clone()),
            Change::Directional { .. } => {}
        }
    }
}

fn apply_directional(b: &mut Batch, plan: &DirChange, _now: DateTime<Utc>) {
    match plan {
        DirChange::Add { entries } => {
            let next = b.entries.len();
            for (i, e) in entries.iter().enumerate() {
                if !b.entries.iter().any(|x| x.entry == *e) {
                    b.entries.push(ExistingEntry {
                        id: format!("E{}", next + i + 1),
                        entry: e.clone(),
                        state: EntryState::Effective,
                    });
                }
            }
        }
        DirChange::Modify { id, entry } => {
            if let Some(x) = b.entries.iter_mut().find(|x| x.id == *id) {
                x.entry = entry.clone();
                x.state = EntryState::Effective;
            }
        }
        DirChange::Delete { ids } => b.entries.retain(|x| !ids.contains(&x.id)),
    }
}
