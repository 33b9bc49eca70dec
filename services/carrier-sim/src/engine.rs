//! The carrier-agnostic core: cards, the carrier-side rules, receipts with
//! transaction-id idempotency, asynchronous completion on the scaled clock,
//! and the ground truth the tests referee with.
//!
//! The carrier modules translate their API style into a [`Change`] and a
//! [`Refusal`] back into their own error codes; nothing here knows a carrier's
//! wire format. Rules are enforced here independently of our adapters, so an
//! adapter mistake shows up as a carrier refusal (or as a double count in the
//! ground truth), as it would against the real platform.
//!
//! Locks are always taken in the order inventory -> orders -> truth.

use crate::config::{Completion, CompletionMode, Faults, SimConfig};
use crate::inventory::{CardRecord, Inventory};
use crate::ratelimit::RateLimiter;
use chrono::{DateTime, Duration, Utc};
use gsl_domain::calendar::{Calendar, month_key};
use gsl_domain::card::{SimStatus, StopReason, TriNetVersion};
use gsl_domain::carrier::Carrier;
use gsl_domain::clock::Clock;
use gsl_domain::directional::{
    self, Change as DirPlan, DirectionalError, EntryState, ExistingEntry, PurchaseType,
};
use gsl_domain::operation::OperationKind;
use gsl_domain::region::Region;
use gsl_domain::{sla, speed};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

/// A change a carrier API asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Activate,
    Stop,
    Resume,
    Rebind { imei: Option<String>, fixed: bool },
    Speed { kbps: u32 },
    CutNet,
    RestoreNet,
    ThresholdAdd { mb: i64 },
    ThresholdModify { mb: i64 },
    ThresholdCancel,
    RegionBind { code: u16 },
    Directional { batch: String, plan: DirChange },
    SwitchNetwork { target: Carrier },
    SwitchPolicy { policy: String },
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum DirChange {
    Add { entries: Vec<String> },
    Modify { id: String, entry: String },
    Delete { ids: Vec<String> },
}

impl DirChange {
    /// Entries or entry ids as the carriers send them in a query string:
    /// comma-separated, blanks ignored.
    pub fn list(s: &str) -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl Change {
    /// The operation this change counts as in the ground truth (domain names).
    pub fn op(&self) -> OperationKind {
        match self {
            Change::Activate => OperationKind::Activate,
            Change::Stop => OperationKind::Stop,
            Change::Resume => OperationKind::Resume,
            Change::Rebind { .. } => OperationKind::Rebind,
            Change::Speed { .. } => OperationKind::SpeedLimit,
            Change::CutNet => OperationKind::NetworkCutoff,
            Change::RestoreNet => OperationKind::NetworkRestore,
            Change::ThresholdAdd { .. } | Change::ThresholdModify { .. } => {
                OperationKind::SetUsageThreshold
            }
            Change::ThresholdCancel => OperationKind::CancelUsageThreshold,
            Change::RegionBind { .. } => OperationKind::RegionBind,
            Change::Directional {
                plan: DirChange::Add { .. },
                ..
            } => OperationKind::DirectionalAdd,
            Change::Directional {
                plan: DirChange::Modify { .. },
                ..
            } => OperationKind::DirectionalModify,
            Change::Directional {
                plan: DirChange::Delete { .. },
                ..
            } => OperationKind::DirectionalDelete,
            Change::SwitchNetwork { .. } => OperationKind::SwitchNetwork,
            Change::SwitchPolicy { .. } => OperationKind::SwitchPolicy,
            Change::Close => OperationKind::CloseCard,
        }
    }

    fn is_status_change(&self) -> bool {
        self.op().is_status_change()
    }
}

/// Why the carrier refused a change. Each carrier module maps these to its
/// own codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("card unknown")]
    UnknownCard,
    #[error("card not in a state that allows this: {0}")]
    IllegalState(String),
    #[error("only a self-requested stop can be resumed")]
    ResumeNotAllowed,
    #[error("card is awaiting activation")]
    AwaitingActivation,
    #[error("this card's rebinds this month exceed the limit")]
    RebindQuota,
    #[error("already subscribed")]
    AlreadySubscribed,
    #[error("nothing subscribed to modify or cancel")]
    NotSubscribed,
    #[error("too soon after the last change on this card")]
    TooSoon,
    #[error("operation not offered")]
    NotOffered,
    #[error("bad parameter: {0}")]
    BadParam(String),
    #[error("a stop is still pending on this card")]
    PendingStop,
    #[error("region may not be bound")]
    RegionForbidden,
    #[error("directional: {0}")]
    Directional(DirectionalError),
    #[error("purchase batch unknown")]
    BatchUnknown,
    #[error("switch too soon")]
    SwitchTooSoon,
    #[error("policy not usable: {0}")]
    PolicyUnusable(String),
    #[error("real-name verification required")]
    RealNameRequired,
    #[error("pooled cards only")]
    NotPooled,
    #[error("transaction id already used for another request")]
    TxnConflict,
}

/// How a carrier call names a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardIdKind {
    Iccid,
    Msisdn,
    Imsi,
}

/// A receipt: the carrier's order number for an accepted change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub order_no: String,
    /// The transaction id was seen before; this is the original receipt.
    pub replayed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    Pending,
    Succeeded,
    Failed,
}

/// An accepted change, as the query endpoints show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub order_no: String,
    pub txn: String,
    pub card: String,
    pub change: Change,
    pub state: OrderState,
    pub accepted_at: DateTime<Utc>,
    pub due: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Decided at acceptance: this change will fail.
    #[serde(skip)]
    fail: bool,
    /// CST month of a CT rebind reservation.
    #[serde(skip)]
    rebind_month: Option<u32>,
}

#[derive(Debug, Default)]
struct Orders {
    by_no: HashMap<String, Order>,
    by_txn: HashMap<String, String>,
    due: BinaryHeap<Reverse<(DateTime<Utc>, u64)>>,
    due_no: HashMap<u64, String>,
}

/// Ground truth for one card.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CardTruth {
    /// Operation -> how many times it took effect.
    pub applied: BTreeMap<String, u32>,
    /// Every distinct transaction id accepted for this card.
    pub txns: Vec<String>,
    /// Requests that replayed a transaction id.
    pub replays: u32,
}

#[derive(Debug, Default)]
struct Truth {
    cards: HashMap<String, CardTruth>,
    replays: u64,
    applied_total: u64,
}

/// A purchase batch on the carrier side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    pub batch_no: String,
    pub purchase_type: PurchaseType,
    pub directional_data: bool,
    #[serde(default)]
    pub entries: Vec<ExistingEntry>,
}

/// A tri-net switch policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Policy {
    pub id: String,
    pub version: TriNetVersion,
    pub enabled: bool,
    /// Priority order of carriers.
    pub order: Vec<Carrier>,
    /// Set once the policy was applied to a card; its content is then frozen.
    #[serde(default)]
    pub used: bool,
}

/// At most 50 policies per customer.
pub const MAX_POLICIES: usize = 50;

/// One carrier platform.
pub struct Platform {
    pub carrier: Carrier,
    inv: Mutex<Inventory>,
    orders: Mutex<Orders>,
    truth: Mutex<Truth>,
    pub batches: Mutex<HashMap<String, Batch>>,
    /// Batch jobs by job id ([`crate::jobs`]).
    pub jobs: Mutex<HashMap<String, crate::jobs::Job>>,
    pub policies: Mutex<BTreeMap<String, Policy>>,
    /// China Mobile tokens -> expiry (real time).
    pub tokens: Mutex<HashMap<String, DateTime<Utc>>>,
    pub limiter: RateLimiter,
    pub faults: RwLock<Faults>,
    pub requests: AtomicU64,
    /// Do the work of the next N change calls, then drop their answers
    /// (a deterministic "answer lost" for fault tests).
    pub drop_change_answers: AtomicU64,
    /// Do the work of the next N change calls, then answer HTTP 500 (a
    /// carrier that applied a change and failed on its answer).
    pub error_change_answers: AtomicU64,
    /// Batch calls refused whole (a member inside the repeat window).
    pub batch_refusals: AtomicU64,
    /// The last W3C `traceparent` headers received (newest last), so tests can
    /// check that trace context reached the carrier.
    pub traceparents: Mutex<std::collections::VecDeque<String>>,
    seq: AtomicU64,
}

/// How many `traceparent` headers a platform remembers.
pub const TRACEPARENTS_KEPT: usize = 10_000;

/// All four platforms and the shared settings.
pub struct Engine {
    pub platforms: [Platform; 4],
    pub clock: Clock,
    pub calendar: Calendar,
    pub config: SimConfig,
    completion: RwLock<Completion>,
}

impl Engine {
    pub fn new(config: SimConfig) -> Result<Engine, gsl_domain::clock::ClockError> {
        let scale = config.time_scale.map(|s| s.to_string());
        let clock = Clock::from_settings(
            config.clock_start.as_deref(),
            config.clock_anchor.as_deref(),
            scale.as_deref(),
        )?;
        let platforms = Carrier::ALL.map(|c| Platform {
            carrier: c,
            inv: Mutex::new(Inventory::new(
                c,
                config.seed,
                config.cards_per_carrier,
                config.all_status,
            )),
            orders: Mutex::new(Orders::default()),
            truth: Mutex::new(Truth::default()),
            batches: Mutex::new(HashMap::new()),
            jobs: Mutex::new(HashMap::new()),
            policies: Mutex::new(BTreeMap::new()),
            tokens: Mutex::new(HashMap::new()),
            limiter: RateLimiter::new(&config.limits_for(c)),
            faults: RwLock::new(config.faults.get(&c).cloned().unwrap_or_default()),
            requests: AtomicU64::new(0),
            drop_change_answers: AtomicU64::new(0),
            error_change_answers: AtomicU64::new(0),
            batch_refusals: AtomicU64::new(0),
            traceparents: Mutex::new(std::collections::VecDeque::new()),
            seq: AtomicU64::new(0),
        });
        Ok(Engine {
            platforms,
            clock,
            calendar: Calendar::builtin().clone(),
            completion: RwLock::new(config.completion.clone()),
            config,
        })
    }

    pub fn platform(&self, c: Carrier) -> &Platform {
        &self.platforms[c.index()]
    }

    pub fn completion(&self) -> Completion {
        self.completion.read().expect("completion lock").clone()
    }

    pub fn set_completion(&self, c: Completion) {
        *self.completion.write().expect("completion lock") = c;
    }

    /// Virtual now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A card as it is now.
    pub fn card(&self, c: Carrier, id: &str) -> Option<CardRecord> {
        self.platform(c).inv.lock().expect("inventory lock").get(id)
    }

    /// Edit a stored card in place (plan names and other account data).
    pub fn edit_card(&self, c: Carrier, id: &str, f: impl FnOnce(&mut CardRecord)) {
        if let Some(card) = self
            .platform(c)
            .inv
            .lock()
            .expect("inventory lock")
            .get_mut(id)
        {
            f(card);
        }
    }

    /// Create or replace a card (admin).
    pub fn put_card(&self, c: Carrier, card: CardRecord) {
        self.platform(c)
            .inv
            .lock()
            .expect("inventory lock")
            .put(card);
    }

    pub fn page(&self, c: Carrier, offset: u64, limit: u64) -> Vec<CardRecord> {
        self.platform(c)
            .inv
            .lock()
            .expect("inventory lock")
            .page(offset, limit)
    }

    pub fn materialised(&self, c: Carrier) -> usize {
        self.platform(c)
            .inv
            .lock()
            .expect("inventory lock")
            .materialised()
    }

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
        let inv = self.platform(c).inv.lock().expect("inventory lock");
        match kind {
            CardIdKind::Iccid => inv.get(value).map(|c| c.id),
            CardIdKind::Msisdn => inv.id_by_msisdn(value),
            CardIdKind::Imsi => inv.id_by_imsi(value),
        }
    }

    fn submit_as(
        &self,
        c: Carrier,
        card_id: &str,
        txn: &str,
        change: Change,
        sync: bool,
    ) -> Result<Receipt, Refusal> {
        let p = self.platform(c);
        let now = self.now();
        let mut inv = p.inv.lock().expect("inventory lock");
        // Only the tri-net contract (the project's own) de-duplicates by
        // request id; no real carrier documents one (carriers/README.md §2),
        // so a repeated call to CMCC, CT or CU is a second change.
        if c == Carrier::Trinet {
            let orders = p.orders.lock().expect("orders lock");
            if let Some(no) = orders.by_txn.get(txn) {
                let o = &orders.by_no[no];
                if o.card == card_id && o.change.op() == change.op() {
                    let order_no = no.clone();
                    drop(orders);
                    let mut t = p.truth.lock().expect("truth lock");
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
        let seq = p.seq.fetch_add(1, Ordering::Relaxed) + 1;
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
            let mut t = p.truth.lock().expect("truth lock");
            t.cards
                .entry(card_id.to_owned())
                .or_default()
                .txns
                .push(txn.to_owned());
        }
        if sync || completion.mode == CompletionMode::Immediate {
            let mut orders = p.orders.lock().expect("orders lock");
            if c == Carrier::Trinet {
                orders.by_txn.insert(txn.to_owned(), order_no.clone());
            }
            orders.by_no.insert(order_no.clone(), order);
            drop(orders);
            self.complete_locked(p, &mut inv, &order_no, now);
        } else {
            let mut orders = p.orders.lock().expect("orders lock");
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

    /// The carrier-side rules for a change on a card.
    fn check(
        &self,
        p: &Platform,
        card: &CardRecord,
        change: &Change,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        use SimStatus::*;
        let c = p.carrier;
        let rules = &self.config.rules;
        if card.status == Closed {
            return Err(Refusal::IllegalState("card is closed".into()));
        }
        if c == Carrier::Cmcc
            && change.is_status_change()
            && let Some(last) = card.last_status_change
            && now - last < Duration::seconds(rules.cmcc_status_spacing_s)
        {
            return Err(Refusal::TooSoon);
        }
        let need = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(Refusal::IllegalState(format!(
                    "needs {what}, card is {}",
                    card.status.code()
                )))
            }
        };
        match change {
            Change::Activate => need(
                matches!(card.status, Testable | Activatable | NotActivated),
                "10, 11 or 13",
            ),
            Change::Stop => {
                if card.pending_stop {
                    return Err(Refusal::PendingStop);
                }
                need(card.status == InUse, "20")
            }
            Change::Resume => {
                if card.pending_stop {
                    return Err(Refusal::PendingStop);
                }
                match (card.status, card.stop_reason) {
                    (Stopped, StopReason::OnRequest) => Ok(()),
                    (Stopped, _) => Err(Refusal::ResumeNotAllowed),
                    (Testable | Activatable | NotActivated, _) => Err(Refusal::AwaitingActivation),
                    _ => need(false, "14 with reason 5"),
                }
            }
            Change::Rebind { imei, fixed } => match c {
                Carrier::Cmcc => {
                    if *fixed {
                        return Err(Refusal::BadParam("only normal rebinds".into()));
                    }
                    need(
                        card.status == Stopped
                            && matches!(
                                card.stop_reason,
                                StopReason::Violation | StopReason::DeviceSeparation
                            ),
                        "14 with reason 6 or 7",
                    )
                }
                Carrier::Ct => {
                    if *fixed
                        && imei
                            .as_deref()
                            .is_none_or(|i| gsl_domain::Imei::parse(i).is_err())
                    {
                        return Err(Refusal::BadParam("fixed rebind needs a valid imei".into()));
                    }
                    need(card.status == InUse, "20")?;
                    let used = card.rebinds.get(&month_key(now)).copied().unwrap_or(0);
                    if used >= rules.ct_rebinds_per_month {
                        return Err(Refusal::RebindQuota);
                    }
                    Ok(())
                }
                _ => Err(Refusal::NotOffered),
            },
            Change::Speed { kbps } => match c {
                Carrier::Ct => {
                    if speed::ct_code(*kbps).is_none() {
                        return Err(Refusal::BadParam(format!("speed {kbps}")));
                    }
                    need(card.status == InUse, "20")
                }
                Carrier::Cu => {
                    if !speed::offered(Carrier::Cu, *kbps) {
                        return Err(Refusal::BadParam(format!("speed {kbps}")));
                    }
                    if !card.real_named {
                        return Err(Refusal::RealNameRequired);
                    }
                    need(card.status == InUse, "20")
                }
                _ => Err(Refusal::NotOffered),
            },
            Change::CutNet | Change::RestoreNet => {
                if c == Carrier::Ct {
                    Ok(())
                } else {
                    Err(Refusal::NotOffered)
                }
            }
            Change::ThresholdAdd { mb } | Change::ThresholdModify { mb } => {
                self.threshold_allowed(c, card)?;
                if *mb < -1 {
                    return Err(Refusal::BadParam(format!("quota {mb}")));
                }
                let exists = card.threshold_mb != -1;
                match change {
                    Change::ThresholdAdd { .. } if exists => Err(Refusal::AlreadySubscribed),
                    Change::ThresholdModify { .. } if !exists => Err(Refusal::NotSubscribed),
                    _ => Ok(()),
                }
            }
            Change::ThresholdCancel => {
                self.threshold_allowed(c, card)?;
                if card.threshold_mb == -1 {
                    return Err(Refusal::NotSubscribed);
                }
                Ok(())
            }
            Change::RegionBind { code } => {
                if c != Carrier::Cmcc {
                    return Err(Refusal::NotOffered);
                }
                let r = Region::parse(&code.to_string())
                    .map_err(|e| Refusal::BadParam(e.to_string()))?;
                if !r.bindable() {
                    return Err(Refusal::RegionForbidden);
                }
                need(card.status == InUse, "20")
            }
            Change::SwitchNetwork { target } => {
                if c != Carrier::Trinet {
                    return Err(Refusal::NotOffered);
                }
                if *target == Carrier::Trinet {
                    return Err(Refusal::BadParam("target must be cmcc, ct or cu".into()));
                }
                self.switch_spacing(card, now)
            }
            Change::SwitchPolicy { policy } => {
                if c != Carrier::Trinet {
                    return Err(Refusal::NotOffered);
                }
                let policies = p.policies.lock().expect("policies lock");
                let pol = policies
                    .get(policy)
                    .ok_or_else(|| Refusal::PolicyUnusable(format!("no policy {policy}")))?;
                if !pol.enabled {
                    return Err(Refusal::PolicyUnusable("policy disabled".into()));
                }
                if Some(pol.version) != card.trinet_version {
                    return Err(Refusal::PolicyUnusable(
                        "policy is for the other card version".into(),
                    ));
                }
                drop(policies);
                self.switch_spacing(card, now)
            }
            Change::Close => need(
                matches!(card.status, NotActivated | Activatable | InUse | Stopped),
                "11, 13, 20 or 14",
            ),
            Change::Directional { .. } => Ok(()),
        }
    }

    fn threshold_allowed(&self, c: Carrier, card: &CardRecord) -> Result<(), Refusal> {
        match c {
            Carrier::Ct => Ok(()),
            Carrier::Cmcc | Carrier::Cu if card.pooled => Ok(()),
            Carrier::Cmcc | Carrier::Cu => Err(Refusal::NotPooled),
            Carrier::Trinet => Err(Refusal::NotOffered),
        }
    }

    fn switch_spacing(&self, card: &CardRecord, now: DateTime<Utc>) -> Result<(), Refusal> {
        if card.trinet_version == Some(TriNetVersion::NoSdk)
            && let Some(last) = card.last_switch
            && now - last < Duration::seconds(self.config.rules.trinet_switch_spacing_s)
        {
            return Err(Refusal::SwitchTooSoon);
        }
        Ok(())
    }

    fn check_directional(
        &self,
        p: &Platform,
        batch: &str,
        plan: &DirChange,
    ) -> Result<(), Refusal> {
        let batches = p.batches.lock().expect("batches lock");
        let b = batches.get(batch).ok_or(Refusal::BatchUnknown)?;
        let eligible = directional::batch_eligible(b.purchase_type, b.directional_data);
        let change = match plan {
            DirChange::Add { entries } => DirPlan::Add(entries),
            DirChange::Modify { id, entry } => DirPlan::Modify { id, entry },
            DirChange::Delete { ids } => DirPlan::Delete(ids),
        };
        directional::plan_change(p.carrier, eligible, &b.entries, &change)
            .map(|_| ())
            .map_err(Refusal::Directional)
    }

    /// Complete every order due by now (called by the ticker).
    pub fn complete_due(&self) -> usize {
        let now = self.now();
        let mut done = 0;
        for p in &self.platforms {
            let due: Vec<String> = {
                let mut orders = p.orders.lock().expect("orders lock");
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
            let mut inv = p.inv.lock().expect("inventory lock");
            for no in due {
                self.complete_locked(p, &mut inv, &no, now);
                done += 1;
            }
        }
        done
    }

    fn complete_locked(
        &self,
        p: &Platform,
        inv: &mut Inventory,
        order_no: &str,
        now: DateTime<Utc>,
    ) {
        let mut orders = p.orders.lock().expect("orders lock");
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
        let mut t = p.truth.lock().expect("truth lock");
        t.applied_total += 1;
        *t.cards
            .entry(card_id)
            .or_default()
            .applied
            .entry(change.op().as_str().to_owned())
            .or_insert(0) += 1;
    }

    fn apply(
        &self,
        p: &Platform,
        inv: &mut Inventory,
        card_id: &str,
        change: &Change,
        now: DateTime<Utc>,
    ) {
        if let Change::Directional { batch, plan } = change {
            let mut batches = p.batches.lock().expect("batches lock");
            if let Some(b) = batches.get_mut(batch) {
                apply_directional(b, plan, now);
            }
            return;
        }
        if let Change::SwitchPolicy { policy } = change
            && let Some(pol) = p.policies.lock().expect("policies lock").get_mut(policy)
        {
            pol.used = true;
        }
        let Some(card) = inv.get_mut(card_id) else {
            return;
        };
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

    pub fn order(&self, c: Carrier, order_no: &str) -> Option<Order> {
        self.platform(c)
            .orders
            .lock()
            .expect("orders lock")
            .by_no
            .get(order_no)
            .cloned()
    }

    pub fn order_by_txn(&self, c: Carrier, txn: &str) -> Option<Order> {
        let orders = self.platform(c).orders.lock().expect("orders lock");
        orders
            .by_txn
            .get(txn)
            .and_then(|no| orders.by_no.get(no))
            .cloned()
    }

    /// Ground truth for one card.
    pub fn truth(&self, c: Carrier, card: &str) -> CardTruth {
        self.platform(c)
            .truth
            .lock()
            .expect("truth lock")
            .cards
            .get(card)
            .cloned()
            .unwrap_or_default()
    }

    /// Ground truth for every card of a carrier that saw a change.
    pub fn all_truth(&self, c: Carrier) -> HashMap<String, CardTruth> {
        self.platform(c)
            .truth
            .lock()
            .expect("truth lock")
            .cards
            .clone()
    }

    pub fn totals(&self, c: Carrier) -> (u64, u64) {
        let t = self.platform(c).truth.lock().expect("truth lock");
        (t.applied_total, t.replays)
    }

    /// Forget ground truth and counters (orders and cards stay).
    pub fn reset_truth(&self) {
        for p in &self.platforms {
            *p.truth.lock().expect("truth lock") = Truth::default();
            p.limiter.reset_counters();
            p.requests.store(0, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(mode: CompletionMode) -> Engine {
        let mut cfg = SimConfig::default();
        cfg.completion.mode = mode;
        cfg.cards_per_carrier = 100;
        Engine::new(cfg).unwrap()
    }

    fn card_with(e: &Engine, c: Carrier, f: impl Fn(&mut CardRecord)) -> String {
        let mut card = e.platform(c).inv.lock().unwrap().generator.card(0);
        card.id = e.platform(c).inv.lock().unwrap().generator.id_at(0);
        f(&mut card);
        let id = card.id.clone();
        e.put_card(c, card);
        id
    }

    #[test]
    fn only_trinet_replays_a_request_id() {
        let e = engine(CompletionMode::Immediate);
        let id = card_with(&e, Carrier::Trinet, |c| c.status = SimStatus::InUse);
        let r1 = e.submit(Carrier::Trinet, &id, "t1", Change::Stop).unwrap();
        let r2 = e.submit(Carrier::Trinet, &id, "t1", Change::Stop).unwrap();
        assert_eq!(r1.order_no, r2.order_no);
        assert!(r2.replayed);
        let t = e.truth(Carrier::Trinet, &id);
        assert_eq!(t.applied.get("stop"), Some(&1));
        assert_eq!(t.replays, 1);
        assert_eq!(
            e.submit(Carrier::Trinet, &id, "t1", Change::Resume),
            Err(Refusal::TxnConflict)
        );
        // China Telecom documents no idempotency: the same id again is a
        // second request, judged on the card as it is now.
        let ct = card_with(&e, Carrier::Ct, |c| c.status = SimStatus::InUse);
        e.submit(Carrier::Ct, &ct, "t1", Change::Stop).unwrap();
        assert!(matches!(
            e.submit(Carrier::Ct, &ct, "t1", Change::Stop),
            Err(Refusal::IllegalState(_))
        ));
        assert_eq!(e.truth(Carrier::Ct, &ct).replays, 0);
    }

    #[test]
    fn ct_rebind_quota_per_cst_month() {
        let e = engine(CompletionMode::Immediate);
        let id = card_with(&e, Carrier::Ct, |c| c.status = SimStatus::InUse);
        let rebind = || Change::Rebind {
            imei: None,
            fixed: false,
        };
        assert!(e.submit(Carrier::Ct, &id, "r1", rebind()).is_ok());
        assert!(e.submit(Carrier::Ct, &id, "r2", rebind()).is_ok());
        assert_eq!(
            e.submit(Carrier::Ct, &id, "r3", rebind()),
            Err(Refusal::RebindQuota)
        );
    }

    #[test]
    fn async_completion_on_the_clock() {
        let e = engine(CompletionMode::Sla);
        let id = card_with(&e, Carrier::Cu, |c| {
            c.status = SimStatus::InUse;
        });
        let r = e.submit(Carrier::Cu, &id, "s1", Change::Stop).unwrap();
        assert_eq!(
            e.order(Carrier::Cu, &r.order_no).unwrap().state,
            OrderState::Pending
        );
        assert_eq!(e.card(Carrier::Cu, &id).unwrap().status, SimStatus::InUse);
        // a second stop while one is pending
        assert_eq!(
            e.submit(Carrier::Cu, &id, "s2", Change::Stop),
            Err(Refusal::PendingStop)
        );
        assert_eq!(e.complete_due(), 0, "1-2 working days have not passed");
    }

    #[test]
    fn carrier_side_rules() {
        let e = engine(CompletionMode::Immediate);
        let cm = card_with(&e, Carrier::Cmcc, |c| {
            c.status = SimStatus::Stopped;
            c.stop_reason = StopReason::Violation;
        });
        assert_eq!(
            e.submit(Carrier::Cmcc, &cm, "a", Change::Resume),
            Err(Refusal::ResumeNotAllowed)
        );
        assert!(
            e.submit(
                Carrier::Cmcc,
                &cm,
                "b",
                Change::Rebind {
                    imei: None,
                    fixed: false
                }
            )
            .is_ok()
        );
        // rebind resolved the violation stop; a status change within 3 minutes of the last one
        assert_eq!(e.card(Carrier::Cmcc, &cm).unwrap().status, SimStatus::InUse);
        assert!(e.submit(Carrier::Cmcc, &cm, "c", Change::Stop).is_ok());
        assert_eq!(
            e.submit(Carrier::Cmcc, &cm, "d", Change::Resume),
            Err(Refusal::TooSoon)
        );
        let ct = card_with(&e, Carrier::Ct, |c| c.status = SimStatus::Activatable);
        assert_eq!(
            e.submit(Carrier::Ct, &ct, "e", Change::Resume),
            Err(Refusal::AwaitingActivation)
        );
        assert!(
            e.submit(Carrier::Ct, &ct, "f", Change::ThresholdAdd { mb: 10 })
                .is_ok()
        );
        assert_eq!(
            e.submit(Carrier::Ct, &ct, "g", Change::ThresholdAdd { mb: 20 }),
            Err(Refusal::AlreadySubscribed)
        );
        assert!(
            e.submit(Carrier::Ct, &ct, "h", Change::ThresholdModify { mb: 20 })
                .is_ok()
        );
        assert_eq!(e.card(Carrier::Ct, &ct).unwrap().threshold_mb, 20);
        let cu = card_with(&e, Carrier::Cu, |c| {
            c.status = SimStatus::InUse;
            c.real_named = false;
        });
        assert_eq!(
            e.submit(Carrier::Cu, &cu, "i", Change::Speed { kbps: 512 }),
            Err(Refusal::RealNameRequired)
        );
        assert_eq!(
            e.submit(
                Carrier::Cu,
                &cu,
                "j",
                Change::Rebind {
                    imei: None,
                    fixed: false
                }
            ),
            Err(Refusal::NotOffered)
        );
        assert_eq!(
            e.submit(Carrier::Cu, "8986010000000000000", "k", Change::Stop),
            Err(Refusal::UnknownCard)
        );
    }
}
