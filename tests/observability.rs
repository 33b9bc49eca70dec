//! Observability across processes: one OpenTelemetry trace per work order
//! through gateway, NATS, adapter and carrier call; metrics with the right
//! values; per-item traces for large orders; no secret in any log line.

use gsl_carrier_sim::config::CompletionMode;
use gsl_domain::Carrier;
use gsl_domain::card::{SimStatus, StopReason};
use gsl_e2e::Proc;
use gsl_e2e::otlp::{self, Receiver, Span};
use gsl_e2e::rig::{self, ADAPTER_TOKEN, Rig, TENANT_TOKEN};
use gsl_proto::v1;
use std::collections::HashMap;
use std::time::Duration;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

struct World {
    rx: Receiver,
    rig: Rig,
    adapters: Vec<Proc>,
}

async fn world(
    carriers: &[Carrier],
    gateway_env: &[(&'static str, String)],
    rust_log: &str,
) -> World {
    let (rx, endpoint) = otlp::start().await;
    let common = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
        ("RUST_LOG", rust_log.to_string()),
    ];
    let mut gw_env = vec![("OTEL_SERVICE_NAME", "gsl-gateway".to_string())];
    gw_env.extend(gateway_env.iter().cloned());
    let rig = rig::start(
        |sc| sc.completion.mode = CompletionMode::Immediate,
        common,
        &gw_env,
    )
    .await;
    let mut adapters = Vec::new();
    for c in carriers {
        adapters.push(
            rig.adapter(*c, &[("OTEL_SERVICE_NAME", "gsl-adapter".to_string())])
                .await,
        );
    }
    World { rx, rig, adapters }
}

fn in_use(c: &mut gsl_carrier_sim::inventory::CardRecord) {
    c.status = SimStatus::InUse;
    c.stop_reason = StopReason::Normal;
}

impl World {
    async fn cards(&self, c: Carrier, first: u64, n: u64) -> Vec<String> {
        self.rig.cards(c, first, n, in_use).await
    }

    /// Submit a stop (with the client's trace context) and wait for its end.
    async fn submit_and_wait(
        &self,
        key: &str,
        ids: &[String],
        traceparent: Option<&str>,
    ) -> v1::WorkOrder {
        let mut req = rig::authed(gsl_testkit::gateway::submit_request(
            key,
            v1::operation::Kind::Stop(v1::Stop {}),
            ids,
        ));
        if let Some(tp) = traceparent {
            req.metadata_mut()
                .insert("traceparent", tp.parse().unwrap());
        }
        let o = self
            .rig
            .orders()
            .await
            .submit(req)
            .await
            .unwrap()
            .into_inner()
            .work_order
            .unwrap();
        self.rig.settled(o.id, Duration::from_secs(30)).await
    }

    /// Wait until `pred` holds over the received spans.
    async fn spans_until(&self, what: &str, pred: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        for _ in 0..150 {
            let spans = self.rx.spans.lock().unwrap().clone();
            if pred(&spans) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let spans = self.rx.spans.lock().unwrap().clone();
        panic!(
            "{what}: not seen; spans: {:#?}",
            spans
                .iter()
                .map(|s| (&s.service, &s.name, &s.trace_id))
                .collect::<Vec<_>>()
        );
    }

    async fn metrics(&self, admin: &str) -> String {
        reqwest::get(format!("http://{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn find<'a>(spans: &'a [Span], service: &str, name: &str, trace: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.service == service && s.name == name && s.trace_id == trace)
        .collect()
}

#[tokio::test]
async fn one_trace_from_submit_through_adapter_and_carrier_to_report() {
    let w = world(&[Carrier::Ct], &[], "info").await;
    let ids = w.cards(Carrier::Ct, 10, 2).await;
    let tp = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let o = w.submit_and_wait("traced", &ids, Some(&tp)).await;
    assert_eq!(o.succeeded, 2);
    let spans = w
        .spans_until("adapter report spans in the trace", |s| {
            find(s, "gsl-adapter", "report", TRACE_ID).len() >= 2
                && find(s, "gsl-gateway", "report", TRACE_ID).len() >= 2
                && !find(s, "gsl-gateway", "fanout", TRACE_ID).is_empty()
        })
        .await;
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let parent = |s: &Span| by_id.get(s.parent_span_id.as_str()).copied();
    // gateway: grpc (child of the client's span) -> submit -> fanout
    let grpc_submit = find(&spans, "gsl-gateway", "gsl.v1.WorkOrders/Submit", TRACE_ID);
    assert_eq!(grpc_submit.len(), 1, "{spans:#?}");
    assert_eq!(grpc_submit[0].parent_span_id, CLIENT_SPAN);
    assert_eq!(grpc_submit[0].attr("rpc.system"), Some("grpc"));
    let submit = find(&spans, "gsl-gateway", "submit", TRACE_ID)[0];
    assert_eq!(submit.parent_span_id, grpc_submit[0].span_id);
    assert_eq!(
        submit.attr("work_order_id"),
        Some(o.id.to_string().as_str())
    );
    let fanout = find(&spans, "gsl-gateway", "fanout", TRACE_ID)[0];
    assert_eq!(fanout.parent_span_id, submit.span_id);
    // adapter: consume is a child of the fan-out (context from NATS headers)
    let consumes = find(&spans, "gsl-adapter", "consume", TRACE_ID);
    assert_eq!(consumes.len(), 2);
    for c in &consumes {
        assert_eq!(
            c.parent_span_id, fanout.span_id,
            "consume parented on the fan-out"
        );
        assert_eq!(c.attr("messaging.system"), Some("nats"));
        assert_eq!(c.attr("carrier"), Some("ct"));
    }
    // carrier call -> http, under consume; with outcome
    let calls = find(&spans, "gsl-adapter", "carrier_call", TRACE_ID);
    assert!(
        calls
            .iter()
            .any(|c| c.attr("call") == Some("submit") && c.attr("outcome") == Some("ok"))
    );
    // The change call runs under consume; a read of its completion (China
    // Telecom's are never complete at once, so none is made inline) under
    // the follow-up, which the consume's context reaches through NATS.
    let follow_ups = find(&spans, "gsl-adapter", "follow_up", TRACE_ID);
    for c in &calls {
        let under_consume = consumes.iter().any(|k| k.span_id == c.parent_span_id);
        let under_follow_up = follow_ups.iter().any(|k| k.span_id == c.parent_span_id);
        assert!(
            under_consume || under_follow_up,
            "carrier_call under consume or follow_up"
        );
        if c.attr("call") == Some("submit") {
            assert!(under_consume, "the change call under consume");
        }
    }
    let http = find(&spans, "gsl-adapter", "http", TRACE_ID);
    assert!(
        http.iter()
            .any(|h| h.attr("http.response.status_code") == Some("200"))
    );
    assert!(
        http.iter()
            .all(|h| parent(h).is_some_and(|p| p.name == "carrier_call"))
    );
    // the report crosses back to the gateway: its gRPC span is a child of the adapter's report span
    let grpc_reports = find(&spans, "gsl-gateway", "gsl.v1.Results/Report", TRACE_ID);
    assert!(grpc_reports.len() >= 2);
    for g in &grpc_reports {
        let p = parent(g).expect("parent span exported");
        assert_eq!(
            (p.service.as_str(), p.name.as_str()),
            ("gsl-adapter", "report")
        );
    }
    // the carrier saw the trace context
    let seen = w
        .rig
        .sim
        .engine
        .platform(Carrier::Ct)
        .probes
        .traceparents
        .lock()
        .unwrap()
        .clone();
    assert!(
        seen.iter().any(|t| t.contains(TRACE_ID)),
        "traceparent reached the carrier"
    );
    // logs carry the trace id: the gateway's "work order accepted" line is inside the traced RPC
    let gw_log = w.rig.gw.log();
    let accepted = gw_log
        .lines()
        .find(|l| l.contains("work order accepted"))
        .expect("accepted log line");
    assert!(
        accepted.contains(&format!("\"trace_id\":\"{TRACE_ID}\"")),
        "{accepted}"
    );
}

#[tokio::test]
async fn large_orders_give_each_item_its_own_trace_linked_to_the_order() {
    let w = world(
        &[Carrier::Ct],
        &[("GSL_TRACE_ITEMS_PER_ORDER", "2".into())],
        "info",
    )
    .await;
    let ids = w.cards(Carrier::Ct, 40, 3).await;
    let tp = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    w.submit_and_wait("large", &ids, Some(&tp)).await;
    let spans = w
        .spans_until("three consume spans", |s| {
            s.iter()
                .filter(|x| x.service == "gsl-adapter" && x.name == "consume")
                .count()
                >= 3
        })
        .await;
    let consumes: Vec<&Span> = spans
        .iter()
        .filter(|x| x.service == "gsl-adapter" && x.name == "consume")
        .collect();
    let traces: std::collections::HashSet<&str> =
        consumes.iter().map(|c| c.trace_id.as_str()).collect();
    assert_eq!(traces.len(), 3, "one trace per item");
    assert!(
        !traces.contains(TRACE_ID),
        "items are not in the order's trace"
    );
    for c in consumes {
        assert_eq!(
            c.links,
            vec![TRACE_ID.to_string()],
            "each item links to the order's trace"
        );
        assert!(
            c.parent_span_id.is_empty(),
            "each item's trace starts at the adapter"
        );
    }
}

fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|lab| l.contains(lab)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let w = world(&[Carrier::Ct], &[], "warn").await;
    let ids = w.cards(Carrier::Ct, 60, 3).await;
    let mut with_unknown = ids.clone();
    with_unknown.push(
        gsl_domain::Iccid::from_payload("898603999000000001")
            .unwrap()
            .to_string(),
    );
    let o = w.submit_and_wait("metered", &with_unknown, None).await;
    assert_eq!((o.succeeded, o.failed), (3, 1));
    // The gateway counts a report once it has handled all of it (the card
    // store written, the events published), which can be just after the
    // order settled.
    let admin = w.rig.gw.printed("admin").expect("gateway admin address");
    let mut gw = String::new();
    for _ in 0..50 {
        gw = w.metrics(&admin).await;
        if metric(
            &gw,
            "gsl_gateway_reports_total",
            &["kind=\"succeeded\"", "duplicate=\"false\""],
        ) == Some(3.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(
            &gw,
            "gsl_gateway_orders_accepted_total",
            &["operation=\"stop\"", "carrier=\"ct\"", "source=\"api\""]
        ),
        Some(1.0),
        "{gw}"
    );
    assert_eq!(
        metric(
            &gw,
            "gsl_gateway_items_refused_total",
            &["code=\"GSL.00020002\""]
        ),
        Some(1.0),
        "{gw}"
    );
    assert_eq!(
        metric(&gw, "gsl_gateway_items_published_total", &[]),
        Some(3.0),
        "{gw}"
    );
    assert_eq!(
        metric(
            &gw,
            "gsl_gateway_reports_total",
            &["kind=\"succeeded\"", "duplicate=\"false\""]
        ),
        Some(3.0),
        "{gw}"
    );
    // The adapter counts an item once the gateway acknowledged its report,
    // which can be just after the order settled.
    let mut ad = String::new();
    for _ in 0..50 {
        ad = w.metrics(&w.adapters[0].addr).await;
        if metric(&ad, "gsl_adapter_items_total", &["value=\"succeeded\""]) == Some(3.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(
            &ad,
            "gsl_adapter_items_total",
            &["carrier=\"ct\"", "value=\"succeeded\""]
        ),
        Some(3.0),
        "{ad}"
    );
    assert_eq!(
        metric(
            &ad,
            "gsl_adapter_items_total",
            &["carrier=\"ct\"", "value=\"accepted\""]
        ),
        Some(3.0),
        "{ad}"
    );
    assert_eq!(
        metric(
            &ad,
            "gsl_adapter_carrier_call_seconds_count",
            &["call=\"submit\"", "result=\"ok\""]
        ),
        Some(3.0),
        "{ad}"
    );
    assert_eq!(
        metric(&ad, "gsl_adapter_dead_letters_total", &[]),
        Some(0.0),
        "{ad}"
    );
    assert_eq!(metric(&ad, "gsl_adapter_in_flight", &[]), Some(0.0), "{ad}");
    assert!(
        metric(&ad, "gsl_adapter_limiter_wait_seconds_count", &[]).is_some(),
        "{ad}"
    );
    assert!(
        metric(&ad, "gsl_adapter_rate_limit_per_s", &["value=\"change\""]).is_some(),
        "{ad}"
    );
}

#[tokio::test]
async fn no_secret_appears_in_any_log() {
    let mut w = world(
        &[Carrier::Cmcc, Carrier::Ct, Carrier::Cu, Carrier::Trinet],
        &[],
        "debug",
    )
    .await;
    for (i, c) in Carrier::ALL.iter().enumerate() {
        let ids = w.cards(*c, 80 + i as u64 * 10, 2).await;
        let o = w.submit_and_wait(&format!("secret-{c}"), &ids, None).await;
        assert_eq!(o.succeeded, 2, "{c}");
    }
    // China Mobile tokens the carrier issued, and every configured secret.
    let tokens: Vec<String> = w
        .rig
        .sim
        .engine
        .platform(Carrier::Cmcc)
        .access
        .tokens
        .lock()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(!tokens.is_empty(), "a China Mobile token was used");
    let mut secrets: Vec<String> = vec![
        TENANT_TOKEN.into(),
        ADAPTER_TOKEN.into(),
        "cmcc-secret".into(),
        "ct-secret".into(),
        "cu-secret".into(),
        "trinet-secret".into(),
    ];
    secrets.extend(tokens);
    // Logs of a clean exit too.
    let _ = w.rig.gw.terminate(Duration::from_secs(20)).await;
    for a in &mut w.adapters {
        let _ = a.terminate(Duration::from_secs(20)).await;
    }
    let mut logs = vec![("gsl-gateway", w.rig.gw.log())];
    logs.extend(w.adapters.iter().map(|a| ("gsl-adapter", a.log())));
    for (who, log) in &logs {
        assert!(log.len() > 1000, "{who} logged at debug level");
        for s in &secrets {
            assert!(
                !log.contains(s.as_str()),
                "{who} logged a secret ({} characters)",
                s.len()
            );
        }
        assert!(
            !log.contains("Bearer "),
            "{who} logged an authorization header"
        );
        assert!(
            !log.contains("Basic "),
            "{who} logged an authorization header"
        );
    }
}
