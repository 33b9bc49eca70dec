//! The `PushAddresses` gRPC service: a tenant's push addresses, answered by
//! gsl-push. The gateway authenticates the tenant and relays the call over
//! NATS (`gsl.push.api`, request-reply, with the tenant it authenticated);
//! it has no egress of its own and never reads the address bucket, so
//! registration checks and address tests happen at gsl-push, the one
//! workload allowed to call out.

use crate::auth;
use crate::core::Core;
use crate::error::ApiError;
use gsl_domain::ErrorCode;
use gsl_proto::v1;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use v1::push_api_request::Call;
use v1::push_api_response::Result as R;

/// How long a relayed call may take (a test waits for the receiver: up to
/// its 15 s timeout).
const RELAY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct PushApi {
    pub core: Arc<Core>,
}

impl PushApi {
    async fn relay<T>(&self, r: Request<T>, call: impl FnOnce(T) -> Call) -> Result<R, Status> {
        let tenant = auth::tenant(&*self.core.auth, r.metadata())?;
        let req = v1::PushApiRequest {
            tenant,
            call: Some(call(r.into_inner())),
        };
        let body: bytes::Bytes = req.encode_to_vec().into();
        // No responder for a moment (gsl-push restarting): a few more tries.
        let asked = async {
            let mut tries = 0;
            loop {
                let r = self
                    .core
                    .client
                    .request(gsl_bus::names::PUSH_API_SUBJECT, body.clone())
                    .await;
                match r {
                    Err(e)
                        if e.kind() == async_nats::RequestErrorKind::NoResponders && tries < 5 =>
                    {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    other => return other,
                }
            }
        };
        let msg = match tokio::time::timeout(RELAY_TIMEOUT, asked).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                return Err(ApiError::new(
                    ErrorCode::Busy,
                    "the push service (gsl-push) is not running; try again later",
                )
                .into());
            }
            Ok(Err(e)) => {
                return Err(
                    ApiError::new(ErrorCode::Busy, format!("the push service: {e}")).into(),
                );
            }
            Err(_) => {
                return Err(ApiError::new(
                    ErrorCode::Busy,
                    "the push service did not answer in time",
                )
                .into());
            }
        };
        let resp = v1::PushApiResponse::decode(msg.payload.as_ref()).map_err(|_| {
            Status::from(ApiError::new(
                ErrorCode::Busy,
                "unreadable answer from the push service",
            ))
        })?;
        if let Some(p) = resp.problem {
            let code = ErrorCode::from_code(&p.code).unwrap_or(ErrorCode::Busy);
            return Err(ApiError::new(code, p.message).into());
        }
        resp.result.ok_or_else(|| {
            ApiError::new(ErrorCode::Busy, "empty answer from the push service").into()
        })
    }
}

fn unexpected() -> Status {
    ApiError::new(ErrorCode::Busy, "unexpected answer from the push service").into()
}

#[tonic::async_trait]
impl v1::push_addresses_server::PushAddresses for PushApi {
    async fn create(
        &self,
        r: Request<v1::CreatePushAddressRequest>,
    ) -> Result<Response<v1::PushAddressWithSecret>, Status> {
        match self.relay(r, Call::Create).await? {
            R::WithSecret(a) => Ok(Response::new(a)),
            _ => Err(unexpected()),
        }
    }

    async fn list(
        &self,
        r: Request<v1::ListPushAddressesRequest>,
    ) -> Result<Response<v1::ListPushAddressesResponse>, Status> {
        match self.relay(r, Call::List).await? {
            R::Addresses(a) => Ok(Response::new(a)),
            _ => Err(unexpected()),
        }
    }

    async fn update(
        &self,
        r: Request<v1::UpdatePushAddressRequest>,
    ) -> Result<Response<v1::PushAddress>, Status> {
        match self.relay(r, Call::Update).await? {
            R::Address(a) => Ok(Response::new(a)),
            _ => Err(unexpected()),
        }
    }

    async fn rotate_secret(
        &self,
        r: Request<v1::PushAddressRef>,
    ) -> Result<Response<v1::PushAddressWithSecret>, Status> {
        match self.relay(r, Call::Rotate).await? {
            R::WithSecret(a) => Ok(Response::new(a)),
            _ => Err(unexpected()),
        }
    }

    async fn delete(
        &self,
        r: Request<v1::PushAddressRef>,
    ) -> Result<Response<v1::PushAddress>, Status> {
        match self.relay(r, Call::Delete).await? {
            R::Address(a) => Ok(Response::new(a)),
            _ => Err(unexpected()),
        }
    }

    async fn test(
        &self,
        r: Request<v1::PushAddressRef>,
    ) -> Result<Response<v1::PushTestResult>, Status> {
        match self.relay(r, Call::Test).await? {
            R::Test(t) => Ok(Response::new(t)),
            _ => Err(unexpected()),
        }
    }

    async fn list_failed(
        &self,
        r: Request<v1::ListFailedPushesRequest>,
    ) -> Result<Response<v1::ListFailedPushesResponse>, Status> {
        match self.relay(r, Call::ListFailed).await? {
            R::Failed(f) => Ok(Response::new(f)),
            _ => Err(unexpected()),
        }
    }

    async fn resend(
        &self,
        r: Request<v1::ResendPushesRequest>,
    ) -> Result<Response<v1::ResendPushesResponse>, Status> {
        match self.relay(r, Call::Resend).await? {
            R::Resent(n) => Ok(Response::new(n)),
            _ => Err(unexpected()),
        }
    }
}
