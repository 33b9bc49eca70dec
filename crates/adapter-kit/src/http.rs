//! The HTTP client every carrier module uses: W3C trace context on every
//! request, timeouts, and the one distinction that matters for "no double
//! effect": whether a failed request may have reached the carrier.

pub use crate::carrier::{AnswerPolicy, FiveXx, OVER_LIMIT_WAIT};
use crate::carrier::{CallClass, CallCtx, CallError};
use gsl_backoff::Backoff;
use opentelemetry::propagation::Injector;
use std::time::Duration;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The current span's trace context as HTTP headers.
pub fn trace_headers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(&mut h))
    });
    h
}

/// A shared client (keep-alive pool) with a per-attempt timeout, and the one
/// request stack every carrier call goes through ([`Http::call`]).
#[derive(Clone)]
pub struct Http {
    pub client: reqwest::Client,
    /// Attempts of one call (`GSL_CALL_ATTEMPTS`).
    pub attempts: usize,
    /// Largest answer body read (`GSL_MAX_ANSWER_BYTES`): a carrier's answer
    /// is read up to this and no further, so a misbehaving endpoint cannot
    /// grow the adapter past its memory limit.
    pub max_answer: usize,
    /// What this carrier's answers mean (set by its module).
    pub policy: AnswerPolicy,
}

/// Between attempts of one carrier call: 100 ms doubling to 5 s, plus up to
/// 100 % jitter.
const CALL_BACKOFF: Backoff =
    Backoff::new_const(Duration::from_millis(100), Duration::from_secs(5), 1.0);

/// Default of [`Http::max_answer`]: a 100-card batch answer is kilobytes.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 1024 * 1024;

impl Http {
    /// A stack with a per-attempt `timeout` and `attempts` attempts per
    /// call (at least one); `GSL_CALL_TIMEOUT_MS` and `GSL_CALL_ATTEMPTS`
    /// give both in the adapter (`AdapterConfig`).
    pub fn new(timeout: Duration, attempts: usize) -> Http {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3).min(timeout))
            .pool_max_idle_per_host(256)
            .build()
            .expect("a client with only timeouts set builds");
        Http {
            client,
            attempts: attempts.max(1),
            max_answer: DEFAULT_MAX_ANSWER_BYTES,
            policy: AnswerPolicy::default(),
        }
    }

    pub fn with_policy(mut self, policy: AnswerPolicy) -> Http {
        self.policy = policy;
        self
    }

    pub fn with_max_answer(mut self, bytes: usize) -> Http {
        self.max_answer = bytes.max(1);
        self
    }

    /// The request stack, in this order: **retry** (exponential backoff with
    /// jitter, honouring `Retry-After`; only what is known not to have
    /// happened: connection refused, an over-limit answer, a 5xx to a query
    /// or where the contract says a 5xx changed nothing; see
    /// [`AnswerPolicy`]) -> **pace** (every attempt
    /// waits for a slot of its class's budget, so retries spend budget too;
    /// a change attempt then checks the item is still ours) -> **per-attempt
    /// timeout** (the client's, started at the send, so a call queued for
    /// budget is never timed out) -> **span** -> **send**. A failure after
    /// the request may have reached the carrier is `Unknown` and is never
    /// retried here.
    pub async fn call(
        &self,
        ctx: &CallCtx<'_>,
        class: CallClass,
        rb: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CallError> {
        let mut delays = CALL_BACKOFF.delays(self.attempts.saturating_sub(1) as u32);
        loop {
            let attempt = rb.try_clone().ok_or_else(|| {
                CallError::refused(
                    gsl_domain::ErrorCode::BadParameter,
                    "",
                    "request body cannot be repeated",
                )
            })?;
            ctx.slot(class).await?;
            match self.send(attempt).await.and_then(|r| {
                self.policy
                    .classify(r.status().as_u16(), retry_after(&r), class)
                    .map(|()| r)
            }) {
                Err(CallError::Transient {
                    reason,
                    retry_after,
                }) => match delays.next() {
                    Some(d) => {
                        let wait = retry_after.map_or(d, |r| r.max(d));
                        tracing::debug!(reason, ?wait, "transient carrier failure; retrying");
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        return Err(CallError::Transient {
                            reason,
                            retry_after,
                        });
                    }
                },
                other => return other,
            }
        }
    }

    /// Send, with trace headers. A failure to connect is transient (nothing
    /// was sent); any other failure may have reached the carrier.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        let (client, req) = rb.build_split();
        let mut req = req.map_err(classify)?;
        // Path only: a query string may carry credentials (China Mobile's token).
        let span = tracing::info_span!(
            "http",
            otel.kind = "client",
            http.request.method = %req.method(),
            server.address = req.url().host_str().unwrap_or(""),
            server.port = req.url().port_or_known_default().unwrap_or(0),
            url.path = req.url().path(),
            http.response.status_code = tracing::field::Empty,
        );
        async {
            req.headers_mut().extend(trace_headers());
            let r = client.execute(req).await.map_err(classify);
            if let Ok(resp) = &r {
                tracing::Span::current()
                    .record("http.response.status_code", resp.status().as_u16());
            }
            r
        }
        .instrument(span)
        .await
    }

    /// Read a body, up to [`Http::max_answer`] bytes. Losing it, or an
    /// answer over the cap (reading stops there), means the outcome is
    /// unknown: a change is then read back as for a lost answer.
    pub async fn body(&self, mut resp: reqwest::Response) -> Result<bytes::Bytes, CallError> {
        let cap = self.max_answer;
        let too_big = |n: u64| CallError::Unknown {
            reason: format!(
                "carrier fault: answer of {n} bytes or more is over the {cap}-byte cap (GSL_MAX_ANSWER_BYTES); not read"
            ),
        };
        if let Some(n) = resp.content_length().filter(|n| *n > cap as u64) {
            return Err(too_big(n));
        }
        let mut body = bytes::BytesMut::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > cap {
                        return Err(too_big((body.len() + c.len()) as u64));
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => return Ok(body.freeze()),
                Err(e) => {
                    return Err(CallError::Unknown {
                        reason: format!("answer lost: {}", e.without_url()),
                    });
                }
            }
        }
    }
}

/// Errors that leave the HTTP layer carry no URL: a query string may hold a
/// credential (a CMCC password or token in a GET), and error texts reach
/// item details, dead-letter headers, logs and `/readyz`.
pub fn classify(e: reqwest::Error) -> CallError {
    let e = e.without_url();
    if e.is_connect() {
        CallError::transient(format!("cannot connect: {e}"))
    } else if e.is_builder() {
        CallError::refused(
            gsl_domain::ErrorCode::BadParameter,
            "",
            format!("request not built: {e}"),
        )
    } else {
        CallError::Unknown {
            reason: format!("no answer: {e}"),
        }
    }
}

/// A read's HTTP answer under the default policy (token calls, readiness
/// probes): 429 and 5xx are transient. A `retry_after` is set when the
/// carrier asked to wait: the carrier is there (readiness probes count that
/// as reachable).
pub fn retryable(resp: reqwest::Response) -> Result<reqwest::Response, CallError> {
    AnswerPolicy::default()
        .classify(resp.status().as_u16(), retry_after(&resp), CallClass::Query)
        .map(|()| resp)
}

/// A readiness probe's verdict on a call: reachable unless the transport
/// failed or the carrier refused our credentials.
pub fn reachable<T>(r: &Result<T, CallError>) -> bool {
    matches!(
        r,
        Ok(_)
            | Err(CallError::Transient {
                retry_after: Some(_),
                ..
            })
    )
}

/// `Retry-After` in seconds, if present.
pub fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failing call's error text never carries the query string.
    #[tokio::test]
    async fn errors_carry_no_url_or_query() {
        // A port nothing listens on: connection refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http = Http::new(Duration::from_millis(500), 4);
        let rb = http
            .client
            .get(format!("http://127.0.0.1:{port}/v5/ec/get/token"))
            .query(&[("password", "s3cr3t-pw"), ("token", "t0k3n")]);
        let e = http.send(rb).await.unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(matches!(e, CallError::Transient { .. }), "{text}");
        assert!(
            !text.contains("s3cr3t-pw") && !text.contains("t0k3n"),
            "{text}"
        );
        assert!(!text.contains("get/token"), "no URL at all: {text}");
    }

    /// A carrier endpoint answering `head` then `len` bytes of `fill`, to
    /// every connection.
    pub(crate) async fn answering(head: &'static str, len: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let head = head.replace("{len}", &len.to_string());
                    if s.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![b'7'; 64 * 1024];
                    let mut left = len;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        if s.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                        left -= n;
                    }
                });
            }
        });
        format!("http://{addr}/answer")
    }

    /// A 50 MiB answer is read no further than the cap and is a carrier
    /// fault with the reason on it (an unknown outcome), with or without a
    /// `Content-Length`.
    #[tokio::test]
    async fn answers_are_read_up_to_the_cap() {
        let http = Http::new(Duration::from_secs(5), 4).with_max_answer(64 * 1024);
        for head in [
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
        ] {
            let url = answering(head, 50 * 1024 * 1024).await;
            let resp = http.send(http.client.get(url)).await.unwrap();
            let e = http.body(resp).await.unwrap_err();
            match &e {
                CallError::Unknown { reason } => {
                    assert!(reason.contains("65536-byte cap"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        // Under the cap: read whole.
        let url = answering(
            "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n",
            1000,
        )
        .await;
        let resp = http.send(http.client.get(url)).await.unwrap();
        assert_eq!(http.body(resp).await.unwrap().len(), 1000);
    }

    /// Answers `status` to every request; counts them.
    async fn always(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = n.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    if s.read(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nretry-after: 0\r\nconnection: close\r\n\r\n{{}}"
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                });
            }
        });
        (format!("http://{addr}/x"), n)
    }

    /// A 5xx to a change is an unknown outcome, never retried blind (the
    /// carrier may have applied it); to a query it is retried; where the
    /// contract says a 5xx changed nothing, a change is retried too. An
    /// over-limit answer is retried for both.
    #[tokio::test]
    async fn a_5xx_to_a_change_is_unknown_and_not_resent() {
        use std::sync::atomic::Ordering;
        let pacer = crate::pacing::Pacer::off();
        let ctx = CallCtx::new(&pacer, "t1");
        let http = Http::new(Duration::from_secs(2), 3);
        let (url, n) = always(500).await;
        let e = http
            .call(&ctx, CallClass::Change, http.client.post(&url))
            .await
            .unwrap_err();
        assert!(matches!(e, CallError::Unknown { .. }), "{e:?}");
        assert_eq!(n.load(Ordering::SeqCst), 1, "sent once");
        let (url, n) = always(500).await;
        let e = http
            .call(&ctx, CallClass::Query, http.client.get(&url))
            .await
            .unwrap_err();
        assert!(matches!(e, CallError::Transient { .. }), "{e:?}");
        assert_eq!(n.load(Ordering::SeqCst), 3, "a read is retried");
        let blind = Http::new(Duration::from_secs(2), 3).with_policy(AnswerPolicy {
            change_5xx: FiveXx::NotApplied,
            ..Default::default()
        });
        let (url, n) = always(503).await;
        let e = blind
            .call(&ctx, CallClass::Change, blind.client.post(&url))
            .await
            .unwrap_err();
        assert!(matches!(e, CallError::Transient { .. }), "{e:?}");
        assert_eq!(n.load(Ordering::SeqCst), 3);
        let (url, n) = always(429).await;
        let e = http
            .call(&ctx, CallClass::Change, http.client.post(&url))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, CallError::Transient { reason, .. } if reason.contains("over the carrier's limit")),
            "{e:?}"
        );
        assert_eq!(
            n.load(Ordering::SeqCst),
            3,
            "an over-limit change did nothing: retried"
        );
    }
}
