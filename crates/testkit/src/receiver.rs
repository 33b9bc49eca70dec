//! A webhook receiver for tests and benchmarks: HTTPS with the test CA's
//! server certificate (`tls/`, for `127.0.0.1`), or plain HTTP; it records
//! every request (its `webhook-*` headers and body) and answers with the
//! status it is set to. It can be stopped (connections refused) and
//! started again on the same port, and can fail a share of requests.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Bytes,
    pub at: std::time::Instant,
    /// Wall-clock time of receipt (to compare with a time in the body).
    pub wall: std::time::SystemTime,
}

/// What the receiver answers and what it got.
#[derive(Default)]
pub struct State {
    pub got: Mutex<Vec<Received>>,
    /// The status to answer (0: 200).
    pub status: AtomicU16,
    /// Per mille of requests answered 503 instead (at random).
    pub fail_per_mille: AtomicU32,
    pub requests: AtomicU64,
    /// Set on every answer of `status` 429 / 503 (seconds), if non-zero.
    pub retry_after: AtomicU32,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (_, cert, key) = crate::tls_files();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .expect("test certificate")
        .collect::<Result<_, _>>()
        .expect("test certificate");
    let key = PrivateKeyDer::from_pem_file(&key).expect("test key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("test certificate and key");
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

/// The test CA's certificate (PEM), to register as an address's server
/// certificate.
pub fn ca_pem() -> String {
    std::fs::read_to_string(crate::tls_files().0).expect("test CA")
}

impl Receiver {
    /// A receiver on a free loopback port.
    pub async fn start(tls: bool) -> Receiver {
        Self::serve(tls, "127.0.0.1:0".parse().expect("addr"), Arc::default()).await
    }

    /// Stop listening (new connections are refused; open ones close).
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Listen again on the same port, with the same state.
    pub async fn restart(&mut self) {
        self.stop();
        let next = Self::serve(self.tls, self.addr, self.state.clone()).await;
        *self = next;
    }

    /// `https://127.0.0.1:<port>/hook` (or http).
    pub fn url(&self) -> String {
        format!(
            "{}://127.0.0.1:{}/hook",
            if self.tls { "https" } else { "http" },
            self.addr.port()
        )
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.got.lock().expect("got").clone()
    }

    async fn serve(tls: bool, at: SocketAddr, state: Arc<State>) -> Receiver {
        let listener = loop {
            match tokio::net::TcpListener::bind(at).await {
                Ok(l) => break l,
                // The port of a stopped receiver may linger a moment.
                Err(_) if at.port() != 0 => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                Err(e) => panic!("bind: {e}"),
            }
        };
        let addr = listener.local_addr().expect("bound");
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let acceptor = tls.then(acceptor);
        let st = state.clone();
        tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let (tcp, _) = tokio::select! {
                    _ = &mut rx => break,
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                };
                let _ = tcp.set_nodelay(true);
                let (st, acceptor) = (st.clone(), acceptor.clone());
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let b = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(a) => {
                            if let Ok(s) = a.accept(tcp).await {
                                let _ = b.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = b.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
            conns.abort_all();
        });
        Receiver {
            addr,
            state,
            tls,
            stop: Some(tx),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn handle(
    st: Arc<State>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let h = |k: &str| {
        req.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, timestamp, signature) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let per_mille = st.fail_per_mille.load(Ordering::Relaxed);
    let mut status = match st.status.load(Ordering::Relaxed) {
        0 => 200,
        s => s,
    };
    if per_mille > 0 && rand_below(1000) < per_mille {
        status = 503;
    }
    if (200..300).contains(&status) {
        st.got.lock().expect("got").push(Received {
            id,
            timestamp,
            signature,
            body,
            at: std::time::Instant::now(),
            wall: std::time::SystemTime::now(),
        });
    }
    let mut resp = http::Response::builder().status(status);
    let ra = st.retry_after.load(Ordering::Relaxed);
    if ra > 0 && (status == 429 || status == 503) {
        resp = resp.header("retry-after", ra.to_string());
    }
    Ok(resp
        .body(Full::new(Bytes::from_static(b"ok")))
        .expect("response"))
}

/// A cheap random number below `n` (no extra dependency).
fn rand_below(n: u32) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    (h.finish() % u64::from(n)) as u32
}
