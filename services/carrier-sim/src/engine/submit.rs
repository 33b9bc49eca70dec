//! Submitting changes: a receipt per transaction id (tri-net replays a
//! request id; other platforms never de-duplicate), the carrier-side rules,
//! then the order that completes later.

use super::*;

impl Engine {
    /// Submit a change under a transaction id. A repeated transaction id for
    /// the same card and operation returns the original receipt and applies
    /// nothing; for anything else it is refused.
    pub fn submit(
        &self,
        c: Carrier,
        card_id: &str,
        txn: &str,
        change: Change,
    ) -> Result<Receipt, Refusal> {
        self.submit_as(c, card_id, txn, change, false)
    }

    /// Submit a change that takes effect before the answer (China Unicom's
    /// Jasper edits are synchronous), whatever the completion mode.
    pub fn submit_sync(
        &self,
        c: Carrier,
        card_id: &str,
        change: Change,
    ) -> Result<Receipt, Refusal> {
        self.submit_as(c, card_id, "", change, true)
    }

    /// The card key of a card named by a carrier identifier (`iccid`,
    /// `msisdn` / access number, `imsi`).
    pub fn find_card(&self, c: Carrier, kind: CardIdKind, value: &str) -> Option<String> {
        let inv = self.platform(c).world.inv.lock().expect("inventory lock");
        match kind {
            CardIdKind::Iccid => inv.get(value).map(|c| c.id),
            CardIdKind::Msisdn => inv.id_by_msisdn(value),
            CardIdKind::Imsi => inv.id_by_imsi(value),
        }
    }

    pub(super) fn submit_as(
        &self,
        c: Carrier,
        card_id: &str,
        txn: &str,
        change: Change,
        sync: bool,
    ) -> Result<Receipt, Refusal> {
        let p = self.platform(c);
        let now = self.now();
        let mut inv = p.world.inv.lock().expect("inventory lock");
        // Only the tri-net contract (the project's own) de-duplicates by
        // request id; no real carrier documents one (carriers/README.md §2),
        // so a repeated call to CMCC, CT or CU is a second change.
        if c == Carrier::Trinet {
            let orders = p.world.orders.lock().expect("orders lock");
            if let Some(no) = orders.by_txn.get(txn) {
                let o = &orders.by_no[no];
                if o.card == card_id && o.change.op() == change.op() {
                    let order_no = no.clone();
                    drop(orders);
                    let mut t = p.world.truth.lock().expect("truth lock");
                    t.replays += 1;
                    t.cards.entry(card_id.to_owned()).or_default().replays += 1;
                    return Ok(Receipt {
                        order_no,
                        replayed: true,
                    });
                }
                return Err(Refusal::TxnConflict);
            }
        }
        let rebind_month = if let Change::Directional { batch, plan } = &change {
            self.check_directional(p, batch, plan)?;
            None
        } else {
            let card = inv.get_mut(card_id).ok_or(Refusal::UnknownCard)?;
            self.check(p, card, &change, now)?;
            // Acceptance bookkeeping on the carrier side.
            if c == Carrier::Cmcc && change.is_status_change() {
                card.last_status_change = Some(now);
            }
            if matches!(
                change,
                Change::SwitchNetwork { .. } | Change::SwitchPolicy { .. }
            ) {
                card.last_switch = Some(now);
            }
            if matches!(change, Change::Stop) {
                card.pending_stop = true;
            }
            if c == Carrier::Ct && matches!(change, Change::Rebind { .. }) {
                let m = month_key(now);
                *card.rebinds.entry(m).or_insert(0) += 1;
                Some(m)
            } else {
                None
            }
        };
        let completion = self.completion();
        let mut rng = rand::rng();
        let fail = rng.random_bool(completion.fail_share.clamp(0.0, 1.0));
        let due = match completion.mode {
            _ if sync => now,
            CompletionMode::Immediate => now,
            CompletionMode::Delay => {
                now + Duration::milliseconds(completion.delay_ms.min(i64::MAX as u64) as i64)
            }
            CompletionMode::Sla => {
                let row = sla::for_op(change.op(), c);
                let (min, max) = match row {
                    Some(r) => (
                        r.min.after(&self.calendar, now),
                        r.max.after(&self.calendar, now),
                    ),
                    None => (now, now + Duration::minutes(5)),
                };
                let span = (max - min).num_milliseconds().max(0);
                if rng.random_bool(completion.late_share.clamp(0.0, 1.0)) {
                    let full = (max - now).num_milliseconds().max(1) as f64;
                    now + Duration::milliseconds((full * rng.random_range(1.2..2.0)) as i64)
                } else {
                    min + Duration::milliseconds(rng.random_range(0..=span))
                }
            }
        };
        let seq = p.world.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let prefix = match c {
            Carrier::Cmcc => "CMO",
            Carrier::Ct => "CTT",
            Carrier::Cu => "CUR",
            Carrier::Trinet => "TNT",
        };
        let order_no = format!("{prefix}{seq:012}");
        let order = Order {
            order_no: order_no.clone(),
            txn: txn.to_owned(),
            card: card_id.to_owned(),
            change,
            state: OrderState::Pending,
            accepted_at: now,
            due,
            completed_at: None,
            fail,
            rebind_month,
        };
        {
            let mut t = p.world.truth.lock().expect("truth lock");
            t.cards
                .entry(card_id.to_owned())
                .or_default()
                .txns
                .push(txn.to_owned());
        }
        if sync || completion.mode == CompletionMode::Immediate {
            let mut orders = p.world.orders.lock().expect("orders lock");
            if c == Carrier::Trinet {
                orders.by_txn.insert(txn.to_owned(), order_no.clone());
            }
            orders.by_no.insert(order_no.clone(), order);
            drop(orders);
            self.complete_locked(p, &mut inv, &order_no, now);
        } else {
            let mut orders = p.world.orders.lock().expect("orders lock");
            if c == Carrier::Trinet {
                orders.by_txn.insert(txn.to_owned(), order_no.clone());
            }
            orders.by_no.insert(order_no.clone(), order);
            orders.due.push(Reverse((due, seq)));
            orders.due_no.insert(seq, order_no.clone());
        }
        Ok(Receipt {
            order_no,
            replayed: false,
        })
    }
}
