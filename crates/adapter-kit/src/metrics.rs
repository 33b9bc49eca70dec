//! An adapter's metrics (Prometheus, on its admin port).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Labels {
    pub carrier: String,
    pub value: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub carrier: String,
    pub call: String,
    pub result: String,
}

#[derive(Clone)]
pub struct Metrics {
    pub carrier: String,
    /// Items by outcome: succeeded, failed, accepted, sla_breached, dead_lettered.
    pub items: Family<Labels, Counter>,
    /// Carrier call latency by call (submit / poll / lookup) and result.
    pub call_seconds: Family<CallLabels, Histogram>,
    /// Carrier errors by our code.
    pub carrier_errors: Family<Labels, Counter>,
    /// Cooldown and quota refusals by code.
    pub rule_refusals: Family<Labels, Counter>,
    pub limiter_wait_seconds: Histogram,
    pub in_flight: Gauge,
    pub redeliveries: Counter,
    pub dead_letters: Counter,
    pub consumer_pending: Gauge,
    pub follow_pending: Gauge,
    /// Cards per batch call.
    pub batch_size: Histogram,
    /// The configured carrier limit per API class, calls per second (for "rate vs limit").
    pub rate_limit: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

fn latency() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl Metrics {
    pub fn new(reg: &mut Registry, carrier: &str) -> Metrics {
        let m = Metrics {
            carrier: carrier.to_owned(),
            items: Family::default(),
            call_seconds: Family::new_with_constructor(latency),
            carrier_errors: Family::default(),
            rule_refusals: Family::default(),
            limiter_wait_seconds: Histogram::new([
                0.0, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            in_flight: Gauge::default(),
            redeliveries: Counter::default(),
            dead_letters: Counter::default(),
            consumer_pending: Gauge::default(),
            follow_pending: Gauge::default(),
            batch_size: Histogram::new([1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0]),
            rate_limit: Family::default(),
        };
        reg.register(
            "gsl_adapter_batch_size",
            "Cards per batch call",
            m.batch_size.clone(),
        );
        reg.register(
            "gsl_adapter_rate_limit_per_s",
            "Configured carrier rate limit per API class (0: unlimited)",
            m.rate_limit.clone(),
        );
        reg.register("gsl_adapter_items", "Items by outcome", m.items.clone());
        reg.register(
            "gsl_adapter_carrier_call_seconds",
            "Carrier call latency by call and result",
            m.call_seconds.clone(),
        );
        reg.register(
            "gsl_adapter_carrier_errors",
            "Carrier errors by code",
            m.carrier_errors.clone(),
        );
        reg.register(
            "gsl_adapter_rule_refusals",
            "Cooldown and quota refusals by code",
            m.rule_refusals.clone(),
        );
        reg.register(
            "gsl_adapter_limiter_wait_seconds",
            "Time waiting for the carrier's rate budget",
            m.limiter_wait_seconds.clone(),
        );
        reg.register(
            "gsl_adapter_in_flight",
            "Items being processed",
            m.in_flight.clone(),
        );
        reg.register(
            "gsl_adapter_redeliveries",
            "Deliveries after the first",
            m.redeliveries.clone(),
        );
        reg.register(
            "gsl_adapter_dead_letters",
            "Messages dead-lettered",
            m.dead_letters.clone(),
        );
        reg.register(
            "gsl_adapter_consumer_pending",
            "Work items waiting in the durable consumer",
            m.consumer_pending.clone(),
        );
        reg.register(
            "gsl_adapter_follow_pending",
            "Accepted changes being followed",
            m.follow_pending.clone(),
        );
        m
    }

    pub fn item(&self, outcome: &str) {
        self.items
            .get_or_create(&Labels {
                carrier: self.carrier.clone(),
                value: outcome.to_owned(),
            })
            .inc();
    }

    pub fn call(&self, call: &str, result: &str, secs: f64) {
        self.call_seconds
            .get_or_create(&CallLabels {
                carrier: self.carrier.clone(),
                call: call.to_owned(),
                result: result.to_owned(),
            })
            .observe(secs);
    }

    pub fn carrier_error(&self, code: &str) {
        self.carrier_errors
            .get_or_create(&Labels {
                carrier: self.carrier.clone(),
                value: code.to_owned(),
            })
            .inc();
    }

    pub fn rule_refusal(&self, code: &str) {
        self.rule_refusals
            .get_or_create(&Labels {
                carrier: self.carrier.clone(),
                value: code.to_owned(),
            })
            .inc();
    }
}
