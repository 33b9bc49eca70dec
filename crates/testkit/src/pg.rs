//! A real PostgreSQL server for tests: one per test binary, started on
//! first use on a free loopback port with a temporary data directory, and
//! one fresh database per caller ([`fresh_database`]).
//!
//! `initdb` and `postgres` refuse to run as root, and CI runs as root: then
//! the data directory belongs to `nobody` and both run as `nobody` through
//! `setpriv`. The server is started under a small watchdog shell that stops
//! it and removes the data directory as soon as the test process is gone,
//! so nothing is left behind even when a test panics or is killed.
//!
//! The server binaries: `$GSL_PG_BIN` (a directory), the project's
//! `.tools/pg/bin`, or the newest `/usr/lib/postgresql/<n>/bin` with
//! `n >= 15` (`scripts/setup.sh` makes sure one exists).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The oldest major version the project supports.
pub const MIN_MAJOR: u32 = 15;

/// Why a server could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "no PostgreSQL >= {MIN_MAJOR} server binaries found: run `make setup` (scripts/setup.sh), or set GSL_PG_BIN to a directory with initdb and postgres"
    )]
    NotFound,
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
}

fn failed(what: impl Into<String>, detail: impl std::fmt::Display) -> PgError {
    PgError::Failed {
        what: what.into(),
        detail: detail.to_string(),
    }
}

/// The directory holding `initdb`, `postgres` and `psql`.
pub fn find_bin_dir() -> Result<PathBuf, PgError> {
    let ok = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = std::env::var_os("GSL_PG_BIN").map(PathBuf::from)
        && ok(&d)
    {
        return Ok(d);
    }
    let tools = crate::workspace_root().join(".tools/pg/bin");
    if ok(&tools) {
        return Ok(tools);
    }
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in rd.flatten() {
            let Some(v) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let d = e.path().join("bin");
            if v >= MIN_MAJOR && ok(&d) && best.as_ref().is_none_or(|(b, _)| v > *b) {
                best = Some((v, d));
            }
        }
    }
    best.map(|(_, d)| d).ok_or(PgError::NotFound)
}

/// Whether this process runs as root (then the server runs as `nobody`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// A running server (for the rest of the test process).
#[derive(Debug)]
pub struct PgServer {
    pub port: u16,
    pub bin: PathBuf,
    pub data: PathBuf,
}

const USER: &str = "gsl";

/// `setpriv` arguments that run a command as `nobody` (it executes the
/// command itself, so signals reach the server directly).
const AS_NOBODY: [&str; 3] = ["--reuid=nobody", "--regid=nogroup", "--clear-groups"];

impl PgServer {
    /// Start a server owned by this process.
    pub fn start() -> Result<PgServer, PgError> {
        PgServer::start_with(false)
    }

    /// Start one that also speaks TLS, with the test certificate
    /// ([`crate::tls_files`]: `localhost` and 127.0.0.1, signed by the test
    /// CA).
    pub fn start_tls() -> Result<PgServer, PgError> {
        PgServer::start_with(true)
    }

    fn start_with(tls: bool) -> Result<PgServer, PgError> {
        let bin = find_bin_dir()?;
        let root = is_root();
        let base = std::env::temp_dir().join(format!(
            "gsl-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let data = base.join("data");
        let sock = base.join("sock");
        std::fs::create_dir_all(&sock).map_err(|e| failed("temporary directory", e))?;
        let mut ssl = String::new();
        if tls {
            // The server reads its key only when no one else may.
            let (_, cert, key) = crate::tls_files();
            std::fs::copy(&cert, base.join("server.pem")).map_err(|e| failed("cert", e))?;
            std::fs::copy(&key, base.join("server.key")).map_err(|e| failed("key", e))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                base.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .map_err(|e| failed("key", e))?;
            ssl = format!(
                " -c ssl=on -c ssl_cert_file={0}/server.pem -c ssl_key_file={0}/server.key",
                base.display()
            );
        }
        let as_user = |c: &str| -> Command {
            if root {
                let mut cmd = Command::new("setpriv");
                cmd.args(AS_NOBODY).arg("--").arg(c);
                cmd
            } else {
                Command::new(c)
            }
        };
        if root {
            let st = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(&base)
                .status()
                .map_err(|e| failed("chown", e))?;
            if !st.success() {
                return Err(failed("chown", st));
            }
        }
        let out = as_user(&bin.join("initdb").to_string_lossy())
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .map_err(|e| failed("initdb", e))?;
        if !out.status.success() {
            return Err(failed("initdb", String::from_utf8_lossy(&out.stderr)));
        }
        let port = crate::free_port().map_err(|e| failed("free port", e))?;
        // The server under a watchdog: it stops the server and removes its
        // directory once this process is gone.
        let postgres = bin.join("postgres");
        let run = if root {
            format!("setpriv {} -- ", AS_NOBODY.join(" "))
        } else {
            String::new()
        };
        let script = format!(
            r#"{run}"{pg}" -D "{data}" -p {port} -h 127.0.0.1 -k "{sock}" -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=64MB{ssl} > "{base}/log" 2>&1 &
pg=$!
while kill -0 {parent} 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 0.5; done
kill -INT $pg 2>/dev/null; wait $pg 2>/dev/null
rm -rf "{base}""#,
            pg = postgres.display(),
            data = data.display(),
            sock = sock.display(),
            base = base.display(),
            parent = std::process::id(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| failed("postgres", e))?;
        let s = PgServer { port, bin, data };
        for _ in 0..300 {
            if s.psql("postgres", "SELECT 1").is_ok() {
                return Ok(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(base.join("log")).unwrap_or_default();
        Err(failed("postgres did not start", log))
    }

    /// Run one statement with psql.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, PgError> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", db, "-v", "ON_ERROR_STOP=1", "-tAc", sql])
            .output()
            .map_err(|e| failed("psql", e))?;
        if !out.status.success() {
            return Err(failed("psql", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The URL of database `db` for the superuser.
    pub fn url(&self, db: &str) -> String {
        self.url_as(USER, db)
    }

    /// The URL of database `db` for `user` (the test server trusts
    /// loopback: no password).
    pub fn url_as(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; its name.
    pub fn create_database_named(&self) -> Result<String, PgError> {
        let name = format!("gsl_{}", SEQ.fetch_add(1, Ordering::SeqCst));
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(name)
    }

    /// A new, empty database; its URL.
    pub fn create_database(&self) -> Result<String, PgError> {
        Ok(self.url(&self.create_database_named()?))
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);
static SHARED: OnceLock<PgServer> = OnceLock::new();

/// The test binary's server, started on first use.
pub fn shared() -> &'static PgServer {
    SHARED.get_or_init(|| PgServer::start().unwrap_or_else(|e| panic!("PostgreSQL for tests: {e}")))
}

/// A fresh database on the test binary's server: its URL.
pub fn fresh_database() -> String {
    shared()
        .create_database()
        .unwrap_or_else(|e| panic!("PostgreSQL for tests: {e}"))
}
