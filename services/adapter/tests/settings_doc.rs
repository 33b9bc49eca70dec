//! `docs/operations.md` tells the truth about settings: every default it
//! lists for the gateway and the adapter is the one in the code (each
//! written once, in `AdapterConfig::new` / `GatewayConfig::default` /
//! `RequestBounds::default`), and every `GSL_*` setting the code reads is
//! listed there (carrier settings: in `docs/carriers.md`).

use gsl_adapter_kit::config::{AdapterConfig, Rate};
use gsl_domain::Carrier;
use gsl_gateway::config::GatewayConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(p: &str) -> String {
    std::fs::read_to_string(root().join(p)).unwrap()
}

/// Setting -> documented default, from every settings table row whose
/// settings and defaults pair up one to one.
fn documented_defaults(doc: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `GSL_")) {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let (names, defaults) = (cols[1], cols[2]);
        let names: Vec<&str> = names.split('`').filter(|s| s.starts_with("GSL_")).collect();
        let defaults: Vec<&str> = defaults
            .split(", ")
            .flat_map(|d| d.split(" / "))
            .map(str::trim)
            .collect();
        if names.len() == defaults.len() {
            for (n, d) in names.iter().zip(defaults) {
                m.insert((*n).to_owned(), d.trim_matches('`').to_owned());
            }
        }
    }
    m
}

fn bytes(n: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        n.to_string()
    }
}

fn rate(r: Rate) -> String {
    format!("{}/s", r.limit)
}

#[test]
fn documented_defaults_are_the_codes() {
    let doc = read("docs/operations.md");
    let got = documented_defaults(&doc);
    let a = AdapterConfig::new(Carrier::Ct, "http://c", "nats://n", "http://g", "t");
    let g = GatewayConfig::default();
    let b = &g.bounds;
    let want: Vec<(&str, String)> = vec![
        ("GSL_CONCURRENCY", a.concurrency.to_string()),
        (
            "GSL_SYNC",
            if a.sync.enabled { "on" } else { "off" }.to_string(),
        ),
        (
            "GSL_SYNC_INTERVAL_SECS",
            a.sync.interval.as_secs().to_string(),
        ),
        (
            "GSL_SYNC_CHANGED_SECS",
            a.sync.changed_every.as_secs().to_string(),
        ),
        ("GSL_SYNC_SHARE", a.sync.share.to_string()),
        ("GSL_SYNC_CHUNK", a.sync.chunk.to_string()),
        (
            "GSL_SYNC_USAGE_INTERVAL_SECS",
            a.sync.usage_interval.as_secs().to_string(),
        ),
        (
            "GSL_REFRESH_TIMEOUT_SECS",
            g.refresh_timeout.as_secs().to_string(),
        ),
        (
            "GSL_USAGE_DAILY_RETENTION_MONTHS",
            g.usage_daily_retention_months.to_string(),
        ),
        ("GSL_MAX_REPORT_CARDS_BYTES", bytes(b.report_cards)),
        ("GSL_MAX_REFRESH_CARDS_BYTES", bytes(b.refresh_cards)),
        ("GSL_RATE_CHANGE", rate(a.rate_change)),
        ("GSL_RATE_QUERY", rate(a.rate_query)),
        ("GSL_RATE_SAFETY", a.rate_safety.to_string()),
        (
            "GSL_BATCH_WINDOW_MS",
            a.batch_window.as_millis().to_string(),
        ),
        ("GSL_MAX_DELIVER", a.max_deliver.to_string()),
        ("GSL_ACK_WAIT_SECS", a.ack_wait.as_secs().to_string()),
        ("GSL_CALL_ATTEMPTS", a.call_attempts.to_string()),
        (
            "GSL_CALL_TIMEOUT_MS",
            a.call_timeout.as_millis().to_string(),
        ),
        ("GSL_MAX_ANSWER_BYTES", bytes(a.max_answer)),
        (
            "GSL_REPORT_GIVE_UP_SECS",
            a.report_give_up.as_secs().to_string(),
        ),
        (
            "GSL_POLL_INTERVAL_MS",
            a.poll_interval.as_millis().to_string(),
        ),
        (
            "GSL_FIRST_POLL_MIN_MS",
            a.first_poll_min.as_millis().to_string(),
        ),
        (
            "GSL_FIRST_POLL_MAX_MS",
            a.first_poll_max.as_millis().to_string(),
        ),
        ("GSL_GRPC_LISTEN", g.grpc_listen.clone()),
        (
            "GSL_TENANT_MAX_OPEN_ORDERS",
            g.tenant_max_open_orders.to_string(),
        ),
        (
            "GSL_MAX_CONCURRENT_REQUESTS",
            g.max_concurrent_requests.to_string(),
        ),
        (
            "GSL_MAX_REQUESTS_PER_CONNECTION",
            g.max_requests_per_connection.to_string(),
        ),
        ("GSL_FANOUT_WINDOW", g.fanout_window.to_string()),
        (
            "GSL_BACKGROUND_FANOUT_OVER",
            g.background_fanout_over.to_string(),
        ),
        (
            "GSL_FANOUT_SWEEP_SECS",
            g.fanout_sweep.as_secs().to_string(),
        ),
        (
            "GSL_FANOUT_STALE_SECS",
            g.fanout_stale.as_secs().to_string(),
        ),
        ("GSL_BUNDLE_SIZE", g.bundle_size.to_string()),
        (
            "GSL_TRACE_ITEMS_PER_ORDER",
            g.trace_items_per_order.to_string(),
        ),
        ("GSL_DATABASE_POOL", g.database.pool_size.to_string()),
        (
            "GSL_DATABASE_WAIT_MS",
            g.database.wait.as_millis().to_string(),
        ),
        ("GSL_MAX_SUBMIT_BYTES", bytes(b.submit)),
        ("GSL_MAX_IMPORT_BYTES", bytes(b.import_cards)),
        ("GSL_MAX_IMPORT_BATCHES_BYTES", bytes(b.import_batches)),
        ("GSL_MAX_SMALL_REQUEST_BYTES", bytes(b.small)),
        ("GSL_DECODE_BUDGET_BYTES", bytes(b.budget)),
        (
            "GSL_DECODE_BUDGET_WAIT_MS",
            b.budget_wait.as_millis().to_string(),
        ),
    ];
    let mut wrong = Vec::new();
    for (k, v) in &want {
        match got.get(*k) {
            Some(d) if d == v => {}
            other => wrong.push(format!("{k}: code {v}, docs {other:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/operations.md is stale:\n{}",
        wrong.join("\n")
    );
}

/// Every `.rs` file under `dir`, except test directories.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if !matches!(name, "tests" | "target") {
                sources(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_setting_the_code_reads_is_documented() {
    let ops = read("docs/operations.md");
    let carriers = read("docs/carriers.md");
    let mut files = Vec::new();
    for d in ["services", "crates"] {
        sources(&root().join(d), &mut files);
    }
    // Stream names look like settings; they are not read from anywhere.
    let streams = [
        gsl_bus::names::STREAM_WORK,
        gsl_bus::names::STREAM_EVENTS,
        gsl_bus::names::STREAM_FOLLOW,
        gsl_bus::names::STREAM_INTAKE,
        gsl_bus::names::STREAM_DLQ,
        gsl_bus::names::STREAM_PUSH,
        gsl_bus::names::STREAM_PUSH_NOTICES,
    ];
    let carrier_prefixes: Vec<String> = Carrier::ALL
        .iter()
        .map(|c| format!("GSL_{}_", c.as_str().to_uppercase()))
        .collect();
    let mut missing = Vec::new();
    let mut seen = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let text = match text.find("#[cfg(test)]") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        for (i, _) in text.match_indices("\"GSL_") {
            let name: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !text[i + 1 + name.len()..].starts_with('"') || streams.contains(&name.as_str()) {
                continue;
            }
            seen += 1;
            let doc = if carrier_prefixes.iter().any(|p| name.starts_with(p)) {
                &carriers
            } else {
                &ops
            };
            if !doc.contains(&format!("`{name}`")) {
                missing.push(format!("{name} ({})", f.display()));
            }
        }
    }
    assert!(seen > 50, "the settings were found ({seen})");
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "settings read but not documented:\n{}",
        missing.join("\n")
    );
}
