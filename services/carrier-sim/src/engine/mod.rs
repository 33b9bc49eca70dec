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
//!
//! ## Layout
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the types (changes, refusals, orders, the platform's parts) and card access |
//! | [`submit`] | receipts and submitting changes |
//! | [`rules`] | the carrier-side rules |
//! | [`completion`] | asynchronous completion on the clock |
//! | [`jobs`] | batch jobs (China Mobile) |
//! | [`truth`] | the ground truth and order look-ups |
//! | [`drift`] | cards the carrier changes on its own |
//! | [`usage`] | data usage per card and day |

mod completion;
pub mod drift;
pub mod jobs;
mod rules;
mod submit;
mod truth;
pub mod usage;

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
    /// Changes the carrier made on its own (`drift`).
    #[serde(default)]
    pub drifts: u32,
    #[serde(default)]
    pub last_drift: Option<DateTime<Utc>>,
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
    drifts_total: u64,
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

/// One carrier platform, in four parts: the carrier's world (cards,
/// orders, batches, jobs, policies, and the ground truth of what was
/// done), its access rules (tokens, rate limits), the faults a test
/// injects, and what tests observe.
pub struct Platform {
    pub carrier: Carrier,
    pub world: World,
    pub access: Access,
    pub faults: FaultInjection,
    pub probes: Probes,
}

/// The carrier's state.
pub struct World {
    inv: Mutex<Inventory>,
    orders: Mutex<Orders>,
    truth: Mutex<Truth>,
    pub batches: Mutex<HashMap<String, Batch>>,
    /// Batch jobs by job id ([`jobs`]).
    pub jobs: Mutex<HashMap<String, jobs::Job>>,
    pub policies: Mutex<BTreeMap<String, Policy>>,
    seq: AtomicU64,
}

/// Who may call, how often.
pub struct Access {
    /// China Mobile tokens -> expiry (real time).
    pub tokens: Mutex<HashMap<String, DateTime<Utc>>>,
    pub limiter: RateLimiter,
}

/// Faults a test or the admin API injects.
pub struct FaultInjection {
    pub settings: RwLock<Faults>,
    /// Do the work of the next N change calls, then drop their answers
    /// (a deterministic "answer lost" for fault tests).
    pub drop_change_answers: AtomicU64,
    /// Do the work of the next N change calls, then answer HTTP 500 (a
    /// carrier that applied a change and failed on its answer).
    pub error_change_answers: AtomicU64,
}

/// What tests and the admin API observe.
pub struct Probes {
    pub requests: AtomicU64,
    /// Batch calls refused whole (a member inside the repeat window).
    pub batch_refusals: AtomicU64,
    /// The last W3C `traceparent` headers received (newest last), so tests can
    /// check that trace context reached the carrier.
    pub traceparents: Mutex<std::collections::VecDeque<String>>,
    /// Requests per API path, card numbers in it replaced by `{id}` (what
    /// a benchmark counts per query: usage calls apart from status reads).
    pub by_path: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Probes {
    /// Count a request to `path`.
    pub fn count_path(&self, path: &str) {
        let key = path
            .split('/')
            .map(|seg| {
                if seg.len() >= 8 && seg.bytes().any(|b| b.is_ascii_digit()) {
                    "{id}"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        *self
            .by_path
            .lock()
            .expect("path counts")
            .entry(key)
            .or_default() += 1;
    }
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
            world: World {
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
                seq: AtomicU64::new(0),
            },
            access: Access {
                tokens: Mutex::new(HashMap::new()),
                limiter: RateLimiter::new(&config.limits_for(c)),
            },
            faults: FaultInjection {
                settings: RwLock::new(config.faults.get(&c).cloned().unwrap_or_default()),
                drop_change_answers: AtomicU64::new(0),
                error_change_answers: AtomicU64::new(0),
            },
            probes: Probes {
                requests: AtomicU64::new(0),
                batch_refusals: AtomicU64::new(0),
                traceparents: Mutex::new(std::collections::VecDeque::new()),
                by_path: Mutex::new(std::collections::BTreeMap::new()),
            },
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

    /// Replace the faults a carrier's platform injects.
    pub fn set_faults(&self, c: Carrier, f: Faults) {
        *self
            .platform(c)
            .faults
            .settings
            .write()
            .expect("faults lock") = f;
    }

    /// Virtual now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A card as it is now.
    pub fn card(&self, c: Carrier, id: &str) -> Option<CardRecord> {
        self.platform(c)
            .world
            .inv
            .lock()
            .expect("inventory lock")
            .get(id)
    }

    /// Edit a stored card in place (plan names and other account data).
    pub fn edit_card(&self, c: Carrier, id: &str, f: impl FnOnce(&mut CardRecord)) {
        if let Some(card) = self
            .platform(c)
            .world
            .inv
            .lock()
            .expect("inventory lock")
            .get_mut(id)
        {
            f(card);
        }
    }

    /// Create or replace a card (admin): stamped now unless it says when.
    pub fn put_card(&self, c: Carrier, mut card: CardRecord) {
        card.updated_at = card.updated_at.or_else(|| Some(self.now()));
        self.platform(c)
            .world
            .inv
            .lock()
            .expect("inventory lock")
            .put(card);
    }

    /// Cards changed since `since` (see [`Inventory::changed_since`]).
    pub fn changed_since(
        &self,
        c: Carrier,
        since: DateTime<Utc>,
        after: Option<(DateTime<Utc>, &str)>,
        limit: usize,
    ) -> Vec<CardRecord> {
        self.platform(c)
            .world
            .inv
            .lock()
            .expect("inventory lock")
            .changed_since(since, after, limit)
    }

    /// Generated cards never changed (see [`Inventory::unstamped_from`]).
    pub fn unstamped_from(
        &self,
        c: Carrier,
        from: u64,
        limit: usize,
    ) -> (Vec<CardRecord>, Option<u64>) {
        self.platform(c)
            .world
            .inv
            .lock()
            .expect("inventory lock")
            .unstamped_from(from, limit)
    }

    pub fn page(&self, c: Carrier, offset: u64, limit: u64) -> Vec<CardRecord> {
        self.platform(c)
            .world
            .inv
            .lock()
            .expect("inventory lock")
            .page(offset, limit)
    }

    pub fn materialised(&self, c: Carrier) -> usize {
        self.platform(c)
            .world
            .inv
            .lock()
            .expect("inventory lock")
            .materialised()
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
        let mut card = e.platform(c).world.inv.lock().unwrap().generator.card(0);
        card.id = e.platform(c).world.inv.lock().unwrap().generator.id_at(0);
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
