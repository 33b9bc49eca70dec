//! The interface a carrier module implements, and the outcomes it reports.
//!
//! A carrier module turns an operation into that carrier's request(s), and
//! that carrier's answers into one of a few outcomes, including whether a
//! failure is worth retrying. Fallbacks a carrier needs (China Telecom's
//! "already subscribed, so modify", forced activation when resume meets a
//! card awaiting activation, China Mobile's token refresh) live in the
//! module, not here.

use crate::pacing::Pacer;
use crate::reads::{ListPage, SyncCard, SyncPlan};
use gsl_domain::carrier::Carrier;
use gsl_domain::codes::ErrorCode;
use gsl_proto::v1;
use std::time::Duration;

/// Which budget a call spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallClass {
    Change,
    Query,
}

/// Asked after a change call's budget slot is taken and before the call:
/// is the item still this replica's to call for? (A replica paused past the
/// ack wait finds that another took it over, and does not call again.)
pub type StillOurs<'a> = &'a (dyn Fn() -> futures::future::BoxFuture<'a, bool> + Send + Sync);

/// What a module gets to make its calls. Modules do not pace themselves:
/// [`crate::http::Http::call`] spends the budget of each attempt.
pub struct CallCtx<'a> {
    pub pace: &'a Pacer,
    /// Our transaction id for this item's change: made once, kept in the
    /// execution record.
    pub txn: &'a str,
    still_ours: Option<StillOurs<'a>>,
    /// Card-sync reads: every call waits on [`Pacer::sync`] (work orders
    /// first) instead of the work-order classes.
    sync: bool,
}

impl<'a> CallCtx<'a> {
    pub fn new(pace: &'a Pacer, txn: &'a str) -> CallCtx<'a> {
        CallCtx {
            pace,
            txn,
            still_ours: None,
            sync: false,
        }
    }

    /// A context for card-sync reads.
    pub fn sync(pace: &'a Pacer) -> CallCtx<'a> {
        CallCtx {
            pace,
            txn: "",
            still_ours: None,
            sync: true,
        }
    }

    /// A context whose change calls first check that the item is still ours.
    pub fn guarded(pace: &'a Pacer, txn: &'a str, still_ours: StillOurs<'a>) -> CallCtx<'a> {
        CallCtx {
            pace,
            txn,
            still_ours: Some(still_ours),
            sync: false,
        }
    }

    /// Wait for a slot of the class's budget; for a change, then check the
    /// item is still ours. A slot that has become too late by the time the
    /// call could go (the check took long, the task was not scheduled) is
    /// dropped and another taken: a late call is what could break the limit.
    pub async fn slot(&self, class: CallClass) -> CallResult<()> {
        loop {
            let ticket = match class {
                // A sync read spends the class the module names (CU's
                // reads spend its one budget), behind work orders.
                _ if self.sync => self.pace.sync(class == CallClass::Change).await,
                CallClass::Query => self.pace.query().await,
                CallClass::Change => {
                    let t = self.pace.change().await;
                    if let Some(f) = self.still_ours
                        && !f().await
                    {
                        return Err(CallError::Superseded);
                    }
                    t
                }
            };
            if !ticket.is_some_and(|t| t.late()) {
                return Ok(());
            }
        }
    }
}

/// The item as a module sees it.
#[derive(Debug, Clone)]
pub struct Item {
    pub work_order_id: u64,
    pub card: String,
    pub index: u32,
    pub tenant: String,
    pub carrier: Carrier,
    pub op: v1::Operation,
    pub batch_no: String,
    /// The carrier's numbers for the card, from the card store when it has
    /// them (empty otherwise; a module that needs one looks it up).
    pub msisdn: String,
    pub access_number: String,
    /// The card as the gateway read it at validation (`None`: directional
    /// config, or a gateway older than the card store sent the item).
    pub facts: Option<v1::CardSnapshot>,
}

impl Item {
    pub fn kind(&self) -> Option<gsl_domain::OperationKind> {
        gsl_proto::convert::operation_kind(&self.op)
    }
}

/// The carrier accepted a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The carrier's receipt (order number, request id, ticket).
    pub ticket: String,
    /// What to poll with (the order number, a job id, or a module's own
    /// marker such as "read the card").
    pub poll_ref: String,
    /// The answer itself is the outcome: the change is made (China Unicom's
    /// synchronous edits) or nothing can ever read it back (China Telecom's
    /// `speedLimitAction`): no poll follows.
    pub done: bool,
}

impl Accepted {
    /// A receipt to follow with polls.
    pub fn pending(ticket: impl Into<String>, poll_ref: impl Into<String>) -> Accepted {
        Accepted {
            ticket: ticket.into(),
            poll_ref: poll_ref.into(),
            done: false,
        }
    }

    /// The answer is the outcome.
    pub fn done(ticket: impl Into<String>) -> Accepted {
        Accepted {
            ticket: ticket.into(),
            poll_ref: String::new(),
            done: true,
        }
    }
}

/// What reading the carrier says about a change whose answer was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Nothing was made: calling (again) is safe.
    NotMade,
    /// The change was made and is being carried out: follow it.
    Made(Accepted),
    /// The change is final at the carrier.
    Done(Progress),
    /// Not safe to tell yet (China Mobile's repeat window since the call has
    /// not passed): look again after this long, on the clock the services
    /// share (`AdapterConfig::clock`; the worker turns it into real time).
    Wait(Duration),
    /// Nothing the carrier exposes can tell: a person must check (a
    /// back-office verification request). The text says what to check.
    Unverifiable(String),
}

/// Items that may share one batch call: the module's name for the call
/// (operation and starting state, e.g. China Mobile's `operType`), and the
/// most cards one call takes. One adapter serves one carrier account, so the
/// account is implied.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchKey {
    pub call: String,
    pub max: usize,
}

/// Progress of a batch call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchProgress {
    /// The carrier is still working on the batch.
    Pending,
    /// The batch is finished: one entry per member, in the order of the
    /// members; `None` for a member the results do not name (read the card:
    /// never assume).
    Finished(Vec<Option<Progress>>),
}

/// Why an operation goes to the carrier's back office instead of an API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackOfficeReason {
    /// What the operator does at the carrier, in words.
    pub instructions: String,
}

/// Progress of an accepted change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Pending,
    Succeeded,
    Failed {
        carrier_code: String,
        message: String,
    },
}

/// Why a call did not give an answer we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The carrier refused; final for this item.
    #[error("{code}: carrier {carrier_code}: {message}")]
    Refused {
        code: ErrorCode,
        carrier_code: String,
        message: String,
    },
    /// Nothing happened at the carrier (connection refused, over the limit,
    /// a 5xx to a read or where the contract says so): retry, after
    /// `retry_after` when the carrier said so.
    #[error("transient: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The request may have reached the carrier but no usable answer came
    /// back (timeout after sending, connection dropped, a 5xx to a change, a
    /// cut-off or oversized answer): never call again blindly; look the
    /// transaction up first.
    #[error("outcome unknown: {reason}")]
    Unknown { reason: String },
    /// Another replica took the item over while this one waited for the
    /// carrier's budget: nothing was sent.
    #[error("the item was taken over by another replica")]
    Superseded,
}

impl CallError {
    pub fn refused(
        code: ErrorCode,
        carrier_code: impl Into<String>,
        message: impl Into<String>,
    ) -> CallError {
        CallError::Refused {
            code,
            carrier_code: carrier_code.into(),
            message: message.into(),
        }
    }

    pub fn transient(reason: impl Into<String>) -> CallError {
        CallError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

pub type CallResult<T> = Result<T, CallError>;

/// What a 5xx answer to a change call means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiveXx {
    /// Nothing proves the carrier did nothing: the outcome is unknown and
    /// is read back (never retried blind). CMCC and CT: no contract says a
    /// 5xx means "not applied".
    Unknown,
    /// The contract says a 5xx means nothing happened: retried blind.
    NotApplied,
}

/// What a carrier's answers mean beyond its documented successes and
/// refusals: which prove nothing was done (and may be retried blind), and
/// which say "over the limit" (slow down and try again, for queries and
/// changes alike, never a final outcome). Each carrier module sets its own
/// from its contract and settings (`docs/carriers.md` lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerPolicy {
    /// HTTP statuses meaning "over the limit, nothing done" (RFC 6585's
    /// 429 for every carrier).
    pub over_limit_http: Vec<u16>,
    /// The carrier's own codes meaning the same (CU: `40000029`).
    pub over_limit_codes: Vec<String>,
    /// What a 5xx to a change call means. (A 5xx to a query is always
    /// retried: a read changes nothing.)
    pub change_5xx: FiveXx,
}

impl Default for AnswerPolicy {
    fn default() -> Self {
        AnswerPolicy {
            over_limit_http: vec![429],
            over_limit_codes: Vec::new(),
            change_5xx: FiveXx::Unknown,
        }
    }
}

/// How long an over-limit answer without `Retry-After` waits.
pub const OVER_LIMIT_WAIT: Duration = Duration::from_secs(1);

impl AnswerPolicy {
    /// Codes from a comma-separated setting, or `default` when unset.
    pub fn codes(setting: Option<&str>, default: &[&str]) -> Vec<String> {
        match setting {
            Some(s) => s
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            None => default.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    /// An HTTP status (and the `Retry-After` it came with) before the body
    /// is read: `Ok` to read the answer, or a transient failure (nothing
    /// done: retry), or an unknown outcome (a change may have been made).
    pub fn classify(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        class: CallClass,
    ) -> Result<(), CallError> {
        if self.over_limit_http.contains(&status) {
            return Err(CallError::Transient {
                reason: format!("over the carrier's limit (HTTP {status}): slowing down"),
                retry_after: Some(retry_after.unwrap_or(OVER_LIMIT_WAIT)),
            });
        }
        if (500..600).contains(&status) {
            if class == CallClass::Change && self.change_5xx == FiveXx::Unknown {
                return Err(CallError::Unknown {
                    reason: format!(
                        "carrier answered HTTP {status} to a change: it may have been made; read back before any new call"
                    ),
                });
            }
            return Err(CallError::Transient {
                reason: format!("carrier answered HTTP {status}"),
                retry_after,
            });
        }
        Ok(())
    }

    /// A refusal carrying one of the carrier's over-limit codes is not a
    /// refusal: slow down and try again.
    pub fn reclass<T>(&self, r: Result<T, CallError>) -> Result<T, CallError> {
        match r {
            Err(CallError::Refused {
                carrier_code,
                message,
                ..
            }) if !carrier_code.is_empty() && self.over_limit_codes.contains(&carrier_code) => {
                Err(CallError::Transient {
                    reason: format!(
                        "over the carrier's limit ({carrier_code} {message}): slowing down"
                    ),
                    retry_after: Some(OVER_LIMIT_WAIT),
                })
            }
            other => other,
        }
    }
}

/// A carrier platform.
#[tonic::async_trait]
pub trait CarrierApi: Send + Sync + 'static {
    fn carrier(&self) -> Carrier;

    /// The transaction id for an item's change, made once and kept in the
    /// execution record. The default is derived from the item id; a carrier
    /// with its own format overrides it.
    fn make_txn(&self, item: &Item, _now: chrono::DateTime<chrono::Utc>) -> String {
        format!("gsl-{}-{}", item.work_order_id, item.card)
    }

    /// Ask the carrier for the change (`ctx.txn` is our id for this call,
    /// where the carrier takes one; no carrier de-duplicates by it).
    async fn submit(&self, ctx: &CallCtx<'_>, item: &Item) -> CallResult<Accepted>;

    /// Progress of an accepted change.
    async fn poll(
        &self,
        ctx: &CallCtx<'_>,
        item: &Item,
        accepted: &Accepted,
    ) -> CallResult<Progress>;

    /// Resolve an unknown outcome by reading what the carrier exposes (the
    /// card's state, an order list): never by calling the change again.
    /// `since` is when the intent was recorded (before the call), on the
    /// clock the services share: a module compares it with that clock's
    /// now, never with the wall clock.
    async fn lookup(
        &self,
        ctx: &CallCtx<'_>,
        item: &Item,
        since: chrono::DateTime<chrono::Utc>,
    ) -> CallResult<Lookup>;

    /// `Some` when this carrier has no public API for the item's operation
    /// (contracts' README §7): the adapter files a back-office request
    /// instead of calling anything.
    fn back_office(&self, _item: &Item) -> Option<BackOfficeReason> {
        None
    }

    /// `Some` when the item may share a batch call with others of the same
    /// key (`cmcc.md`: `change/sim-status/batch`). Called after the rules,
    /// so the module may rely on what they checked.
    fn batch_key(&self, _item: &Item) -> Option<BatchKey> {
        None
    }

    /// The most cards one batch call of this carrier takes (0: no batches).
    /// The worker sizes its concurrency so a batch can fill.
    fn batch_size(&self) -> usize {
        0
    }

    /// Fill in what the batch call needs (carrier numbers, looked up for
    /// many cards at once), before any record is written. One result per
    /// item: an item with an error leaves the batch (refused: final;
    /// otherwise retried later).
    async fn prepare_batch(&self, _ctx: &CallCtx<'_>, items: &mut [Item]) -> Vec<CallResult<()>> {
        items.iter().map(|_| Ok(())).collect()
    }

    /// One call for every item (`ctx.txn`: the batch's transaction id). A
    /// refusal is a refusal of the whole batch: nothing was changed.
    async fn submit_batch(
        &self,
        _ctx: &CallCtx<'_>,
        _key: &BatchKey,
        _items: &[Item],
    ) -> CallResult<Accepted> {
        Err(CallError::refused(
            gsl_domain::codes::ErrorCode::NotSupported,
            "",
            "this carrier module has no batch call",
        ))
    }

    /// Progress of an accepted batch (`accepted.poll_ref`: the job).
    async fn poll_batch(
        &self,
        _ctx: &CallCtx<'_>,
        _items: &[Item],
        _accepted: &Accepted,
    ) -> CallResult<BatchProgress> {
        Err(CallError::transient(
            "this carrier module has no batch call",
        ))
    }

    /// Whether an accepted change of this item may already be complete when
    /// the carrier answers (then one read right after is worth its call).
    /// `false` where the contract says changes are carried out later.
    fn completes_at_once(&self, _item: &Item) -> bool {
        true
    }

    /// What this carrier's answers mean (over-limit codes, 5xx): the worker
    /// reclassifies every call's result by it.
    fn answers(&self) -> &AnswerPolicy {
        static DEFAULT: std::sync::LazyLock<AnswerPolicy> =
            std::sync::LazyLock::new(AnswerPolicy::default);
        &DEFAULT
    }

    /// Can the carrier be reached (for `/readyz`)?
    async fn ping(&self) -> Result<(), String>;

    /// How card sync reads this carrier (`docs/carriers.md`, "Card sync").
    fn sync_plan(&self) -> SyncPlan {
        SyncPlan::NONE
    }

    /// Read one card (card sync). A card the carrier does not know is
    /// refused (`CardNotFound`); an answer with codes we do not know keeps
    /// them raw and still counts as a read. `now` is the services' shared
    /// clock (the read's time).
    async fn read_card(
        &self,
        _ctx: &CallCtx<'_>,
        _card: &SyncCard,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> CallResult<v1::CardRead> {
        Err(CallError::refused(
            ErrorCode::NotSupported,
            "",
            "this carrier module has no card read",
        ))
    }

    /// Read cards one by one, in order: one result per card.
    async fn read_cards(
        &self,
        ctx: &CallCtx<'_>,
        cards: &[SyncCard],
        now: &(dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync),
    ) -> Vec<CallResult<v1::CardRead>> {
        let mut out = Vec::with_capacity(cards.len());
        for c in cards {
            out.push(self.read_card(ctx, c, now()).await);
        }
        out
    }

    /// Cards of one usage batch call (0: the carrier has none; its usage,
    /// if any, comes with [`CarrierApi::read_cards`]).
    fn usage_batch(&self) -> usize {
        0
    }

    /// This month's usage of up to [`CarrierApi::usage_batch`] cards in one
    /// call: a read per card the carrier answered for (usage fields only).
    async fn read_usage(
        &self,
        _ctx: &CallCtx<'_>,
        _cards: &[SyncCard],
        _now: &(dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync),
    ) -> CallResult<Vec<v1::CardRead>> {
        Err(CallError::refused(
            ErrorCode::NotSupported,
            "",
            "this carrier module has no usage batch",
        ))
    }

    /// One page of the carrier's card list: every card (`since` unset: a
    /// full sweep) or those changed since `since`; `cursor` is the page
    /// ("": the first). A `since` the carrier will not take is refused with
    /// carrier code [`crate::reads::SINCE_TOO_OLD`].
    async fn list_cards(
        &self,
        _ctx: &CallCtx<'_>,
        _since: Option<chrono::DateTime<chrono::Utc>>,
        _cursor: &str,
        _now: &(dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync),
    ) -> CallResult<ListPage> {
        Err(CallError::refused(
            ErrorCode::NotSupported,
            "",
            "this carrier has no card list",
        ))
    }
}
