//! The card registry: what the gateway knows about each card (carrier, state,
//! owner), held in KV (`gsl_cards`, one [`v1::Card`] per card) and mirrored in
//! memory by a KV watch, so validating 100,000 cards needs no round trip.
//! Every replica's mirror follows every other replica's writes.
//!
//! Seeded by the `Registry.ImportCards` API; kept up to date from outcomes
//! ([`Registry::apply_outcome`]). Purchase batches (directional config) live
//! in `gsl_batches`.

use crate::error::ApiError;
use futures::StreamExt;
use gsl_bus::codec::{decode, encode};
use gsl_bus::kv::{self, Cas};
use gsl_domain::ErrorCode;
use gsl_domain::card::CardFacts;
use gsl_domain::carrier::Carrier;
use gsl_domain::ids::CardId;
use gsl_domain::operation::OperationKind;
use gsl_proto::convert;
use gsl_proto::v1;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// What validation needs about a card (kept small: 100,000 cards in a few MB).
#[derive(Debug, Clone)]
pub struct Entry {
    pub tenant: Arc<str>,
    pub facts: CardFacts,
    /// The record's revision in `gsl_cards` as last seen.
    pub revision: u64,
}

/// The in-memory mirror of `gsl_cards`.
#[derive(Clone)]
pub struct Registry {
    cards: Arc<RwLock<HashMap<Box<str>, Entry>>>,
    kv: async_nats::jetstream::kv::Store,
    batches: async_nats::jetstream::kv::Store,
    loaded: watch::Receiver<bool>,
}

/// Card facts from a registry record.
pub use gsl_proto::convert::card_facts as facts_of;

impl Registry {
    /// Start mirroring. The mirror is usable at once; [`wait_loaded`](Self::wait_loaded)
    /// waits until it has caught up with the bucket.
    pub async fn start(b: &gsl_bus::Buckets) -> Result<Registry, ApiError> {
        let (tx, rx) = watch::channel(false);
        let reg = Registry {
            cards: Arc::default(),
            kv: b.cards.clone(),
            batches: b.batches.clone(),
            loaded: rx,
        };
        let cards = reg.cards.clone();
        let retained = reg.cards.clone();
        gsl_bus::kv::spawn_mirror(
            reg.kv.clone(),
            ">",
            move |e| {
                let mut m = cards.write().expect("registry lock");
                match e.operation {
                    async_nats::jetstream::kv::Operation::Put => {
                        if let Ok(c) = decode::<v1::Card>("Card", &e.value)
                            && let Some(facts) = facts_of(&c)
                        {
                            m.insert(
                                e.key.clone().into_boxed_str(),
                                Entry {
                                    tenant: c.tenant.into(),
                                    facts,
                                    revision: e.revision,
                                },
                            );
                        }
                    }
                    _ => {
                        m.remove(e.key.as_str());
                    }
                }
            },
            move |seen| {
                retained
                    .write()
                    .expect("registry lock")
                    .retain(|k, _| seen.contains(&**k));
            },
            tx,
        );
        Ok(reg)
    }

    pub async fn wait_loaded(&self) {
        let mut rx = self.loaded.clone();
        let _ = rx.wait_for(|v| *v).await;
    }

    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    /// Look up a card for a tenant (another tenant's card is "not found").
    pub fn get(&self, tenant: &str, key: &str) -> Option<CardFacts> {
        let m = self.cards.read().expect("registry lock");
        m.get(key)
            .filter(|e| &*e.tenant == tenant)
            .map(|e| e.facts.clone())
    }

    /// Run `f` with the mirror read-locked (validation of a large batch).
    pub fn with<T>(&self, f: impl FnOnce(&dyn Fn(&str, &str) -> Option<CardFacts>) -> T) -> T {
        let m = self.cards.read().expect("registry lock");
        let lookup = |tenant: &str, key: &str| {
            m.get(key)
                .filter(|e| &*e.tenant == tenant)
                .map(|e| e.facts.clone())
        };
        f(&lookup)
    }

    pub fn len(&self) -> usize {
        self.cards.read().expect("registry lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub async fn card(&self, tenant: &str, id: &str) -> Result<v1::Card, ApiError> {
        let key = CardId::parse(id)
            .map_err(|e| ApiError::new(e.code(), e.to_string()))?
            .key()
            .to_owned();
        let e = kv::read(&self.kv, &key).await?;
        let c: Option<v1::Card> = kv::live(&e).and_then(|b| decode("Card", b).ok());
        c.filter(|c| c.tenant == tenant)
            .ok_or_else(|| ApiError::new(ErrorCode::CardNotFound, "card not found"))
    }

    /// Import cards for a tenant. Each bad card is refused with a reason; the
    /// rest are stored (pipelined) and mirrored at once. Refused until the
    /// mirror has caught up with the bucket.
    pub async fn import(
        &self,
        js: &async_nats::jetstream::Context,
        tenant: &str,
        cards: Vec<v1::Card>,
        who: Assigner,
    ) -> Result<(u64, Refusals), ApiError> {
        if !self.is_loaded()
            && tokio::time::timeout(IMPORT_WAITS_FOR_MIRROR, self.wait_loaded())
                .await
                .is_err()
        {
            return Err(ApiError::new(
                ErrorCode::Busy,
                "the card registry is still loading on this replica: retry in a moment",
            ));
        }
        let mut refused = Refusals::default();
        let mut ok = Vec::new();
        for (i, mut c) in cards.into_iter().enumerate() {
            let refuse = |code: ErrorCode, msg: String| v1::RefusedItem {
                index: i as u32,
                card: String::new(),
                problem: Some(convert::problem(code, msg)),
            };
            let id = match CardId::parse(&c.id) {
                Ok(id) => id,
                Err(e) => {
                    let mut r = refuse(e.code(), e.to_string());
                    r.card = c.id.clone();
                    refused.push(r);
                    continue;
                }
            };
            c.id = id.key().to_owned();
            let Some(facts) = facts_of(&c) else {
                let mut r = refuse(
                    ErrorCode::BadParameter,
                    "carrier and sim_status (10, 11, 13, 14, 20, 30) are required".into(),
                );
                r.card = c.id.clone();
                refused.push(r);
                continue;
            };
            if let (CardId::Iccid(iccid), Some(prefix_carrier)) =
                (&id, id.iccid().and_then(|i| i.carrier()))
                && facts.carrier != Carrier::Trinet
                && prefix_carrier != facts.carrier
            {
                let mut r = refuse(
                    ErrorCode::CarrierMismatch,
                    format!("{iccid} has a {prefix_carrier} issuer prefix"),
                );
                r.card = c.id.clone();
                refused.push(r);
                continue;
            }
            let expected = {
                let m = self.cards.read().expect("registry lock");
                match m.get(c.id.as_str()) {
                    Some(e) if &*e.tenant != tenant && who != Assigner::Operator => {
                        refused.push(not_yours(i, &c.id));
                        continue;
                    }
                    Some(e) => e.revision,
                    // Only the operator (or, where allowed, the tenant
                    // itself) assigns a card nobody holds.
                    None if who == Assigner::TenantOwnCardsOnly => {
                        refused.push(not_yours(i, &c.id));
                        continue;
                    }
                    None => 0,
                }
            };
            c.tenant = tenant.to_owned();
            c.updated_at = Some(convert::timestamp(chrono::Utc::now()));
            ok.push((i, c, facts, expected));
        }
        // Claims are conditional on the revision the mirror knows (0: the
        // card must not exist): a card another tenant took meanwhile, or that
        // a replica whose mirror lags would otherwise overwrite, is never
        // taken over. A failed condition is settled by one compare-and-set.
        let mut stored = Vec::with_capacity(ok.len());
        let mut inflight = futures::stream::FuturesUnordered::new();
        let mut retry = Vec::new();
        for (i, c, facts, expected) in ok {
            let mut h = async_nats::HeaderMap::new();
            h.insert(
                "Nats-Expected-Last-Subject-Sequence",
                expected.to_string().as_str(),
            );
            let subject = format!("$KV.{}.{}", gsl_bus::names::KV_CARDS, c.id);
            let ack = js
                .publish_with_headers(subject, h, encode(&c))
                .await
                .map_err(ApiError::busy)?;
            inflight.push(async move { (i, c, facts, ack.await) });
            while inflight.len() >= 4096 {
                if let Some((i, c, facts, r)) = inflight.next().await {
                    match r {
                        Ok(ack) => stored.push((c, facts, ack.sequence)),
                        Err(_) => retry.push((i, c, facts)),
                    }
                }
            }
        }
        while let Some((i, c, facts, r)) = inflight.next().await {
            match r {
                Ok(ack) => stored.push((c, facts, ack.sequence)),
                Err(_) => retry.push((i, c, facts)),
            }
        }
        for (i, c, facts) in retry {
            let operator = who == Assigner::Operator;
            let own_only = who == Assigner::TenantOwnCardsOnly;
            match claim(
                &self.kv,
                &c.id,
                encode(&c),
                tenant,
                |b| {
                    match decode::<v1::Card>("Card", b).ok().map(|x| x.tenant) {
                        // The operator assigns whoever held it.
                        Some(_) if operator => Some(tenant.to_owned()),
                        other => other,
                    }
                },
                own_only,
            )
            .await?
            {
                Some(revision) => stored.push((c, facts, revision)),
                None => refused.push(not_yours(i, &c.id)),
            }
        }
        let n = stored.len() as u64;
        let mut m = self.cards.write().expect("registry lock");
        let t: Arc<str> = tenant.into();
        for (c, facts, revision) in stored {
            m.insert(
                c.id.into_boxed_str(),
                Entry {
                    tenant: t.clone(),
                    facts,
                    revision,
                },
            );
        }
        Ok((n, refused))
    }

    /// Bring a card's record up to date after a change succeeded. Idempotent,
    /// and a stale outcome (older than the record) changes nothing.
    pub async fn apply_outcome(
        &self,
        op: &v1::Operation,
        card: &str,
        at: Option<prost_types::Timestamp>,
    ) -> Result<(), ApiError> {
        let Some(kind) = convert::operation_kind(op) else {
            return Ok(());
        };
        if kind.is_directional() {
            return self.apply_directional(op, card).await;
        }
        let at_secs = at
            .as_ref()
            .map(|t| (t.seconds, t.nanos))
            .unwrap_or_default();
        kv::cas(&self.kv, card, 50, |cur| {
            let Some(mut c) = cur.and_then(|b| decode::<v1::Card>("Card", b).ok()) else {
                return Cas::Keep(());
            };
            let prev = c
                .updated_at
                .as_ref()
                .map(|t| (t.seconds, t.nanos))
                .unwrap_or_default();
            if at_secs < prev {
                return Cas::Keep(());
            }
            use v1::operation::Kind as O;
            match (kind, op.kind.as_ref()) {
                (OperationKind::Activate | OperationKind::Resume, _) => {
                    c.sim_status = 20;
                    c.stop_reason = -1;
                }
                (OperationKind::Stop, _) => {
                    c.sim_status = 14;
                    c.stop_reason = 5;
                }
                (OperationKind::CloseCard, _) => c.sim_status = 30,
                (OperationKind::Rebind, Some(O::Rebind(r))) => {
                    c.imei = r.imei.clone();
                    if c.carrier == v1::Carrier::Cmcc as i32 {
                        c.sim_status = 20;
                        c.stop_reason = -1;
                    }
                }
                (OperationKind::SpeedLimit, Some(O::SpeedLimit(s))) => c.speed_kbps = s.kbps,
                (OperationKind::SetUsageThreshold, Some(O::SetUsageThreshold(t))) => {
                    c.threshold_mb = t.threshold_mb
                }
                (OperationKind::CancelUsageThreshold, _) => c.threshold_mb = -1,
                (OperationKind::SwitchNetwork, Some(O::SwitchNetwork(s))) => {
                    c.active_profile = s.target
                }
                _ => return Cas::Keep(()),
            }
            c.updated_at = at.or(c.updated_at.take());
            Cas::Write(encode(&c), ())
        })
        .await?;
        Ok(())
    }

    pub async fn batch(&self, tenant: &str, batch_no: &str) -> Result<v1::PurchaseBatch, ApiError> {
        let not_found = || {
            ApiError::new(
                ErrorCode::BatchNotFound,
                format!("purchase batch {batch_no:?} not found"),
            )
        };
        if !valid_batch_no(batch_no) {
            return Err(not_found());
        }
        let e = kv::read(&self.batches, batch_no).await?;
        let b: Option<v1::PurchaseBatch> =
            kv::live(&e).and_then(|b| decode("PurchaseBatch", b).ok());
        b.filter(|b| b.tenant == tenant).ok_or_else(not_found)
    }

    /// A directional change succeeded at the carrier: the batch's entries
    /// here follow, so later limit checks see them. Idempotent (a repeated
    /// report, or a back-office completion that already moved them, changes
    /// nothing): an added entry is matched by its text.
    async fn apply_directional(&self, op: &v1::Operation, batch_no: &str) -> Result<(), ApiError> {
        use v1::operation::Kind as O;
        let effective = v1::EntryState::Effective as i32;
        kv::cas(&self.batches, batch_no, 50, |cur| {
            let Some(mut b) =
                cur.and_then(|b| decode::<v1::PurchaseBatch>("PurchaseBatch", b).ok())
            else {
                return Cas::Keep(());
            };
            let before = b.clone();
            match op.kind.as_ref() {
                Some(O::DirectionalAdd(a)) => {
                    for e in &a.entries {
                        match b.entries.iter_mut().find(|x| &x.entry == e) {
                            Some(x) => x.state = effective,
                            None => {
                                let id = format!("E{}", b.entries.len() + 1);
                                let id = if b.entries.iter().any(|x| x.id == id) {
                                    format!("{id}-{}", e.len())
                                } else {
                                    id
                                };
                                b.entries.push(v1::DirectionalEntry {
                                    id,
                                    entry: e.clone(),
                                    state: effective,
                                });
                            }
                        }
                    }
                }
                Some(O::DirectionalModify(m)) => {
                    if let Some(x) = b.entries.iter_mut().find(|x| x.id == m.entry_id) {
                        x.entry = m.entry.clone();
                        x.state = effective;
                    }
                }
                Some(O::DirectionalDelete(d)) => b.entries.retain(|x| !d.entry_ids.contains(&x.id)),
                _ => {}
            }
            if b == before {
                Cas::Keep(())
            } else {
                Cas::Write(encode(&b), ())
            }
        })
        .await?;
        Ok(())
    }

    /// Register or update purchase batches for `tenant`, with the authority
    /// of `who`: the operator assigns any batch (whoever held it); a tenant
    /// updates only batches it holds, and registers a batch nobody holds
    /// only with `GSL_TENANT_SELF_REGISTRATION=on` (development). A batch
    /// this tenant may not register is refused with one text whether it is
    /// unknown or another tenant's, so a refusal says nothing about which
    /// batch numbers exist. Each batch is a compare-and-set: two claims
    /// never both win.
    pub async fn import_batches(
        &self,
        tenant: &str,
        batches: Vec<v1::PurchaseBatch>,
        who: Assigner,
    ) -> Result<u64, ApiError> {
        let mut n = 0;
        for mut b in batches {
            if !valid_batch_no(&b.batch_no) {
                return Err(ApiError::bad(format!(
                    "batch number {:?} must be 1-64 of A-Z a-z 0-9 - _",
                    b.batch_no
                )));
            }
            convert::carrier_from_wire(b.carrier).map_err(|e| ApiError::bad(e.to_string()))?;
            b.tenant = tenant.to_owned();
            let operator = who == Assigner::Operator;
            let mine = claim(
                &self.batches,
                &b.batch_no,
                encode(&b),
                tenant,
                |x| {
                    match decode::<v1::PurchaseBatch>("PurchaseBatch", x)
                        .ok()
                        .map(|x| x.tenant)
                    {
                        // The operator assigns whoever held it.
                        Some(_) if operator => Some(tenant.to_owned()),
                        other => other,
                    }
                },
                who == Assigner::TenantOwnCardsOnly,
            )
            .await?;
            if mine.is_none() {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    format!("batch {:?} cannot be registered to your tenant", b.batch_no),
                ));
            }
            n += 1;
        }
        Ok(n)
    }
}

/// Write `value` under `key` for `tenant` unless another tenant owns the
/// record (`owner` reads it): compare-and-set, so two claims never both win.
/// The revision written, or `None` when someone else owns it.
async fn claim(
    store: &async_nats::jetstream::kv::Store,
    key: &str,
    value: bytes::Bytes,
    tenant: &str,
    owner: impl Fn(&bytes::Bytes) -> Option<String>,
    existing_only: bool,
) -> Result<Option<u64>, ApiError> {
    let (mine, written) = kv::cas_from(store, key, 20, None, |cur| match cur.and_then(&owner) {
        Some(t) if t != tenant => Cas::Keep(false),
        None if existing_only => Cas::Keep(false),
        _ => Cas::Write(value.clone(), true),
    })
    .await?;
    Ok(written.filter(|_| mine).map(|k| k.revision))
}

/// Refusals listed in an import's answer (all are counted): an answer stays
/// small however many cards were refused.
pub const IMPORT_REFUSALS_LISTED: usize = 1000;

/// The refusals of an import: the first [`IMPORT_REFUSALS_LISTED`] kept,
/// every one counted.
#[derive(Debug, Default)]
pub struct Refusals {
    pub listed: Vec<v1::RefusedItem>,
    pub total: u64,
}

impl Refusals {
    pub fn push(&mut self, r: v1::RefusedItem) {
        self.total += 1;
        if self.listed.len() < IMPORT_REFUSALS_LISTED {
            self.listed.push(r);
        }
    }

    pub fn extend(&mut self, other: Refusals) {
        self.total += other.total;
        for r in other.listed {
            if self.listed.len() < IMPORT_REFUSALS_LISTED {
                self.listed.push(r);
            }
        }
    }
}

/// How long an import waits for a loading (or restarting) mirror before it
/// is refused as busy.
const IMPORT_WAITS_FOR_MIRROR: std::time::Duration = std::time::Duration::from_secs(10);

/// Who assigns cards (and purchase batches) to tenants in an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigner {
    /// The operator credential: assigns any card to the tenant named on it.
    Operator,
    /// A tenant importing for itself, allowed to register new cards
    /// (`GSL_TENANT_SELF_REGISTRATION=on`: development and tests).
    TenantSelfRegistration,
    /// A tenant importing for itself: only cards it already holds.
    TenantOwnCardsOnly,
}

/// A card this tenant may not register. The text does not say whether
/// another tenant holds it.
fn not_yours(index: usize, card: &str) -> v1::RefusedItem {
    v1::RefusedItem {
        index: index as u32,
        card: card.to_owned(),
        problem: Some(convert::problem(
            ErrorCode::PermissionDenied,
            "this card cannot be registered to your tenant",
        )),
    }
}

/// Batch numbers go into subjects and keys.
pub fn valid_batch_no(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 64
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}
