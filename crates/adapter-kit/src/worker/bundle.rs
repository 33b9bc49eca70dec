//! Bundles: one work message carrying up to `GSL_BUNDLE_SIZE` items of one
//! order and one carrier (`WorkBundle`, header `Gsl-Bundle`).
//!
//! Each item runs through its own state machine, exactly as if it had come
//! alone: its execution record, not the message, makes redelivery safe. The
//! message is settled once every item has an answer for this delivery: acked
//! when each is done, followed or dead-lettered; otherwise nak'd with the
//! shortest delay any item asked for (the items already done answer from
//! their records on the next delivery, without calling the carrier). A
//! malformed item is dead-lettered alone; the others go on.

use super::*;
use futures::future::join_all;
use gsl_bus::codec::encode;

/// One item permit, given back when the item is done (or its future
/// dropped).
struct GiveBack<'a>(&'a tokio::sync::Semaphore);

impl Drop for GiveBack<'_> {
    fn drop(&mut self) {
        self.0.add_permits(1);
    }
}

/// The disposition of a bundle from its items' dispositions.
pub fn combine(ds: &[Disposition]) -> Disposition {
    ds.iter()
        .filter_map(|d| match d {
            Disposition::Nak(x) => Some(*x),
            _ => None,
        })
        .min()
        .map_or(Disposition::Ack, Disposition::Nak)
}

impl Worker {
    /// A work message that is a bundle.
    pub(super) async fn process_bundle(&self, msg: &Message, delivered: i64) -> Disposition {
        let items = match decode::<v1::WorkBundle>("WorkBundle", &msg.payload) {
            Ok(b) => b.items,
            Err(e) => {
                return self
                    .dead_letter(msg, ErrorCode::MalformedMessage, &e.to_string())
                    .await;
            }
        };
        // Each item gets its own `consume` span, exactly as if it had come
        // alone: parented on the fan-out (small orders) or its own trace
        // linked to the order's (large ones), from the bundle's headers.
        self.bundle_items(&msg.subject, items, delivered, msg.headers.as_ref())
            .await
    }

    /// A bundle's items at their `delivered`-th delivery (`subject`: where
    /// the bundle came from, for dead letters); its disposition.
    pub async fn handle_bundle(
        &self,
        subject: &str,
        items: Vec<v1::WorkItem>,
        delivered: i64,
    ) -> Disposition {
        self.bundle_items(subject, items, delivered, None).await
    }

    async fn bundle_items(
        &self,
        subject: &str,
        items: Vec<v1::WorkItem>,
        delivered: i64,
        headers: Option<&async_nats::HeaderMap>,
    ) -> Disposition {
        // A bundle takes permits for all its items at once (in waves when
        // it holds more than there are), and only then makes their state
        // machines: bundles waiting their turn hold decoded items, not
        // futures (hundreds of bundles in hand would otherwise allocate tens
        // of thousands of futures), and the permits keep their fair order.
        let total = self.item_permit_count.max(1);
        let mut out = Vec::with_capacity(items.len());
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let wave: Vec<v1::WorkItem> = items.by_ref().take(total).collect();
            // Taken together, given back one by one as each item finishes.
            self.item_permits
                .acquire_many(wave.len() as u32)
                .await
                .expect("never closed")
                .forget();
            let mut each = Vec::with_capacity(wave.len());
            for wi in wave {
                let permit = GiveBack(&self.item_permits);
                each.push(async move {
                    let d = self.bundle_item(subject, wi, delivered, headers).await;
                    drop(permit);
                    d
                });
            }
            out.extend(join_all(each).await);
        }
        combine(&out)
    }

    async fn bundle_item(
        &self,
        subject: &str,
        wi: v1::WorkItem,
        delivered: i64,
        headers: Option<&async_nats::HeaderMap>,
    ) -> Disposition {
        let payload = encode(&wi);
        let item = match item_from(wi, self.cfg.carrier) {
            Ok(i) => i,
            Err(why) => {
                warn!(reason = %why, "dead-lettering a malformed item of a bundle");
                return match self
                    .publish_dead_letter(
                        subject,
                        &payload,
                        ErrorCode::MalformedMessage,
                        &why,
                        delivered as u64,
                    )
                    .await
                {
                    Ok(()) => Disposition::Term,
                    Err(_) => Disposition::Nak(Duration::from_secs(1)),
                };
            }
        };
        let (item, card) = self.with_card(item);
        self.consume(&item, card.as_ref(), delivered, subject, headers, &payload)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_is_acked_when_every_item_is_settled_else_nakd_soonest() {
        use Disposition::*;
        assert_eq!(combine(&[Ack, Term, Ack]), Ack);
        assert_eq!(
            combine(&[
                Ack,
                Nak(Duration::from_secs(5)),
                Nak(Duration::from_secs(1))
            ]),
            Nak(Duration::from_secs(1))
        );
        assert_eq!(combine(&[]), Ack);
    }
}
