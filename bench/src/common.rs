//! Shared benchmark plumbing: modes, BENCH lines, medians, child processes,
//! memory readings.

use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Full,
    Smoke,
}

pub struct Mode {
    pub kind: Kind,
}

impl Mode {
    pub fn from_env() -> Mode {
        let kind = match std::env::var("BENCH_MODE").as_deref() {
            Ok("smoke") => Kind::Smoke,
            _ => Kind::Full,
        };
        Mode { kind }
    }

    pub fn smoke(&self) -> bool {
        self.kind == Kind::Smoke
    }

    /// Rounds for a median.
    pub fn rounds(&self) -> usize {
        if self.smoke() { 1 } else { 5 }
    }

    pub fn pick<T>(&self, full: T, smoke: T) -> T {
        if self.smoke() { smoke } else { full }
    }
}

/// Print one `BENCH {json}` line.
pub fn emit(name: &str, value: f64, unit: &str, extra: Value) {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("value".into(), json!((value * 1000.0).round() / 1000.0));
    m.insert("unit".into(), json!(unit));
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    println!("BENCH {}", Value::Object(m));
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A binary next to this one (same target profile directory).
pub fn sibling(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = me.with_file_name(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found: build every binary first (`cargo build --release --bins`)",
            p.display()
        ))
    }
}

/// A child process that prints `listening on <addr>`; killed on drop.
pub struct Service {
    pub child: Child,
    pub addr: String,
}

impl Service {
    pub async fn spawn(bin: &str, env: &[(&str, String)]) -> Result<Service, String> {
        Service::spawn_args(bin, &[], env).await
    }

    pub async fn spawn_args(
        bin: &str,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Result<Service, String> {
        let path = sibling(bin)?;
        let mut cmd = Command::new(&path);
        cmd.args(args);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some(a) = l.strip_prefix("listening on ") {
                    return Some(a.trim().to_owned());
                }
            }
            None
        })
        .await
        .map_err(|_| format!("{bin} did not start within 30 s"))?
        .ok_or(format!("{bin} exited before listening"))?;
        // Keep draining stdout so the child never blocks on a full pipe.
        let echo = std::env::var("BENCH_VERBOSE").is_ok_and(|v| v == "1");
        let name = bin.to_owned();
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                if echo {
                    eprintln!("[{name}] {l}");
                }
            }
        });
        Ok(Service { child, addr })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// (current, peak) resident memory of a process in MB, from /proc.
pub fn rss_mb(pid: u32) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Log filter for the services a benchmark starts (`BENCH_SERVICE_LOG`, default `warn`).
pub fn service_log() -> String {
    std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".into())
}
