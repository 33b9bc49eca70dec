//! # gsl-testkit: real servers for tests
//!
//! Integration tests run against a real `nats-server` with JetStream and a
//! real PostgreSQL, never an in-memory stand-in. [`NatsServer`] starts one on a free loopback port with
//! a temporary store, can stop and start it again on the same port and store
//! (for fault tests), and kills it and removes the store on drop.
//!
//! ## Layout
//!
//! * [`NatsServer`], [`NatsOptions`]: the server harness;
//! * [`find_nats_server`]: where the binary comes from (`NATS_SERVER_BIN`,
//!   then the project's `.tools/bin`, then `PATH`), with the version check;
//! * [`pg`]: one PostgreSQL server per test binary (free loopback port,
//!   temporary data directory, removed when the process ends) and a fresh
//!   database per caller;
//! * [`free_port`], [`signal`]: small helpers for tests that spawn processes;
//! * [`gateway`]: driving a running gateway over gRPC (bearer requests,
//!   waiting for an order to settle, reading all of its items);
//! * [`fake_carrier`]: a scripted carrier and a Results receiver, for
//!   deterministic tests of the adapter's state machine.
#![forbid(unsafe_code)]

pub mod fake_carrier;
pub mod gateway;
pub mod pg;
pub mod receiver;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use thiserror::Error;
use tokio::process::{Child, Command};

/// The oldest server the project accepts (see scripts/setup.sh for why).
pub const MIN_VERSION: (u32, u32, u32) = (2, 10, 23);

#[derive(Debug, Error)]
pub enum HarnessError {
    #[error(
        "no nats-server found: set NATS_SERVER_BIN, or run `make setup` (scripts/setup.sh) to install one into .tools/bin"
    )]
    NotFound,
    #[error(
        "nats-server at {path} is version {found}, older than the required 2.10.23; run `make setup`"
    )]
    TooOld { path: String, found: String },
    #[error("cannot run {path}: {source}")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    #[error("nats-server did not become ready on port {port} within {secs} s")]
    NotReady { port: u16, secs: u64 },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let v = s.split_whitespace().find_map(|t| {
        t.strip_prefix('v')
            .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    })?;
    let mut it = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

fn version_of(path: &Path) -> Option<((u32, u32, u32), String)> {
    let out = std::process::Command::new(path)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    parse_version(&text).map(|v| (v, text.trim().to_owned()))
}

/// The test-only TLS files (`crates/testkit/tls/`): `(ca, server cert, server key)`.
pub fn tls_files() -> (PathBuf, PathBuf, PathBuf) {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tls");
    (d.join("ca.pem"), d.join("server.pem"), d.join("server.key"))
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Find a suitable `nats-server`: `NATS_SERVER_BIN`, then `.tools/bin`, then `PATH`.
pub fn find_nats_server() -> Result<PathBuf, HarnessError> {
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("NATS_SERVER_BIN")
        && !p.is_empty()
    {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(workspace_root().join(".tools/bin/nats-server"));
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            candidates.push(dir.join("nats-server"));
        }
    }
    let mut too_old = None;
    for c in candidates {
        if !c.is_file() {
            continue;
        }
        match version_of(&c) {
            Some((v, _)) if v >= MIN_VERSION => return Ok(c),
            Some((_, text)) => {
                too_old.get_or_insert(HarnessError::TooOld {
                    path: c.display().to_string(),
                    found: text,
                });
            }
            None => {}
        }
    }
    Err(too_old.unwrap_or(HarnessError::NotFound))
}

/// Poll `check` every 20 ms until it gives a value or `within` passes;
/// `None` then. Replaces each test's own deadline loop.
pub async fn eventually<T, F, Fut>(within: std::time::Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; bind soon).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Send a signal (`TERM`, `KILL`, `STOP`, `CONT`) to a process with `kill(1)`,
/// keeping the crate free of `unsafe`.
pub fn signal(pid: u32, sig: &str) -> std::io::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("kill -{sig} {pid} failed")))
    }
}

/// Options for [`NatsServer::start_with`].
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// Extra lines for the server config file (e.g. an `authorization` or
    /// `accounts` block).
    pub extra_config: String,
    /// The user, password and inbox prefix the readiness check logs in
    /// with, when the configuration requires one (it needs `$JS.API.INFO`
    /// and replies under that prefix).
    pub ready_login: Option<(String, String, String)>,
    /// The CA the readiness check trusts, when the config turns TLS on.
    pub ready_ca: Option<PathBuf>,
}

/// A running `nats-server` with JetStream on a loopback port.
pub struct NatsServer {
    bin: PathBuf,
    port: u16,
    store: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
    ready_login: Option<(String, String, String)>,
    ready_ca: Option<PathBuf>,
    /// The card store that goes with this server (made on first use).
    database: std::sync::OnceLock<String>,
}

impl NatsServer {
    /// The URL of a PostgreSQL database that belongs with this server: made
    /// on first use on the test binary's PostgreSQL ([`pg::shared`]), the
    /// same for every call (and across restarts of this server), never
    /// shared with another server. Gateways started against this server
    /// use it, so they see one card store as they see one bus.
    pub fn database_url(&self) -> String {
        self.database.get_or_init(pg::fresh_database).clone()
    }

    /// Start a server on a free port with a fresh temporary store.
    pub async fn start() -> Result<NatsServer, HarnessError> {
        NatsServer::start_with(NatsOptions::default()).await
    }

    pub async fn start_with(opts: NatsOptions) -> Result<NatsServer, HarnessError> {
        let bin = find_nats_server()?;
        let store = tempfile::Builder::new().prefix("gsl-nats-").tempdir()?;
        let config = store.path().join("nats.conf");
        let mut s = NatsServer {
            bin,
            port: 0,
            store,
            config,
            child: None,
            ready_login: opts.ready_login.clone(),
            ready_ca: opts.ready_ca.clone(),
            database: std::sync::OnceLock::new(),
        };
        let mut last = None;
        // The free port may be taken between asking and binding: retry.
        for _ in 0..5 {
            s.port = free_port()?;
            let text = format!(
                "listen: 127.0.0.1:{port}\nserver_name: gsl-test-{port}\nmax_payload: 8MB\njetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 256MB\n  max_file_store: 8GB\n}}\n{}\n",
                s.store_dir().display(),
                opts.extra_config,
                port = s.port,
            );
            std::fs::write(&s.config, text)?;
            match s.spawn().await {
                Ok(()) => return Ok(s),
                Err(e) => {
                    s.kill().await;
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(HarnessError::NotReady { port: 0, secs: 0 }))
    }

    async fn spawn(&mut self) -> Result<(), HarnessError> {
        let log = std::fs::File::create(self.store.path().join("nats.log"))?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                path: self.bin.display().to_string(),
                source,
            })?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(20)).await
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), HarnessError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(HarnessError::Spawn {
                    path: self.bin.display().to_string(),
                    source: std::io::Error::other(format!(
                        "exited with {status}; log: {}",
                        self.log_tail()
                    )),
                });
            }
            let opts = match &self.ready_login {
                Some((u, p, inbox)) => {
                    async_nats::ConnectOptions::with_user_and_password(u.clone(), p.clone())
                        .custom_inbox_prefix(inbox)
                }
                None => async_nats::ConnectOptions::new(),
            };
            let opts = match &self.ready_ca {
                Some(ca) => opts.add_root_certificates(ca.clone()).require_tls(true),
                None => opts,
            };
            if let Ok(client) = opts
                .connection_timeout(Duration::from_millis(500))
                .connect(self.url())
                .await
            {
                let js = async_nats::jetstream::new(client);
                if js.query_account().await.is_ok() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(HarnessError::NotReady {
                    port: self.port,
                    secs: limit.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `nats://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.store.path().join("js")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The last lines of the server log (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.store.path().join("nats.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stop gracefully (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                let _ = signal(pid, "TERM");
            }
            if tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
    }

    /// Kill with SIGKILL, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Start again on the same port and store (after [`stop`](Self::stop) or
    /// [`kill`](Self::kill)).
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop().await;
        self.spawn().await
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parsing() {
        assert_eq!(parse_version("nats-server: v2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_version("nats-server: v2.9.10\n"), Some((2, 9, 10)));
        assert_eq!(parse_version("garbage"), None);
        assert!((2, 9, 10) < MIN_VERSION);
        assert!((2, 10, 22) < MIN_VERSION);
        assert!((2, 10, 23) >= MIN_VERSION);
        assert!((2, 15, 1) >= MIN_VERSION);
    }

    #[tokio::test]
    async fn starts_restarts_and_cleans_up() {
        let mut s = NatsServer::start().await.expect("start nats-server");
        let store = s.store_dir();
        let url = s.url();
        assert!(store.exists());
        s.kill().await;
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", s.port())).is_err(),
            "port still open after kill"
        );
        s.restart().await.expect("restart");
        assert_eq!(s.url(), url);
        let root = s.store.path().to_path_buf();
        drop(s);
        assert!(!root.exists(), "store removed on drop");
    }
}
