//! `push`: what gsl-push delivers (a gateway, NATS and gsl-push as
//! processes; an HTTPS receiver with the test CA's certificate in this
//! process).
//!
//! * `push_deliveries_per_s`: events published at once, delivered to one
//!   address (rate 10,000/s, 100 at once), from the first publication to
//!   the last receipt; next to `baseline_post_per_s`, a plain POST loop
//!   (100 at once, kept connections) to the same receiver, no bus.
//! * `push_p99_ms`: from an event's publication (its `timestamp`) to its
//!   receipt, events published at 200/s.
//! * `push_loss` (must be 0) and `push_duplicates` (receipts of a
//!   `webhook-id` already received) with a receiver that fails 30 % of
//!   requests (503) and is restarted once in the middle; 25 attempts over
//!   about 20 s (pushes whose retries still run out are counted apart).
//!
//! Sizes: `BENCH_PUSH_EVENTS` (default 20,000; smoke 500).

use crate::common::{Mode, Service, authed, emit, service_log, spawn_gateway};
use gsl_proto::v1;
use gsl_testkit::NatsServer;
use gsl_testkit::receiver::{Receiver, ca_pem};
use prost::Message;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

struct Stack {
    nats_url: String,
    _nats: NatsServer,
    _gw: Service,
    _push: Service,
    gw_url: String,
    js: async_nats::jetstream::Context,
}

async fn stack(schedule: &str) -> Result<Stack, String> {
    let nats = NatsServer::start().await.map_err(|e| e.to_string())?;
    let gw = spawn_gateway(&nats).await?;
    let push = Service::spawn(
        "gsl-push",
        &[
            ("GSL_NATS_URL", nats.url()),
            ("GSL_ADMIN_LISTEN", "127.0.0.1:0".into()),
            ("GSL_PUSH_ALLOW_NETS", "127.0.0.0/8".into()),
            ("GSL_PUSH_RETRY_SCHEDULE", schedule.into()),
            ("RUST_LOG", service_log()),
        ],
    )
    .await?;
    let (_c, js) = gsl_bus::connect(&gsl_bus::BusConfig::new(nats.url(), "bench-push"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(Stack {
        nats_url: nats.url(),
        gw_url: format!("http://{}", gw.addr),
        _nats: nats,
        _gw: gw,
        _push: push,
        js,
    })
}

impl Stack {
    async fn address(&self, r: &Receiver) -> Result<String, String> {
        let ch = tonic::transport::Channel::from_shared(self.gw_url.clone())
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let a = v1::push_addresses_client::PushAddressesClient::new(ch)
            .create(authed(v1::CreatePushAddressRequest {
                url: r.url(),
                server_ca_pem: ca_pem(),
                events: vec![],
                rate_per_s: 10_000,
                concurrency: 100,
            }))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        Ok(a.address.ok_or("no address")?.id)
    }

    /// Item `n` of order `wo` failed: one push.
    async fn event(&self, wo: u64, n: u32) -> Result<(), String> {
        let card = format!("8986031{n:012}");
        let ev = v1::WorkOrderEvent {
            work_order_id: wo,
            tenant: "bench".into(),
            at: Some(gsl_proto::convert::timestamp(chrono::Utc::now())),
            event: Some(v1::work_order_event::Event::Item(v1::ItemOutcome {
                work_order_id: wo,
                card: card.clone(),
                index: n,
                carrier: v1::Carrier::Ct as i32,
                operation: v1::OperationKind::Stop as i32,
                kind: v1::OutcomeKind::Failed as i32,
                ..Default::default()
            })),
        };
        self.js
            .publish(
                gsl_bus::names::event_subject("bench", wo, &card),
                ev.encode_to_vec().into(),
            )
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Publish `n` events, up to 64 at once.
    async fn burst(self: &Arc<Self>, wo: u64, n: u32) -> Result<(), String> {
        use futures::StreamExt;
        let results: Vec<Result<(), String>> = futures::stream::iter(0..n)
            .map(|i| {
                let s = self.clone();
                async move { s.event(wo, i).await }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

fn distinct(r: &Receiver) -> usize {
    r.received()
        .iter()
        .map(|p| p.id.clone())
        .collect::<HashSet<_>>()
        .len()
}

async fn until_distinct(r: &Receiver, n: usize, within: Duration) -> Result<Instant, String> {
    let deadline = Instant::now() + within;
    loop {
        if distinct(r) >= n {
            return Ok(r
                .received()
                .iter()
                .map(|p| p.at)
                .max()
                .unwrap_or_else(Instant::now));
        }
        if Instant::now() > deadline {
            return Err(format!("{} of {n} pushes within {within:?}", distinct(r)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain POST loop: `n` requests, `parallel` at once, kept connections.
async fn baseline(r: &Receiver, n: u32, parallel: usize) -> f64 {
    use futures::StreamExt;
    let sender = Arc::new(gsl_push::http::Sender::default());
    let guard = Arc::new(gsl_push::netguard::NetGuard::parse("127.0.0.0/8").expect("range"));
    let (url, pem) = (r.url(), ca_pem());
    let t = Instant::now();
    let _: Vec<()> = futures::stream::iter(0..n)
        .map(|i| {
            let (sender, guard, url, pem) =
                (sender.clone(), guard.clone(), url.clone(), pem.clone());
            async move {
                let _ = sender
                    .post(
                        gsl_push::http::Post {
                            key: "baseline",
                            url: &url,
                            ca_pem: &pem,
                            headers: vec![("webhook-id", format!("base_{i}"))],
                            body: bytes::Bytes::from_static(br#"{"type":"baseline"}"#),
                        },
                        &guard,
                        false,
                        Duration::from_secs(15),
                        4096,
                    )
                    .await;
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    f64::from(n) / t.elapsed().as_secs_f64()
}

pub async fn run(mode: &Mode) -> Result<(), String> {
    let events: u32 = std::env::var("BENCH_PUSH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(mode.pick(20_000, 500));

    // Throughput, next to the plain POST loop.
    {
        let s = Arc::new(stack("1s").await?);
        let r = Receiver::start(true).await;
        s.address(&r).await?;
        let base = baseline(&r, events, 100).await;
        r.state.got.lock().expect("got").clear();
        let t = Instant::now();
        s.burst(1, events).await?;
        let last = until_distinct(&r, events as usize, Duration::from_secs(600)).await?;
        let secs = (last - t).as_secs_f64();
        let rate = f64::from(events) / secs;
        eprintln!("push: {events} in {secs:.2} s; plain POST loop {base:.0}/s");
        emit(
            "push_deliveries_per_s",
            rate,
            "deliveries/s",
            json!({
                "events": events, "baseline_post_per_s": base.round(),
                "ratio_to_baseline": (rate / base * 1000.0).round() / 1000.0,
                "address_rate_per_s": 10_000, "address_concurrency": 100,
                "goal": ">= 2000",
            }),
        );
    }

    // Latency at a steady 200/s.
    {
        let s = Arc::new(stack("1s").await?);
        let r = Receiver::start(true).await;
        s.address(&r).await?;
        let n = mode.pick(2_000, 200);
        let t0 = Instant::now();
        for i in 0..n {
            let due = t0 + Duration::from_millis(u64::from(i) * 5);
            tokio::time::sleep_until(due.into()).await;
            s.event(2, i).await?;
        }
        until_distinct(&r, n as usize, Duration::from_secs(120)).await?;
        let mut lat: Vec<f64> = r
            .received()
            .iter()
            .filter_map(|p| {
                let v: serde_json::Value = serde_json::from_slice(&p.body).ok()?;
                let sent = chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str()?).ok()?;
                let got: chrono::DateTime<chrono::Utc> = p.wall.into();
                Some((got - sent.with_timezone(&chrono::Utc)).num_microseconds()? as f64 / 1000.0)
            })
            .collect();
        lat.sort_by(|a, b| a.total_cmp(b));
        let q = |f: f64| lat[((lat.len() as f64 * f).ceil() as usize).clamp(1, lat.len()) - 1];
        emit(
            "push_p99_ms",
            q(0.99),
            "ms",
            json!({"events": n, "publish_rate_per_s": 200, "p50_ms": q(0.5), "max_ms": q(1.0)}),
        );
    }

    // Loss and duplicates through failures and a restart. The schedule
    // gives a push 25 attempts over about 20 s, so a 1 s outage plus 30 %
    // failures cannot use it up (0.3^20): a loss here is a push the
    // service dropped, not one whose retries ran out (those are counted
    // apart, `exhausted`, from the notices).
    {
        let schedule = [vec!["200ms"; 5], vec!["1s"; 20]].concat().join(",");
        let s = Arc::new(stack(&schedule).await?);
        let (client, _) = gsl_bus::connect(&gsl_bus::BusConfig::new(
            s.nats_url.clone(),
            "bench-notices",
        ))
        .await
        .map_err(|e| e.to_string())?;
        let mut notices = client
            .subscribe("gsl.push.notice.bench.*.exhausted")
            .await
            .map_err(|e| e.to_string())?;
        let exhausted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ex = exhausted.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            while notices.next().await.is_some() {
                ex.fetch_add(1, Ordering::Relaxed);
            }
        });
        let mut r = Receiver::start(true).await;
        r.state.fail_per_mille.store(300, Ordering::Relaxed);
        s.address(&r).await?;
        let n = mode.pick(5_000, 300);
        let half = n / 2;
        s.burst(3, half).await?;
        r.stop();
        tokio::time::sleep(Duration::from_secs(1)).await;
        r.restart().await;
        let rest = Arc::clone(&s);
        // The second half under new numbers (order 4), same address.
        rest.burst(4, n - half).await?;
        let deadline = Instant::now() + Duration::from_secs(300);
        while distinct(&r) + exhausted.load(Ordering::Relaxed) < n as usize
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let late retries land before counting.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let got = r.received();
        let ids: HashSet<String> = got.iter().map(|p| p.id.clone()).collect();
        let loss = n as usize - ids.len().min(n as usize);
        let dups = got.len() - ids.len();
        emit(
            "push_loss",
            loss as f64,
            "pushes",
            json!({
                "events": n, "receiver_fail_share": 0.3, "receiver_restarts": 1, "goal": "0",
                "exhausted": exhausted.load(Ordering::Relaxed),
            }),
        );
        emit(
            "push_duplicates",
            dups as f64,
            "pushes",
            json!({"events": n, "requests": r.state.requests.load(Ordering::Relaxed)}),
        );
    }
    Ok(())
}
