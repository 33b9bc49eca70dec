//! The `BackOffice` gRPC service: operators work the queue of requests the
//! adapters filed for operations with no public carrier API (and for lost
//! answers nothing can read back).
//!
//! Every move is a compare-and-set on the request (`gsl_bus::backoffice`),
//! checked against the allowed transitions below. The adapter that filed a
//! request follows it and reports the item's outcome when it is completed
//! or rejected, with the SLA timer of the domain table running meanwhile; a
//! directional request also moves the batch's entries through the domain's
//! entry states here: configuring when an operator claims it, in review
//! when submitted to the carrier, not yet effective when accepted, effective
//! when completed, or review rejected.

use crate::auth;
use crate::core::Core;
use crate::error::ApiError;
use crate::store::CHUNK;
use async_nats::jetstream::kv::Store;
use gsl_bus::backoffice::{self as bo, MoveError};
use gsl_domain::ErrorCode;
use gsl_proto::v1::operation::Kind as O;
use gsl_proto::{convert, v1};
use std::sync::Arc;
use tonic::{Request, Response, Status};

use v1::BackOfficeState as S;

#[derive(Clone)]
pub struct BackOfficeApi {
    pub core: Arc<Core>,
    pub requests: Store,
}

/// What an operator acts on: the request's own state (who claimed it, the
/// carrier's ticket) with tenant, batch, operation and card taken from the
/// work order that caused it.
fn refused_forgery(id: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::PermissionDenied,
        format!(
            "back-office request {id} does not match its work order ({why}); it is not acted on"
        ),
    )
}

/// The fields the authority check fixes: a request whose fields change
/// between the check and the move is refused.
fn authority_fields(
    r: &v1::BackOfficeRequest,
) -> (
    String,
    i32,
    String,
    u64,
    String,
    String,
    Option<v1::Operation>,
    u32,
) {
    (
        r.id.clone(),
        r.carrier,
        r.tenant.clone(),
        r.work_order_id,
        r.card.clone(),
        r.batch_no.clone(),
        r.operation.clone(),
        r.item_index,
    )
}

fn moved(
    r: Result<v1::BackOfficeRequest, MoveError>,
) -> Result<Response<v1::BackOfficeRequest>, Status> {
    match r {
        Ok(req) => Ok(Response::new(req)),
        Err(MoveError::NotFound(id)) => Err(ApiError::new(
            ErrorCode::BackOfficeNotFound,
            format!("no back-office request {id}"),
        )
        .into()),
        Err(e @ MoveError::Refused { .. }) => {
            Err(ApiError::new(ErrorCode::BackOfficeState, e.to_string()).into())
        }
    }
}

/// Allowed moves: open -> claimed -> submitted -> accepted -> completed, any
/// open one to rejected, and completion straight from claimed or submitted.
fn allowed(from: i32, to: S) -> Result<(), String> {
    let from = S::try_from(from).unwrap_or(S::Unspecified);
    let ok = match to {
        S::Claimed => matches!(from, S::Open | S::Claimed),
        S::Submitted => matches!(from, S::Open | S::Claimed),
        S::Accepted => matches!(from, S::Claimed | S::Submitted),
        S::Completed => matches!(from, S::Claimed | S::Submitted | S::Accepted),
        S::Rejected => matches!(from, S::Open | S::Claimed | S::Submitted | S::Accepted),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("cannot move to {}", to.as_str_name()))
    }
}

/// The batch's entries as a directional request moves.
fn entry_state_for(to: S) -> Option<v1::EntryState> {
    match to {
        S::Claimed => Some(v1::EntryState::Configuring),
        S::Submitted => Some(v1::EntryState::InReview),
        S::Accepted => Some(v1::EntryState::NotYetEffective),
        S::Completed => Some(v1::EntryState::Effective),
        S::Rejected => Some(v1::EntryState::ReviewRejected),
        _ => None,
    }
}

impl BackOfficeApi {
    fn check<T>(&self, r: &Request<T>) -> Result<(), Status> {
        Ok(auth::operator(&*self.core.auth, r.metadata())?)
    }

    pub async fn authority(
        &self,
        req: &v1::BackOfficeRequest,
    ) -> Result<v1::BackOfficeRequest, ApiError> {
        authority(&self.core, req).await
    }

    /// Completing a directional add checks the carrier's limits again
    /// against the batch as it is now (entries may have come from elsewhere
    /// since the order was accepted): over them, the operator must reject.
    async fn recheck_limits(&self, req: &v1::BackOfficeRequest) -> Result<(), ApiError> {
        let Some(O::DirectionalAdd(a)) = req.operation.as_ref().and_then(|o| o.kind.as_ref())
        else {
            return Ok(());
        };
        let Some(mut batch) = self.core.registry.store.batch(&req.batch_no).await? else {
            return Ok(());
        };
        let own = format!("bo:{}.", req.id);
        batch.entries.retain(|x| !x.id.starts_with(&own));
        crate::validate::check_directional(&batch, &O::DirectionalAdd(a.clone()))
        .map(|_| ())
        .map_err(|e| {
            ApiError::new(
                e.code(),
                format!("completing it would put the batch over the carrier's limits ({e}): reject it instead"),
            )
        })
    }
}

/// Entries of open, unclaimed directional-add requests for `batch` (as
/// their orders say), to count against the limits of a new order. Claimed
/// requests' entries are in the batch already.
pub async fn pending_entries(
    core: &Core,
    batch: &v1::PurchaseBatch,
) -> Result<Vec<v1::DirectionalEntry>, ApiError> {
    let Ok(carrier) = convert::carrier_from_wire(batch.carrier) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for r in bo::all(&core.store.b.backoffice, &format!("{}.", carrier.as_str())).await? {
        if r.state != S::Open as i32 {
            continue;
        }
        let Ok(t) = authority(core, &r).await else {
            continue;
        };
        if t.batch_no != batch.batch_no || t.tenant != batch.tenant {
            continue;
        }
        if let Some(O::DirectionalAdd(a)) = t.operation.as_ref().and_then(|o| o.kind.as_ref()) {
            for (i, e) in a.entries.iter().enumerate() {
                out.push(v1::DirectionalEntry {
                    id: format!("pending:{}.{i}", t.id),
                    entry: e.clone(),
                    state: v1::EntryState::Configuring as i32,
                });
            }
        }
    }
    Ok(out)
}

/// Check a request against the work-order item that caused it (adapters
/// write requests, and an adapter's credential could write any key of its
/// carrier): the id is the item's, the order exists and was sent, the item
/// at `item_index` is this card of this carrier. Returns the request with
/// tenant, batch and operation from the order.
pub async fn authority(
    core: &Core,
    req: &v1::BackOfficeRequest,
) -> Result<v1::BackOfficeRequest, ApiError> {
    let carrier = convert::carrier_from_wire(req.carrier)
        .map_err(|_| refused_forgery(&req.id, "no carrier"))?;
    if req.id != bo::request_id(carrier.as_str(), req.work_order_id, &req.card) {
        return Err(refused_forgery(&req.id, "its id is not its item's"));
    }
    let rec = core
        .store
        .order(req.work_order_id)
        .await?
        .ok_or_else(|| refused_forgery(&req.id, "no such work order"))?;
    let order = rec.order.unwrap_or_default();
    if !crate::core::items_sent(order.status) {
        return Err(refused_forgery(
            &req.id,
            "the order's items were never sent",
        ));
    }
    let index = req.item_index as usize;
    if index as u64 >= order.total {
        return Err(refused_forgery(&req.id, "no such item"));
    }
    let chunk = core.store.chunk(req.work_order_id, index / CHUNK).await?;
    let item = chunk
        .items
        .get(index % CHUNK)
        .filter(|it| it.card == req.card && it.carrier == req.carrier && it.refused.is_none())
        .ok_or_else(|| refused_forgery(&req.id, "the item is not this card of this carrier"))?;
    let mut trusted = req.clone();
    trusted.tenant = order.tenant;
    trusted.batch_no = order.batch_no;
    trusted.operation = item.operation.clone().or(order.operation);
    Ok(trusted)
}

impl BackOfficeApi {
    async fn step(
        &self,
        id: &str,
        to: S,
        mut f: impl FnMut(&mut v1::BackOfficeRequest),
    ) -> Result<Response<v1::BackOfficeRequest>, Status> {
        let now = convert::timestamp(chrono::Utc::now());
        let Some(current) = bo::get(&self.requests, id).await.map_err(ApiError::from)? else {
            return moved(Err(MoveError::NotFound(id.to_owned())));
        };
        let trusted = self.authority(&current).await?;
        if to == S::Completed {
            self.recheck_limits(&trusted).await?;
        }
        let fixed = authority_fields(&current);
        let r = bo::update(&self.requests, id, |req| {
            if authority_fields(req) != fixed {
                return Err("the request changed while it was checked".to_string());
            }
            allowed(req.state, to)?;
            req.state = to as i32;
            req.updated_at = Some(now);
            f(req);
            Ok(())
        })
        .await
        .map_err(ApiError::from)?;
        let r = match r {
            Ok(moved_req) => {
                let mut shown = trusted;
                shown.state = moved_req.state;
                shown.updated_at = moved_req.updated_at;
                shown.claimed_by = moved_req.claimed_by;
                shown.carrier_ticket = moved_req.carrier_ticket;
                shown.effective_at = moved_req.effective_at;
                shown.reason = moved_req.reason;
                self.directional(&shown, to).await?;
                Ok(shown)
            }
            Err(e) => Err(e),
        };
        moved(r)
    }

    /// Move a directional request's entries in the registry's batch.
    async fn directional(&self, req: &v1::BackOfficeRequest, to: S) -> Result<(), ApiError> {
        let Some(state) = entry_state_for(to) else {
            return Ok(());
        };
        let Some(op) = req.operation.as_ref().and_then(|o| o.kind.clone()) else {
            return Ok(());
        };
        if !matches!(
            op,
            O::DirectionalAdd(_) | O::DirectionalModify(_) | O::DirectionalDelete(_)
        ) {
            return Ok(());
        }
        let tag = format!("bo:{}", req.id);
        self.core
            .registry
            .store
            .update_batch(&req.batch_no, |b| {
                let before = b.clone();
                match &op {
                    O::DirectionalAdd(a) => {
                        for (i, e) in a.entries.iter().enumerate() {
                            let id = format!("{tag}.{i}");
                            match b.entries.iter_mut().find(|x| x.id == id) {
                                Some(x) => x.state = state as i32,
                                None => b.entries.push(v1::DirectionalEntry {
                                    id,
                                    entry: e.clone(),
                                    state: state as i32,
                                }),
                            }
                        }
                    }
                    O::DirectionalModify(m) => {
                        if let Some(x) = b.entries.iter_mut().find(|x| x.id == m.entry_id) {
                            x.state = if to == S::Rejected {
                                v1::EntryState::Effective as i32
                            } else {
                                state as i32
                            };
                            if to == S::Completed {
                                x.entry = m.entry.clone();
                            }
                        }
                    }
                    O::DirectionalDelete(d) => {
                        if to == S::Completed {
                            b.entries.retain(|x| !d.entry_ids.contains(&x.id));
                        } else {
                            for x in b.entries.iter_mut().filter(|x| d.entry_ids.contains(&x.id)) {
                                x.state = if to == S::Rejected {
                                    v1::EntryState::Effective as i32
                                } else {
                                    v1::EntryState::Deleting as i32
                                };
                            }
                        }
                    }
                    _ => {}
                }
                *b != before
            })
            .await?;
        Ok(())
    }
}

#[tonic::async_trait]
impl v1::back_office_server::BackOffice for BackOfficeApi {
    async fn list(
        &self,
        r: Request<v1::ListBackOfficeRequest>,
    ) -> Result<Response<v1::ListBackOfficeResponse>, Status> {
        self.check(&r)?;
        let q = r.into_inner();
        let prefix = match convert::carrier_from_wire(q.carrier) {
            Ok(c) if q.carrier != 0 => format!("{}.", c.as_str()),
            _ => String::new(),
        };
        let now = chrono::Utc::now().timestamp();
        let limit = if q.limit == 0 { 500 } else { q.limit.min(5000) } as usize;
        let mut out: Vec<v1::BackOfficeRequest> = bo::all(&self.requests, &prefix)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .filter(|x| q.include_closed || !bo::is_closed(x.state))
            // Ages are measured on the adapters' clock (scaled in demos and
            // tests), so only an explicit age filter compares with now.
            .filter(|x| {
                let created = x.created_at.as_ref().map(|t| t.seconds).unwrap_or(now);
                q.older_than_secs == 0 || now - created >= q.older_than_secs as i64
            })
            .collect();
        out.sort_by_key(|x| x.created_at.as_ref().map(|t| (t.seconds, t.nanos)));
        // What an operator sees comes from the work orders: a request that
        // does not match its order is left out (and logged), never shown
        // with the adapter's copy of tenant, batch or operation.
        let mut shown = Vec::with_capacity(out.len().min(limit));
        for x in out {
            if shown.len() == limit {
                break;
            }
            match self.authority(&x).await {
                Ok(t) if q.tenant.is_empty() || t.tenant == q.tenant => shown.push(t),
                Ok(_) => {}
                Err(e) if e.code == ErrorCode::PermissionDenied => {
                    tracing::warn!(request = %x.id, error = %e, "back-office request left out of the list");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Response::new(v1::ListBackOfficeResponse {
            requests: shown,
        }))
    }

    async fn get(
        &self,
        r: Request<v1::BackOfficeRef>,
    ) -> Result<Response<v1::BackOfficeRequest>, Status> {
        self.check(&r)?;
        let id = r.into_inner().id;
        match bo::get(&self.requests, &id).await.map_err(ApiError::from)? {
            Some(req) => Ok(Response::new(self.authority(&req).await?)),
            None => moved(Err(MoveError::NotFound(id))),
        }
    }

    async fn claim(
        &self,
        r: Request<v1::ClaimBackOfficeRequest>,
    ) -> Result<Response<v1::BackOfficeRequest>, Status> {
        self.check(&r)?;
        let q = r.into_inner();
        if q.operator.trim().is_empty() {
            return Err(ApiError::bad("operator (who claims it) is required").into());
        }
        self.step(&q.id, S::Claimed, |req| req.claimed_by = q.operator.clone())
            .await
    }

    async fn mark_submitted(
        &self,
        r: Request<v1::MarkSubmittedRequest>,
    ) -> Result<Response<v1::BackOfficeRequest>, Status> {
        self.check(&r)?;
        let q = r.into_inner();
        self.step(&q.id, S::Submitted, |req| {
            req.carrier_ticket = q.carrier_ticket.clone()
        })
        .await
    }

    async fn mark_accepted(
        &self,
        r: Request<v1::MarkAcceptedRequest>,
    ) -> Result<Response<v1::BackOfficeRequest>, Status> {
        self.check(&r)?;
        let q = r.into_inner();
        self.step(&q.id, S::Accepted, |req| req.effective_at = q.effective_at)
            .await
    }

    async fn complete(
        &self,
        r: Request<v1::BackOfficeRef>,
    ) -> Result<Response<v1::BackOfficeRequest>, Status> {
        self.check(&r)?;
        let q = r.into_inner();
        self.step(&q.id, S::Completed, |_| {}).await
    }

    async fn reject(
        &self,
        r: Request<v1::RejectBackOfficeRequest>,
    ) -> Result<Response<v1::BackOfficeRequest>, Status> {
        self.check(&r)?;
        let q = r.into_inner();
        if q.reason.trim().is_empty() {
            return Err(ApiError::bad("a reason is required").into());
        }
        self.step(&q.id, S::Rejected, |req| req.reason = q.reason.clone())
            .await
    }
}
