//! `cards`: the gateway as the fleet grows, with the cards in the card store
//! (PostgreSQL).
//!
//! One gateway process, real NATS and PostgreSQL. Cards are imported through
//! the API (`Registry.ImportCards`, 100,000 per request), the gateway is
//! restarted at 1,000,000 and at the largest size, and a 100,000-card order
//! is accepted at the smallest and at the largest size. Figures:
//!
//! - `cards_gateway_rss_1m_mb`, `cards_gateway_rss_10m_mb`: RSS after a
//!   restart (baseline: the same gateway's RSS on an empty store, this run);
//! - `cards_gateway_start_10m_s`: restart to ready (baseline: on an empty
//!   store);
//! - `cards_import_per_s` over the first 1,000,000, next to a plain `COPY` of
//!   the same rows into a scratch table of the same database;
//! - `cards_accept_100k_at_10m_s`: median of three 100,000-card orders
//!   accepted, next to the same with 100,000 cards registered.
//!
//! - then the card list at the largest size (see `cardlist`).
//!
//! `BENCH_CARDS_MAX` (default 10,000,000) caps the largest size (disk, time);
//! the size actually used is printed with each figure. `BENCH_GATEWAY_BIN`
//! runs another gateway binary (an older build, for a before/after: one that
//! ignores `GSL_DATABASE_URL` keeps its cards in NATS KV).

use crate::common::{Kind, Mode, emit, median, rss_mb, service_log};
use gsl_proto::v1;
use gsl_testkit::NatsServer;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

pub const TOKEN: &str = "tok-cards-0001";
const PER_IMPORT: u32 = 100_000;

fn iccid(n: u32) -> String {
    gsl_domain::Iccid::from_payload(&format!("898603{:03}{:09}", n / 1_000_000_000, n))
        .expect("valid payload")
        .as_str()
        .to_owned()
}

fn card(n: u32) -> v1::Card {
    v1::Card {
        id: iccid(n),
        carrier: v1::Carrier::Ct as i32,
        // Testing: activation takes up to 100,000 cards per order.
        sim_status: 13,
        stop_reason: -1,
        threshold_mb: -1,
        access_number: format!("1410{n:09}"),
        // What the card list filters and sorts on.
        batch_no: format!("PB-{}", n % 100),
        plan_id: format!("P{}", n % 7),
        plan_name: format!("IoT {}", 100 * (1 + n % 5)),
        allowance_mb: Some(f64::from(100 * (1 + n % 5))),
        expire_time: Some(prost_types::Timestamp {
            seconds: 1_800_000_000 + i64::from(n % 365) * 86_400,
            nanos: 0,
        }),
        act_date: (!n.is_multiple_of(3)).then_some(prost_types::Timestamp {
            seconds: 1_700_000_000 + i64::from(n % 400) * 86_400,
            nanos: 0,
        }),
        customer_attributes: vec![
            if n.is_multiple_of(2) {
                "north"
            } else {
                "south"
            }
            .into(),
            format!("site-{}", n % 1000),
        ],
        ..Default::default()
    }
}

fn authed<T>(m: T) -> tonic::Request<T> {
    gsl_testkit::gateway::bearer(TOKEN, m)
}

/// The gateway process, with its admin address (for `/readyz`).
struct Gw {
    child: Child,
    pub grpc: String,
}

impl Gw {
    async fn start(nats: &NatsServer) -> Result<(Gw, Duration), String> {
        let bin = match std::env::var("BENCH_GATEWAY_BIN") {
            Ok(p) if !p.is_empty() => std::path::PathBuf::from(p),
            _ => crate::common::sibling("gsl-gateway")?,
        };
        let admin_port = gsl_testkit::free_port().map_err(|e| e.to_string())?;
        let admin = format!("127.0.0.1:{admin_port}");
        // Made (and the server started) before the clock runs.
        let database = nats.database_url();
        let t0 = Instant::now();
        let mut child = Command::new(&bin)
            .env("GSL_NATS_URL", nats.url())
            .env("GSL_DATABASE_URL", &database)
            .env("GSL_TENANT_TOKENS", format!("{TOKEN}=bench"))
            .env("GSL_TENANT_SELF_REGISTRATION", "on")
            .env(
                "GSL_ADAPTER_TOKENS",
                gsl_testkit::gateway::adapter_tokens_env("cards-bench-adapter"),
            )
            .env("GSL_GRPC_LISTEN", "127.0.0.1:0")
            .env("GSL_ADMIN_LISTEN", &admin)
            .env("GSL_TENANT_MAX_OPEN_ORDERS", "1000000")
            .env("RUST_LOG", service_log())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let grpc = tokio::time::timeout(Duration::from_secs(600), async {
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some(a) = l.strip_prefix("listening on ") {
                    return Some(format!("http://{}", a.trim()));
                }
            }
            None
        })
        .await
        .map_err(|_| "gateway did not listen within 600 s")?
        .ok_or("gateway exited before listening")?;
        let echo = std::env::var("BENCH_VERBOSE").is_ok_and(|v| v == "1");
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                if echo {
                    eprintln!("[gsl-gateway] {l}");
                }
            }
        });
        let http = reqwest::Client::new();
        let ready = format!("http://{admin}/readyz");
        loop {
            if http
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            if t0.elapsed() > Duration::from_secs(900) {
                return Err("gateway not ready within 900 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = t0.elapsed();
        Ok((Gw { child, grpc }, took))
    }

    fn rss(&self) -> f64 {
        self.child
            .id()
            .and_then(rss_mb)
            .map(|(now, _)| now)
            .unwrap_or(f64::NAN)
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = gsl_testkit::signal(pid, "TERM");
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

/// Import cards `from..to` through the API; the rate in cards per second.
async fn import(gw: &Gw, from: u32, to: u32) -> Result<f64, String> {
    let mut reg = v1::registry_client::RegistryClient::connect(gw.grpc.clone())
        .await
        .map_err(|e| e.to_string())?
        .max_encoding_message_size(64 << 20);
    let t0 = Instant::now();
    let mut start = from;
    while start < to {
        let end = (start + PER_IMPORT).min(to);
        let cards = (start..end).map(card).collect();
        let r = reg
            .import_cards(authed(v1::ImportCardsRequest { cards }))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        if r.imported != u64::from(end - start) {
            return Err(format!("imported {} of {}", r.imported, end - start));
        }
        start = end;
    }
    Ok(f64::from(to - from) / t0.elapsed().as_secs_f64())
}

/// Wait until the work stream stops growing: the background fan-out of
/// earlier orders is done and competes with nothing measured next.
async fn quiet(nats: &NatsServer) -> Result<(), String> {
    let js = async_nats::jetstream::new(
        async_nats::connect(nats.url())
            .await
            .map_err(|e| e.to_string())?,
    );
    let mut last = u64::MAX;
    loop {
        let n = js
            .get_stream(gsl_bus::names::STREAM_WORK)
            .await
            .map_err(|e| e.to_string())?
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .messages;
        if n == last {
            return Ok(());
        }
        last = n;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Median seconds to accept a 100,000-card (or `n`-card) activation of
/// cards `0..n`, over three orders, each once the previous one's
/// background fan-out is done.
async fn accept(gw: &Gw, nats: &NatsServer, n: u32, tag: &str) -> Result<f64, String> {
    let mut orders = v1::work_orders_client::WorkOrdersClient::connect(gw.grpc.clone())
        .await
        .map_err(|e| e.to_string())?
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let cards: Vec<v1::CardRef> = (0..n)
        .map(|i| v1::CardRef {
            id: iccid(i),
            ..Default::default()
        })
        .collect();
    let mut times = Vec::new();
    for round in 0..3 {
        quiet(nats).await?;
        let req = v1::SubmitRequest {
            idempotency_key: format!("cards-{tag}-{round}"),
            operation: Some(v1::Operation {
                kind: Some(v1::operation::Kind::Activate(v1::Activate {})),
            }),
            cards: cards.clone(),
            ..Default::default()
        };
        let t0 = Instant::now();
        let r = orders
            .submit(authed(req))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        times.push(t0.elapsed().as_secs_f64());
        let o = r.work_order.ok_or("no order")?;
        if o.refused != 0 {
            return Err(format!("{} cards refused", o.refused));
        }
    }
    Ok(median(times))
}

/// The same rows with `COPY` into a scratch table of the same database: what
/// the database alone can take (the import's ceiling).
async fn copy_baseline(url: &str, from: u32, to: u32) -> Result<f64, String> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    // The card table's key and tenant index, logged: a fair ceiling.
    c.batch_execute(
        "DROP TABLE IF EXISTS copy_baseline;
         CREATE TABLE copy_baseline (id text PRIMARY KEY, tenant text NOT NULL, carrier smallint,
           sim_status smallint, stop_reason smallint, access_number text);
         CREATE INDEX copy_baseline_tenant_id ON copy_baseline (tenant, id)",
    )
    .await
    .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let sink = c
        .copy_in("COPY copy_baseline (id, tenant, carrier, sim_status, stop_reason, access_number) FROM STDIN (FORMAT binary)")
        .await
        .map_err(|e| e.to_string())?;
    let w = BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::TEXT,
            Type::INT2,
            Type::INT2,
            Type::INT2,
            Type::TEXT,
        ],
    );
    futures::pin_mut!(w);
    for n in from..to {
        let c = card(n);
        let row: [&(dyn ToSql + Sync); 6] = [
            &c.id,
            &"bench",
            &(c.carrier as i16),
            &(c.sim_status as i16),
            &(c.stop_reason as i16),
            &c.access_number,
        ];
        w.as_mut().write(&row).await.map_err(|e| e.to_string())?;
    }
    w.finish().await.map_err(|e| e.to_string())?;
    let rate = f64::from(to - from) / t0.elapsed().as_secs_f64();
    c.batch_execute("DROP TABLE copy_baseline")
        .await
        .map_err(|e| e.to_string())?;
    Ok(rate)
}

pub async fn run(mode: &Mode) -> Result<(), String> {
    let cap: u32 = std::env::var("BENCH_CARDS_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let (order, mid, largest) = match mode.kind {
        Kind::Smoke => (2_000, 10_000, 20_000),
        Kind::Full => (100_000, 1_000_000, cap.max(1_000_000)),
    };
    let nats = NatsServer::start().await.map_err(|e| e.to_string())?;

    // Empty store: the baselines of start time and memory.
    let (gw, start_empty) = Gw::start(&nats).await?;
    let rss_empty = gw.rss();

    // The accept baseline with `order` cards registered.
    import(&gw, 0, order).await?;
    let accept_small = accept(&gw, &nats, order, "small").await?;

    // Import up to `mid` (the import rate over it), then the COPY ceiling.
    let rate_import = import(&gw, order, mid).await?;
    let rate_copy = copy_baseline(&nats.database_url(), order, mid).await?;
    emit(
        "cards_import_per_s",
        rate_import,
        "cards/s",
        json!({"cards": mid - order, "per_request": PER_IMPORT, "baseline_copy_per_s": (rate_copy.round()), "ratio_to_copy": ((rate_import / rate_copy * 1000.0).round() / 1000.0)}),
    );

    // Restart at `mid`.
    gw.stop().await;
    let (gw, start_mid) = Gw::start(&nats).await?;
    let rss_mid = gw.rss();
    emit(
        "cards_gateway_rss_1m_mb",
        rss_mid,
        "MB",
        json!({"cards": mid, "baseline_empty_mb": ((rss_empty * 10.0).round() / 10.0), "start_s": ((start_mid.as_secs_f64() * 1000.0).round() / 1000.0)}),
    );

    // Up to the largest size; restart there.
    let t0 = Instant::now();
    import(&gw, mid, largest).await?;
    let fill_s = t0.elapsed().as_secs_f64();
    gw.stop().await;
    let (gw, start_large) = Gw::start(&nats).await?;
    let rss_large = gw.rss();
    emit(
        "cards_gateway_rss_10m_mb",
        rss_large,
        "MB",
        json!({"cards": largest, "baseline_empty_mb": ((rss_empty * 10.0).round() / 10.0), "fill_s": fill_s.round()}),
    );
    emit(
        "cards_gateway_start_10m_s",
        start_large.as_secs_f64(),
        "s",
        json!({"cards": largest, "baseline_empty_s": ((start_empty.as_secs_f64() * 1000.0).round() / 1000.0)}),
    );

    // Accepting an order with the whole fleet registered.
    let accept_large = accept(&gw, &nats, order, "large").await?;
    emit(
        "cards_accept_100k_at_10m_s",
        accept_large,
        "s",
        json!({"cards": largest, "order": order, "baseline_at_order_size_s": ((accept_small * 1000.0).round() / 1000.0), "ratio": ((accept_large / accept_small * 1000.0).round() / 1000.0)}),
    );
    let rss_after = gw.rss();
    eprintln!("cards: gateway RSS after the large accepts {rss_after:.1} MB");
    crate::cardlist::run(mode, &gw.grpc, &nats.database_url(), largest).await?;
    gw.stop().await;
    Ok(())
}
