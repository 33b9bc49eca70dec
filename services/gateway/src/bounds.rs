//! Request bounds by bytes, whoever sends them.
//!
//! A tower layer in front of every gRPC service reads the 5-byte gRPC
//! message header (compression flag, length) of each request message before
//! the message itself is read, and:
//!
//! - refuses a message longer than its method's cap ([`RequestBounds::cap`])
//!   at once with `GSL.00010005`, without reading or buffering the rest;
//! - walks the message's top-level protobuf fields as they stream in (no
//!   decoding, no buffering), counts the request's items (the cards of a
//!   submit or an import) and refuses a message with more than the method
//!   allows, before it is decoded;
//! - charges what the message will take in memory once decoded to one
//!   budget shared by every connection (`GSL_DECODE_BUDGET_BYTES`): its
//!   bytes, plus for each item the size of its decoded struct, plus a
//!   weight per byte for fields whose nested repeated values can decode to
//!   many times their wire size. When a message's header arrives, the most
//!   it could cost (from its length and the method's shape) is reserved
//!   before any of it is passed on, so messages never hold part of the
//!   budget while waiting for more (two large requests cannot starve each
//!   other); once the whole message has streamed in, the reservation
//!   shrinks to the estimate of what it will take. That charge is held
//!   until the method has answered, so
//!   the memory of requests received, decoded and handled at once stays
//!   bounded whatever mix of callers and sizes arrives. (A count of requests
//!   would not bound it: 1,024 requests of 1 MiB are four times the pod's
//!   memory, and 2 bytes of an empty card decode to a 232-byte struct.) A
//!   message that waits longer than `budget_wait` is refused as busy
//!   (`GSL.00010003`).
//!
//! The interceptor in front of each service ([`crate::auth::Gate`]) refuses
//! unknown tokens and principals the service does not serve from the
//! headers alone: the body of such a request is never read, so it spends no
//! budget. The caps and the budget are figures of `docs/security.md`.

use crate::error::ApiError;
use bytes::{Buf, Bytes};
use gsl_domain::ErrorCode;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Size caps per method, and the shared budget.
///
/// Each default fits the method's largest real request with room to spare
/// (`docs/security.md` shows the arithmetic); the environment overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestBounds {
    /// `WorkOrders.Submit` (`GSL_MAX_SUBMIT_BYTES`): a 100,000-card
    /// activation is 2.2 MB (22 bytes per 20-digit ICCID); 10,000 rebinds
    /// with an IMEI each 0.4 MB.
    pub submit: usize,
    /// `Registry.ImportCards` (`GSL_MAX_IMPORT_BYTES`): 100,000 cards with
    /// their usual fields (about 128 bytes a card) are 12.8 MB; with plan
    /// data and six customer attributes a card is about 300 bytes, so
    /// such an import carries about 50,000 cards (decoded, a card takes
    /// about 1.2 KB: a bigger cap would not fit the pod).
    pub import_cards: usize,
    /// `Registry.UpdateCards` (`GSL_MAX_UPDATE_CARDS_BYTES`): 100,000
    /// updates of about 150 bytes (a key, six short attributes, a plan)
    /// are 15 MB.
    pub update_cards: usize,
    /// `Registry.ListCards` (`GSL_MAX_LIST_CARDS_BYTES`): filters of at most
    /// 30 plans and a few hundred purchase batches, well under 16 KiB.
    pub list_cards: usize,
    /// `Registry.ImportBatches` (`GSL_MAX_IMPORT_BATCHES_BYTES`): 500
    /// batches with 10 entries each, about 0.2 MB.
    pub import_batches: usize,
    /// `Results.ReportCards` (`GSL_MAX_REPORT_CARDS_BYTES`): 1,000 reads
    /// of about 120 bytes (a key, a time, codes, an IMEI) are 120 KB.
    pub report_cards: usize,
    /// `Registry.RefreshCards` (`GSL_MAX_REFRESH_CARDS_BYTES`): 500 keys of
    /// 22 bytes are 11 KB.
    pub refresh_cards: usize,
    /// `Registry.BatchUsage` (`GSL_MAX_BATCH_USAGE_BYTES`): 500 keys of 22
    /// bytes and a month or a date are 11 KB.
    pub batch_usage: usize,
    /// Every other method: one id, a filter, one outcome, one back-office
    /// move (`GSL_MAX_SMALL_REQUEST_BYTES`).
    pub small: usize,
    /// Bytes of request messages received, decoded and handled at once, in
    /// all (`GSL_DECODE_BUDGET_BYTES`). At least the largest cap. A decoded
    /// message takes about three times its wire size.
    pub budget: usize,
    /// How long a message waits for budget before it is refused as busy
    /// (`GSL_DECODE_BUDGET_WAIT_MS`).
    pub budget_wait: Duration,
}

impl Default for RequestBounds {
    fn default() -> Self {
        RequestBounds {
            submit: 4 * MIB,
            import_cards: 16 * MIB,
            update_cards: 16 * MIB,
            list_cards: 64 * KIB,
            import_batches: 256 * KIB,
            report_cards: 256 * KIB,
            refresh_cards: 32 * KIB,
            batch_usage: 32 * KIB,
            small: 64 * KIB,
            budget: 64 * MIB,
            budget_wait: Duration::from_secs(10),
        }
    }
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Cards in one import (`Registry.ImportCards`): a bigger fleet is imported
/// in several calls.
pub const IMPORT_MAX_CARDS: usize = 100_000;
/// Cards in one `Registry.UpdateCards`.
pub const UPDATE_MAX_CARDS: usize = 100_000;
/// Purchase batches in one `Registry.ImportBatches`.
pub const IMPORT_MAX_BATCHES: usize = 1_000;
/// What one heap allocation (a string's) costs beyond its bytes, at least.
const ALLOC: usize = 32;
/// Budget per wire byte of a field that may nest repeated values (an empty
/// nested message or string is 2 bytes on the wire, and 24 to 56 decoded).
const NESTED_PER_BYTE: usize = 28;

/// How a method's message is charged to the budget while it streams in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// The request's items: a top-level repeated message field.
    pub items: Option<Items>,
    /// Budget per byte of every other length-delimited field.
    pub per_byte: usize,
}

impl Shape {
    /// The most a message of `len` bytes could be charged.
    pub fn worst(&self, len: usize) -> usize {
        let (per_byte, items) = match self.items {
            Some(it) => (
                self.per_byte.max(it.per_byte),
                it.max.min(len / 2).saturating_mul(it.cost),
            ),
            None => (self.per_byte, 0),
        };
        len.saturating_add(HEADER)
            .saturating_add(len.saturating_mul(per_byte))
            .saturating_add(items)
    }
}

/// The items of a request, counted as they arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Items {
    /// Field number of the repeated field.
    pub field: u64,
    /// Most items one message may carry (more: refused, `GSL.00010005`).
    pub max: usize,
    /// Budget per item beyond its bytes: its decoded struct and allocations.
    pub cost: usize,
    /// Budget per byte of an item.
    pub per_byte: usize,
}

/// gRPC paths of the methods with their own cap.
pub const SUBMIT: &str = "/gsl.v1.WorkOrders/Submit";
pub const IMPORT_CARDS: &str = "/gsl.v1.Registry/ImportCards";
pub const IMPORT_BATCHES: &str = "/gsl.v1.Registry/ImportBatches";
pub const UPDATE_CARDS: &str = "/gsl.v1.Registry/UpdateCards";
pub const LIST_CARDS: &str = "/gsl.v1.Registry/ListCards";
pub const REPORT_CARDS: &str = "/gsl.v1.Results/ReportCards";
pub const REFRESH_CARDS: &str = "/gsl.v1.Registry/RefreshCards";
pub const BATCH_USAGE: &str = "/gsl.v1.Registry/BatchUsage";

impl RequestBounds {
    /// The cap of the method at `path`.
    pub fn cap(&self, path: &str) -> usize {
        match path {
            SUBMIT => self.submit,
            IMPORT_CARDS => self.import_cards,
            IMPORT_BATCHES => self.import_batches,
            UPDATE_CARDS => self.update_cards,
            LIST_CARDS => self.list_cards,
            REPORT_CARDS => self.report_cards,
            REFRESH_CARDS => self.refresh_cards,
            BATCH_USAGE => self.batch_usage,
            _ => self.small,
        }
    }

    /// How the method at `path` is charged and how many items it may carry.
    pub fn shape(&self, path: &str) -> Shape {
        use gsl_proto::v1;
        use std::mem::size_of;
        match path {
            // `SubmitRequest.cards` (3): a CardRef's struct and its three
            // strings' allocations; the operation (directional entries) may
            // nest repeated strings.
            SUBMIT => Shape {
                items: Some(Items {
                    field: 3,
                    // The largest batch limit of any operation (activation).
                    max: gsl_domain::limits::BATCH_LIMITS
                        .iter()
                        .map(|l| l.max_items)
                        .max()
                        .unwrap_or(0),
                    cost: size_of::<v1::CardRef>() + 3 * ALLOC,
                    per_byte: 2,
                }),
                per_byte: NESTED_PER_BYTE,
            },
            // `ImportCardsRequest.cards` (1): a Card's struct and its
            // strings' allocations (seven, two of the plan, the attribute
            // list and its six).
            IMPORT_CARDS => Shape {
                items: Some(Items {
                    field: 1,
                    max: IMPORT_MAX_CARDS,
                    cost: size_of::<v1::Card>() + 16 * ALLOC,
                    per_byte: 2,
                }),
                per_byte: NESTED_PER_BYTE,
            },
            // `UpdateCardsRequest.cards` (1): a CardUpdate's struct, its key,
            // the attribute list and its six, two plan strings.
            UPDATE_CARDS => Shape {
                items: Some(Items {
                    field: 1,
                    max: UPDATE_MAX_CARDS,
                    cost: size_of::<v1::CardUpdate>() + 10 * ALLOC,
                    per_byte: 2,
                }),
                per_byte: NESTED_PER_BYTE,
            },
            // `ImportBatchesRequest.batches` (1): each batch nests repeated
            // entries (2 wire bytes each decode to a struct of 56).
            IMPORT_BATCHES => Shape {
                items: Some(Items {
                    field: 1,
                    max: IMPORT_MAX_BATCHES,
                    cost: size_of::<v1::PurchaseBatch>() + 3 * ALLOC,
                    per_byte: NESTED_PER_BYTE,
                }),
                per_byte: NESTED_PER_BYTE,
            },
            // `ReportCardsRequest.reads` (1): a CardRead's struct and its
            // strings (key, two raw codes, an IMEI).
            REPORT_CARDS => Shape {
                items: Some(Items {
                    field: 1,
                    max: crate::cardsync::REPORT_MAX_READS,
                    cost: size_of::<v1::CardRead>() + 5 * ALLOC,
                    per_byte: 2,
                }),
                per_byte: NESTED_PER_BYTE,
            },
            // `RefreshCardsRequest.ids` (1): one string each.
            REFRESH_CARDS => Shape {
                items: Some(Items {
                    field: 1,
                    max: crate::cardsync::REFRESH_MAX_CARDS,
                    cost: size_of::<String>() + ALLOC,
                    per_byte: 2,
                }),
                per_byte: NESTED_PER_BYTE,
            },
            // `BatchUsageRequest.cards` (3): one string each.
            BATCH_USAGE => Shape {
                items: Some(Items {
                    field: 3,
                    max: crate::usage::USAGE_MAX_CARDS,
                    cost: size_of::<String>() + ALLOC,
                    per_byte: 2,
                }),
                per_byte: NESTED_PER_BYTE,
            },
            _ => Shape {
                items: None,
                per_byte: NESTED_PER_BYTE,
            },
        }
    }

    /// The largest cap of any method (what tonic's own limit is set to).
    pub fn largest(&self) -> usize {
        self.submit
            .max(self.import_cards)
            .max(self.update_cards)
            .max(self.list_cards)
            .max(self.import_batches)
            .max(self.report_cards)
            .max(self.refresh_cards)
            .max(self.batch_usage)
            .max(self.small)
    }

    /// Read `GSL_MAX_*_BYTES`, `GSL_DECODE_BUDGET_*` through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<RequestBounds, String> {
        let d = RequestBounds::default();
        let num = |k: &str, v: usize| -> Result<usize, String> {
            match get(k) {
                Some(s) => s
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{k} must be a positive number of bytes")),
                None => Ok(v),
            }
        };
        let b = RequestBounds {
            submit: num("GSL_MAX_SUBMIT_BYTES", d.submit)?,
            import_cards: num("GSL_MAX_IMPORT_BYTES", d.import_cards)?,
            update_cards: num("GSL_MAX_UPDATE_CARDS_BYTES", d.update_cards)?,
            list_cards: num("GSL_MAX_LIST_CARDS_BYTES", d.list_cards)?,
            import_batches: num("GSL_MAX_IMPORT_BATCHES_BYTES", d.import_batches)?,
            report_cards: num("GSL_MAX_REPORT_CARDS_BYTES", d.report_cards)?,
            refresh_cards: num("GSL_MAX_REFRESH_CARDS_BYTES", d.refresh_cards)?,
            batch_usage: num("GSL_MAX_BATCH_USAGE_BYTES", d.batch_usage)?,
            small: num("GSL_MAX_SMALL_REQUEST_BYTES", d.small)?,
            budget: num("GSL_DECODE_BUDGET_BYTES", d.budget)?,
            budget_wait: Duration::from_millis(num(
                "GSL_DECODE_BUDGET_WAIT_MS",
                d.budget_wait.as_millis() as usize,
            )? as u64),
        };
        b.check()?;
        Ok(b)
    }

    /// The budget must admit the largest request, and fit a semaphore.
    pub fn check(&self) -> Result<(), String> {
        if self.budget < self.largest() + HEADER {
            return Err(format!(
                "GSL_DECODE_BUDGET_BYTES ({}) must be at least the largest request cap ({}) plus 5",
                self.budget,
                self.largest()
            ));
        }
        if self.budget > u32::MAX as usize {
            return Err("GSL_DECODE_BUDGET_BYTES must be under 4 GiB".into());
        }
        Ok(())
    }

    /// The layer, with a fresh budget.
    pub fn layer(&self) -> BoundsLayer {
        BoundsLayer {
            bounds: Arc::new(self.clone()),
            budget: Arc::new(Semaphore::new(self.budget)),
        }
    }
}

/// The gRPC message header: compression flag and big-endian length.
const HEADER: usize = 5;

/// See the module doc.
#[derive(Clone)]
pub struct BoundsLayer {
    bounds: Arc<RequestBounds>,
    budget: Arc<Semaphore>,
}

impl BoundsLayer {
    /// Bytes of budget free now (metrics, tests).
    pub fn free(&self) -> usize {
        self.budget.available_permits()
    }
}

impl<S> tower::Layer<S> for BoundsLayer {
    type Service = Bounded<S>;

    fn layer(&self, inner: S) -> Bounded<S> {
        Bounded {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Bounded<S> {
    inner: S,
    layer: BoundsLayer,
}

/// Budget held by one request until its method answers.
type Held = Arc<Mutex<Vec<OwnedSemaphorePermit>>>;

impl<S, ResBody> tower::Service<http::Request<tonic::body::Body>> for Bounded<S>
where
    S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let cap = self.layer.bounds.cap(req.uri().path());
        let shape = self.layer.bounds.shape(req.uri().path());
        let held: Held = Arc::default();
        let (parts, body) = req.into_parts();
        let body = BoundedBody {
            inner: body,
            cap,
            shape,
            scan: Scan::Header(Vec::with_capacity(HEADER)),
            items: 0,
            kept: 0,
            budget: self.layer.budget.clone(),
            total: self.layer.bounds.budget,
            wait: self.layer.bounds.budget_wait,
            held: held.clone(),
            left: 0,
            waiting: None,
        };
        let fut = self.inner.call(http::Request::from_parts(
            parts,
            tonic::body::Body::new(body),
        ));
        Box::pin(async move {
            let r = fut.await;
            // The method has answered: its request is decoded and handled.
            held.lock().expect("held budget").clear();
            r
        })
    }
}

type Acquire = Pin<
    Box<
        dyn Future<
                Output = Result<
                    Result<OwnedSemaphorePermit, tokio::sync::AcquireError>,
                    tokio::time::error::Elapsed,
                >,
            > + Send,
    >,
>;

/// A request body that checks each message's header against the cap and
/// takes budget for the message before passing it on.
struct BoundedBody {
    inner: tonic::body::Body,
    cap: usize,
    shape: Shape,
    /// Where the walk through the message stream is.
    scan: Scan,
    /// Items of the current message seen so far.
    items: usize,
    /// The estimate of what the current message will take decoded, so far.
    kept: usize,
    budget: Arc<Semaphore>,
    /// The budget's size.
    total: usize,
    wait: Duration,
    held: Held,
    /// Bytes of the current message still to come.
    left: usize,
    /// A frame held back while its message waits for budget, and whether a
    /// message ended in it.
    waiting: Option<(Acquire, Bytes, bool)>,
}

/// The walk through a stream of gRPC messages and, inside each, its
/// top-level protobuf fields (tag, then a varint, fixed bytes or a length
/// and that many bytes).
#[derive(Debug)]
enum Scan {
    /// The 5-byte gRPC message header, bytes seen so far.
    Header(Vec<u8>),
    /// A field's tag (a varint): value so far and its shift.
    Tag(u64, u32),
    /// A varint value.
    Varint,
    /// The length of field `.0` (a varint).
    Len(u64, u64, u32),
    /// Bytes to pass over.
    Skip(usize),
}

/// What a frame of a request body asks of the budget.
#[derive(Debug, Default, PartialEq)]
struct Charge {
    /// Budget to reserve before the frame is passed on: the worst case of
    /// each message whose header is in it.
    reserve: usize,
    /// A new message starts in the frame (the previous one is decoded).
    new_message: bool,
    /// A message ended in the frame: its reservation can shrink.
    ended: bool,
}

impl BoundedBody {
    /// The message is whole: keep only the estimate of what it takes
    /// decoded, give the rest of its reservation back.
    fn shrink(&mut self) {
        let mut held = self.held.lock().expect("held budget");
        let Some(mut all) = held.pop() else {
            return;
        };
        while let Some(p) = held.pop() {
            all.merge(p);
        }
        let keep = self.kept.min(all.num_permits());
        if let Some(extra) = all.split(all.num_permits() - keep) {
            drop(extra);
        }
        held.push(all);
    }

    fn too_large(&self, what: String) -> tonic::Status {
        ApiError::new(ErrorCode::BatchTooLarge, what).into()
    }

    /// Walk `data`; what it asks of the budget, or a refusal.
    fn scan(&mut self, data: &Bytes) -> Result<Charge, tonic::Status> {
        let mut charge = Charge::default();
        let mut d = data.clone();
        while d.has_remaining() {
            if let Scan::Header(h) = &mut self.scan {
                h.push(d.get_u8());
                if h.len() < HEADER {
                    continue;
                }
                let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
                if len > self.cap {
                    return Err(self.too_large(format!(
                        "request message of {len} bytes is over this method's cap of {} bytes",
                        self.cap
                    )));
                }
                if charge.new_message {
                    // A second message in one frame: the first is whole.
                    self.kept = 0;
                }
                charge.reserve = charge.reserve.saturating_add(self.shape.worst(len));
                charge.new_message = true;
                // The message's own bytes, as the decoder buffers them.
                self.kept = self.kept.saturating_add(len + HEADER);
                self.left = len;
                self.items = 0;
                self.scan = if len == 0 {
                    charge.ended = true;
                    Scan::Header(Vec::with_capacity(HEADER))
                } else {
                    Scan::Tag(0, 0)
                };
                continue;
            }
            // Inside a message: every byte counts against `left`.
            match &mut self.scan {
                Scan::Skip(n) => {
                    let k = (*n).min(d.remaining()).min(self.left);
                    d.advance(k);
                    self.left -= k;
                    *n -= k;
                    if *n == 0 {
                        self.scan = Scan::Tag(0, 0);
                    }
                }
                Scan::Tag(acc, shift) | Scan::Len(_, acc, shift) => {
                    let b = d.get_u8();
                    self.left -= 1;
                    if *shift > 63 {
                        // Malformed: the decoder refuses it; pass the rest.
                        self.scan = Scan::Skip(usize::MAX);
                    } else {
                        *acc |= u64::from(b & 0x7f) << *shift;
                        *shift += 7;
                        if b & 0x80 == 0 {
                            self.field_part_done()?;
                        }
                    }
                }
                Scan::Varint => {
                    let b = d.get_u8();
                    self.left -= 1;
                    if b & 0x80 == 0 {
                        self.scan = Scan::Tag(0, 0);
                    }
                }
                Scan::Header(_) => unreachable!("handled above"),
            }
            if self.left == 0 {
                charge.ended = true;
                self.scan = Scan::Header(Vec::with_capacity(HEADER));
            }
        }
        Ok(charge)
    }

    /// A tag or a length varint is complete: move on, charging a length-
    /// delimited field by the method's shape.
    fn field_part_done(&mut self) -> Result<(), tonic::Status> {
        match self.scan {
            Scan::Tag(tag, _) => {
                let (field, wire_type) = (tag >> 3, tag & 7);
                self.scan = match wire_type {
                    0 => Scan::Varint,
                    1 => Scan::Skip(8),
                    2 => Scan::Len(field, 0, 0),
                    5 => Scan::Skip(4),
                    // Groups, or not protobuf: the decoder refuses it.
                    _ => Scan::Skip(usize::MAX),
                };
            }
            Scan::Len(field, len, _) => {
                let len = usize::try_from(len).unwrap_or(usize::MAX).min(self.left);
                match self.shape.items {
                    Some(it) if it.field == field => {
                        self.items += 1;
                        if self.items > it.max {
                            return Err(self.too_large(format!(
                                "more than {} items in one request: split it",
                                it.max
                            )));
                        }
                        self.kept = self
                            .kept
                            .saturating_add(it.cost)
                            .saturating_add(len.saturating_mul(it.per_byte));
                    }
                    _ => {
                        self.kept = self
                            .kept
                            .saturating_add(len.saturating_mul(self.shape.per_byte))
                    }
                }
                self.scan = if len == 0 {
                    Scan::Tag(0, 0)
                } else {
                    Scan::Skip(len)
                };
            }
            _ => {}
        }
        Ok(())
    }
}

impl Body for BoundedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        if let Some((acquire, _, _)) = &mut this.waiting {
            return match acquire.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(Ok(permit))) => {
                    let (_, data, ended) = this.waiting.take().expect("waiting");
                    this.held.lock().expect("held budget").push(permit);
                    if ended {
                        this.shrink();
                    }
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Poll::Ready(Ok(Err(_))) | Poll::Ready(Err(_)) => {
                    this.waiting = None;
                    Poll::Ready(Some(Err(ApiError::new(
                        ErrorCode::Busy,
                        "the gateway is receiving as many request bytes as it may: retry later",
                    )
                    .into())))
                }
            };
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => f,
            other => return other,
        };
        let data = match frame.into_data() {
            Ok(d) => d,
            Err(f) => return Poll::Ready(Some(Ok(f))),
        };
        let Charge {
            reserve,
            new_message,
            ended,
        } = match this.scan(&data) {
            Ok(c) => c,
            Err(s) => return Poll::Ready(Some(Err(s))),
        };
        if new_message {
            // The previous message (of a stream) is decoded by now.
            this.held.lock().expect("held budget").clear();
        }
        if reserve == 0 {
            if ended {
                this.shrink();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        // Never ask for more than exists: a message whose worst case is
        // past the whole budget waits for all of it.
        let need = reserve.min(this.total) as u32;
        match this.budget.clone().try_acquire_many_owned(need) {
            Ok(permit) => {
                this.held.lock().expect("held budget").push(permit);
                if ended {
                    this.shrink();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Err(_) => {
                let sem = this.budget.clone();
                let acquire: Acquire = Box::pin(tokio::time::timeout(
                    this.wait,
                    sem.acquire_many_owned(need),
                ));
                this.waiting = Some((acquire, data, ended));
                // Poll the wait once so its waker is registered.
                Pin::new(this).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_method() {
        let b = RequestBounds::default();
        assert_eq!(b.cap(SUBMIT), 4 * MIB);
        assert_eq!(b.cap(IMPORT_CARDS), 16 * MIB);
        assert_eq!(b.cap(UPDATE_CARDS), 16 * MIB);
        assert_eq!(b.cap(LIST_CARDS), 64 * KIB);
        assert_eq!(b.shape(UPDATE_CARDS).items.map(|i| i.max), Some(100_000));
        assert_eq!(b.cap("/gsl.v1.Results/Report"), 64 * KIB);
        assert_eq!(b.cap("/grpc.health.v1.Health/Check"), 64 * KIB);
        assert!(b.check().is_ok());
        let small_budget = RequestBounds {
            budget: MIB,
            ..RequestBounds::default()
        };
        assert!(small_budget.check().is_err());
    }

    #[test]
    fn settings_override_defaults() {
        let env = |k: &str| match k {
            "GSL_MAX_SUBMIT_BYTES" => Some("1000".to_string()),
            "GSL_DECODE_BUDGET_BYTES" => Some((32 * MIB).to_string()),
            _ => None,
        };
        let b = RequestBounds::from_lookup(env).unwrap();
        assert_eq!(b.submit, 1000);
        assert_eq!(b.budget, 32 * MIB);
        assert_eq!(b.import_cards, RequestBounds::default().import_cards);
        assert!(
            RequestBounds::from_lookup(|k| (k == "GSL_MAX_SUBMIT_BYTES").then(|| "x".into()))
                .is_err()
        );
        assert!(
            RequestBounds::from_lookup(|k| (k == "GSL_DECODE_BUDGET_BYTES").then(|| "100".into()))
                .is_err()
        );
    }

    /// The size of the budget in these tests (the semaphores hold at least this).
    const TEST_BUDGET_TOTAL: usize = 3000;

    fn body_of(chunks: Vec<Vec<u8>>) -> tonic::body::Body {
        let s = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, tonic::Status>(Frame::data(Bytes::from(c)))),
        );
        tonic::body::Body::new(http_body_util::StreamBody::new(s))
    }

    fn message(len: usize) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend((len as u32).to_be_bytes());
        v.extend(std::iter::repeat_n(b'x', len));
        v
    }

    fn bounded(
        inner: tonic::body::Body,
        cap: usize,
        budget: &Arc<Semaphore>,
    ) -> (BoundedBody, Held) {
        let held: Held = Arc::default();
        (
            BoundedBody {
                inner,
                cap,
                shape: Shape {
                    items: None,
                    per_byte: 1,
                },
                scan: Scan::Header(Vec::new()),
                items: 0,
                kept: 0,
                budget: budget.clone(),
                total: TEST_BUDGET_TOTAL,
                wait: Duration::from_millis(200),
                held: held.clone(),
                left: 0,
                waiting: None,
            },
            held,
        )
    }

    async fn drain(b: BoundedBody) -> Result<usize, tonic::Status> {
        use http_body_util::BodyExt;
        let mut b = std::pin::pin!(b);
        let mut n = 0;
        while let Some(f) = b.frame().await {
            n += f?.into_data().map(|d| d.len()).unwrap_or(0);
        }
        Ok(n)
    }

    /// A message over the cap is refused from its header: the bytes behind
    /// it are never asked for.
    #[tokio::test]
    async fn over_the_cap_is_refused_from_the_header() {
        let sem = Arc::new(Semaphore::new(MIB));
        // The header alone, split across two frames.
        let mut m = message(2000);
        let rest = m.split_off(3);
        let (b, _) = bounded(body_of(vec![m, rest]), 1000, &sem);
        let e = drain(b).await.unwrap_err();
        assert_eq!(
            crate::error::code_of(&e),
            Some(ErrorCode::BatchTooLarge),
            "{e:?}"
        );
        assert_eq!(sem.available_permits(), MIB, "no budget taken");
    }

    /// A message takes its size from the budget until released; a message
    /// that cannot get budget in time is refused as busy.
    #[tokio::test]
    async fn budget_is_held_and_a_starved_message_is_busy() {
        let sem = Arc::new(Semaphore::new(3000));
        let (b, held) = bounded(body_of(vec![message(2000)]), 4000, &sem);
        assert_eq!(drain(b).await.unwrap(), 2005);
        assert_eq!(sem.available_permits(), 3000 - 2005);
        // Another 2,000-byte message cannot get budget while the first holds it.
        let (b2, _) = bounded(body_of(vec![message(2000)]), 4000, &sem);
        let e = drain(b2).await.unwrap_err();
        assert_eq!(crate::error::code_of(&e), Some(ErrorCode::Busy), "{e:?}");
        // Released: now it passes.
        held.lock().unwrap().clear();
        let (b3, _) = bounded(body_of(vec![message(2000)]), 4000, &sem);
        assert_eq!(drain(b3).await.unwrap(), 2005);
    }

    /// A waiting message gets budget as soon as it is released.
    #[tokio::test]
    async fn a_waiting_message_proceeds_when_budget_frees() {
        let sem = Arc::new(Semaphore::new(3000));
        let (b, held) = bounded(body_of(vec![message(2000)]), 4000, &sem);
        drain(b).await.unwrap();
        let (mut b2, _) = bounded(body_of(vec![message(1500)]), 4000, &sem);
        b2.wait = Duration::from_secs(5);
        let t = tokio::spawn(drain(b2));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!t.is_finished(), "waits for budget");
        held.lock().unwrap().clear();
        assert_eq!(t.await.unwrap().unwrap(), 1505);
    }

    /// Several messages in one stream are each checked against the cap.
    #[tokio::test]
    async fn every_message_of_a_stream_is_checked() {
        let sem = Arc::new(Semaphore::new(MIB));
        let mut both = message(10);
        both.extend(message(5000));
        let (b, _) = bounded(body_of(vec![both]), 1000, &sem);
        assert!(drain(b).await.is_err());
        let mut ok = message(10);
        ok.extend(message(900));
        let (b, _) = bounded(body_of(vec![ok]), 1000, &sem);
        assert_eq!(drain(b).await.unwrap(), 920);
    }

    fn framed(m: &impl prost::Message) -> Vec<u8> {
        let body = m.encode_to_vec();
        let mut v = vec![0u8];
        v.extend((body.len() as u32).to_be_bytes());
        v.extend(body);
        v
    }

    fn shaped(path: &str, data: Vec<u8>, budget: &Arc<Semaphore>) -> (BoundedBody, Held) {
        let b = RequestBounds::default();
        let (mut body, held) = bounded(body_of(vec![data]), b.cap(path), budget);
        body.shape = b.shape(path);
        body.total = MIB * 1024;
        (body, held)
    }

    /// Items are counted as they stream: one card over the largest batch
    /// limit is refused before the message is decoded.
    #[tokio::test]
    async fn items_over_the_limit_are_refused_while_streaming() {
        use gsl_proto::v1;
        let sem = Arc::new(Semaphore::new(1024 * MIB));
        let req = |n: usize| v1::SubmitRequest {
            idempotency_key: "k".into(),
            cards: (0..n)
                .map(|i| v1::CardRef {
                    id: format!("{i}"),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let (b, held) = shaped(SUBMIT, framed(&req(100_000)), &sem);
        assert!(drain(b).await.is_ok());
        held.lock().unwrap().clear();
        let (b, _) = shaped(SUBMIT, framed(&req(100_001)), &sem);
        let e = drain(b).await.unwrap_err();
        assert_eq!(
            crate::error::code_of(&e),
            Some(ErrorCode::BatchTooLarge),
            "{e:?}"
        );
        assert!(e.message().contains("100000 items"), "{e:?}");
    }

    /// Empty cards (2 wire bytes each) are charged what they decode to, not
    /// their wire size.
    #[tokio::test]
    async fn items_are_charged_their_decoded_size() {
        use gsl_proto::v1;
        let sem = Arc::new(Semaphore::new(1024 * MIB));
        let req = v1::ImportCardsRequest {
            cards: vec![v1::Card::default(); 50_000],
        };
        let wire = framed(&req);
        assert_eq!(wire.len(), 5 + 2 * 50_000);
        let (b, _held) = shaped(IMPORT_CARDS, wire, &sem);
        drain(b).await.unwrap();
        let charged = 1024 * MIB - sem.available_permits();
        assert!(
            charged >= 50_000 * std::mem::size_of::<v1::Card>(),
            "charged {charged}"
        );
    }
}
