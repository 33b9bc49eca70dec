//! One POST to a receiver: its URL checked (HTTPS, or HTTP where allowed),
//! the host resolved and every address checked by the [`NetGuard`], the
//! connection made to the checked address (never a second lookup), TLS
//! trusting the address's own certificate (PEM) or the system's roots,
//! redirects not followed (a 3xx is a failure), the answer read up to a
//! cap, the whole attempt under a timeout. Connections are kept per
//! address (HTTP/1.1 keep-alive) and reused.

use crate::netguard::NetGuard;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why an attempt failed before an HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("bad address: {0}")]
    BadUrl(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("HTTP: {0}")]
    Http(String),
}

/// A receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After` in seconds, when given as seconds.
    pub retry_after: Option<u64>,
    /// The first bytes of the body (at most the cap).
    pub body: String,
}

/// What a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query.
    pub path: String,
}

/// Parse and check a push URL.
pub fn target(url: &str, allow_http: bool) -> Result<Target, SendError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| SendError::BadUrl(format!("{url:?} is not a URL")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") if allow_http => false,
        Some("http") => {
            return Err(SendError::BadUrl(
                "https only (plain http is a development setting)".into(),
            ));
        }
        _ => return Err(SendError::BadUrl("the URL must start with https://".into())),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| SendError::BadUrl("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(SendError::BadUrl("no user information in the URL".into()));
    }
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    Ok(Target {
        https,
        host,
        port,
        path,
    })
}

/// The addresses `t` may be reached at: resolved, each checked.
pub async fn resolve(t: &Target, guard: &NetGuard) -> Result<Vec<SocketAddr>, SendError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .map_err(|_| SendError::Resolve(t.host.clone()))?
        .collect();
    if addrs.is_empty() {
        return Err(SendError::Resolve(t.host.clone()));
    }
    let ok: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| guard.permits(a.ip()))
        .collect();
    if ok.is_empty() {
        return Err(SendError::Refused(format!(
            "{} resolves to a loopback, private, link-local or otherwise internal address ({})",
            t.host,
            addrs[0].ip()
        )));
    }
    Ok(ok)
}

/// TLS settings trusting `ca_pem` (a certificate or its CA), or the
/// system's roots when empty.
pub fn tls_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, SendError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if ca_pem.trim().is_empty() {
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
    } else {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| SendError::Tls("the server certificate is not PEM".into()))?;
        if certs.is_empty() {
            return Err(SendError::Tls("no certificate in the PEM".into()));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| SendError::Tls(format!("the server certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SendError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Kept connections and TLS settings, per address.
#[derive(Default)]
pub struct Sender {
    pools: Mutex<HashMap<String, Pool>>,
}

#[derive(Default)]
struct Pool {
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: Vec<SendRequest<Full<Bytes>>>,
}

/// One request to send.
pub struct Post<'a> {
    /// Pool key: the address id with its URL and certificate's version.
    pub key: &'a str,
    pub url: &'a str,
    pub ca_pem: &'a str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Sender {
    /// POST `p` under `timeout`, reading at most `cap` bytes of the answer.
    pub async fn post(
        &self,
        p: Post<'_>,
        guard: &NetGuard,
        allow_http: bool,
        timeout: Duration,
        cap: usize,
    ) -> Result<Answer, SendError> {
        match tokio::time::timeout(timeout, self.attempt(p, guard, allow_http, cap)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Timeout(timeout)),
        }
    }

    /// Forget an address's connections (its URL or certificate changed, or
    /// it was deleted).
    pub fn forget(&self, prefix: &str) {
        self.pools
            .lock()
            .expect("pools")
            .retain(|k, _| !k.starts_with(prefix));
    }

    async fn attempt(
        &self,
        p: Post<'_>,
        guard: &NetGuard,
        allow_http: bool,
        cap: usize,
    ) -> Result<Answer, SendError> {
        let t = target(p.url, allow_http)?;
        let reused = self.take(p.key);
        let (mut sender, fresh) = match reused {
            Some(s) => (s, false),
            None => (self.connect(&p, &t, guard).await?, true),
        };
        let resp = match sender.send_request(rebuild(&t, &p)?).await {
            Ok(r) => r,
            // A kept connection the receiver closed meanwhile: once more on
            // a new one (the request was not sent, or not read).
            Err(_) if !fresh => {
                let mut s = self.connect(&p, &t, guard).await?;
                let r = s
                    .send_request(rebuild(&t, &p)?)
                    .await
                    .map_err(|e| SendError::Http(e.to_string()))?;
                sender = s;
                r
            }
            Err(e) => return Err(SendError::Http(e.to_string())),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut body = resp.into_body();
        let mut got: Vec<u8> = Vec::new();
        let mut whole = true;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                whole = false;
                break;
            };
            if let Some(d) = frame.data_ref() {
                got.extend_from_slice(&d[..d.len().min(cap.saturating_sub(got.len()))]);
                if got.len() >= cap {
                    whole = false;
                    break;
                }
            }
        }
        if whole {
            self.give_back(p.key, sender);
        }
        Ok(Answer {
            status,
            retry_after,
            body: String::from_utf8_lossy(&got).into_owned(),
        })
    }

    fn take(&self, key: &str) -> Option<SendRequest<Full<Bytes>>> {
        let mut pools = self.pools.lock().expect("pools");
        let pool = pools.get_mut(key)?;
        while let Some(s) = pool.idle.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    fn give_back(&self, key: &str, s: SendRequest<Full<Bytes>>) {
        let mut pools = self.pools.lock().expect("pools");
        let pool = pools.entry(key.to_owned()).or_default();
        if pool.idle.len() < 64 {
            pool.idle.push(s);
        }
    }

    fn tls_of(&self, p: &Post<'_>) -> Result<Arc<rustls::ClientConfig>, SendError> {
        let mut pools = self.pools.lock().expect("pools");
        if let Some(Pool { tls: Some(t), .. }) = pools.get(p.key) {
            return Ok(t.clone());
        }
        let t = tls_config(p.ca_pem)?;
        pools.entry(p.key.to_owned()).or_default().tls = Some(t.clone());
        Ok(t)
    }

    async fn connect(
        &self,
        p: &Post<'_>,
        t: &Target,
        guard: &NetGuard,
    ) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let addrs = resolve(t, guard).await?;
        let mut last = String::new();
        let mut tcp = None;
        for a in &addrs {
            match tokio::net::TcpStream::connect(a).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("{a}: {e}"),
            }
        }
        let tcp = tcp.ok_or(SendError::Connect(last))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if t.https {
            let cfg = self.tls_of(p)?;
            let name = rustls::pki_types::ServerName::try_from(t.host.clone())
                .map_err(|_| SendError::Tls(format!("{} is not a server name", t.host)))?;
            let s = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(|e| SendError::Tls(e.to_string()))?;
            Box::new(s)
        } else {
            Box::new(tcp)
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

fn host_header(t: &Target) -> String {
    let default = if t.https { 443 } else { 80 };
    let host = if t.host.contains(':') {
        format!("[{}]", t.host)
    } else {
        t.host.clone()
    };
    if t.port == default {
        host
    } else {
        format!("{host}:{}", t.port)
    }
}

fn rebuild(t: &Target, p: &Post<'_>) -> Result<http::Request<Full<Bytes>>, SendError> {
    let mut req = http::Request::post(&t.path)
        .header(http::header::HOST, host_header(t))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "gsl-push/1");
    for (k, v) in &p.headers {
        req = req.header(*k, v);
    }
    req.body(Full::new(p.body.clone()))
        .map_err(|e| SendError::Http(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_with_a_host() {
        let t = target("https://hooks.example.com/in?x=1", false).unwrap();
        assert_eq!(
            (t.https, t.host.as_str(), t.port, t.path.as_str()),
            (true, "hooks.example.com", 443, "/in?x=1")
        );
        assert_eq!(target("https://[::1]:8443/", false).unwrap().host, "::1");
        assert!(matches!(
            target("http://example.com/", false),
            Err(SendError::BadUrl(_))
        ));
        assert!(target("http://example.com/", true).is_ok());
        for bad in [
            "ftp://x/",
            "hooks.example.com",
            "https:///x",
            "https://u:p@x.com/",
        ] {
            assert!(
                matches!(target(bad, true), Err(SendError::BadUrl(_))),
                "{bad}"
            );
        }
    }
}
