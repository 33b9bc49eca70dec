//! Shared benchmark plumbing: modes, BENCH lines, medians, child processes,
//! memory readings.

use gsl_testkit::NatsServer;
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
    let line = Value::Object(m);
    println!("BENCH {line}");
    if let Ok(mut all) = FIGURES.lock() {
        all.push(line);
    }
}

/// Every figure printed in this run, for the closing table and JSON file.
static FIGURES: std::sync::Mutex<Vec<Value>> = std::sync::Mutex::new(Vec::new());

/// Print the run's figures as a table (stderr) and write them as JSON to
/// `BENCH_JSON` (default `target/bench-results.json`).
pub fn write_summary(mode: &Mode) -> Result<String, String> {
    let all = FIGURES.lock().map_err(|e| e.to_string())?.clone();
    eprintln!("\n{:<28} {:>14}  unit", "figure", "value");
    for f in &all {
        eprintln!(
            "{:<28} {:>14.3}  {}",
            f["name"].as_str().unwrap_or_default(),
            f["value"].as_f64().unwrap_or(f64::NAN),
            f["unit"].as_str().unwrap_or_default()
        );
    }
    let path = std::env::var("BENCH_JSON").unwrap_or_else(|_| {
        gsl_testkit::workspace_root()
            .join("target/bench-results.json")
            .to_string_lossy()
            .into_owned()
    });
    let doc = json!({"mode": format!("{:?}", mode.kind).to_lowercase(), "figures": all});
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
    .map_err(|e| format!("{path}: {e}"))?;
    Ok(path)
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

/// The tenant token every benchmark uses (tenant `bench`).
pub const TOKEN: &str = "tok-bench-0001";
/// The adapters' credential for Results.
pub const ADAPTER_TOKEN: &str = "bench-adapter-token";

/// A request carrying the benchmark tenant's token.
pub fn authed<T>(m: T) -> tonic::Request<T> {
    gsl_testkit::gateway::bearer(TOKEN, m)
}

/// Register cards `(ICCID, access number)` with the gateway as China
/// Telecom cards in `sim_status` (the domain's numeric code), 20,000 per
/// call. The access number comes with the card, as it would in production
/// (otherwise the adapter looks each one up with DCP `getTelephone` first).
pub async fn import_ct_cards(
    ch: &tonic::transport::Channel,
    ids: &[(String, String)],
    sim_status: u32,
) -> Result<(), String> {
    import_cards(ch, gsl_domain::Carrier::Ct, ids, sim_status).await
}

/// Register cards `(ICCID, carrier number)` of `carrier`: the number is the
/// MSISDN for China Mobile, the access number for China Telecom, unused
/// otherwise.
pub async fn import_cards(
    ch: &tonic::transport::Channel,
    carrier: gsl_domain::Carrier,
    ids: &[(String, String)],
    sim_status: u32,
) -> Result<(), String> {
    let mut reg = gsl_proto::v1::registry_client::RegistryClient::new(ch.clone())
        .max_encoding_message_size(64 << 20);
    for chunk in ids.chunks(20_000) {
        reg.import_cards(authed(gsl_proto::v1::ImportCardsRequest {
            cards: chunk
                .iter()
                .map(|(id, number)| gsl_proto::v1::Card {
                    id: id.clone(),
                    carrier: gsl_proto::convert::carrier_to_wire(carrier) as i32,
                    sim_status,
                    stop_reason: -1,
                    threshold_mb: -1,
                    msisdn: if carrier == gsl_domain::Carrier::Cmcc {
                        number.clone()
                    } else {
                        String::new()
                    },
                    access_number: if carrier == gsl_domain::Carrier::Ct {
                        number.clone()
                    } else {
                        String::new()
                    },
                    ..Default::default()
                })
                .collect(),
        }))
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A gateway on free ports, talking to `nats_url`, knowing the bench tenant.
pub async fn spawn_gateway(nats: &NatsServer) -> Result<Service, String> {
    spawn_gateway_with(nats, &[]).await
}

/// The same with extra settings.
pub async fn spawn_gateway_with(
    nats: &NatsServer,
    extra: &[(&str, String)],
) -> Result<Service, String> {
    let mut env = vec![
        ("GSL_NATS_URL", nats.url()),
        ("GSL_DATABASE_URL", nats.database_url()),
        ("GSL_TENANT_TOKENS", format!("{TOKEN}=bench")),
        ("GSL_TENANT_SELF_REGISTRATION", "on".into()),
        (
            "GSL_ADAPTER_TOKENS",
            gsl_testkit::gateway::adapter_tokens_env(ADAPTER_TOKEN),
        ),
        ("GSL_GRPC_LISTEN", "127.0.0.1:0".into()),
        ("GSL_ADMIN_LISTEN", "127.0.0.1:0".into()),
        ("RUST_LOG", service_log()),
    ];
    env.extend(extra.iter().cloned());
    Service::spawn("gsl-gateway", &env).await
}

/// A China Telecom adapter against `sim_url` (the simulator's base URL).
pub async fn spawn_ct_adapter(
    nats_url: String,
    gateway_url: String,
    sim_url: &str,
    extra: &[(&str, String)],
) -> Result<Service, String> {
    spawn_adapter(
        gsl_domain::Carrier::Ct,
        nats_url,
        gateway_url,
        sim_url,
        extra,
    )
    .await
}

/// An adapter of `carrier` against `sim_url` (the simulator's base URL).
pub async fn spawn_adapter(
    carrier: gsl_domain::Carrier,
    nats_url: String,
    gateway_url: String,
    sim_url: &str,
    extra: &[(&str, String)],
) -> Result<Service, String> {
    // The simulator process runs with its default credentials.
    let creds = gsl_carrier_sim::config::Credentials::default();
    let (user, secret) = creds.account(carrier);
    let mut env = vec![
        ("GSL_CARRIER", carrier.as_str().to_owned()),
        ("GSL_CARRIER_URL", format!("{sim_url}/{}", carrier.as_str())),
        ("GSL_CARRIER_USER", user.to_owned()),
        ("GSL_CARRIER_SECRET", secret.to_owned()),
        ("GSL_NATS_URL", nats_url),
        ("GSL_GATEWAY_URL", gateway_url),
        (
            "GSL_ADAPTER_TOKEN",
            gsl_testkit::gateway::adapter_token(ADAPTER_TOKEN, carrier.as_str()),
        ),
        ("GSL_ADMIN_LISTEN", "127.0.0.1:0".into()),
        ("RUST_LOG", service_log()),
        // Card sync only where a benchmark measures it (`extra`).
        ("GSL_SYNC", "off".into()),
    ];
    env.extend(creds.adapter_env(carrier));
    env.extend(extra.iter().cloned());
    Service::spawn("gsl-adapter", &env).await
}

/// CPU time (user + system) a process has used so far, in seconds, from /proc.
pub fn cpu_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after ") ".
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
