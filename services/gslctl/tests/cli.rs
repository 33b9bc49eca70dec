//! gslctl as a user runs it: the real binary, batch files on disk, a real
//! gateway and nats-server behind it.

use gsl_domain::Iccid;
use gsl_gateway::Gateway;
use gsl_gateway::auth::StaticTokens;
use gsl_gateway::config::GatewayConfig;
use gsl_testkit::NatsServer;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Output;

const TOKEN: &str = "tok-acme-0001";

fn iccid(n: u32) -> String {
    Iccid::from_payload(&format!("898603077{n:09}"))
        .unwrap()
        .to_string()
}

async fn gslctl(args: &[&str], gateway: &str) -> Output {
    gslctl_env(args, gateway, &[]).await
}

async fn gslctl_env(args: &[&str], gateway: &str, env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_gslctl"))
        .args(args)
        .env("GSL_GATEWAY", gateway)
        .env("GSL_TOKEN", TOKEN)
        .env_remove("GSL_OPERATOR_TOKEN")
        .env("GSLCTL_CONFIG", "/nonexistent")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

/// NATS and a gateway knowing tenant `acme` (`TOKEN`); its gRPC URL.
async fn gateway() -> (NatsServer, Gateway, String) {
    let nats = NatsServer::start().await.unwrap();
    let mut tenants = HashMap::new();
    tenants.insert(TOKEN.to_string(), "acme".to_string());
    let gw = Gateway::start(GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        StaticTokens::new(tenants, Some("adapter-secret".into())),
    ))
    .await
    .unwrap();
    let url = format!("http://{}", gw.grpc_addr);
    (nats, gw, url)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p.display().to_string()
}

fn xlsx(dir: &Path, name: &str, rows: &[Vec<&str>]) -> String {
    let p = dir.join(name);
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            ws.write_string(r as u32, c as u16, *v).unwrap();
        }
    }
    wb.save(&p).unwrap();
    p.display().to_string()
}

#[tokio::test]
async fn validate_only_reports_every_bad_row_csv_and_xlsx() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (iccid(1), iccid(2));
    let csv = write(
        dir.path(),
        "cards.csv",
        &format!(
            "ICCID,bind type,IMEI\n{a},fixed_imei,490154203237518\n{b},fixed_imei,\n8986031234567890123,normal,\n,,\n{a},normal,\n"
        ),
    );
    let o = gslctl(
        &["submit", "rebind", "--file", &csv, "--validate-only"],
        "http://127.0.0.1:1",
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let table = out(&o);
    for (row, code) in [
        ("3", "GSL.00020006"),
        ("4", "GSL.00020001"),
        ("5", "GSL.00010004"),
        ("6", "GSL.00020004"),
    ] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(row) && l.contains(code)),
            "row {row} {code} in:\n{table}"
        );
    }
    assert!(
        !table.lines().any(|l| l.starts_with("2 ")),
        "row 2 is valid:\n{table}"
    );
    // JSON output, same problems
    let o = gslctl(
        &[
            "submit",
            "rebind",
            "--file",
            &csv,
            "--validate-only",
            "--output",
            "json",
        ],
        "http://127.0.0.1:1",
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    let j: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(j["valid"], false);
    let rows: Vec<u64> = j["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, vec![3, 4, 5, 6]);
    // xlsx, first sheet, region bind layout
    let good = xlsx(
        dir.path(),
        "good.xlsx",
        &[
            vec!["container id", "region"],
            vec![&a, "240_辽宁省"],
            vec![&b, "100"],
        ],
    );
    let o = gslctl(
        &[
            "submit",
            "region_bind",
            "--file",
            &good,
            "--validate-only",
            "-o",
            "json",
        ],
        "http://127.0.0.1:1",
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out(&o)).unwrap()["rows"],
        2
    );
    let bad = xlsx(
        dir.path(),
        "bad.xlsx",
        &[vec![&a, "999"], vec!["not a card!", "240"]],
    );
    let o = gslctl(
        &["submit", "region_bind", "--file", &bad, "--validate-only"],
        "http://127.0.0.1:1",
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    let t = out(&o);
    assert!(
        t.contains("GSL.00020006") && t.contains("GSL.00020001"),
        "{t}"
    );
    // usage errors
    let o = gslctl(
        &["submit", "teleport", "--validate-only", &a],
        "http://127.0.0.1:1",
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    let o = gslctl(
        &[
            "submit",
            "stop",
            "--file",
            "/nonexistent.csv",
            "--validate-only",
        ],
        "http://127.0.0.1:1",
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
}

#[tokio::test]
async fn submit_import_and_exit_codes_against_a_gateway() {
    let nats = NatsServer::start().await.unwrap();
    let mut tenants = HashMap::new();
    tenants.insert(TOKEN.to_string(), "acme".to_string());
    let gw = Gateway::start(GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        StaticTokens::new(tenants, Some("adapter-secret".into()))
            .with_operator(Some("operator-secret-9".into())),
    ))
    .await
    .unwrap();
    let url = format!("http://{}", gw.grpc_addr);
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (iccid(10), iccid(11), iccid(12));
    let registry = write(
        dir.path(),
        "registry.csv",
        &format!(
            "id,carrier,sim_status,stop_reason,pooled,real_named,version,batch,msisdn,imsi,access_number\n\
             {a},ct,20,,,,,,,460110000000010,14910000010\n{b},ct,20\n{c},ct,14\n"
        ),
    );
    let o = gslctl(&["cards", "import", &registry, "-o", "json"], &url).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        out(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out(&o)).unwrap()["imported"],
        3
    );
    // The carrier's numbers are kept with the card.
    let o = gslctl(&["cards", "get", &a, "-o", "json"], &url).await;
    let card: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(card["access_number"], "14910000010", "{card}");
    assert_eq!(card["imsi"], "460110000000010");
    // The back-office queue takes the operator credential, not a tenant's.
    let o = gslctl(&["backoffice", "list", "-o", "json"], &url).await;
    assert_ne!(o.status.code(), Some(0), "a tenant token must be refused");
    // With stack.env sourced both are set: the operator's is used for the
    // back office, the tenant's for its orders.
    let both = [("GSL_OPERATOR_TOKEN", "operator-secret-9")];
    let o = gslctl_env(&["backoffice", "list", "-o", "json"], &url, &both).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "the operator's credential comes first for the back office: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = gslctl_env(&["cards", "get", &a, "-o", "json"], &url, &both).await;
    assert_eq!(o.status.code(), Some(0), "the tenant's for its cards");
    let o = gslctl(
        &[
            "backoffice",
            "list",
            "-o",
            "json",
            "--token",
            "operator-secret-9",
        ],
        &url,
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out(&o)).unwrap(),
        serde_json::json!([])
    );
    let o = gslctl(
        &[
            "backoffice",
            "complete",
            "ct.1.x",
            "--token",
            "operator-secret-9",
        ],
        &url,
    )
    .await;
    assert_ne!(o.status.code(), Some(0), "an unknown request");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("GSL.00010010"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // a stop for a, b (c is stopped already: refused as an item)
    let batch = write(dir.path(), "stop.csv", &format!("{a}\n{b}\n{c}\n"));
    let o = gslctl(
        &[
            "submit", "stop", "--file", &batch, "--key", "k1", "-o", "json",
        ],
        &url,
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(j["work_order"]["total"], 3);
    assert_eq!(j["refused"], 1);
    assert_eq!(j["refusals"][0]["problem"]["code"], "GSL.00016002");
    let id = j["work_order"]["id"].as_u64().unwrap().to_string();
    // same key, same request: replayed
    let o = gslctl(
        &[
            "submit", "stop", "--file", &batch, "--key", "k1", "-o", "json",
        ],
        &url,
    )
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out(&o)).unwrap()["replayed"],
        true
    );
    // get, items, list in JSON
    let o = gslctl(&["get", &id, "-o", "json"], &url).await;
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out(&o)).unwrap()["status"],
        "processing"
    );
    let o = gslctl(&["items", &id, "--status", "failed", "-o", "json"], &url).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out(&o))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let o = gslctl(&["list"], &url).await;
    assert!(
        out(&o).lines().nth(1).unwrap().starts_with(&id),
        "{}",
        out(&o)
    );
    // all items refused: rejected, exit 3
    let o = gslctl(&["submit", "stop", &c, "--key", "k2"], &url).await;
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    // refused as a whole by the gateway: exit 4
    let o = gslctl(
        &["submit", "set_usage_threshold", &a, "--threshold-mb", "-5"],
        &url,
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = gslctl(&["get", "999999"], &url).await;
    assert_eq!(o.status.code(), Some(4));
    // bad rows are not sent without --skip-bad-rows
    let mixed = write(dir.path(), "mixed.csv", &format!("{a}\nnot-a-card!\n"));
    let o = gslctl(&["submit", "stop", "--file", &mixed, "--key", "k3"], &url).await;
    assert_eq!(o.status.code(), Some(2));
    // unreachable gateway: exit 1
    let o = gslctl(&["get", "1"], "http://127.0.0.1:1").await;
    assert_eq!(o.status.code(), Some(1));
    // cancel only in review: held order can be cancelled, then not again
    let o = gslctl(
        &["submit", "stop", &a, "--hold", "--key", "k4", "-o", "json"],
        &url,
    )
    .await;
    let held = serde_json::from_str::<serde_json::Value>(&out(&o)).unwrap()["work_order"]["id"]
        .as_u64()
        .unwrap()
        .to_string();
    assert_eq!(
        gslctl(&["cancel", &held], &url).await.status.code(),
        Some(0)
    );
    assert_eq!(
        gslctl(&["cancel", &held], &url).await.status.code(),
        Some(4)
    );
}

/// An operator reaches a gateway behind TLS with `--ca-cert`; without it the
/// connection fails with a clear message (the token is never sent in clear).
#[tokio::test]
async fn gslctl_talks_tls_with_the_gateways_ca() {
    let nats = NatsServer::start().await.unwrap();
    let (ca, cert, key) = gsl_testkit::tls_files();
    let mut tenants = HashMap::new();
    tenants.insert(TOKEN.to_string(), "acme".to_string());
    let mut cfg = GatewayConfig::local(
        &nats.url(),
        &nats.database_url(),
        StaticTokens::new(tenants, None),
    );
    cfg.tls = Some((cert.display().to_string(), key.display().to_string()));
    let gw = Gateway::start(cfg).await.unwrap();
    let url = format!("https://localhost:{}", gw.grpc_addr.port());
    let ca = ca.display().to_string();
    let o = gslctl(&["list", "-o", "json", "--ca-cert", &ca], &url).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plain = format!("http://localhost:{}", gw.grpc_addr.port());
    let o = gslctl(&["list", "-o", "json"], &plain).await;
    assert!(!o.status.success(), "clear text must not be answered");
    gw.shutdown().await;
}

/// The card list as an operator uses it: plan data and attributes come in
/// with the import, `cards list` filters and pages, `--csv` exports every
/// matching card across pages, `cards get` says "not reported" for what no
/// source gave.
#[tokio::test]
async fn cards_list_get_and_csv_export() {
    let (_nats, _gw, url) = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    // 1,203 cards: more than two export pages of 500.
    let mut csv = String::from(
        "id,carrier,sim_status,stop_reason,pooled,real_named,version,batch,msisdn,imsi,access_number,plan_id,plan_name,allowance_mb,expire_time,act_date,a1,a2,a3,a4,a5,a6,sim_type\n",
    );
    for n in 0..1203u32 {
        let status = if n % 3 == 0 { 14 } else { 20 };
        let attr = if n % 2 == 0 { "north" } else { "south" };
        csv.push_str(&format!(
            "{},ct,{status},,,,,PB-{},,,,P1,IoT 100,100,2027-06-30,,{attr},,,,,,3\n",
            iccid(1000 + n),
            n % 4
        ));
    }
    let file = write(dir.path(), "fleet.csv", &csv);
    let o = gslctl(&["cards", "import", &file, "-o", "json"], &url).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = gslctl(
        &[
            "cards", "list", "--status", "14", "--attr", "1=north", "--limit", "50", "-o", "json",
        ],
        &url,
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    // status 14: n % 3 == 0; north: n even -> n % 6 == 0.
    let want = (0..1203u32).filter(|n| n % 6 == 0).count() as u64;
    assert_eq!(page["count"], want, "{page}");
    assert_eq!(page["sim_cards"].as_array().unwrap().len(), 50);
    assert_eq!(page["sim_cards"][0]["price_plan_name"], "IoT 100");
    assert_eq!(page["sim_cards"][0]["flow_used"], "not reported");
    let o = gslctl(&["cards", "list", "--limit", "9"], &url).await;
    assert_ne!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("GSL.00010004"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The whole fleet (one batch of it), in key order, as CSV.
    let o = gslctl(
        &["cards", "list", "--csv", "--order-ids", "PB-1,PB-2"],
        &url,
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = out(&o);
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("cid,sim_status,operator_status")
    );
    let ids: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    let mut want: Vec<String> = (0..1203u32)
        .filter(|n| n % 4 == 1 || n % 4 == 2)
        .map(|n| iccid(1000 + n))
        .collect();
    want.sort();
    assert_eq!(ids, want);
    let o = gslctl(&["cards", "get", &iccid(1000), "-o", "json"], &url).await;
    let card: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(card["expire_time"], "2027-06-30T00:00:00Z", "{card}");
    assert_eq!(card["act_date"], "not reported");
    assert_eq!(card["imei_bind_remain_times"], 2);
    assert_eq!(card["customer_attribute1"], "north");
}

/// `gslctl cards usage` in both forms (the reference's batch-daily-flow
/// shape in JSON), and `gslctl push` from create to a test push, through a
/// real gateway and gsl-push to an HTTPS receiver.
#[tokio::test]
async fn cards_usage_and_push_addresses() {
    let (nats, _gw, url) = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let card = iccid(5000);
    let file = write(
        dir.path(),
        "one.csv",
        &format!("id,carrier,sim_status\n{card},ct,20\n"),
    );
    assert_eq!(
        gslctl(&["cards", "import", &file], &url)
            .await
            .status
            .code(),
        Some(0)
    );
    let store = gsl_cardstore::CardStore::connect(
        &nats.database_url(),
        &gsl_cardstore::StoreConfig::default(),
    )
    .unwrap();
    let today = gsl_domain::calendar::cst_date(chrono::Utc::now());
    let day = today.pred_opt().unwrap();
    store
        .record_daily(&[gsl_cardstore::usage::DayRow {
            id: card.clone(),
            day,
            mb: 12.5,
        }])
        .await
        .unwrap();
    let date = day.format("%Y%m%d").to_string();
    let o = gslctl(
        &["cards", "usage", "--date", &date, &card, "-o", "json"],
        &url,
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["days"][0]["date"], date.as_str());
    assert_eq!(v["days"][0]["sim_flow"][0]["iccid"], card.as_str());
    assert_eq!(v["days"][0]["sim_flow"][0]["flow"], 12.5);
    let month = today.format("%Y%m").to_string();
    let o = gslctl(&["cards", "usage", "--month", &month, &card], &url).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(out(&o).contains("DATE"), "{}", out(&o));
    // Both forms at once: refused by the command line itself.
    let o = gslctl(
        &["cards", "usage", "--month", &month, "--date", &date, &card],
        &url,
    )
    .await;
    assert_ne!(o.status.code(), Some(0));

    // Push addresses.
    let push = gsl_push::Push::start(gsl_push::config::PushConfig::local(&nats.url()))
        .await
        .unwrap();
    let r = gsl_testkit::receiver::Receiver::start(true).await;
    let ca = write(dir.path(), "ca.pem", &gsl_testkit::receiver::ca_pem());
    let o = gslctl(
        &["push", "create", &r.url(), "--ca", &ca, "-o", "json"],
        &url,
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let a: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let id = a["id"].as_str().unwrap().to_owned();
    assert!(a["secret"].as_str().unwrap().starts_with("whsec_"));
    let o = gslctl(&["push", "test", &id], &url).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).starts_with("ok: HTTP 200"), "{}", out(&o));
    assert_eq!(r.received().len(), 1);
    let o = gslctl(&["push", "list"], &url).await;
    assert!(
        out(&o).contains(&id) && out(&o).contains("enabled"),
        "{}",
        out(&o)
    );
    let o = gslctl(&["push", "disable", &id], &url).await;
    assert!(out(&o).contains("disabled by its tenant"), "{}", out(&o));
    // The secret is never listed.
    let o = gslctl(&["push", "list", "-o", "json"], &url).await;
    assert!(!out(&o).contains("whsec_"), "{}", out(&o));
    push.shutdown().await;
}
