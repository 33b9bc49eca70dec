//! The back-office queue: one durable request per item whose operation has
//! no public carrier API (or whose lost outcome nothing can read back), in
//! the `gsl_backoffice` bucket, keyed `<carrier>.<work order>.<card key>`.
//!
//! Adapters file requests (an atomic create, so a redelivered item finds its
//! own request instead of filing a second) and follow them by reading the
//! key; operators move them through the gateway's `BackOffice` service, every
//! move a compare-and-set on the revision, so two operators never both win.

use crate::BusError;
use crate::codec::{decode, encode};
use crate::kv::{self, Cas};
use async_nats::jetstream::kv::Store;

use gsl_proto::v1::{BackOfficeRequest, BackOfficeState};

/// The request id (and key) of an item.
pub fn request_id(carrier: &str, work_order_id: u64, card: &str) -> String {
    format!("{carrier}.{work_order_id}.{card}")
}

/// Completed or rejected: nothing more happens to it.
pub fn is_closed(state: i32) -> bool {
    state == BackOfficeState::Completed as i32 || state == BackOfficeState::Rejected as i32
}

/// File a request; an existing request with the same id is returned as it is.
pub async fn file(store: &Store, req: BackOfficeRequest) -> Result<BackOfficeRequest, BusError> {
    match kv::create(store, &req.id, encode(&req)).await? {
        Some(_) => Ok(req),
        None => Ok(get(store, &req.id).await?.unwrap_or(req)),
    }
}

pub async fn get(store: &Store, id: &str) -> Result<Option<BackOfficeRequest>, BusError> {
    let e = kv::read(store, id).await?;
    match kv::live(&e) {
        Some(b) => Ok(Some(decode::<BackOfficeRequest>("BackOfficeRequest", b)?)),
        None => Ok(None),
    }
}

/// Why a move was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    #[error("no back-office request {0}")]
    NotFound(String),
    #[error("back-office request {id} is {state}: {why}")]
    Refused {
        id: String,
        state: String,
        why: String,
    },
}

/// Change a request by compare-and-set. `f` returns `Err(why)` to refuse
/// the move for the request as it is now.
pub async fn update(
    store: &Store,
    id: &str,
    mut f: impl FnMut(&mut BackOfficeRequest) -> Result<(), String>,
) -> Result<Result<BackOfficeRequest, MoveError>, BusError> {
    kv::cas(store, id, 20, |cur| {
        let Some(b) = cur else {
            return Cas::Keep(Err(MoveError::NotFound(id.to_owned())));
        };
        let Ok(mut req) = decode::<BackOfficeRequest>("BackOfficeRequest", b) else {
            return Cas::Keep(Err(MoveError::NotFound(id.to_owned())));
        };
        match f(&mut req) {
            Ok(()) => Cas::Write(encode(&req), Ok(req)),
            Err(why) => Cas::Keep(Err(MoveError::Refused {
                id: id.to_owned(),
                state: state_name(req.state).to_owned(),
                why,
            })),
        }
    })
    .await
}

pub fn state_name(state: i32) -> &'static str {
    BackOfficeState::try_from(state)
        .map(|s| s.as_str_name())
        .unwrap_or("BACK_OFFICE_STATE_UNSPECIFIED")
}

/// Every request (optionally under a key prefix such as `cmcc.`).
pub async fn all(store: &Store, prefix: &str) -> Result<Vec<BackOfficeRequest>, BusError> {
    let keys = crate::kv::keys(store).await?;
    let mut out = Vec::new();
    for k in keys.into_iter().filter(|k| k.starts_with(prefix)) {
        if let Some(r) = get(store, &k).await? {
            out.push(r);
        }
    }
    Ok(out)
}
