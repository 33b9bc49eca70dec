//! The gRPC services: thin wrappers that authenticate, then call the
//! operation modules.

use crate::auth::{self, Principal};
use crate::core::Core;
use crate::error::ApiError;
use crate::lifecycle::{self, Review};
use crate::query;
use crate::submit;
use crate::{results, watch};
use gsl_domain::ErrorCode;
use gsl_domain::workorder::OrderSource;
use gsl_proto::v1;
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct Api {
    pub core: Arc<Core>,
}

impl Api {
    fn tenant<T>(&self, r: &Request<T>) -> Result<String, Status> {
        Ok(auth::tenant(&*self.core.auth, r.metadata())?)
    }

    /// How a tenant's own import assigns cards and batches.
    fn tenant_assigner(&self) -> crate::registry::Assigner {
        if self.core.cfg.tenant_self_registration {
            crate::registry::Assigner::TenantSelfRegistration
        } else {
            crate::registry::Assigner::TenantOwnCardsOnly
        }
    }

    /// An operator's import grouped by the tenant each record names; every
    /// tenant named must be one of this gateway's.
    fn by_tenant<T>(
        &self,
        records: Vec<T>,
        tenant: impl Fn(&T) -> &str,
    ) -> Result<Vec<(String, Vec<T>)>, Status> {
        let mut names: Vec<&str> = records.iter().map(&tenant).collect();
        names.sort_unstable();
        names.dedup();
        if let Some(t) = names
            .iter()
            .find(|t| !self.core.tenants.iter().any(|x| x == *t))
        {
            return Err(ApiError::bad(format!(
                "tenant {t:?} is not a tenant of this gateway (name it on each record)"
            ))
            .into());
        }
        // One tenant (the usual import): the records as they came, no copy.
        if names.len() <= 1 {
            let one = names.first().map(|t| t.to_string());
            return Ok(one.map(|t| vec![(t, records)]).unwrap_or_default());
        }
        let mut by: std::collections::BTreeMap<String, Vec<T>> = Default::default();
        for r in records {
            by.entry(tenant(&r).to_owned()).or_default().push(r);
        }
        Ok(by.into_iter().collect())
    }

    fn tenant_of(&self, p: Principal) -> Result<String, Status> {
        match p {
            Principal::Tenant(t) => Ok(t),
            _ => Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "a tenant's credential is required",
            )
            .into()),
        }
    }
}

#[tonic::async_trait]
impl v1::work_orders_server::WorkOrders for Api {
    async fn submit(
        &self,
        r: Request<v1::SubmitRequest>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        let t = self.tenant(&r)?;
        let resp = submit::submit(&self.core, &t, r.into_inner(), OrderSource::Api).await?;
        if let Some(o) = &resp.work_order
            && let Err(e) = self.core.index.note(o).await
        {
            // The follower records it shortly anyway.
            tracing::warn!(error = %e, work_order_id = o.id, "order not noted in the index");
        }
        Ok(Response::new(resp))
    }

    async fn get(&self, r: Request<v1::GetRequest>) -> Result<Response<v1::WorkOrder>, Status> {
        let t = self.tenant(&r)?;
        Ok(Response::new(
            query::get(&self.core, &t, r.into_inner().id).await?,
        ))
    }

    async fn list(
        &self,
        r: Request<v1::ListRequest>,
    ) -> Result<Response<v1::ListResponse>, Status> {
        let t = self.tenant(&r)?;
        Ok(Response::new(
            query::list(&self.core, &t, r.into_inner()).await?,
        ))
    }

    async fn list_items(
        &self,
        r: Request<v1::ListItemsRequest>,
    ) -> Result<Response<v1::ListItemsResponse>, Status> {
        let t = self.tenant(&r)?;
        Ok(Response::new(
            query::list_items(&self.core, &t, r.into_inner()).await?,
        ))
    }

    async fn card_history(
        &self,
        r: Request<v1::CardHistoryRequest>,
    ) -> Result<Response<v1::CardHistoryResponse>, Status> {
        let t = self.tenant(&r)?;
        Ok(Response::new(
            query::card_history(&self.core, &t, r.into_inner()).await?,
        ))
    }

    type WatchStream = watch::WatchStream;

    async fn watch(
        &self,
        r: Request<v1::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let t = self.tenant(&r)?;
        Ok(Response::new(
            watch::watch(&self.core, &t, r.into_inner()).await?,
        ))
    }

    async fn cancel(&self, r: Request<v1::OrderRef>) -> Result<Response<v1::WorkOrder>, Status> {
        let t = self.tenant(&r)?;
        Ok(Response::new(
            lifecycle::review(&self.core, &t, r.into_inner().id, Review::Cancel, "").await?,
        ))
    }

    async fn approve(&self, r: Request<v1::OrderRef>) -> Result<Response<v1::WorkOrder>, Status> {
        let t = self.tenant(&r)?;
        Ok(Response::new(
            lifecycle::review(&self.core, &t, r.into_inner().id, Review::Approve, "").await?,
        ))
    }

    async fn reject(
        &self,
        r: Request<v1::RejectRequest>,
    ) -> Result<Response<v1::WorkOrder>, Status> {
        let t = self.tenant(&r)?;
        let req = r.into_inner();
        Ok(Response::new(
            lifecycle::review(&self.core, &t, req.id, Review::Reject, &req.reason).await?,
        ))
    }
}

/// An import's answer: counts, and the first refusals in request order.
fn import_answer(imported: u64, refused: crate::registry::Refusals) -> v1::ImportCardsResponse {
    let mut listed = refused.listed;
    listed.sort_by_key(|r| r.index);
    v1::ImportCardsResponse {
        imported,
        refused: listed,
        refused_total: refused.total,
    }
}

#[tonic::async_trait]
impl v1::registry_server::Registry for Api {
    async fn import_cards(
        &self,
        r: Request<v1::ImportCardsRequest>,
    ) -> Result<Response<v1::ImportCardsResponse>, Status> {
        use crate::registry::Assigner;
        let principal = auth::principal(&*self.core.auth, r.metadata())?;
        let cards = r.into_inner().cards;
        let t = match principal {
            // The operator assigns cards: each names its tenant.
            Principal::Operator => {
                let (mut imported, mut refused) = (0, crate::registry::Refusals::default());
                for (tenant, cards) in self.by_tenant(cards, |c| c.tenant.as_str())? {
                    let (n, r) = self
                        .core
                        .registry
                        .import(&tenant, cards, Assigner::Operator)
                        .await?;
                    imported += n;
                    refused.extend(r);
                }
                return Ok(Response::new(import_answer(imported, refused)));
            }
            _ => self.tenant_of(principal)?,
        };
        let who = self.tenant_assigner();
        let (imported, refused) = self.core.registry.import(&t, cards, who).await?;
        Ok(Response::new(import_answer(imported, refused)))
    }

    async fn get_card(&self, r: Request<v1::GetCardRequest>) -> Result<Response<v1::Card>, Status> {
        let t = self.tenant(&r)?;
        let mut card = self.core.registry.card(&t, &r.into_inner().id).await?;
        if let Some((left, at)) =
            crate::cardlist::rebinds_left(&self.core.store.b.quota, &card).await
        {
            card.imei_bind_remain_times = Some(left);
            card.sources.push(v1::FieldSource {
                field: "rebinds".into(),
                source: v1::CardSource::Ledger as i32,
                at: Some(gsl_proto::convert::timestamp(at)),
            });
        }
        Ok(Response::new(card))
    }

    async fn refresh_cards(
        &self,
        r: Request<v1::RefreshCardsRequest>,
    ) -> Result<Response<v1::RefreshCardsResponse>, Status> {
        let t = self.tenant(&r)?;
        Ok(Response::new(
            crate::cardsync::refresh_cards(&self.core, &t, r.into_inner()).await?,
        ))
    }

    async fn batch_usage(
        &self,
        r: Request<v1::BatchUsageRequest>,
    ) -> Result<Response<v1::BatchUsageResponse>, Status> {
        let t = self.tenant(&r)?;
        Ok(Response::new(
            crate::usage::batch_usage(&self.core, &t, r.into_inner()).await?,
        ))
    }

    async fn list_cards(
        &self,
        r: Request<v1::ListCardsRequest>,
    ) -> Result<Response<v1::ListCardsResponse>, Status> {
        let principal = auth::principal(&*self.core.auth, r.metadata())?;
        let req = r.into_inner();
        let tenant = match principal {
            // The operator lists any of this gateway's tenants, named.
            Principal::Operator => {
                if !self.core.tenants.contains(&req.tenant) {
                    return Err(ApiError::bad(
                        "tenant: the operator lists one of this gateway's tenants, named",
                    )
                    .into());
                }
                req.tenant.clone()
            }
            p => {
                let t = self.tenant_of(p)?;
                if !req.tenant.is_empty() && req.tenant != t {
                    return Err(ApiError::new(
                        ErrorCode::PermissionDenied,
                        "tenant: a tenant lists only its own cards",
                    )
                    .into());
                }
                t
            }
        };
        let (q, page) = crate::cardlist::query(tenant, &req)?;
        let listed = self
            .core
            .registry
            .store
            .list_cards(&q, &page)
            .await
            .map_err(ApiError::from)?
            .map_err(ApiError::from)?;
        Ok(Response::new(crate::cardlist::answer(&page, listed)))
    }

    async fn update_cards(
        &self,
        r: Request<v1::UpdateCardsRequest>,
    ) -> Result<Response<v1::UpdateCardsResponse>, Status> {
        let t = self.tenant(&r)?;
        Ok(Response::new(
            crate::cardupdate::update(&self.core, &t, r.into_inner()).await?,
        ))
    }

    async fn import_batches(
        &self,
        r: Request<v1::ImportBatchesRequest>,
    ) -> Result<Response<v1::ImportBatchesResponse>, Status> {
        use crate::registry::Assigner;
        let principal = auth::principal(&*self.core.auth, r.metadata())?;
        let batches = r.into_inner().batches;
        let (tenant_batches, who) = match principal {
            // The operator assigns batches: each names its tenant.
            Principal::Operator => {
                let mut imported = 0;
                for (tenant, batches) in self.by_tenant(batches, |b| b.tenant.as_str())? {
                    imported += self
                        .core
                        .registry
                        .import_batches(&tenant, batches, Assigner::Operator)
                        .await?;
                }
                return Ok(Response::new(v1::ImportBatchesResponse { imported }));
            }
            p => (self.tenant_of(p)?, self.tenant_assigner()),
        };
        let imported = self
            .core
            .registry
            .import_batches(&tenant_batches, batches, who)
            .await?;
        Ok(Response::new(v1::ImportBatchesResponse { imported }))
    }

    async fn get_batch(
        &self,
        r: Request<v1::GetBatchRequest>,
    ) -> Result<Response<v1::PurchaseBatch>, Status> {
        let t = self.tenant(&r)?;
        Ok(Response::new(
            self.core
                .registry
                .batch(&t, &r.into_inner().batch_no)
                .await?,
        ))
    }
}

#[tonic::async_trait]
impl v1::results_server::Results for Api {
    async fn report(
        &self,
        r: Request<v1::ReportRequest>,
    ) -> Result<Response<v1::ReportResponse>, Status> {
        let carrier = match auth::principal(&*self.core.auth, r.metadata())? {
            Principal::Adapter(c) => c,
            Principal::Tenant(_) | Principal::Operator => {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    "only adapters report results",
                )
                .into());
            }
        };
        let outcome = r
            .into_inner()
            .outcome
            .ok_or_else(|| ApiError::bad("outcome is required"))?;
        let duplicate = results::report(&self.core, outcome, carrier).await?;
        Ok(Response::new(v1::ReportResponse { duplicate }))
    }

    async fn report_cards(
        &self,
        r: Request<v1::ReportCardsRequest>,
    ) -> Result<Response<v1::ReportCardsResponse>, Status> {
        let carrier = self.sync_carrier(&r, r.get_ref().carrier)?;
        Ok(Response::new(
            crate::cardsync::report_cards(&self.core, carrier, r.into_inner()).await?,
        ))
    }

    async fn sweep_cards(
        &self,
        r: Request<v1::SweepCardsRequest>,
    ) -> Result<Response<v1::SweepCardsResponse>, Status> {
        let carrier = self.sync_carrier(&r, r.get_ref().carrier)?;
        Ok(Response::new(
            crate::cardsync::sweep_cards(&self.core, carrier, r.into_inner()).await?,
        ))
    }
}

impl Api {
    /// The carrier of the adapter calling a card-sync method: its own
    /// token names it (a carrier's adapter reads and reports only its
    /// carrier's cards; naming another is refused), or, with the shared
    /// adapter token, the request does.
    fn sync_carrier<T>(&self, r: &Request<T>, named: i32) -> Result<gsl_domain::Carrier, Status> {
        let named = gsl_proto::convert::carrier_from_wire(named).ok();
        match auth::principal(&*self.core.auth, r.metadata())? {
            Principal::Adapter(Some(c)) if named.is_none_or(|n| n == c) => Ok(c),
            Principal::Adapter(Some(_)) => Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "this adapter token is another carrier's",
            )
            .into()),
            Principal::Adapter(None) => named.ok_or_else(|| {
                ApiError::bad("carrier is required with the shared adapter token").into()
            }),
            Principal::Tenant(_) | Principal::Operator => Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "only adapters report card reads",
            )
            .into()),
        }
    }
}
