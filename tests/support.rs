//! # gsl-e2e: helpers for cross-service tests
//!
//! The services run as the real binaries (built by `make test` before the
//! tests; `cargo build --bins` otherwise), found next to the test executable
//! in the target directory. Their stdout and stderr are captured so a test
//! can read the logs.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub mod otlp;
pub mod rig;

/// A binary of this workspace, from the target directory of this test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile directory");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} not built: run `make test` (or `cargo build --bins` first)",
        p.display()
    );
    p
}

/// A running service process; killed on drop.
pub struct Proc {
    pub child: Child,
    /// The address it printed as `listening on <addr>`.
    pub addr: String,
    /// Other `<what> on <addr>` lines it printed (e.g. `admin on ...`).
    pub lines: Arc<Mutex<Vec<String>>>,
    /// Everything it wrote to stdout and stderr.
    pub log: Arc<Mutex<String>>,
}

impl Proc {
    pub async fn spawn(name: &str, env: &[(&str, String)]) -> Proc {
        let mut cmd = Command::new(binary(name));
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let mut tx = Some(tx);
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let (l1, ls) = (log.clone(), lines.clone());
        tokio::spawn(async move {
            let mut r = BufReader::new(out).lines();
            while let Ok(Some(l)) = r.next_line().await {
                if let Some(a) = l.strip_prefix("listening on ")
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(a.trim().to_owned());
                }
                if !l.starts_with('{') {
                    ls.lock().unwrap().push(l.clone());
                }
                let mut g = l1.lock().unwrap();
                g.push_str(&l);
                g.push('\n');
            }
        });
        let l2 = log.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(err).lines();
            while let Ok(Some(l)) = r.next_line().await {
                let mut g = l2.lock().unwrap();
                g.push_str(&l);
                g.push('\n');
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{name} did not start within 30 s; log:\n{}",
                    log.lock().unwrap()
                )
            })
            .unwrap_or_else(|_| panic!("{name} exited; log:\n{}", log.lock().unwrap()));
        Proc {
            child,
            addr,
            lines,
            log,
        }
    }

    /// The address on a `<what> on <addr>` line (e.g. `admin`).
    pub fn printed(&self, what: &str) -> Option<String> {
        let prefix = format!("{what} on ");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find_map(|l| l.strip_prefix(&prefix).map(|a| a.trim().to_owned()))
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGTERM, then wait for the exit (at most `within`).
    pub async fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        gsl_testkit::signal(self.pid(), "TERM").ok()?;
        tokio::time::timeout(within, self.child.wait())
            .await
            .ok()?
            .ok()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}
