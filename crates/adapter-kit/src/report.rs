//! Reporting outcomes to the gateway's Results service, with retries until
//! the gateway acknowledges: a gateway that is down for a minute loses
//! nothing (the item's message is kept alive meanwhile, see `worker`).

use gsl_proto::v1;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The gateway refused the report for good (bad report, unknown order).
    #[error("gateway refused the report: {0}")]
    Refused(String),
    #[error("gave up reporting: {0}")]
    GaveUp(String),
}

#[derive(Clone)]
pub struct Reporter {
    client: v1::results_client::ResultsClient<Channel>,
    token: gsl_secret::Secret,
    give_up_after: Duration,
}

impl Reporter {
    pub fn new(
        gateway_url: &str,
        token: &gsl_secret::Secret,
        give_up_after: Duration,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Reporter, String> {
        let mut ep = Endpoint::from_shared(gateway_url.to_owned())
            .map_err(|e| format!("GSL_GATEWAY_URL {gateway_url:?}: {e}"))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(15))
            .tcp_nodelay(true);
        // With a CA the gateway must present a certificate it signed; the
        // bearer token then never crosses the network in clear text.
        if let Some(ca) = ca_cert {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("GSL_GATEWAY_CA_CERT {}: {e}", ca.display()))?;
            ep = ep
                .tls_config(
                    tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
                )
                .map_err(|e| format!("GSL_GATEWAY_CA_CERT {}: {e}", ca.display()))?;
        }
        let ch = ep.connect_lazy();
        Ok(Reporter {
            client: v1::results_client::ResultsClient::new(ch),
            token: token.clone(),
            give_up_after,
        })
    }

    /// Report until acknowledged. Returns whether the gateway saw it before.
    pub async fn report(&self, outcome: v1::ItemOutcome) -> Result<bool, ReportError> {
        let span = tracing::info_span!("report", work_order_id = outcome.work_order_id, card = %outcome.card, outcome = outcome.kind);
        let req = v1::ReportRequest {
            outcome: Some(outcome),
        };
        self.retrying(span, req, |mut c, r| async move { c.report(r).await })
            .await
            .map(|r| r.duplicate)
    }

    /// Hand card-sync reads to the gateway, until acknowledged.
    pub async fn report_cards(
        &self,
        carrier: gsl_domain::Carrier,
        reads: Vec<v1::CardRead>,
    ) -> Result<v1::ReportCardsResponse, ReportError> {
        let span = tracing::info_span!("report_cards", cards = reads.len());
        let req = v1::ReportCardsRequest {
            reads,
            carrier: gsl_proto::convert::carrier_to_wire(carrier) as i32,
        };
        self.retrying(span, req, |mut c, r| async move { c.report_cards(r).await })
            .await
    }

    /// The next cards of a sweep (see `Results.SweepCards`).
    pub async fn sweep_cards(
        &self,
        req: v1::SweepCardsRequest,
    ) -> Result<v1::SweepCardsResponse, ReportError> {
        let span = tracing::info_span!("sweep_cards", after = %req.after);
        self.retrying(span, req, |mut c, r| async move { c.sweep_cards(r).await })
            .await
    }

    /// Call until the gateway answers: a refusal is final, anything else is
    /// retried until `give_up_after`.
    async fn retrying<Q, A, F, Fut>(
        &self,
        span: tracing::Span,
        msg: Q,
        call: F,
    ) -> Result<A, ReportError>
    where
        Q: Clone,
        F: Fn(v1::results_client::ResultsClient<Channel>, Request<Q>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<A>, tonic::Status>>,
    {
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            let mut req = Request::new(msg.clone());
            req.metadata_mut().insert(
                "authorization",
                format!("Bearer {}", self.token.expose())
                    .parse()
                    .map_err(|_| ReportError::Refused("token is not ASCII".into()))?,
            );
            let cx = tracing_opentelemetry::OpenTelemetrySpanExt::context(&span);
            opentelemetry::global::get_text_map_propagator(|p| {
                p.inject_context(&cx, &mut MetadataInjector(req.metadata_mut()))
            });
            let r =
                tracing::Instrument::instrument(call(self.client.clone(), req), span.clone()).await;
            match r {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(s)
                    if matches!(
                        s.code(),
                        Code::InvalidArgument
                            | Code::NotFound
                            | Code::PermissionDenied
                            | Code::Unauthenticated
                    ) =>
                {
                    return Err(ReportError::Refused(s.message().to_owned()));
                }
                Err(s) => {
                    if started.elapsed() > self.give_up_after {
                        return Err(ReportError::GaveUp(s.message().to_owned()));
                    }
                    tracing::warn!(code = ?s.code(), message = s.message(), "call to the gateway failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(REPORT_BACKOFF.delay(attempt)).await;
                }
            }
        }
    }
}

/// Between attempts of a report: 100 ms doubling to 5 s (no jitter: one
/// adapter's reports are already spread by its items).
const REPORT_BACKOFF: gsl_backoff::Backoff =
    gsl_backoff::Backoff::new_const(Duration::from_millis(100), Duration::from_secs(5), 0.0);

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl opentelemetry::propagation::Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}
