//! # gsl-cardstore: the fleet in PostgreSQL
//!
//! Cards, purchase batches and the order index live here; NATS JetStream
//! stays the bus and the work-order store. A gateway replica holds no
//! mirror of the fleet: it asks for the cards an order names, in a few
//! set-based queries, so its memory does not grow with the fleet
//! (docs/architecture.md, "The card store").
//!
//! ## Layout
//!
//! | module | holds |
//! |---|---|
//! | [`schema`] | the migrations (in `migrations/`, applied by `gsl-gateway migrate`) and the version check a service makes at start |
//! | [`cards`] | set-based lookups, `COPY` imports with ownership by the primary key, outcomes applied newest-wins, one card read |
//! | [`list`] | the reference card list: filters, sorts, page numbers through anchors, the cursor, counts |
//! | [`update`] | a tenant's own data on its cards (attributes, plan) |
//! | [`sync`] | card sync: the cards a sweep reads next, and carrier reads compared and applied newest-wins |
//! | [`usage`] | data usage: the monthly figure with its period and "as of", daily rows (the carrier's or derived from snapshots), their retention |
//! | [`batches`] | purchase batches: claimed like cards, changed under a row lock |
//! | [`orders`] | the order index `List` filters, and how far it has followed the order bucket |
//!
//! Every function takes what it needs and returns a typed [`StoreError`];
//! nothing here prints the database URL (it may hold a password).
#![forbid(unsafe_code)]

pub mod batches;
pub mod cards;
pub mod list;
pub mod orders;
pub mod schema;
pub mod sync;
pub mod update;
pub mod usage;

use std::time::Duration;
use thiserror::Error;

/// Why the store could not answer.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The URL could not be read (the text is not repeated: it may hold a
    /// password).
    #[error("the database URL is not a valid PostgreSQL URL ({0})")]
    BadUrl(String),
    /// No connection within the pool's wait, or the server refused one.
    #[error("the card store (PostgreSQL) is unavailable: {0}")]
    Unavailable(String),
    /// The schema is older (or newer) than this build.
    #[error(
        "the card store's schema is at version {found}, this build needs {needed}: run `gsl-gateway migrate`"
    )]
    Schema { found: i32, needed: i32 },
    /// A statement failed.
    #[error("card store query ({what}): {reason}")]
    Query { what: &'static str, reason: String },
    /// The TLS settings could not be used (the CA file).
    #[error("card store TLS: {0}")]
    Tls(String),
    /// A stored record could not be decoded.
    #[error("stored {what} {key:?} is unreadable: {reason}")]
    Corrupt {
        what: &'static str,
        key: String,
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn query(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
        move |e| {
            if e.is_closed() {
                return StoreError::Unavailable(e.to_string());
            }
            StoreError::Query {
                what,
                reason: db_reason(&e),
            }
        }
    }

    /// Whether trying the same transaction again may succeed (a deadlock
    /// or serialization failure between concurrent imports).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Query { reason, .. } if reason.starts_with("40P01") || reason.starts_with("40001"))
    }
}

/// The server's code and message when there is one (`tokio_postgres`'s
/// Display says only "db error").
fn db_reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} {}", d.code().code(), d.message()),
        None => e.to_string(),
    }
}

/// How the store connects.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Connections held at most (`GSL_DATABASE_POOL`).
    pub pool_size: usize,
    /// How long a caller waits for a free connection, and for a new one to
    /// be made, before the store is called unavailable.
    pub wait: Duration,
    /// PEM file of the CA that signed the server's certificate
    /// (`GSL_DATABASE_CA_CERT`); `None`: the system's roots. Used when the
    /// URL asks for TLS (`sslmode=require`, or `prefer` with a server that
    /// offers it); the certificate is always checked.
    pub ca_cert: Option<std::path::PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            pool_size: 8,
            wait: Duration::from_secs(5),
            ca_cert: None,
        }
    }
}

/// The TLS connector: rustls with the CA file's certificates, or the
/// system's roots.
fn tls(cfg: &StoreConfig) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_cert {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| StoreError::Tls(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(StoreError::Tls(format!(
                    "{}: no certificate in it",
                    path.display()
                )));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| StoreError::Tls(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            // A system without roots is fine until TLS is asked for.
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A pool of connections to the card store. Cheap to clone.
#[derive(Clone)]
pub struct CardStore {
    pool: deadpool_postgres::Pool,
}

impl std::fmt::Debug for CardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl CardStore {
    /// A pool for `url` (`postgres://user:password@host:port/db`). No
    /// connection is made until the first query.
    pub fn connect(url: &str, cfg: &StoreConfig) -> Result<CardStore, StoreError> {
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::BadUrl(e.to_string()))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(cfg.wait);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("gsl");
        }
        let mgr = deadpool_postgres::Manager::from_config(
            pg,
            tls(cfg)?,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(mgr)
            .max_size(cfg.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(cfg.wait))
            .create_timeout(Some(cfg.wait))
            .build()
            .map_err(|e| StoreError::BadUrl(e.to_string()))?;
        Ok(CardStore { pool })
    }

    /// A connection from the pool.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Unavailable(db_reason(&e)),
            other => StoreError::Unavailable(other.to_string()),
        })
    }

    /// One round trip: whether the server answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .map_err(StoreError::query("ping"))?;
        Ok(())
    }

    /// Connections the pool may still open or hand out.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }
}

/// Run `f` again (up to three times in all) when it failed with a deadlock
/// or serialization failure: concurrent imports of overlapping cards may
/// meet in opposite orders, and the server aborts one of them.
pub(crate) async fn retrying<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        match f().await {
            Err(e) if e.is_retryable() && tries < 2 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20 * tries)).await;
            }
            other => return other,
        }
    }
}

/// Who assigns cards (and purchase batches) to a tenant in an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The operator: takes any card, whoever held it.
    Any,
    /// A tenant registering its own: takes cards nobody holds and updates
    /// its own (development: `GSL_TENANT_SELF_REGISTRATION=on`).
    NewOrOwn,
    /// A tenant updating the cards it already holds, nothing else.
    OwnOnly,
}
